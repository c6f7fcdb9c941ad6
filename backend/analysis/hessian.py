"""The pruning limit of a dense model from its loss Hessian (SCIENCE.md sect. 7).

Zhang et al., "How Sparse Can We Prune A Deep Network: A Fundamental Limit Perspective",
NeurIPS 2024 (reference code QiaozheZhang/Global-One-shot-Pruning, ``cal_rate.py``): around
the trained weights theta the loss sublevel set {L <= L(theta) + eps} is approximately the
ellipsoid with semi-axes r_k = sqrt(2 eps / |lambda_k|) along the Hessian's eigenvectors, and
the pruned weights theta_s (global magnitude pruning at sparsity s) lie at distance
R(s) = ||theta - theta_s||_2. The squared Gaussian width of that set at radius R, relative to
the dimension, is

    w(R) = sum_k rho_k r_k^2 / (R^2 + r_k^2) / sum_k rho_k

with (lambda_k, rho_k) the Hessian's eigenvalue density, estimated here by stochastic Lanczos
quadrature (SLQ; Ghorbani et al., "An Investigation into Neural Net Optimization via Hessian
Eigenvalue Density", ICML 2019) from Hessian-vector products (double back-propagation, never
the full Hessian), and eps the standard deviation of the per-batch training loss.

**Which curves cross.** SCIENCE.md calls w(R) the "predicted fraction" and puts the limit
where w(R(s)) and s cross. We compare w(R(s)) with the *sparsity* s (the fraction of
prunable weights removed), exactly as the reference ``cal_rate.py`` does (it takes the grid
point minimising |w(R(s)) - s|, s being the fraction its ``get_sparse_model`` prunes). w(R)
is thereby read as the largest fraction of the weights that can be removed at distance R
while staying in the sublevel set, and the predicted limit is the s where s = w(R(s)):
below it s < w(R(s)) (predicted prunable), above it s > w(R(s)). In kept fractions this is
1 - s against 1 - w(R(s)), the same crossing. Deviation from the reading "w is the fraction
that must be kept, compared with the kept fraction 1 - s": that comparison is degenerate.
Both equal 1 at s = 0, and near 0, 1 - w(R(s)) = O(R(s)^2) = o(s) (R(s)^2 sums the s D
*smallest* squared weights), so w(R(s)) > 1 - s right after 0: the curves meet at s = 0,
which says nothing. Near-zero eigenvalues are kept as their own mass (no smoothing, no
cut-off): with r_k^2 = 2 eps / |lambda_k| their term r_k^2 / (R^2 + r_k^2) =
2 eps / (|lambda_k| R^2 + 2 eps) tends to 1, a flat direction is always inside (the
reference adds that mass at lambda = 1e-30).

**Which parameters.** The Hessian is taken over the prunable weights only (the weights of
every Conv1d/2d/3d and Linear, :func:`backend.pruning.masks.prunable_layers`): the
coordinates global magnitude pruning moves and s counts; biases and normalisation parameters
are held fixed. (The reference takes every trainable parameter for the density; biases and
batch-norm parameters are well under 1 % of a CNN's.) A layer already pruned by
``torch.nn.utils.prune`` is differentiated through ``weight_orig``, which gives M H M v (M its
mask), and the starting vectors are masked too, so the Krylov space and the density are those
of the kept weights only (the pruned coordinates would otherwise add a spurious mass at 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from backend.pruning.masks import is_pruned, prunable_layers

__all__ = [
    "HessianParameters",
    "PruningLimit",
    "SpectralDensity",
    "effective_weights",
    "gauss_quadrature",
    "hessian_parameters",
    "hvp",
    "lanczos",
    "loss_std",
    "magnitude_distances",
    "model_hvp",
    "predicted_fraction",
    "predicted_limit",
    "slq_density",
    "starting_vectors",
]

NEAR_ZERO = 1e-4  # |lambda| <= NEAR_ZERO * max |lambda|: reported as the near-zero mass


# Hessian-vector products ----------------------------------------------------------------------


@dataclass
class HessianParameters:
    """The tensors the Hessian is taken over, and the mask of each (None: all kept).

    Attributes:
        names: Qualified layer names, in ``named_modules()`` order.
        params: The leaf tensors differentiated (``weight_orig`` of a pruned layer, else
            ``weight``), each of its layer's weight shape.
        masks: Per tensor, a 0/1 tensor of the same shape, or None for an unpruned layer.
    """

    names: list[str]
    params: list[Tensor]
    masks: list[Tensor | None]

    @property
    def numel(self) -> int:
        """D, the number of coordinates (pruned ones included)."""
        return sum(p.numel() for p in self.params)

    def flat_mask(self) -> Tensor:
        """(D,) 0/1 mask of the kept coordinates, in the params' dtype and device."""
        return torch.cat(
            [
                (torch.ones_like(p) if m is None else m.to(p.dtype)).reshape(-1)
                for p, m in zip(self.params, self.masks, strict=True)
            ]
        )

    def flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        """Per-parameter tensors -> one (D,) vector."""
        return torch.cat([t.reshape(-1) for t in tensors])

    def unflatten(self, vector: Tensor) -> list[Tensor]:
        """(D,) vector -> per-parameter tensors of the params' shapes (views)."""
        out, i = [], 0
        for p in self.params:
            out.append(vector[i : i + p.numel()].view_as(p))
            i += p.numel()
        return out


