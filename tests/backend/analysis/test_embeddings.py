"""Aligned embeddings: alignment beats independent layouts, shapes, determinism, kNN cache.

Tests that run UMAP are marked slow: the first one in a process pays numba's compilation
(about a minute on two cores).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from backend.analysis import embeddings as emb
from backend.analysis.embeddings import (
    aligned_embedding,
    alignment_distance,
    clear_knn_cache,
    knn_graph,
    normalize_layout,
    pca_2d,
    procrustes_distance,
    standardize,
)


def features(n: int = 300, d_a: int = 32, d_b: int = 20, seed: int = 0):
    """Model A: 5 Gaussian clusters in D_a dims; model B: a noisy linear map of A to D_b dims."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, (5, d_a))
    labels = rng.integers(0, 5, n)
    a = centers[labels] + rng.normal(0.0, 1.0, (n, d_a))
    mixing = rng.normal(0.0, 1.0 / np.sqrt(d_a), (d_a, d_b))
    b = a @ mixing + rng.normal(0.0, 0.3, (n, d_b))
    return a.astype(np.float32), b.astype(np.float32)


def rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def check_layout(result: emb.AlignedEmbedding, n: int) -> None:
    for coords in (result.coords_a, result.coords_b):
        assert coords.shape == (n, 2)
        assert coords.dtype == np.float32
        assert np.isfinite(coords).all()
    assert result.alignment_distance == pytest.approx(
        alignment_distance(result.coords_a, result.coords_b)
    )
    assert result.seconds >= 0


# --- distances between layouts -----------------------------------------------------------


def test_alignment_distance_ignores_translation_and_scale_but_not_rotation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2))
    assert alignment_distance(a, 3.0 * a + 5.0) == pytest.approx(0.0, abs=1e-12)
    turned = a @ rotation(np.pi / 2)
    assert alignment_distance(a, turned) > 1.0
    assert procrustes_distance(a, turned) == pytest.approx(0.0, abs=1e-12)
    mirrored = normalize_layout(a)
    assert alignment_distance(a, -a) == pytest.approx(2 * np.linalg.norm(mirrored, axis=1).mean())


def test_unrelated_layouts_are_about_sqrt2_apart():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5000, 2)), rng.normal(size=(5000, 2))
    assert 1.1 < alignment_distance(a, b) < 1.4
    assert procrustes_distance(a, b) > 0.9


def test_normalize_layout_is_centred_unit_rms():
    c = normalize_layout(np.random.default_rng(2).normal(3.0, 7.0, size=(50, 2)))
    np.testing.assert_allclose(c.mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt((c**2).sum(axis=1).mean()) == pytest.approx(1.0)


def test_layout_distances_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        alignment_distance(np.zeros((5, 2)), np.zeros((4, 2)))


# --- standardisation and PCA -------------------------------------------------------------


def test_standardize_zero_mean_unit_std_and_dead_units_zero():
    x = np.random.default_rng(3).normal(5.0, 2.0, size=(100, 4))
    x[:, 2] = 7.0  # a dead unit
    z = standardize(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), [1, 1, 0, 1], atol=1e-5)
    np.testing.assert_array_equal(z[:, 2], 0.0)


@pytest.mark.parametrize("shape", [(300, 20), (20, 300), (6, 1)])
def test_pca_2d_matches_sklearn_up_to_sign(shape):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(4)
    x = rng.normal(size=shape) * np.linspace(3.0, 1.0, shape[1])
    k = min(2, *shape)
    ours = pca_2d(x)
    theirs = PCA(n_components=k).fit_transform(x)
    np.testing.assert_allclose(np.abs(ours[:, :k]), np.abs(theirs), atol=1e-9)
    np.testing.assert_array_equal(ours[:, k:], 0.0)


# --- PCA method (fast) --------------------------------------------------------------------


def test_pca_method_shapes_widths_and_exact_determinism():
    a, b = features(d_a=32, d_b=7)
    first = aligned_embedding(a, b, method="pca")
    second = aligned_embedding(a.copy(), b.copy(), method="pca")
    check_layout(first, 300)
    assert first.method == "pca" and first.fallback_reason is None
    np.testing.assert_array_equal(first.coords_a, second.coords_a)
    np.testing.assert_array_equal(first.coords_b, second.coords_b)


