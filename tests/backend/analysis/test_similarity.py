"""Similarity map: the MST against a brute-force Prim, map shapes, and what sits near what."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.analysis.similarity import (
    MIN_UMAP_MODELS,
    mst_edges,
    pairwise_distances,
    similarity_map,
)


def prim_weight(d: np.ndarray) -> float:
    """Total weight of a minimum spanning tree of the complete graph, by plain Prim."""
    m = d.shape[0]
    in_tree = np.zeros(m, dtype=bool)
    in_tree[0] = True
    best = d[0].copy()
    total = 0.0
    for _ in range(m - 1):
        candidates = np.where(in_tree, np.inf, best)
        j = int(np.argmin(candidates))
        total += float(candidates[j])
        in_tree[j] = True
        best = np.minimum(best, d[j])
    return total


def connected(m: int, edges) -> bool:
    parent = list(range(m))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in edges:
        parent[find(i)] = find(j)
    return len({find(i) for i in range(m)}) == 1


def groups(m_per_group: int = 5, n_groups: int = 4, length: int = 120, seed: int = 0):
    """Fingerprints of n_groups families of near-identical models."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (n_groups, length))
    fps = np.repeat(centers, m_per_group, axis=0)
    fps += rng.normal(0.0, 0.05, fps.shape)
    labels = [f"g{g}-m{k}" for g in range(n_groups) for k in range(m_per_group)]
    return fps, labels, np.repeat(np.arange(n_groups), m_per_group)


@pytest.mark.parametrize("seed", range(5))
def test_mst_matches_prim(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(9, 6))
    x[3] = x[1]  # identical fingerprints: a zero-weight edge must survive
    x[5] = x[2] + 1e-10  # and a nearly zero one
    d = pairwise_distances(x)
    edges = mst_edges(d)
    assert len(edges) == 8
    assert connected(9, edges)
    assert sum(w for _, _, w in edges) == pytest.approx(prim_weight(d), abs=1e-9)
    assert (1, 3, 0.0) in edges
    for i, j, w in edges:
        assert i < j and w == d[i, j]


def test_mst_on_a_hand_made_matrix():
    d = np.array(
        [
            [0.0, 1.0, 4.0, 3.0],
            [1.0, 0.0, 2.0, 5.0],
            [4.0, 2.0, 0.0, 6.0],
            [3.0, 5.0, 6.0, 0.0],
        ]
    )
    assert mst_edges(d) == [(0, 1, 1.0), (1, 2, 2.0), (0, 3, 3.0)]


def test_mst_rejects_a_non_distance_matrix():
    with pytest.raises(ValueError, match="square"):
        mst_edges(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        mst_edges(np.array([[0.0, 1.0], [2.0, 0.0]]))


def test_pca_map_shapes_labels_and_json():
    fps, labels, _ = groups()
    result = similarity_map(fps, labels, method="pca")
    assert result.method == "pca"
    assert result.coords.shape == (20, 2) and result.coords.dtype == np.float32
    assert np.isfinite(result.coords).all()
    assert result.labels == labels
    assert len(result.mst_edges) == 19 and connected(20, result.mst_edges)
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["labels"] == labels and len(payload["mst_edges"]) == 19
    assert set(payload["mst_edges"][0]) == {"source", "target", "weight"}


@pytest.mark.parametrize("m", [1, 2, MIN_UMAP_MODELS - 1])
def test_few_fingerprints_use_pca_even_when_umap_is_asked(m):
    fps = np.random.default_rng(0).normal(size=(m, 30))
    result = similarity_map(fps, [str(i) for i in range(m)], method="umap")
    assert result.method == "pca" and result.notes
    assert result.coords.shape == (m, 2) and np.isfinite(result.coords).all()
    assert len(result.mst_edges) == m - 1


def test_bad_input_is_rejected():
    fps = np.zeros((3, 4))
    with pytest.raises(ValueError, match="2 labels for 3"):
        similarity_map(fps, ["a", "b"])
    with pytest.raises(ValueError, match="method='tsne'"):
        similarity_map(fps, ["a", "b", "c"], method="tsne")  # type: ignore[arg-type]
    fps[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        similarity_map(fps, ["a", "b", "c"])


def nearer_to_twin(coords: np.ndarray, group: np.ndarray) -> float:
    """Fraction of fingerprints whose nearest map neighbour belongs to their own family."""
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(group[d.argmin(axis=1)] == group))


def test_near_identical_models_are_near_in_the_pca_map():
    fps, labels, group = groups()
    result = similarity_map(fps, labels, method="pca")
    assert nearer_to_twin(result.coords, group) == 1.0
    # the MST joins each family internally before linking families
    within = [e for e in result.mst_edges if group[e[0]] == group[e[1]]]
    assert len(within) == 4 * (5 - 1)


@pytest.mark.slow
def test_near_identical_models_are_near_in_the_umap_map():
    fps, labels, group = groups()
    result = similarity_map(fps, labels, method="umap", seed=0)
    assert result.method == "umap"
    assert result.coords.shape == (20, 2) and np.isfinite(result.coords).all()
    assert nearer_to_twin(result.coords, group) == 1.0
    # a near-identical pair sits closer than a model of another family
    c = result.coords
    assert np.linalg.norm(c[0] - c[1]) < np.linalg.norm(c[0] - c[5])
    again = similarity_map(fps, labels, method="umap", seed=0)
    np.testing.assert_array_equal(result.coords, again.coords)
