"""Geometric feature metrics of Li et al., "Understanding Robustness Lottery: A Geometric Visual
Comparative Analysis of Neural Network Pruning Approaches" (IEEE TVCG 2024, arXiv 2206.07918).

Notation follows ../shared/design/SCIENCE.md sect. 1: f in R^D is the penultimate feature (the
input of the final linear classifier), W in R^{C x D} and b in R^C the classifier's weight and
bias, z = W f + b the logits and y the true label. Softmax cross-entropy decomposes as
z_j = ||W_j|| ||f|| cos(theta_j) + b_j, so a sample's loss is governed by the length of f, the
angle between f and each class direction W_j, and the distance of f to the decision boundary.

Everything is computed in float64. Conventions where the formulas are undefined:

- a zero feature vector (||f|| = 0) has no direction: its angles (to every class) and its
  angular margin are NaN; its length (0) and margin (which then only depends on b) are defined;
- a zero class direction (||W_j|| = 0, e.g. a classifier row pruned away entirely) gives angle
  NaN to that class for every sample;
- identical class directions W_y = W_j leave no boundary between y and j in feature space; the
  term of j in the margin is then the limit for ||W_y - W_j|| -> 0: +inf when b_y > b_j (j can
  never beat y), -inf when b_y < b_j (j always beats y), 0 when b_y = b_j (a permanent tie).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GEOMETRY_METRICS",
    "SampleGeometry",
    "class_geometry",
    "direction_angles",
    "fingerprint",
    "fingerprints",
    "sample_geometry",
    "top_k_classes",
]

# Per-sample metrics summarised per class by :func:`class_geometry`.
GEOMETRY_METRICS = ("angle_true", "length", "length_z", "margin", "angular_margin")
# Blocks of the geometric fingerprint, in order.
FINGERPRINT_METRICS = ("angle_true", "length", "margin")
# Elements of one (rows x max(C, D)) work array per chunk of samples, bounding peak memory.
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class SampleGeometry:
    """Per-sample geometry of one model on N samples (Li et al. 2024; SCIENCE.md sect. 1).

    Attributes:
        angle_true: (N,) degrees, theta_y = arccos(W_y . f / (||W_y|| ||f||)).
        angle_pred: (N,) degrees, the angle to the predicted class argmax_j z_j.
        length: (N,) ||f||_2.
        length_z: (N,) length z-scored within this model: (length - mean) / std over the N
            samples (population std, ddof=0); all zeros when the std is 0.
        margin: (N,) signed feature-space margin with bias,
            m = min_{j != y} ((W_y - W_j) . f + (b_y - b_j)) / ||W_y - W_j||;
            m < 0 iff some class j scores strictly above y (misclassified), m = 0 on a tie.
        angular_margin: (N,) m / ||f|| (scale-free); NaN for a zero feature vector.
        angles: (N, C) degrees, the angle between f and every class direction W_j.
    """

    angle_true: np.ndarray
    angle_pred: np.ndarray
    length: np.ndarray
    length_z: np.ndarray
    margin: np.ndarray
    angular_margin: np.ndarray
    angles: np.ndarray

    def __len__(self) -> int:
        return int(self.length.shape[0])


def _float_matrix(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} should be 2-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels should have shape ({n},), got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels should be integers, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels outside [0, {num_classes}): min {y.min()}, max {y.max()}")
    return y


def _angles_deg(dots: np.ndarray, norm_rows: np.ndarray, norm_cols: np.ndarray) -> np.ndarray:
    """Degrees from dot products (R, K) and norms (R,), (K,); NaN where a norm is 0."""
    denom = norm_rows[:, None] * norm_cols[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip(dots / denom, -1.0, 1.0)
    cos[denom == 0] = np.nan
    return np.degrees(np.arccos(cos))


def _pairwise_direction_distance(weight: np.ndarray) -> np.ndarray:
    """(C, C) ||W_i - W_j||, row by row (exactly 0 for identical rows, memory C x D)."""
    out = np.empty((weight.shape[0], weight.shape[0]), dtype=np.float64)
    for i in range(weight.shape[0]):
        out[i] = np.linalg.norm(weight[i] - weight, axis=1)
    return out


def sample_geometry(
    features: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: np.ndarray,
) -> SampleGeometry:
    """Angle, length and margin of every sample (Li et al. 2024; SCIENCE.md sect. 1).

    Vectorised in float64 over chunks of samples so that memory stays bounded for large N x C.
    The predicted class is argmax_j z_j of z = W f + b recomputed here in float64 (ties go to the
    smallest index, as ``np.argmax``); it can differ from the argmax of float32 model logits
    only when two logits agree to float32 precision. See the module docstring for zero vectors
    and identical class directions.

    Args:
        features: (N, D) penultimate features f.
        weight: (C, D) classifier weight W, C >= 2.
        bias: (C,) classifier bias b.
        labels: (N,) integer true labels y in [0, C).

    Returns:
        :class:`SampleGeometry` of (N,) arrays and (N, C) ``angles``, all float64.

    Raises:
        ValueError: On inconsistent shapes, non-finite inputs, fewer than 2 classes or labels
            outside [0, C).
    """
    f_all = _float_matrix(features, "features")
    w = _float_matrix(weight, "weight")
    b = np.asarray(bias, dtype=np.float64)
    n, d = f_all.shape
    c = w.shape[0]
    if w.shape[1] != d:
        raise ValueError(f"features have width {d} but weight has shape {w.shape} (C, D)")
    if c < 2:
        raise ValueError(f"weight has {c} class rows; the margin needs at least 2 classes")
    if b.shape != (c,):
        raise ValueError(f"bias should have shape ({c},), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("bias contains NaN or infinite values")
    y_all = _labels(labels, n, c)

    w_norm = np.linalg.norm(w, axis=1)
    dist = _pairwise_direction_distance(w)
    # Margin term of identical directions: the limit as ||W_y - W_j|| -> 0 (module docstring).
    db = b[:, None] - b[None, :]
    degenerate = np.where(db > 0, np.inf, np.where(db < 0, -np.inf, 0.0))

    out = {k: np.empty(n) for k in ("angle_true", "angle_pred", "length", "margin")}
    angles = np.empty((n, c))
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(c, d))
    for start in range(0, n, rows_per_chunk):
        sl = slice(start, min(start + rows_per_chunk, n))
        f, y = f_all[sl], y_all[sl]
        r = np.arange(f.shape[0])
        length = np.linalg.norm(f, axis=1)
        dots = f @ w.T
        z = dots + b
        ang = _angles_deg(dots, length, w_norm)
        pred = np.argmax(z, axis=1)
        # (W_y - W_j) . f + (b_y - b_j) = z_y - z_j
        numer = z[r, y][:, None] - z
        denom = dist[y]
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = numer / denom
        terms = np.where(denom == 0, degenerate[y], terms)
        terms[r, y] = np.inf  # j != y
        angles[sl] = ang
        out["angle_true"][sl] = ang[r, y]
        out["angle_pred"][sl] = ang[r, pred]
        out["length"][sl] = length
        out["margin"][sl] = terms.min(axis=1)

    length = out["length"]
    std = float(length.std()) if n else 0.0
    length_z = (length - length.mean()) / std if std > 0 else np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        angular_margin = np.where(length > 0, out["margin"] / length, np.nan)
    return SampleGeometry(
        angle_true=out["angle_true"],
        angle_pred=out["angle_pred"],
        length=length,
        length_z=length_z,
        margin=out["margin"],
        angular_margin=angular_margin,
        angles=angles,
    )


def _json_float(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def class_geometry(
    geom: SampleGeometry,
    labels: np.ndarray,
    weight: np.ndarray,
    num_classes: int,
) -> dict[str, Any]:
    """Per-class summary of the geometry: the norm of each class direction and the mean and
    standard deviation of each metric over the samples of that (true) class (Li et al. 2024).

    Means and standard deviations (population, ddof=0) are taken over the finite values only:
    NaN angles of zero vectors and infinite margins of identical class directions are left out
    (``count`` is the number of samples of the class). Undefined figures (an empty class, or
    no finite value) are None, so the result is JSON-ready.

    Args:
        geom: Geometry of N samples (:func:`sample_geometry`).
        labels: (N,) true labels in [0, num_classes).
        weight: (C, D) classifier weight, C == num_classes.
        num_classes: C.

    Returns:
        One entry per class, keyed by the class index as a string (as JSON keys are, so a
        stored summary reads back the same): ``{"0": {"count": n_0, "direction_norm": ||W_0||,
        "angle_true": {"mean": ..., "std": ...}, "length": {...}, "length_z": {...},
        "margin": {...}, "angular_margin": {...}}, "1": ...}``; the metrics are
        :data:`GEOMETRY_METRICS`.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != num_classes:
        raise ValueError(f"weight should have shape ({num_classes}, D), got {w.shape}")
    y = _labels(labels, len(geom), num_classes)
    norms = np.linalg.norm(w, axis=1)
    result: dict[str, Any] = {}
    for c in range(num_classes):
        members = y == c
        entry: dict[str, Any] = {
            "count": int(members.sum()),
            "direction_norm": _json_float(norms[c]),
        }
        for metric in GEOMETRY_METRICS:
            values = np.asarray(getattr(geom, metric))[members]
            values = values[np.isfinite(values)]
            entry[metric] = {
                "mean": _json_float(values.mean()) if values.size else None,
                "std": _json_float(values.std()) if values.size else None,
            }
        result[str(c)] = entry
    return result