def hessian_parameters(model: nn.Module, include_classifier: bool = True) -> HessianParameters:
    """The prunable weights of ``model`` as :class:`HessianParameters` (see the module
    docstring: weights of Conv1d/2d/3d and Linear layers, ``weight_orig`` where pruned)."""
    names: list[str] = []
    params: list[Tensor] = []
    masks: list[Tensor | None] = []
    for name, module in prunable_layers(model, include_classifier, scoped=False):
        names.append(name)
        if is_pruned(module):
            params.append(cast(Tensor, module.weight_orig))
            masks.append(cast(Tensor, module.weight_mask).detach())
        else:
            params.append(cast(Tensor, module.weight))
            masks.append(None)
    if not params:
        raise ValueError("the model has no prunable weights (Conv1d/2d/3d or Linear)")
    return HessianParameters(names, params, masks)


def hvp(
    loss: Callable[[], Tensor], params: Sequence[Tensor], vector: Sequence[Tensor]
) -> list[Tensor]:
    """Hessian-vector product H v of a scalar loss over ``params`` by double back-propagation
    (Pearlmutter 1994): grad_theta (grad_theta L . v); the Hessian is never formed.

    Args:
        loss: Computes the scalar loss afresh (a forward pass), differentiable in ``params``.
        params: Leaf tensors the Hessian is taken over (``requires_grad``).
        vector: v, one tensor per parameter, of its shape.

    Returns:
        H v, one detached tensor per parameter (zeros where the loss does not depend on it).
    """
    value = loss()
    grads = torch.autograd.grad(value, list(params), create_graph=True, allow_unused=True)
    used = [(g, p, v) for g, p, v in zip(grads, params, vector, strict=True) if g is not None]
    if not used:
        return [torch.zeros_like(p) for p in params]
    out = torch.autograd.grad(
        [g for g, _, _ in used],
        [p for _, p, _ in used],
        grad_outputs=[v for _, _, v in used],
        allow_unused=True,
    )
    found = {id(p): o for (_, p, _), o in zip(used, out, strict=True)}
    return [
        torch.zeros_like(p) if found.get(id(p)) is None else found[id(p)].detach()  # type: ignore[union-attr]
        for p in params
    ]


