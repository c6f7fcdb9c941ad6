"""Intrinsic dimension of penultimate features by TwoNN (SCIENCE.md sect. 7).

TwoNN (Facco, d'Errico, Rodriguez & Laio, "Estimating the intrinsic dimension of datasets by a
minimal neighborhood information", Sci. Rep. 7, 12140, 2017), as Ansuini, Laio, Macke & Zoccolan
("Intrinsic dimension of data representations in deep neural networks", NeurIPS 2019) apply it
to the layers of trained networks: for each point i, r1(i) and r2(i) are the Euclidean
distances to its first and second nearest neighbour and mu_i = r2(i) / r1(i). Under locally
uniform density mu follows a Pareto law, F(mu) = 1 - mu^(-d), so -log(1 - F(mu)) = d log mu: d
is the slope of the least-squares line through the origin of -log(1 - F_emp(mu_i)) against
log mu_i, with F_emp(mu_(i)) = i / N over the sorted ratios, discarding the largest 10% of mu
(the tail that density changes and noise distort, Facco et al. sect. "Methods").

Choices recorded here (SCIENCE.md leaves them open):
- a point with r1 = 0 (an exact duplicate of another point) has no ratio; it is left out, and
  the number left out is reported;
- the interval is a percentile bootstrap over the ratios mu_i (resampled with replacement and
  the line fitted again), i.e. conditional on the neighbour graph: it measures how well the
  fit is determined by the sample of ratios, not the variation of the neighbour graph itself;
- fewer than :data:`MIN_POINTS` usable ratios give no estimate (NaN);
- more than :data:`MAX_POINTS` points are estimated on a fixed random subset of that many
  (seeded): the neighbour search is quadratic, and TwoNN is already stable at a few thousand
  points (Facco et al., Fig. 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DISCARD_FRACTION",
    "MAX_POINTS",
    "MIN_POINTS",
    "IntrinsicDimension",
    "intrinsic_dimension",
    "intrinsic_dimensions",
    "twonn_fit",
    "two_nearest_distances",
]

DISCARD_FRACTION = 0.1  # the largest 10% of mu are left out of the fit
MIN_POINTS = 10
MAX_POINTS = 5000
BLOCK_ROWS = 1024


@dataclass(frozen=True)
class IntrinsicDimension:
    """A TwoNN estimate: ``d`` with its bootstrap interval ``[low, high]``; ``n`` points used,
    ``duplicates`` left out (r1 = 0)."""

    d: float
    low: float
    high: float
    n: int
    duplicates: int

    def to_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "d": num(self.d),
            "low": num(self.low),
            "high": num(self.high),
            "n": self.n,
            "duplicates": self.duplicates,
        }


def two_nearest_distances(
    x: np.ndarray, *, cancel_check: Callable[[], None] | None = None
) -> np.ndarray:
    """Euclidean distances of every point to its first and second nearest other point.

    Computed in float64 blocks of rows (||a||^2 + ||b||^2 - 2 a.b, clipped at 0), so memory
    stays at ``BLOCK_ROWS x N`` whatever N is; a point's own distance is excluded by index, so
    an exact duplicate of it counts as a neighbour at distance 0.

    Args:
        x: (N, D) points, N >= 3.
        cancel_check: called between blocks; raises to stop.

    Returns:
        (N, 2) float64: r1 <= r2 for each point.
    """
    pts = np.asarray(x, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 3:
        raise ValueError(f"need (N, D) points with N >= 3, got shape {pts.shape}")
    n = pts.shape[0]
    sq = np.einsum("ij,ij->i", pts, pts)
    out = np.empty((n, 2), dtype=np.float64)
    for start in range(0, n, BLOCK_ROWS):
        if cancel_check is not None:
            cancel_check()
        stop = min(n, start + BLOCK_ROWS)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (pts[start:stop] @ pts.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own neighbour
        two = np.partition(d2, 1, axis=1)[:, :2]
        two.sort(axis=1)
        out[start:stop] = np.sqrt(two)
    return out


def twonn_fit(mu: np.ndarray, discard_fraction: float = DISCARD_FRACTION) -> float:
    """TwoNN's slope: d = sum(x y) / sum(x^2) with x = log mu_(i), y = -log(1 - i / N) over
    the sorted ratios, the largest ``discard_fraction`` of them left out.

    Args:
        mu: (N,) ratios r2 / r1 >= 1.

    Returns:
        d, or NaN with fewer than :data:`MIN_POINTS` ratios or no spread (all mu = 1).
    """
    m = np.sort(np.asarray(mu, dtype=np.float64))
    n = m.size
    if n < MIN_POINTS:
        return float("nan")
    keep = int(np.floor(n * (1.0 - discard_fraction)))
    x = np.log(m[:keep])
    y = -np.log(1.0 - np.arange(1, keep + 1) / n)
    sxx = float(x @ x)
    return float(x @ y / sxx) if sxx > 0 else float("nan")


def intrinsic_dimension(
    x: np.ndarray,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    cancel_check: Callable[[], None] | None = None,
) -> IntrinsicDimension:
    """TwoNN intrinsic dimension of a point cloud with a bootstrap interval (module docstring).

    Args:
        x: (N, D) points (penultimate features of one class, or of all test samples).
        n_boot: bootstrap resamples of the ratios; 0 gives the interval [d, d].
        level: coverage of the percentile interval.
        seed: of the bootstrap.
        cancel_check: called between blocks of the neighbour search.

    Returns:
        :class:`IntrinsicDimension`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} should be in (0, 1)")
    pts = np.asarray(x, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"need (N, D) points, got shape {pts.shape}")
    if pts.shape[0] < 3:
        return IntrinsicDimension(float("nan"), float("nan"), float("nan"), 0, 0)
    rng = np.random.default_rng(seed)
    if pts.shape[0] > MAX_POINTS:
        pts = pts[np.sort(rng.choice(pts.shape[0], MAX_POINTS, replace=False))]
    r = two_nearest_distances(pts, cancel_check=cancel_check)
    usable = r[:, 0] > 0
    mu = r[usable, 1] / r[usable, 0]
    d = twonn_fit(mu)
    low = high = d
    if n_boot > 0 and np.isfinite(d):
        boots = np.array([twonn_fit(mu[rng.integers(0, mu.size, mu.size)]) for _ in range(n_boot)])
        boots = boots[np.isfinite(boots)]
        if boots.size:
            tail = (1.0 - level) / 2.0
            low, high = (float(v) for v in np.quantile(boots, [tail, 1.0 - tail]))
    return IntrinsicDimension(d, low, high, int(mu.size), int((~usable).sum()))


def intrinsic_dimensions(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
    cancel_check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """TwoNN of the features overall and of each class's samples (SCIENCE.md sect. 7).

    Args:
        features: (N, D) penultimate features.
        labels: (N,) true classes in ``[0, num_classes)``.

    Returns:
        ``{"overall": IntrinsicDimension.to_json(), "classes": [C of them]}``; a class with
        fewer than three samples has d = None.
    """
    f = np.asarray(features)
    y = np.asarray(labels)
    if f.ndim != 2 or y.shape != (f.shape[0],):
        raise ValueError(f"features {f.shape} and labels {y.shape} do not match")
    overall = intrinsic_dimension(f, n_boot=n_boot, seed=seed, cancel_check=cancel_check)
    classes = [
        intrinsic_dimension(f[y == c], n_boot=n_boot, seed=seed, cancel_check=cancel_check)
        for c in range(num_classes)
    ]
    return {"overall": overall.to_json(), "classes": [c.to_json() for c in classes]}
