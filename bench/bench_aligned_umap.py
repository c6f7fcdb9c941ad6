"""Aligned embeddings of two feature spaces: time and alignment against two independent UMAPs.

Data (synthetic, structured, float32): model A's "penultimate features" are N = 10,000 samples
x 256 features in 10 Gaussian clusters, each cluster with its own 8-dimensional latent spread
plus isotropic noise; model B's (a stand-in for a pruned model's feature space) are A times a
random 256 x 256 mixing matrix plus noise. Both are standardised per feature
(backend.analysis.embeddings.standardize) before every method, the baseline included.

Measured in one run, after a warm-up (``warm_up()`` for the seeded and the unseeded code paths)
that is excluded from every timing, so that numba's compilation (about a minute on two cores)
counts for none of them:

- aligned_umap: ``aligned_embedding(method="aligned_umap")`` (umap.AlignedUMAP, identity
  relation, seed 0: single-threaded).
- umap_init: ``aligned_embedding(method="umap_init")`` with an empty kNN cache (kNN graphs
  included), then ``umap_init_cached``: a second comparison against the same model A, whose kNN
  graph and layout come from the cache (only B is computed).
- pca: ``aligned_embedding(method="pca")``.
- baseline: two independent ``umap.UMAP().fit_transform`` calls (A, then B) with umap's defaults
  (unseeded, so multi-threaded on both cores), whose layouts are not aligned at all. The seeded
  methods run single-threaded, so a "#" line also reports two seeded single-threaded fits.

Alignment is ``alignment_distance`` (mean distance between a sample's two positions after
centring both layouts and scaling them to unit RMS radius; unrelated layouts give about 1.4).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

from backend.analysis.embeddings import (  # noqa: E402
    aligned_embedding,
    alignment_distance,
    clear_knn_cache,
    standardize,
    warm_up,
)

N, D, CLUSTERS, LATENT = 10_000, 256, 10, 8


def make_features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features of A and of a mixed, noisier B."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (CLUSTERS, D))
    loadings = rng.normal(0.0, 0.5, (CLUSTERS, LATENT, D))
    labels = rng.integers(0, CLUSTERS, N)
    latent = rng.normal(0.0, 1.0, (N, LATENT))
    a = centers[labels] + np.einsum("nl,nld->nd", latent, loadings[labels])
    a += rng.normal(0.0, 0.5, (N, D))
    mixing = rng.normal(0.0, 1.0 / np.sqrt(D), (D, D))
    b = a @ mixing + rng.normal(0.0, 0.3, (N, D))
    return a.astype(np.float32), b.astype(np.float32)


def main() -> None:
    import umap

    a, b = make_features()
    t0 = time.perf_counter()
    warm = warm_up(seed=0) + warm_up(seed=None)
    print(f"# warm-up (excluded from all timings): {warm:.1f} s", flush=True)

    za, zb = standardize(a), standardize(b)
    t = time.perf_counter()
    ind_a = umap.UMAP().fit_transform(za)
    ind_b = umap.UMAP().fit_transform(zb)
    independent_s = time.perf_counter() - t
    independent_d = alignment_distance(ind_a, ind_b)
    baseline = f"two_independent_umap_fits({independent_s:.1f}s,alignment={independent_d:.3f})"
    baseline_d = f"independent_fits_alignment_distance({independent_d:.3f})"
    # Context only: the seeded methods run single-threaded, the default baseline on every core.
    t = time.perf_counter()
    umap.UMAP(random_state=0, n_jobs=1).fit_transform(za)
    umap.UMAP(random_state=0, n_jobs=1).fit_transform(zb)
    print(f"# two seeded single-threaded independent fits: {time.perf_counter() - t:.1f} s")

    for name, method in (("aligned_umap", "aligned_umap"), ("umap_init", "umap_init")):
        clear_knn_cache()
        emb = aligned_embedding(a, b, method=method, seed=0)
        bench_line(name, emb.seconds, "s", independent_s, baseline)
        bench_line(f"{name}_alignment", emb.alignment_distance, "unit", independent_d, baseline_d)

    # A second comparison against the same model A: its kNN graph and layout are cached.
    b2 = b + np.random.default_rng(1).normal(0.0, 0.1, b.shape).astype(np.float32)
    emb = aligned_embedding(a, b2, method="umap_init", seed=0)
    bench_line("umap_init_cached", emb.seconds, "s", independent_s, baseline)

    emb = aligned_embedding(a, b, method="pca")
    bench_line("pca_embedding", emb.seconds, "s", independent_s, baseline)
    bench_line("pca_alignment", emb.alignment_distance, "unit", independent_d, baseline_d)
    print(f"# total wall time {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
