"""Neighbourhood change (SCIENCE.md sect. 7): the k nearest neighbours of every sample in A's
and in B's features and their Jaccard similarity, against scikit-learn doing the same work.

Data: random float32 "penultimate features", N = 10,000 samples x 64 dimensions for A, and B =
A plus noise (so the neighbourhoods partly agree), k = 20.

Measured (best of 3, each side warmed up once):
- value: ``neighbourhood_change(A, B, k=20)``: exact cosine kNN of A and of B (blockwise float32
  products, self excluded, ties by index) and the per-sample Jaccard.
- baseline: ``sklearn.neighbors.NearestNeighbors(n_neighbors=k + 1, metric="cosine",
  algorithm="brute")`` fitted on and queried with A, then B (the sample itself comes back as
  its own first neighbour, hence k + 1), and the same Jaccard (``neighbourhood_jaccard``) of
  the results: the same work through the library a researcher would use. A "#" line also
  reports scikit-learn on L2-normalised rows with its default Euclidean metric (the same
  neighbours; its Euclidean brute force has a faster Cython path than metric="cosine").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

from backend.analysis.neighbours import (  # noqa: E402
    neighbourhood_change,
    neighbourhood_jaccard,
    normalise_rows,
)

N, D, K = 10_000, 64, 20


def best(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    fa = rng.standard_normal((N, D)).astype(np.float32)
    fb = (fa + 0.7 * rng.standard_normal((N, D))).astype(np.float32)

    def ours() -> np.ndarray:
        return neighbourhood_change(fa, fb, K).jaccard

    def sklearn(metric: str, prepare: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        nn = []
        for f in (fa, fb):
            x = prepare(f)
            fitted = NearestNeighbors(n_neighbors=K + 1, metric=metric, algorithm="brute").fit(x)
            nn.append(fitted.kneighbors(x, return_distance=False)[:, 1:])
        return neighbourhood_jaccard(nn[0], nn[1])

    agree = np.mean(np.abs(ours() - sklearn("cosine", lambda f: f)) < 1e-9)
    value = best(ours)
    baseline = best(lambda: sklearn("cosine", lambda f: f))
    euclid = best(lambda: sklearn("euclidean", normalise_rows))
    print(f"# same Jaccard as scikit-learn on {agree:.2%} of samples (the rest: float ties)")
    print(f"# sklearn euclidean on normalised rows: {euclid:.3f} s (ratio {value / euclid:.3g})")
    bench_line(
        "neighbourhood_change_10k",
        value,
        "s",
        baseline,
        'sklearn_NearestNeighbors(metric="cosine",algorithm="brute",k=20)_A_and_B+jaccard',
    )


if __name__ == "__main__":
    main()