def _batch_loss(
    model: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> Tensor:
    return criterion(model(x), y)


def model_hvp(
    model: nn.Module,
    hp: HessianParameters,
    batches: Sequence[tuple[Tensor, Tensor]],
    criterion: Callable[[Tensor, Tensor], Tensor] = nn.functional.cross_entropy,
) -> Callable[[Tensor], Tensor]:
    """The flat operator v -> H v of the mean loss over all samples of ``batches``.

    The model is put in eval mode (batch-norm with its running statistics, no dropout: the
    loss whose sublevel set the theory describes is a deterministic function of theta). Each
    batch's HVP is weighted by its share of the samples.

    Args:
        model: The network; ``hp`` are its parameters (:func:`hessian_parameters`).
        hp: What the Hessian is taken over.
        batches: ``[(x (B, ...), y (B,)), ...]`` already on the model's device and dtype.
        criterion: Mean loss of logits and labels.

    Returns:
        A function of a (D,) vector returning the (D,) vector H v.
    """
    model.eval()
    total = sum(int(y.shape[0]) for _, y in batches)

    def matvec(vector: Tensor) -> Tensor:
        parts = hp.unflatten(vector)
        acc: Tensor | None = None
        for x, y in batches:
            share = int(y.shape[0]) / total
            hv = hp.flatten(hvp(partial(_batch_loss, model, criterion, x, y), hp.params, parts))
            acc = hv * share if acc is None else acc.add_(hv, alpha=share)
        assert acc is not None
        return acc

    return matvec


# Lanczos and SLQ ------------------------------------------------------------------------------


def lanczos(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    iterations: int,
    cancel_check: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos tridiagonalisation with full reorthogonalisation.

    Every new vector is orthogonalised against all previous ones (classical Gram-Schmidt,
    twice), which keeps the Ritz values free of the ghost copies plain Lanczos produces in
    finite precision. Stops early when the Krylov space is invariant (beta below 1e-10 of the
    largest |alpha|, beta): the quadrature is then exact.

    Args:
        matvec: v (D,) -> H v (D,) for a symmetric H.
        start: Starting vector (D,), not necessarily normalised, non-zero.
        iterations: m, the number of matrix-vector products (at most D are useful).
        cancel_check: Called before every product (raises to stop).

    Returns:
        ``(alpha, beta)``: the diagonal (k,) and off-diagonal (k - 1,) of the k x k tridiagonal
        matrix T (k <= m), as float64 arrays.
    """
    if iterations < 1:
        raise ValueError(f"iterations={iterations} should be >= 1")
    norm = torch.linalg.vector_norm(start)
    if not float(norm) > 0:
        raise ValueError("the Lanczos starting vector is zero")
    q = start / norm
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    scale = 0.0
    for j in range(min(iterations, start.numel())):
        if cancel_check is not None:
            cancel_check()
        w = matvec(q)
        alpha = float(torch.dot(q, w))
        alphas.append(alpha)
        stacked = torch.stack(basis)  # (j + 1, D)
        for _ in range(2):  # "twice is enough" (Parlett)
            w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(alpha), beta)
        if j == iterations - 1 or j == start.numel() - 1 or beta <= 1e-10 * max(scale, 1e-300):
            break
        betas.append(beta)
        q = w / beta
        basis.append(q)
    return np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)


def gauss_quadrature(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Gauss quadrature of a Lanczos run (Golub & Welsch 1969).

    Args:
        alpha: (k,) diagonal of T.
        beta: (k - 1,) off-diagonal of T.

    Returns:
        ``(nodes (k,), weights (k,))``: the Ritz values (eigenvalues of T) and the squared
        first components of T's unit eigenvectors (they sum to 1).
    """
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    nodes, vectors = np.linalg.eigh(t)
    return nodes, vectors[0, :] ** 2


@dataclass
class SpectralDensity:
    """A discrete estimate of the eigenvalue density of a D x D symmetric matrix.

    ``sum_k weights[k] f(nodes[k])`` estimates tr f(H) / D (weights sum to 1). From SLQ:
    the Ritz values of every starting vector, each weighted by its squared first eigenvector
    component / the number of vectors. Near-zero nodes are kept as they are (their own mass).

    Attributes:
        nodes: (K,) eigenvalue estimates lambda_k (K = vectors x iterations at most).
        weights: (K,) masses rho_k, summing to 1.
        dimension: D, the number of (kept) coordinates the density is over.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dimension: int

    def moment(self, j: int) -> float:
        """sum_k rho_k lambda_k^j (estimates tr H^j / D)."""
        return float(np.sum(self.weights * self.nodes**j))

    def near_zero_mass(self, tol: float = NEAR_ZERO) -> float:
        """Mass of the nodes with |lambda| <= tol * max |lambda|."""
        top = float(np.max(np.abs(self.nodes))) if self.nodes.size else 0.0
        return float(np.sum(self.weights[np.abs(self.nodes) <= tol * top]))

    def to_json(self) -> dict[str, Any]:
        order = np.argsort(self.nodes)
        return {
            "nodes": [float(v) for v in self.nodes[order]],
            "weights": [float(v) for v in self.weights[order]],
            "dimension": int(self.dimension),
            "near_zero_mass": self.near_zero_mass(),
            "negative_mass": float(np.sum(self.weights[self.nodes < 0])),
            "trace_per_dim": self.moment(1),
        }


def starting_vectors(
    n: int,
    mask: Tensor,
    generator: torch.Generator,
    distribution: Literal["rademacher", "gaussian"] = "rademacher",
) -> list[Tensor]:
    """``n`` random starting vectors (D,) on the kept coordinates (``mask`` (D,) 0/1), zero
    elsewhere, drawn on the CPU from ``generator`` (reproducible on any device)."""
    out = []
    for _ in range(n):
        if distribution == "rademacher":
            v = torch.randint(0, 2, (mask.numel(),), generator=generator).to(torch.float64) * 2 - 1
        elif distribution == "gaussian":
            v = torch.randn(mask.numel(), generator=generator, dtype=torch.float64)
        else:
            raise ValueError(f"distribution={distribution!r} should be 'rademacher' or 'gaussian'")
        out.append(v.to(device=mask.device, dtype=mask.dtype) * mask)
    return out


def slq_density(
    matvec: Callable[[Tensor], Tensor],
    mask: Tensor,
    iterations: int = 20,
    vectors: int = 4,
    *,
    seed: int = 0,
    distribution: Literal["rademacher", "gaussian"] = "rademacher",
    cancel_check: Callable[[], None] | None = None,
    after_vector: Callable[[int], None] | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the eigenvalue density (Ghorbani et al., ICML 2019).

    For each of ``vectors`` random starting vectors v, ``iterations`` Lanczos steps give the
    Gauss quadrature of the spectral measure of v: nodes the Ritz values, weights the squared
    first components of T's eigenvectors. Their average over vectors estimates
    tr f(H) / D = the integral of f against the eigenvalue density; for a polynomial f of
    degree <= 2 m - 1 the quadrature of each v is exact (v^T f(H) v / ||v||^2). With m = D
    the nodes are the eigenvalues.

    Args:
        matvec: v (D,) -> H v (D,), H symmetric (e.g. :func:`model_hvp`).
        mask: (D,) 0/1 tensor of the kept coordinates (ones for a dense model); its dtype and
            device are those of the vectors.
        iterations: m, Lanczos steps per vector (Hessian-vector products).
        vectors: Number of random starting vectors.
        seed: Seeds the starting vectors.
        distribution: Rademacher (+-1, the default; ||v||^2 = D exactly) or Gaussian entries.
        cancel_check: Called before every product.
        after_vector: Called with the number of vectors done (progress).

    Returns:
        The density over the D = mask.sum() kept coordinates.
    """
    if vectors < 1:
        raise ValueError(f"vectors={vectors} should be >= 1")
    generator = torch.Generator().manual_seed(int(seed))
    nodes, weights = [], []
    for i, start in enumerate(starting_vectors(vectors, mask, generator, distribution)):
        alpha, beta = lanczos(matvec, start, iterations, cancel_check)
        theta, tau = gauss_quadrature(alpha, beta)
        nodes.append(theta)
        weights.append(tau / vectors)
        if after_vector is not None:
            after_vector(i + 1)
    return SpectralDensity(np.concatenate(nodes), np.concatenate(weights), int(mask.sum()))


# the limit ------------------------------------------------------------------------------------


def loss_std(losses: Sequence[float]) -> float:
    """eps: the standard deviation (population, ddof = 0) of per-batch mean training losses.

    Args:
        losses: (n_batches,) mean loss of each batch, n_batches >= 2.
    """
    arr = np.asarray(losses, dtype=np.float64)
    if arr.size < 2:
        raise ValueError(f"eps needs at least 2 batch losses, got {arr.size}")
    return float(arr.std())


def magnitude_distances(
    weights: Sequence[Tensor], sparsities: Sequence[float] | np.ndarray
) -> np.ndarray:
    """R(s) = ||theta - theta_s||_2 for global magnitude pruning at each sparsity.

    theta_s zeroes the round(s D) weights of smallest |w| over all ``weights`` jointly (as
    :class:`backend.pruning.magnitude.GlobalMagnitude` does; which of tied weights goes does
    not change the distance), so R(s)^2 is the sum of the round(s D) smallest w^2: a sort and
    a cumulative sum, no model copy. Already-pruned weights are zeros and go first.

    Args:
        weights: The prunable weights (effective, i.e. masked), any shapes; D entries in all.
        sparsities: (S,) values in [0, 1].

    Returns:
        (S,) float64 distances.
    """
    squares = torch.cat([w.detach().reshape(-1).to(torch.float64) ** 2 for w in weights])
    cumulative = torch.cumsum(torch.sort(squares).values, 0).cpu().numpy()
    total = squares.numel()
    out = []
    for s in sparsities:
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"sparsity={s} should be in [0, 1]")
        k = round(float(s) * total)
        out.append(math.sqrt(max(float(cumulative[k - 1]), 0.0)) if k > 0 else 0.0)
    return np.asarray(out, dtype=np.float64)


def predicted_fraction(
    density: SpectralDensity | tuple[np.ndarray, np.ndarray], eps: float, radii: Any
) -> np.ndarray:
    """w(R) = sum_k rho_k r_k^2 / (R^2 + r_k^2) / sum_k rho_k with r_k^2 = 2 eps / |lambda_k|
    (SCIENCE.md sect. 7), written as 2 eps / (|lambda_k| R^2 + 2 eps) so that a zero
    eigenvalue contributes 1 (an infinitely long axis) without dividing by zero.

    Args:
        density: A :class:`SpectralDensity` or ``(nodes (K,), weights (K,))``.
        eps: The loss tolerance (>= 0); eps = 0 leaves only the exactly-zero eigenvalues.
        radii: R, a scalar or (S,) array.

    Returns:
        (S,) float64 (a 0-d array for a scalar R).
    """
    nodes, weights = (
        (density.nodes, density.weights) if isinstance(density, SpectralDensity) else density
    )
    lam = np.abs(np.asarray(nodes, dtype=np.float64))[None, :]
    rho = np.asarray(weights, dtype=np.float64)[None, :]
    r = np.asarray(radii, dtype=np.float64)
    rr = r.reshape(-1, 1) ** 2
    if eps < 0:
        raise ValueError(f"eps={eps} should be >= 0")
    num = np.full(lam.shape, 2.0 * eps)
    den = lam * rr + 2.0 * eps
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    out = (terms * rho).sum(1) / rho.sum()
    return out.reshape(r.shape)


@dataclass
class PruningLimit:
    """The predicted pruning limit on a grid of sparsities (see the module docstring).

    Attributes:
        sparsities: (S,) s, the fraction of prunable weights removed.
        radii: (S,) R(s).
        predicted: (S,) w(R(s)).
        index: Grid index of the crossing: argmin_i |w(R(s_i)) - s_i|.
        limit: s at ``index`` (SCIENCE.md's "closest on a grid of s").
        interpolated: s where w(R(s)) - s first changes sign from >= 0 to < 0, linearly
            interpolated between the two grid points around it; None without a sign change.
    """

    sparsities: np.ndarray
    radii: np.ndarray
    predicted: np.ndarray
    index: int
    limit: float
    interpolated: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "sparsities": [float(v) for v in self.sparsities],
            "radii": [float(v) for v in self.radii],
            "predicted": [float(v) for v in self.predicted],
            "index": int(self.index),
            "limit": float(self.limit),
            "interpolated": None if self.interpolated is None else float(self.interpolated),
        }


