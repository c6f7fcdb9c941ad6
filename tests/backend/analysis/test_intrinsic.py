"""TwoNN intrinsic dimension (SCIENCE.md sect. 7; Facco et al. 2017): points on linear and
curved manifolds of known dimension 2, 5 and 10 embedded in 64-D are estimated within 10%; the
neighbour distances match scipy's brute force; the fit is exact on Pareto quantiles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from backend.analysis import intrinsic
from backend.analysis.intrinsic import (
    intrinsic_dimension,
    intrinsic_dimensions,
    two_nearest_distances,
    twonn_fit,
)

N = 3000
AMBIENT = 64


def embedded(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``z`` (N, k) placed in a random k-dimensional subspace of R^64, plus an offset."""
    basis, _ = np.linalg.qr(rng.normal(size=(AMBIENT, AMBIENT)))
    return z @ basis[: z.shape[1]] + rng.normal(size=AMBIENT)


def linear(d: int, rng: np.random.Generator) -> np.ndarray:
    """A d-dimensional affine subspace (Gaussian density on it)."""
    return embedded(rng.normal(size=(N, d)), rng)


def sphere(d: int, rng: np.random.Generator) -> np.ndarray:
    """The unit d-sphere (curved, no boundary), uniform on it, sitting in d + 1 dimensions."""
    s = rng.normal(size=(N, d + 1))
    return embedded(s / np.linalg.norm(s, axis=1, keepdims=True), rng)


def swiss(d: int, rng: np.random.Generator) -> np.ndarray:
    """A d-dimensional curved sheet: one coordinate rolled into a spiral (a swiss roll of
    d - 1 flat directions, Gaussian as in ``linear``, times a rolled one). Uniform flat
    directions would add the edge bias TwoNN has on a cube (under-estimates from d ~ 10)."""
    t = rng.uniform(1.5 * np.pi, 3 * np.pi, N)
    flat = rng.normal(size=(N, d - 1))
    return embedded(np.column_stack([t * np.cos(t), t * np.sin(t), flat]), rng)


@pytest.mark.parametrize("d", [2, 5, 10])
@pytest.mark.parametrize("manifold", [linear, sphere, swiss])
def test_known_dimensions_are_estimated_within_ten_percent(manifold, d: int) -> None:
    est = intrinsic_dimension(manifold(d, np.random.default_rng(d)), n_boot=50)
    assert est.d == pytest.approx(d, rel=0.10)
    assert est.low <= est.d <= est.high and est.n == N and est.duplicates == 0


def test_neighbour_distances_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2500, 7))  # more rows than one block
    x[10] = x[3]  # an exact duplicate: each is the other's neighbour at distance 0
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    expected = np.sort(full, axis=1)[:, :2]
    np.testing.assert_allclose(two_nearest_distances(x), expected, atol=1e-9)
    est = intrinsic_dimension(x, n_boot=0)
    assert est.duplicates == 2 and est.n == 2498


def test_fit_is_exact_on_pareto_quantiles() -> None:
    """mu_(i) = (1 - i / N)^(-1/d) puts every point on the line y = d x, so the fit is d."""
    n, d = 1000, 6.5
    i = np.arange(1, n + 1)
    mu = (1 - np.minimum(i, n - 1) / n) ** (-1 / d)  # the last one is discarded anyway
    assert twonn_fit(mu) == pytest.approx(d, rel=1e-12)
    rng = np.random.default_rng(0)
    assert twonn_fit(rng.permutation(mu)) == pytest.approx(d, rel=1e-12)  # order-free
    assert np.isnan(twonn_fit(mu[:5]))  # too few ratios


def test_per_class_and_overall_and_the_subset_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    low = embedded(rng.normal(size=(1500, 2)), rng)
    high = embedded(rng.normal(size=(1500, 8)), rng)
    labels = np.repeat([0, 1], 1500)
    labels[:2] = 2  # class 2: two samples, no estimate
    out = intrinsic_dimensions(np.vstack([low, high]), labels, 4, n_boot=20)
    d = [c["d"] for c in out["classes"]]
    assert d[0] == pytest.approx(2, rel=0.1) and d[1] == pytest.approx(8, rel=0.1)
    assert d[2] is None and d[3] is None and out["classes"][3]["n"] == 0
    assert out["overall"]["n"] == 3000
    monkeypatch.setattr(intrinsic, "MAX_POINTS", 500)
    capped = intrinsic_dimension(low, n_boot=0)
    assert capped.n == 500 and capped.d == pytest.approx(2, rel=0.15)
    with pytest.raises(ValueError, match="do not match"):
        intrinsic_dimensions(low, labels[:10], 2)
