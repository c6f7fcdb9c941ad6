"""Neighbourhood change between two models' feature spaces (SCIENCE.md sect. 7).

Boggust, Carter, Satyanarayan, "Embedding Comparator: Visualizing Differences in Global
Structure and Local Neighborhoods via Small Multiples", IUI 2022: a sample whose nearest
neighbours in one embedding space are not its nearest neighbours in the other is where the two
spaces disagree. Here the two spaces are the penultimate features of model A (the original)
and model B (the pruned one) on the same N test samples. For sample i, N_A(i) and N_B(i) are
its k nearest other test samples in A's and in B's features, and

    similarity(i) = |N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)|        (Jaccard, in [0, 1])

(1: pruning kept the neighbourhood; 0: it tore it apart). Samples are ranked by the lowest
similarity.

Definitions (what the tests check against a brute-force full distance matrix):

- distance: cosine distance 1 - <x, y> / (||x|| ||y||) on the raw features (no
  standardisation; feature widths of A and B may differ, each side uses its own).
- the sample itself is never its own neighbour (excluded by index, so an exact duplicate of i
  is a neighbour at distance 0).
- zero vectors (an all-dead penultimate layer): cosine is undefined; a zero row is taken to be
  at distance exactly 1 from every sample (its normalised row is 0, so every similarity with
  it is 0), which makes a zero row's neighbours the lowest indices.
- ties: neighbours are ordered by (distance, index): equal distances (duplicates, scaled
  copies, zero rows) go to the lower index first, at the k-th place too. Distances are the
  float32 values of the normalised rows' products, so "equal" means equal in float32; two
  samples whose distances differ by less than float32 rounding (about 1e-7) may be ordered
  either way.
- k: 1 <= k <= N - 1 (at least one other sample must be left out of a neighbourhood for the
  measure to say anything; k = N - 1 gives similarity 1 everywhere).

The kNN graph of :mod:`backend.analysis.embeddings` (``knn_graph``) is a different one:
Euclidean on standardised features, with the sample itself and approximate above 4,096
samples, for UMAP. It cannot stand in for this one, so nothing is shared.

Cost: O(N^2 D) for the products, done ``block`` rows at a time in float32 (memory O(block N)),
and an ``argpartition`` per row, O(N); ~1 s for N = 10,000 on two cores
(bench/bench_neighbourhood.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_K = 20
BLOCK_BYTES = 1 << 23
"""Bytes of one block of similarities (block rows x N float32): small enough to stay in
cache-friendly memory, large enough for an efficient matrix product."""


def normalise_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float32; zero (or non-positive-norm) rows stay 0.

    Args:
        features: (N, D) finite real array.

    Returns:
        (N, D) float32.

    Raises:
        ValueError: not 2-D, or not finite.
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features should be (N, D), got shape {x.shape}")
    x64 = x.astype(np.float64, copy=False)
    if not np.isfinite(x64).all():
        raise ValueError("features should be finite (found NaN or infinity)")
    norms = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (x64 * scale[:, None]).astype(np.float32)


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or int(k) != k:
        raise ValueError(f"k={k!r} should be an integer")
    k = int(k)
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} should be in [1, N - 1] = [1, {n - 1}] for N={n} samples")
    return k


def _top_k(sims: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k largest similarities of each row, ordered by (-similarity, column);
    the sample itself must already be -inf."""
    n = sims.shape[1]
    part = np.argpartition(sims, n - k, axis=1)[:, n - k :]
    vals = np.take_along_axis(sims, part, axis=1)
    # a tie at the k-th place: argpartition picks any of the tied columns; take the lowest
    kth = vals.min(axis=1)
    tied = np.flatnonzero(np.count_nonzero(sims >= kth[:, None], axis=1) > k)
    for r in tied:
        cand = np.flatnonzero(sims[r] >= kth[r])
        keep = cand[np.lexsort((cand, -sims[r, cand]))[:k]]
        part[r], vals[r] = keep, sims[r, keep]
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def knn_cosine(
    features: np.ndarray,
    k: int = DEFAULT_K,
    *,
    rows: Sequence[int] | np.ndarray | None = None,
    normalised: bool = False,
    cancel_check: Callable[[], None] | None = None,
) -> np.ndarray:
    """The k nearest other samples of each sample in cosine distance (definitions above).

    Args:
        features: (N, D) real array (penultimate features), or its :func:`normalise_rows`
            when ``normalised`` is True.
        k: neighbours per sample, 1 <= k <= N - 1.
        rows: only these samples' neighbours (positions in ``features``); None: all.
        normalised: ``features`` are already unit rows (float32, zero rows 0).
        cancel_check: called between blocks; raises to stop.

    Returns:
        (len(rows) or N, k) int64 neighbour positions, nearest first, ties by lower index.

    Raises:
        ValueError: bad shape, non-finite features, k out of range or a row out of range.
    """
    xn = np.asarray(features, dtype=np.float32) if normalised else normalise_rows(features)
    n = xn.shape[0]
    k = _check_k(k, n)
    wanted = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if wanted.size and (wanted.min() < 0 or wanted.max() >= n):
        raise ValueError(f"rows should be in [0, {n - 1}]")
    out = np.empty((wanted.size, k), dtype=np.int64)
    block = max(1, BLOCK_BYTES // (4 * n))
    xt = np.ascontiguousarray(xn.T)
    for start in range(0, wanted.size, block):
        if cancel_check is not None:
            cancel_check()
        these = wanted[start : start + block]
        sims = xn[these] @ xt
        sims[np.arange(these.size), these] = -np.inf
        out[start : start + these.size] = _top_k(sims, k)
    return out


def neighbourhood_jaccard(nn_a: np.ndarray, nn_b: np.ndarray) -> np.ndarray:
    """Per-sample Jaccard similarity of two neighbour lists.

    Args:
        nn_a: (N, k_a) int neighbours in A, each row without repeats.
        nn_b: (N, k_b) int neighbours in B, each row without repeats.

    Returns:
        (N,) float64 |N_A ∩ N_B| / |N_A ∪ N_B|, in [0, 1].
    """
    a, b = np.asarray(nn_a), np.asarray(nn_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"neighbour lists should be (N, k) with one N, got {a.shape}, {b.shape}")
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    shared = np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)
    union = a.shape[1] + b.shape[1] - shared
    return shared / np.maximum(union, 1)