def direction_angles(weight_a: np.ndarray, weight_b: np.ndarray) -> np.ndarray:
    """Angle between each class direction of model A and the same class's direction in model B.

    Only meaningful when both classifiers read the same feature space, i.e. after unstructured
    pruning (SCIENCE.md sect. 1); structured pruning changes the width D and raises.

    Args:
        weight_a: (C, D) classifier weight of model A.
        weight_b: (C, D) classifier weight of model B.

    Returns:
        (C,) degrees in [0, 180]; NaN for a class whose direction is zero in either model.

    Raises:
        ValueError: If the widths (or class counts) differ.
    """
    a = np.asarray(weight_a, dtype=np.float64)
    b = np.asarray(weight_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"weights should be 2-D (C, D), got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feature widths differ: model A has D={a.shape[1]}, model B has D={b.shape[1]}; "
            "class directions are only comparable in the same feature space (unstructured "
            "pruning)"
        )
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"class counts differ: model A has {a.shape[0]}, model B {b.shape[0]}")
    dots = np.einsum("cd,cd->c", a, b)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip(dots / denom, -1.0, 1.0)
    cos[denom == 0] = np.nan
    return np.degrees(np.arccos(cos))


def top_k_classes(angles: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k classes nearest in angle to each sample.

    Li et al. 2024 note that parallel coordinates over the angle to every class do not scale
    past about 10 classes; this picks the axes worth showing per sample.

    Args:
        angles: (N, C) degrees (:attr:`SampleGeometry.angles`).
        k: Number of classes, 1 <= k <= C.

    Returns:
        (N, k) int64 class indices, nearest first; ties go to the smaller class index and NaN
        angles sort last.
    """
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"angles should be 2-D (N, C), got shape {a.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= a.shape[1]:
        raise ValueError(f"k={k!r} should be an integer in [1, {a.shape[1]}]")
    return np.argsort(a, axis=1, kind="stable")[:, : int(k)].astype(np.int64)


def _standardise_block(values: np.ndarray) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.zeros_like(v)
    v[v == np.inf] = v[finite].max()
    v[v == -np.inf] = v[finite].min()
    known = ~np.isnan(v)
    mean, std = v[known].mean(), v[known].std()
    out = (v - mean) / std if std > 0 else np.zeros_like(v)
    out[~known] = 0.0
    return out


def fingerprint(
    angle_true: SampleGeometry | Mapping[str, Any] | np.ndarray,
    length: np.ndarray | None = None,
    margin: np.ndarray | None = None,
) -> np.ndarray:
    """The geometric fingerprint of one (model, corruption) pair (Li et al. 2024).

    The concatenation ``[angle_true, length, margin]`` over the samples in the order given, each
    block standardised to mean 0 and standard deviation 1 (population std) over its own N
    values. Callers must pass every fingerprint they compare in the same sample order.

    Deviation, for the downstream projection (UMAP, MST) which needs finite vectors: within a
    block, +inf/-inf (identical class directions) are first replaced by the block's largest /
    smallest finite value, NaN (zero feature vectors) is set to 0 (the block mean) after
    standardising, and a constant block is all zeros.

    Called either as ``fingerprint(angle_true, length, margin)`` with three (N,) arrays (or
    Series), or as ``fingerprint(source)`` with a :class:`SampleGeometry` or anything indexable
    by ``"angle_true"``, ``"length"`` and ``"margin"`` (a dict, a DataFrame of stored
    per-sample metrics).

    Args:
        angle_true: (N,) angles to the true class in degrees, or the whole source.
        length: (N,) feature lengths (raw or z-scored: the block is standardised anyway);
            omitted with a source.
        margin: (N,) signed margins; omitted with a source.

    Returns:
        (3N,) float64.
    """
    if length is None and margin is None:
        source = angle_true
        if isinstance(source, SampleGeometry):
            blocks = [np.asarray(getattr(source, m), dtype=np.float64) for m in FINGERPRINT_METRICS]
        elif isinstance(source, np.ndarray):
            raise ValueError("give angle_true, length and margin, or one geometry source")
        else:
            blocks = [np.asarray(source[m], dtype=np.float64) for m in FINGERPRINT_METRICS]
    elif length is None or margin is None:
        raise ValueError("give angle_true, length and margin, or one geometry source")
    else:
        blocks = [np.asarray(v, dtype=np.float64) for v in (angle_true, length, margin)]
    shapes = {b.shape for b in blocks}
    if len(shapes) != 1 or blocks[0].ndim != 1:
        raise ValueError(f"angle_true, length and margin should be (N,) arrays, got {shapes}")
    return np.concatenate([_standardise_block(b) for b in blocks])


def fingerprints(sources: Sequence[SampleGeometry | Mapping[str, Any]]) -> np.ndarray:
    """Fingerprints of M (model, corruption) pairs stacked for projection.

    Args:
        sources: M geometries over the same N samples in the same order.

    Returns:
        (M, 3N) float64, row m = ``fingerprint(sources[m])``.
    """
    rows = [fingerprint(s) for s in sources]
    widths = {r.shape[0] for r in rows}
    if len(widths) > 1:
        raise ValueError(f"fingerprints differ in length {sorted(widths)}: same samples needed")
    if not rows:
        return np.zeros((0, 0))
    return np.stack(rows)