def test_pca_method_aligns_better_than_independent_pca():
    a, b = features()
    result = aligned_embedding(a, b, method="pca")
    ca, cb_own = pca_2d(standardize(a)), pca_2d(standardize(b))
    np.testing.assert_allclose(result.coords_a, ca, rtol=1e-5, atol=1e-4)
    # B's own PCA frame, in any orientation: the Procrustes rotation does at least as well.
    orientations = [rotation(t) for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    orientations += [o @ np.diag([1.0, -1.0]) for o in orientations]
    independent = [alignment_distance(ca, cb_own @ o) for o in orientations]
    assert result.alignment_distance <= min(independent) + 0.02
    assert result.alignment_distance < 0.6 * float(np.median(independent))
    assert procrustes_distance(result.coords_a, result.coords_b) < 0.5


def test_pca_handles_a_one_feature_model():
    a, b = features(n=60, d_a=8, d_b=1)
    check_layout(aligned_embedding(a, b, method="pca"), 60)


def test_auto_uses_pca_below_the_sample_threshold():
    a, b = features(n=emb.MIN_UMAP_SAMPLES - 1)
    result = aligned_embedding(a, b, method="auto")
    assert result.method == "pca" and result.requested == "auto"
    assert "N=49" in (result.fallback_reason or "")
    check_layout(result, emb.MIN_UMAP_SAMPLES - 1)


def test_auto_falls_back_to_pca_when_umap_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("numba exploded")

    monkeypatch.setattr(emb, "_aligned_umap_pair", broken)
    a, b = features(n=100)
    result = aligned_embedding(a, b, method="auto")
    assert result.method == "pca"
    assert "numba exploded" in (result.fallback_reason or "")
    check_layout(result, 100)
    with pytest.raises(RuntimeError, match="numba exploded"):
        aligned_embedding(a, b, method="aligned_umap")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "tsne"}, "method='tsne'"),
        ({"method": "umap_init", "n": 20}, "at least 50 samples"),
        ({"nan": True}, "NaN"),
        ({"n_b": 299}, "299"),
        ({"n_neighbors": 1}, "n_neighbors=1"),
    ],
)
def test_bad_input_is_rejected_with_a_message(kwargs, match):
    a, b = features(n=kwargs.pop("n", 300))
    if kwargs.pop("nan", False):
        a[3, 4] = np.nan
    n_b = kwargs.pop("n_b", None)
    if n_b is not None:
        b = b[:n_b]
    with pytest.raises(ValueError, match=match):
        aligned_embedding(a, b, **kwargs)


def test_to_json_is_plain():
    import json

    a, b = features(n=60)
    payload = aligned_embedding(a, b, method="pca").to_json()
    assert len(payload["coords_a"]) == 60 and len(payload["coords_b"][0]) == 2
    json.dumps(payload)


# --- kNN graph ----------------------------------------------------------------------------


def test_exact_knn_matches_sklearn_and_is_cached_read_only():
    clear_knn_cache()
    x = standardize(features(n=400)[0])
    graph = knn_graph(x, n_neighbors=10)
    assert graph.exact and graph.indices.shape == (400, 10)
    np.testing.assert_array_equal(graph.indices[:, 0], np.arange(400))
    dist, _ = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x)
    np.testing.assert_allclose(graph.distances, dist, atol=1e-3)
    assert knn_graph(x.copy(), n_neighbors=10) is graph  # content hash, not identity
    assert knn_graph(x, n_neighbors=11) is not graph
    with pytest.raises(ValueError, match="read-only"):
        graph.indices[0, 0] = 1
    idx, dists = graph.for_umap()
    idx[0, 0] = 1  # copies for umap are writeable and leave the cache intact
    assert graph.indices[0, 0] == 0


def test_knn_cache_is_bounded():
    clear_knn_cache()
    rng = np.random.default_rng(5)
    for _ in range(emb.KNN_CACHE_SIZE + 3):
        knn_graph(rng.normal(size=(30, 3)).astype(np.float32), n_neighbors=5)
    assert len(emb._knn_cache) == emb.KNN_CACHE_SIZE


@pytest.mark.slow
def test_approximate_knn_recalls_the_exact_neighbours(monkeypatch):
    clear_knn_cache()
    monkeypatch.setattr(emb, "EXACT_KNN_BELOW", 100)
    x = standardize(features(n=600)[0])
    approx = knn_graph(x, n_neighbors=10, seed=0)
    assert not approx.exact
    _, exact = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x)
    recall = np.mean(
        [len(set(p) & set(q)) / 10 for p, q in zip(approx.indices, exact, strict=True)]
    )
    assert recall > 0.9
    clear_knn_cache()


# --- UMAP methods (slow: numba) -----------------------------------------------------------


@pytest.fixture(scope="module")
def umap_case():
    """Features of two differently wide models and two independent UMAP layouts of them."""
    import umap

    a, b = features(n=300, d_a=32, d_b=20)
    za, zb = standardize(a), standardize(b)
    ind_a = umap.UMAP(random_state=0, n_jobs=1).fit_transform(za)
    ind_b = umap.UMAP(random_state=1, n_jobs=1).fit_transform(zb)
    return a, b, alignment_distance(ind_a, ind_b), procrustes_distance(ind_a, ind_b)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["aligned_umap", "umap_init"])
def test_umap_methods_align_better_than_independent_fits(umap_case, method):
    a, b, independent, independent_procrustes = umap_case
    clear_knn_cache()
    result = aligned_embedding(a, b, method=method, seed=0)
    check_layout(result, 300)
    assert result.method == method
    assert result.alignment_distance < 0.5 * independent
    assert procrustes_distance(result.coords_a, result.coords_b) < independent_procrustes

    clear_knn_cache()
    again = aligned_embedding(a, b, method=method, seed=0)
    np.testing.assert_array_equal(result.coords_a, again.coords_a)
    np.testing.assert_array_equal(result.coords_b, again.coords_b)


@pytest.mark.slow
def test_umap_init_reuses_model_a_across_comparisons(umap_case):
    a, b, _, _ = umap_case
    clear_knn_cache()
    first = aligned_embedding(a, b, method="umap_init")
    other_b = b[:, :10] + np.float32(0.1)
    second = aligned_embedding(a, other_b, method="umap_init")
    np.testing.assert_array_equal(first.coords_a, second.coords_a)
    check_layout(second, 300)


@pytest.mark.slow
def test_auto_picks_aligned_umap_and_warm_up_reports_seconds(umap_case):
    assert emb.warm_up() > 0
    a, b, _, _ = umap_case
    result = aligned_embedding(a, b)
    assert result.method == "aligned_umap" and result.fallback_reason is None