def shared_neighbours(nn_a: Sequence[int], nn_b: Sequence[int]) -> list[int]:
    """The neighbours in both lists, in A's order (nearest in A first)."""
    in_b = {int(j) for j in nn_b}
    return [int(j) for j in nn_a if int(j) in in_b]


@dataclass(frozen=True)
class NeighbourhoodChange:
    """Neighbourhoods of every sample in A and B and their Jaccard similarity.

    Attributes:
        nn_a: (N, k) int64 neighbours in A's features, nearest first.
        nn_b: (N, k) int64 neighbours in B's features, nearest first.
        jaccard: (N,) float64 similarity; low = the neighbourhood was torn.
        k: neighbours per sample.
    """

    nn_a: np.ndarray
    nn_b: np.ndarray
    jaccard: np.ndarray
    k: int

    def summary(self) -> dict[str, object]:
        """JSON: k, metric, mean and median similarity."""
        return {
            "k": self.k,
            "metric": "cosine",
            "mean": float(self.jaccard.mean()),
            "median": float(np.median(self.jaccard)),
        }


def neighbourhood_change(
    features_a: np.ndarray,
    features_b: np.ndarray,
    k: int = DEFAULT_K,
    *,
    nn_a: np.ndarray | None = None,
    cancel_check: Callable[[], None] | None = None,
) -> NeighbourhoodChange:
    """k nearest neighbours of every sample in A and in B and their Jaccard similarity.

    Args:
        features_a: (N, D_a) penultimate features of model A.
        features_b: (N, D_b) penultimate features of model B on the same samples, same order.
        k: neighbours per sample, 1 <= k <= N - 1.
        nn_a: A's neighbours when already computed (``knn_cosine(features_a, k)``: one model A
            is compared with many Bs).
        cancel_check: called between blocks; raises to stop.

    Returns:
        The neighbourhoods and the similarity.
    """
    n = np.shape(features_a)[0]
    if np.shape(features_b)[0] != n:
        raise ValueError(
            f"A and B should have the same samples, got {n} and {np.shape(features_b)[0]}"
        )
    k = _check_k(k, n)
    if nn_a is None:
        nn_a = knn_cosine(features_a, k, cancel_check=cancel_check)
    elif nn_a.shape != (n, k):
        raise ValueError(f"nn_a should be ({n}, {k}), got {nn_a.shape}")
    nn_b = knn_cosine(features_b, k, cancel_check=cancel_check)
    return NeighbourhoodChange(nn_a, nn_b, neighbourhood_jaccard(nn_a, nn_b), k)
