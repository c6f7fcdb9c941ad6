"""Geometric similarity map: many models' fingerprints in 2-D, linked by a minimum spanning tree.

After Li et al., "Understanding Robustness Lottery" (IEEE TVCG 2024), section 1 of
../shared/design/SCIENCE.md: the geometric fingerprint of a (model, corruption) pair is the
concatenation over a fixed sample order of its standardised [angle, length, margin] blocks.
M fingerprints of length L are

- projected to 2-D with UMAP (Euclidean metric on the fingerprints as given: they are already
  standardised block by block, so no further scaling is applied), and
- linked by the minimum spanning tree of their pairwise Euclidean distance matrix, computed in
  fingerprint space as the paper does, not in the 2-D map: an edge therefore says "these two
  behave alike" even where UMAP had to tear the neighbourhood apart.

Small M. UMAP needs more points than neighbours: n_neighbors = min(15, M - 1), and below
``MIN_UMAP_MODELS`` (5) fingerprints the map is always PCA (the first two principal axes), even
when UMAP was asked for; ``SimilarityMap.method`` says which was used. "auto" also falls back to
PCA when UMAP raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform

from backend.analysis.embeddings import StopRecorder, epoch_checks, pca_2d, quiet_umap

logger = logging.getLogger(__name__)

MapMethod = Literal["auto", "umap", "pca"]
MIN_UMAP_MODELS = 5
MAX_NEIGHBORS = 15


def pairwise_distances(fingerprints: np.ndarray) -> np.ndarray:
    """Euclidean distances between fingerprints.

    Args:
        fingerprints: (M, L).

    Returns:
        (M, M) float64, symmetric, zero diagonal.
    """
    x = np.asarray(fingerprints, dtype=np.float64)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], x.shape[0]))
    return squareform(pdist(x, metric="euclidean"))


def mst_edges(distances: np.ndarray) -> list[tuple[int, int, float]]:
    """Edges of a minimum spanning tree of a complete weighted graph.

    scipy's ``minimum_spanning_tree`` reads every entry of a dense matrix within 1e-8 of zero as
    "no edge" (``np.ma.masked_values``), which would drop the edge between two identical or
    nearly identical fingerprints and return a wrong tree. Every off-diagonal weight is therefore
    shifted by the same constant c = max(1, max d) before the call: all spanning trees have
    M - 1 edges, so a uniform shift does not change which tree is minimal. Edges report their
    true, unshifted weight.

    Args:
        distances: (M, M) symmetric non-negative distance matrix.

    Returns:
        M - 1 edges (i, j, weight) with i < j, sorted by (weight, i, j).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances should be a square matrix, got shape {d.shape}")
    m = d.shape[0]
    if m < 2:
        return []
    if not np.isfinite(d).all() or (d < 0).any() or not np.allclose(d, d.T):
        raise ValueError("distances should be finite, non-negative and symmetric")
    positive = d + max(1.0, float(d.max()))
    np.fill_diagonal(positive, 0.0)
    tree = minimum_spanning_tree(positive).tocoo()
    edges = [
        (min(int(i), int(j)), max(int(i), int(j)), float(d[i, j]))
        for i, j in zip(tree.row, tree.col, strict=True)
    ]
    return sorted(edges, key=lambda e: (e[2], e[0], e[1]))


@dataclass(frozen=True)
class SimilarityMap:
    """2-D map of M fingerprints with their minimum spanning tree.

    Attributes:
        coords: (M, 2) float32 positions.
        mst_edges: M - 1 edges (i, j, weight), i < j, weight the Euclidean distance of the two
            fingerprints (not of their 2-D positions).
        labels: M names, in the order of the rows.
        method: "umap" or "pca", the projection actually used.
    """

    coords: np.ndarray
    mst_edges: list[tuple[int, int, float]]
    labels: list[str]
    method: str = "pca"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "labels": list(self.labels),
            "coords": self.coords.astype(float).tolist(),
            "mst_edges": [{"source": i, "target": j, "weight": w} for i, j, w in self.mst_edges],
            "method": self.method,
            "notes": list(self.notes),
        }


def _umap_coords(x: np.ndarray, seed: int | None) -> np.ndarray:
    import umap

    m = x.shape[0]
    mapper = umap.UMAP(
        n_neighbors=min(MAX_NEIGHBORS, m - 1),
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
    )
    with quiet_umap(None):
        coords = np.asarray(mapper.fit_transform(x), dtype=np.float64)
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():  # no neighbour edge at all: park it at the centroid, never NaN
        coords[bad] = coords[~bad].mean(axis=0) if (~bad).any() else 0.0
    return coords


def similarity_map(
    fingerprints: np.ndarray,
    labels: list[str],
    method: MapMethod = "auto",
    seed: int | None = 0,
    cancel_check: Callable[[], None] | None = None,
) -> SimilarityMap:
    """Project fingerprints to 2-D and link them by their minimum spanning tree.

    Args:
        fingerprints: (M, L) geometric fingerprints, one row per (model, corruption) pair.
        labels: M names.
        method: "umap", "pca" or "auto" (UMAP, PCA when UMAP fails); PCA below 5 rows.
        seed: UMAP's random state (None: parallel, not reproducible).
        cancel_check: called before every UMAP epoch
            (:func:`backend.analysis.embeddings.epoch_checks`); raise from it to stop. What it
            raises is never taken for a UMAP failure: "auto" does not fall back to PCA then.

    Returns:
        The map.

    Raises:
        ValueError: on a bad method, a non-2-D or non-finite array, no rows, or a label count
            that differs from M.
    """
    if method not in ("auto", "umap", "pca"):
        raise ValueError(f"method={method!r} should be one of 'auto', 'umap', 'pca'")
    x = np.asarray(fingerprints, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"fingerprints should be (M, L) with M >= 1, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("fingerprints contain NaN or infinite values")
    if len(labels) != x.shape[0]:
        raise ValueError(f"{len(labels)} labels for {x.shape[0]} fingerprints")
    m = x.shape[0]
    notes: list[str] = []
    used = "pca" if method == "pca" or m < MIN_UMAP_MODELS else "umap"
    if used == "pca" and method != "pca":
        notes.append(f"PCA: M={m} < {MIN_UMAP_MODELS} fingerprints")
    coords = None
    check = StopRecorder(cancel_check)

    if used == "umap":
        try:
            with epoch_checks(check if cancel_check is not None else None):
                coords = _umap_coords(x, seed)
        except Exception as exc:  # "auto" degrades to PCA; an explicit "umap" raises
            if method != "auto" or check.stopped:
                raise
            logger.warning("UMAP failed (%s: %s); falling back to PCA", type(exc).__name__, exc)
            notes.append(f"PCA: UMAP failed ({type(exc).__name__}: {exc})")
            used = "pca"
    if coords is None:
        coords = pca_2d(x)
    return SimilarityMap(
        coords=coords.astype(np.float32),
        mst_edges=mst_edges(pairwise_distances(x)),
        labels=list(labels),
        method=used,
        notes=notes,
    )