def predicted_limit(
    density: SpectralDensity | tuple[np.ndarray, np.ndarray],
    eps: float,
    sparsities: Sequence[float] | np.ndarray,
    radii: Sequence[float] | np.ndarray,
) -> PruningLimit:
    """Where the theory curve w(R(s)) crosses s (the sparsity; see the module docstring).

    Args:
        density: The Hessian eigenvalue density.
        eps: Loss tolerance, the per-batch training loss standard deviation.
        sparsities: (S,) grid of s, increasing.
        radii: (S,) R(s) on that grid (:func:`magnitude_distances`).
    """
    s = np.asarray(sparsities, dtype=np.float64)
    r = np.asarray(radii, dtype=np.float64)
    if s.shape != r.shape or s.ndim != 1 or s.size == 0:
        raise ValueError(f"sparsities {s.shape} and radii {r.shape} should be equal 1-D shapes")
    w = predicted_fraction(density, eps, r)
    gap = w - s
    index = int(np.argmin(np.abs(gap)))
    interpolated = None
    for i in range(len(s) - 1):
        if gap[i] >= 0 > gap[i + 1]:
            interpolated = float(s[i] + (s[i + 1] - s[i]) * gap[i] / (gap[i] - gap[i + 1]))
            break
    return PruningLimit(s, r, w, index, float(s[index]), interpolated)


def effective_weights(hp: HessianParameters) -> list[Tensor]:
    """The weights the forward pass uses (``orig * mask`` for a pruned layer), detached."""
    return [(p if m is None else p * m).detach() for p, m in zip(hp.params, hp.masks, strict=True)]
