"""Hessian-vector products, stochastic Lanczos quadrature and the predicted pruning limit
(SCIENCE.md sect. 7), against autograd's full Hessian and quadratic losses with known spectra."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import prune

from backend.analysis.hessian import (
    SpectralDensity,
    gauss_quadrature,
    hessian_parameters,
    lanczos,
    loss_std,
    magnitude_distances,
    model_hvp,
    predicted_fraction,
    predicted_limit,
    slq_density,
)
from backend.pruning import create as create_method
from backend.pruning.masks import effective_weight, prunable_layers


def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def batches(n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    sizes = [5, 3][:n]
    return [
        (
            torch.randn(b, 3, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (b,), generator=g),
        )
        for b in sizes
    ]


def full_hessian(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Autograd's (D, D) Hessian of the mean loss over all samples in ``data`` with respect to
    the weights of the prunable layers of an unpruned ``model`` (biases fixed)."""
    names = [f"{name}.weight" for name, _ in prunable_layers(model)]
    weights = [m.weight.detach() for _, m in prunable_layers(model)]
    shapes = [w.shape for w in weights]
    flat = torch.cat([w.reshape(-1) for w in weights])
    plain = model
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            n = int(np.prod(shape))
            parts[name] = theta[i : i + n].view(shape)
            i += n
        return nn.functional.cross_entropy(functional_call(plain, parts, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)  # type: ignore[return-value]


def test_hvp_equals_autograd_full_hessian_times_v() -> None:
    model = tiny_mlp()
    data = batches(2)  # unequal batches: weighted by their share of the samples
    hp = hessian_parameters(model)
    assert hp.numel == 3 * 4 + 4 * 3
    h = full_hessian(model, data)
    matvec = model_hvp(model, hp, data)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(hp.numel, generator=g, dtype=torch.float64)
        assert torch.allclose(matvec(v), h @ v, rtol=0, atol=1e-8)


def test_hvp_of_a_pruned_layer_is_restricted_to_its_kept_weights() -> None:
    model = tiny_mlp()
    dense = copy.deepcopy(model)
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    with torch.no_grad():
        dense[0].weight.copy_(model[0].weight_orig * model[0].weight_mask)
    data = batches(1)
    hp = hessian_parameters(model)
    mask = hp.flat_mask()
    assert int(mask.sum()) == hp.numel - 6
    h = full_hessian(dense, data)  # at the pruned weights, then restricted to the kept ones
    v = torch.randn(hp.numel, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = model_hvp(model, hp, data)(v)
    assert torch.allclose(got, mask * (h @ (mask * v)), rtol=0, atol=1e-8)


def quadratic(eigenvalues: np.ndarray, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """H = Q diag(lambda) Q^T with a random orthogonal Q: the Hessian of 0.5 theta^T H theta,
    whose HVP is H v."""
    n = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64)
    return q @ torch.diag(lam) @ q.T, q


def quadratic_hvp(h: torch.Tensor):  # type: ignore[no-untyped-def]
    """H v through double back-propagation of the quadratic loss (not H @ v directly)."""
    theta = torch.zeros(h.shape[0], dtype=torch.float64, requires_grad=True)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        from backend.analysis.hessian import hvp

        return hvp(lambda: 0.5 * theta @ h @ theta, [theta], [v])[0]

    return matvec


EIGS = np.concatenate([np.zeros(4), np.linspace(0.05, 3.0, 36)])  # 4 zero, 36 distinct


def test_lanczos_with_m_equal_n_finds_the_eigenvalues() -> None:
    h, q = quadratic(EIGS)
    ones = torch.ones(len(EIGS), dtype=torch.float64)
    density = slq_density(quadratic_hvp(h), ones, iterations=len(EIGS), vectors=1, seed=5)
    # the zero eigenvalue is repeated: the Krylov space holds the 37 distinct ones (in finite
    # precision it may close a step later, with a Ritz value of negligible weight)
    held = density.weights > 1e-12
    nodes, weights = density.nodes[held], density.weights[held]
    assert np.allclose(np.sort(nodes), np.unique(EIGS), atol=1e-8)
    # weights: the starting vector's squared components on the eigenvectors, per eigenvalue
    v = torch.randint(0, 2, (len(EIGS),), generator=torch.Generator().manual_seed(5)) * 2.0 - 1
    c = ((q.T @ v.double()) ** 2 / len(EIGS)).numpy()
    expected = np.concatenate([[c[:4].sum()], c[4:]])
    assert np.allclose(weights[np.argsort(nodes)], expected, atol=1e-8)
    assert density.near_zero_mass() == pytest.approx(c[:4].sum(), abs=1e-8)


def test_slq_moments_are_exact_quadrature_and_match_the_spectrum() -> None:
    h, _ = quadratic(EIGS, seed=1)
    n, vectors, m = len(EIGS), 200, 5
    ones = torch.ones(n, dtype=torch.float64)
    density = slq_density(quadratic_hvp(h), ones, iterations=m, vectors=vectors, seed=7)
    assert density.weights.sum() == pytest.approx(1.0, abs=1e-12)
    # Gauss quadrature with m nodes is exact for degree <= 2m - 1: the same vectors' v^T H^j v
    g = torch.Generator().manual_seed(7)
    zs = [torch.randint(0, 2, (n,), generator=g).double() * 2 - 1 for _ in range(vectors)]
    for j in range(4):
        hj = torch.linalg.matrix_power(h, j)
        quad = np.mean([float(z @ hj @ z) / n for z in zs])
        assert density.moment(j) == pytest.approx(quad, rel=1e-9, abs=1e-12)
        # ... and, averaged over 200 vectors, the spectral moments mean(lambda^j) closely
        assert density.moment(j) == pytest.approx(np.mean(EIGS**j), rel=0.03)


def test_predicted_fraction_from_slq_matches_the_closed_form() -> None:
    eps = 0.05
    radii = np.array([0.0, 0.1, 0.3, 1.0, 3.0])
    r2 = np.where(EIGS > 0, 2 * eps / np.where(EIGS > 0, EIGS, 1), np.inf)
    closed = np.array(
        [np.mean(np.where(np.isinf(r2), 1.0, r2 / (r**2 + r2))) for r in radii]
    )  # the definition, zero eigenvalues as infinitely long axes
    exact = predicted_fraction((EIGS, np.full(len(EIGS), 1 / len(EIGS))), eps, radii)
    assert np.allclose(exact, closed, atol=1e-12)
    assert exact[0] == 1.0
    h, _ = quadratic(EIGS, seed=2)
    ones = torch.ones(len(EIGS), dtype=torch.float64)
    for m, tol in ((len(EIGS), 0.02), (10, 0.02)):
        density = slq_density(quadratic_hvp(h), ones, iterations=m, vectors=60, seed=3)
        assert np.allclose(predicted_fraction(density, eps, radii), closed, atol=tol)


def test_crossing_on_a_constructed_case() -> None:
    """One eigenvalue lambda = 1, eps = 1, R(s) = 2 sqrt(2) s: w(R(s)) = 2 / (8 s^2 + 2)
    equals s at s = 0.5 exactly."""
    density = SpectralDensity(np.array([1.0]), np.array([1.0]), 1)
    s = np.arange(20) / 20
    found = predicted_limit(density, 1.0, s, 2 * np.sqrt(2) * s)
    assert found.limit == 0.5 and found.index == 10
    assert found.predicted[10] == pytest.approx(0.5)
    assert found.interpolated == pytest.approx(0.5, abs=1e-9)
    assert all(found.predicted[:10] > s[:10]) and all(found.predicted[11:] < s[11:])


def test_magnitude_distances_equal_the_global_magnitude_pruned_weights() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    weights = [effective_weight(m) for _, m in prunable_layers(model)]
    grid = [0.0, 0.3, 0.75, 0.99]
    got = magnitude_distances(weights, grid)
    for s, r in zip(grid, got, strict=True):
        pruned = copy.deepcopy(model)
        create_method("global_magnitude", sparsity=s).apply(pruned)
        diff = torch.cat(
            [
                (effective_weight(a) - effective_weight(b)).reshape(-1)
                for (_, a), (_, b) in zip(
                    prunable_layers(model), prunable_layers(pruned), strict=True
                )
            ]
        )
        assert r == pytest.approx(float(diff.norm()), rel=1e-6)


def test_lanczos_checks_cancellation_before_every_product() -> None:
    h, _ = quadratic(EIGS)
    calls = []
    slq_density(
        quadratic_hvp(h),
        torch.ones(len(EIGS), dtype=torch.float64),
        iterations=6,
        vectors=3,
        cancel_check=lambda: calls.append(1),
    )
    assert len(calls) == 18
    with pytest.raises(ValueError, match="iterations=0"):
        lanczos(quadratic_hvp(h), torch.ones(len(EIGS), dtype=torch.float64), 0)


def test_small_helpers() -> None:
    assert loss_std([1.0, 3.0]) == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        loss_std([1.0])
    nodes, weights = gauss_quadrature(np.array([2.0]), np.array([]))
    assert nodes.tolist() == [2.0] and weights.tolist() == [1.0]
