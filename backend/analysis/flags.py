"""Flagged samples (SCIENCE.md sect. 3): pruning-identified exemplars, corruption-fragile samples
and the largest geometric shifts between model A (original) and model B (pruned).

Prediction flips between A and B are in :mod:`backend.analysis.metrics`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from backend.analysis.geometry import SampleGeometry

__all__ = [
    "SHIFT_METRICS",
    "corruption_fragile",
    "geometry_shift_table",
    "largest_shifts",
    "made_fragile_by_pruning",
    "modal_labels",
    "pruning_identified_exemplars",
]

ShiftMetric = Literal["margin", "angle_true", "length_z"]
SHIFT_METRICS: tuple[str, ...] = ("margin", "angle_true", "length_z")


def _predictions(preds: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(preds)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{name} should be (M, N) with M >= 1 models, got shape {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"{name} should hold integer labels, got dtype {p.dtype}")
    p = p.astype(np.int64, copy=False)
    if p.size and p.min() < 0:
        raise ValueError(f"{name} has negative labels (min {p.min()})")
    return p


def modal_labels(preds: np.ndarray) -> np.ndarray:
    """The most frequent top-1 label of each sample over a population of models.

    Ties are broken by the smallest label, so the result is deterministic and does not depend
    on the order of the models.

    Args:
        preds: (M, N) integer top-1 predictions of M models on N samples (a 1-D (N,) array is
            taken as one model).

    Returns:
        (N,) int64 modal labels.
    """
    p = _predictions(preds, "preds")
    m, n = p.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    num_labels = int(p.max()) + 1
    counts = np.zeros((n, num_labels), dtype=np.int64)
    np.add.at(counts, (np.broadcast_to(np.arange(n), (m, n)), p), 1)
    return np.argmax(counts, axis=1).astype(np.int64)  # first maximum = smallest label


def pruning_identified_exemplars(dense_preds: np.ndarray, sparse_preds: np.ndarray) -> np.ndarray:
    """Pruning-identified exemplars (PIEs) of Hooker et al., "What Do Compressed Deep Neural
    Networks Forget?" (2019).

    Sample i is a PIE at sparsity t when the modal top-1 label of the population of models
    pruned to t differs from the modal label of the population of dense models. The true label
    plays no part. With one model per side it degenerates to a prediction flip.

    Args:
        dense_preds: (M1, N) integer predictions of the dense models (or (N,) for one model).
        sparse_preds: (M2, N) integer predictions of the pruned models (or (N,)).

    Returns:
        (N,) bool.
    """
    dense = _predictions(dense_preds, "dense_preds")
    sparse = _predictions(sparse_preds, "sparse_preds")
    if dense.shape[1] != sparse.shape[1]:
        raise ValueError(
            f"dense_preds cover {dense.shape[1]} samples but sparse_preds {sparse.shape[1]}"
        )
    return modal_labels(dense) != modal_labels(sparse)


def _flags(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} should be 1-D (N,), got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} should be boolean (or 0/1)")
        arr = arr.astype(bool)
    return arr


def _flag_pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, ...]:
    x, y = _flags(a, name_a), _flags(b, name_b)
    if x.shape != y.shape:
        raise ValueError(f"{name_a} {x.shape} and {name_b} {y.shape} differ in shape")
    return x, y


def corruption_fragile(correct_clean: np.ndarray, correct_corrupt: np.ndarray) -> np.ndarray:
    """Corruption-fragile samples of one model under one corruption and severity.

    Args:
        correct_clean: (N,) bool, the model is correct on the clean input.
        correct_corrupt: (N,) bool, the model is correct on the corrupted input.

    Returns:
        (N,) bool: correct on the clean input and wrong on the corrupted one.
    """
    clean, corrupt = _flag_pair(correct_clean, correct_corrupt, "correct_clean", "correct_corrupt")
    return clean & ~corrupt


def made_fragile_by_pruning(fragile_a: np.ndarray, fragile_b: np.ndarray) -> np.ndarray:
    """Samples that pruning made corruption-fragile.

    Args:
        fragile_a: (N,) bool, :func:`corruption_fragile` of model A (original).
        fragile_b: (N,) bool, the same for model B (pruned), same corruption and severity.

    Returns:
        (N,) bool: fragile in B but not in A.
    """
    a, b = _flag_pair(fragile_a, fragile_b, "fragile_a", "fragile_b")
    return b & ~a


def _check_same_samples(geom_a: SampleGeometry, geom_b: SampleGeometry) -> None:
    if len(geom_a) != len(geom_b):
        raise ValueError(f"geom_a has {len(geom_a)} samples but geom_b has {len(geom_b)}")


def largest_shifts(
    geom_a: SampleGeometry, geom_b: SampleGeometry, metric: ShiftMetric, k: int
) -> np.ndarray:
    """Samples whose geometry changed most from A to B.

    Ranked by |B - A| of ``metric``, largest first; equal changes keep the sample order
    (stable sort), and undefined changes (NaN: a zero feature vector's angle, or inf - inf of
    margins) rank last.

    Args:
        geom_a: Geometry of model A on N samples.
        geom_b: Geometry of model B on the same samples in the same order.
        metric: ``"margin"``, ``"angle_true"`` or ``"length_z"`` (z-scored within each model,
            because raw lengths are not comparable across models).
        k: Number of samples, >= 0; at most N are returned.

    Returns:
        (min(k, N),) int64 sample indices.
    """
    if metric not in SHIFT_METRICS:
        raise ValueError(f"metric={metric!r} should be one of {', '.join(SHIFT_METRICS)}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k={k!r} should be an integer >= 0")
    _check_same_samples(geom_a, geom_b)
    with np.errstate(invalid="ignore"):
        change = np.abs(np.asarray(getattr(geom_b, metric)) - np.asarray(getattr(geom_a, metric)))
    # argsort puts NaN last; negate so the largest change comes first.
    return np.argsort(-change, kind="stable")[: int(k)].astype(np.int64)


def geometry_shift_table(geom_a: SampleGeometry, geom_b: SampleGeometry) -> dict[str, np.ndarray]:
    """Per-sample change of the geometry from model A to model B (B - A).

    Args:
        geom_a: Geometry of model A on N samples.
        geom_b: Geometry of model B on the same samples.

    Returns:
        ``{"d_margin", "d_angle", "d_length_z"}``, each (N,) float64: the change of the signed
        margin, of the angle to the true class (degrees) and of the z-scored length.
    """
    _check_same_samples(geom_a, geom_b)
    with np.errstate(invalid="ignore"):
        return {
            "d_margin": geom_b.margin - geom_a.margin,
            "d_angle": geom_b.angle_true - geom_a.angle_true,
            "d_length_z": geom_b.length_z - geom_a.length_z,
        }
