"""Local linear-region statistics of a ReLU network around single inputs (SCIENCE.md sect. 5).

An *activation pattern* is the sign of every ReLU input g_j(x) (active iff g_j(x) > 0) together
with the argmax of every max-pool window; an *activation region* is the set of inputs sharing one
pattern. With the pattern frozen (ReLU replaced by multiplication with the frozen 0/1 mask,
max-pool by a gather at the frozen argmax) the network is affine in x, so every pre-activation,
every max-pool constraint x_m - x_j (m the window's argmax, j another candidate) and every logit
is affine and its input gradient is exact. The region is the convex polytope
{x : sign_j g_j(x) >= 0, x_m - x_j >= 0}, hence the distance from x to its boundary is
min over constraints of |value| / ||gradient|| (exact, SCIENCE.md sect. 5).

Requirements on the model (checked; every architecture in ``models/`` satisfies them):

- the only nonlinearities are ``nn.ReLU`` / ``nn.LeakyReLU`` / ``nn.MaxPool2d`` *modules*, each
  called at most once per forward pass; a functional ``torch.relu`` / ``F.relu`` /
  ``F.max_pool2d`` (or another common activation) called outside such a module raises
  ``ValueError`` naming the function, as do unsupported nonlinear modules (GELU, ReLU6, ...);
- everything else is affine in eval mode (Linear, Conv, BatchNorm with running statistics,
  Flatten, average pooling, residual additions, Dropout).

Everything runs on the CPU in float64 on a deep copy of the model in eval mode (in-place ReLUs
are made out-of-place in the copy); the caller's model is not modified. Pruning hooks of
``torch.nn.utils.prune`` survive the copy.

Gradients of all U constraints w.r.t. the D input coordinates are obtained with forward-mode
AD (``torch.autograd.forward_ad``): each sample is repeated k times in the batch with the
one-hot tangents e_d of a block of k input coordinates, and squared tangents are accumulated over
blocks, so the (U, D) Jacobian is never stored. Forward mode costs D (batched) forward passes per
sample independently of U; reverse mode would cost U backward passes. Every architecture here
has U >> D (digits_cnn: U ~ 6.5e3 constraints vs. D = 64; resnet20: U ~ 1.9e5 vs. D = 3072), so
forward mode is always used (reverse mode, better only when U < D, e.g. a narrow MLP on CIFAR, is
not implemented); memory is bounded by ``_TANGENT_ELEMENTS`` per block. Cost on one CPU:
well under a second per digits_cnn sample, but about two minutes per CIFAR sample for resnet20.

Constraint values that cannot bind are reported at distance +inf: a constraint whose gradient
is exactly zero (e.g. a pruned unit, a max-pool window of constant zeros), the candidate j = m
itself, and candidates in the -inf padding of a max-pool window.

Stopping early: the long computations (:func:`region_distances`, :func:`decision_intervals`,
:func:`local_complexity`) take a ``cancel_check`` callable, called between tangent blocks,
chunks, rays and forward passes (and inside each ray's walk), so that a job can stop them
within a second; it stops the computation by raising.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from backend.analysis.linear_regions import (
    CancelCheck,
    DecisionWalker,
    PieceBudgetExceeded,
    SelfCheckError,
)

__all__ = [
    "DIRECTION_GRADIENT",
    "DIRECTION_SAMPLE",
    "DecisionIntervals",
    "activation_patterns",
    "closest_constraint",
    "dead_neuron_rate",
    "dead_units",
    "decision_intervals",
    "local_complexity",
    "pattern_agreement",
    "pattern_mismatch_reasons",
    "pool_switches",
    "region_distances",
]

# Upper bound on float64 elements of one tangent block (rows x constraints), about 128 MiB.
_TANGENT_ELEMENTS = 1 << 24
# Upper bound on rows of one batched forward pass in local_complexity.
_LC_ROWS = 4096
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)
# Nonlinear modules whose presence breaks the frozen-pattern affine model.
_UNSUPPORTED_MODULES = (
    nn.ReLU6,
    nn.Hardtanh,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.PReLU,
    nn.RReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.MaxPool1d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
# Functional nonlinearities that must only run inside a hooked module.
_FUNCTIONAL_NONLINEAR = frozenset(
    {
        "relu",
        "relu_",
        "leaky_relu",
        "leaky_relu_",
        "max_pool1d",
        "max_pool2d",
        "_max_pool2d",
        "max_pool2d_with_indices",
        "max_pool3d",
        "adaptive_max_pool2d",
        "relu6",
        "hardtanh",
        "hardtanh_",
        "gelu",
        "silu",
        "elu",
        "selu",
        "sigmoid",
        "tanh",
        "softplus",
        "prelu",
    }
)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[-1])


def _pool_windows(module: nn.MaxPool2d, x: Tensor, out_hw: tuple[int, int]) -> Tensor:
    """Candidates of every max-pool window, (N, C, K, L) with K = kh*kw, L = Ho*Wo.

    Padding is -inf as in ``nn.MaxPool2d``; the right/bottom edge is padded or cropped so that
    exactly the module's Ho x Wo windows are produced (this also covers ``ceil_mode``).
    """
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
    (ph, pw), (dh, dw) = _pair(module.padding), _pair(module.dilation)
    ho, wo = out_hw
    need_h = (ho - 1) * sh + dh * (kh - 1) + 1
    need_w = (wo - 1) * sw + dw * (kw - 1) + 1
    xp = F.pad(x, (pw, need_w - w - pw, ph, need_h - h - ph), value=-math.inf)
    cols = F.unfold(
        xp.reshape(n * c, 1, need_h, need_w), (kh, kw), dilation=(dh, dw), stride=(sh, sw)
    )
    return cols.reshape(n, c, kh * kw, ho * wo)


class _Tracer:
    """Float64 eval copy of a model with hooks recording or freezing the activation pattern."""

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model={type(model).__name__} should be a torch.nn.Module")
        # Pruned modules (torch.nn.utils.prune) hold ``weight`` as a non-leaf tensor attribute that
        # deepcopy refuses; their pre-hook recomputes it from weight_orig * weight_mask anyway.
        memo: dict[int, Any] = {}
        for module in model.modules():
            for value in vars(module).values():
                if isinstance(value, Tensor) and not value.is_leaf:
                    memo[id(value)] = value.detach().clone()
        self.model = copy.deepcopy(model, memo).to("cpu", torch.float64).eval()
        self.hooked: dict[str, nn.Module] = {}
        for name, module in self.model.named_modules():
            if isinstance(module, _UNSUPPORTED_MODULES):
                raise ValueError(
                    f"module {name!r} ({type(module).__name__}) is not piecewise linear with a "
                    "supported pattern; only nn.ReLU, nn.LeakyReLU and nn.MaxPool2d are supported"
                )
            if isinstance(module, _ACTIVATIONS + (nn.MaxPool2d,)):
                if getattr(module, "inplace", False):
                    module.inplace = False  # type: ignore[assignment]
                self.hooked[name] = module
                module.register_forward_pre_hook(self._make_pre_hook())
                module.register_forward_hook(self._make_hook(name))
        self.mode = "record"
        self.depth = 0
        self.rep = 1
        # Per forward pass, in call order: constraint values (rows, U_layer) per layer.
        self.values: dict[str, Tensor] = {}
        self.pre: dict[str, Tensor] = {}  # ReLU inputs, (rows, units)
        self.masks: dict[str, Tensor] = {}  # ReLU input > 0, (N, *shape)
        self.switch: dict[str, Tensor] = {}  # max-pool argmax within window, (N, C, L)

    def _make_pre_hook(self) -> Callable[..., None]:
        def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            self.depth += 1

        return pre_hook

    def _make_hook(self, name: str) -> Callable[..., Tensor | None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
            self.depth -= 1
            if name in self.values:
                raise ValueError(
                    f"module {name!r} is called more than once per forward pass; give every "
                    "use its own module so that each has one activation pattern"
                )
            x = args[0]
            if isinstance(module, nn.MaxPool2d):
                return self._pool(name, module, x, output)
            return self._relu(name, module, x)

        return hook

    def _relu(self, name: str, module: nn.Module, g: Tensor) -> Tensor | None:
        self.values[name] = g.flatten(1)
        if self.mode == "record":
            self.pre[name] = g.detach().flatten(1)
            self.masks[name] = g.detach() > 0
            return None
        mask = self.masks[name].repeat_interleave(self.rep, 0)
        if isinstance(module, nn.LeakyReLU):
            slope = torch.full_like(mask, module.negative_slope, dtype=g.dtype)
            return g * torch.where(mask, torch.ones_like(slope), slope)
        return g * mask

    def _pool(self, name: str, module: nn.MaxPool2d, x: Tensor, output: Tensor) -> Tensor | None:
        if x.dim() != 4:
            raise ValueError(f"max-pool {name!r} got a {x.dim()}-D input; expected (N, C, H, W)")
        windows = _pool_windows(module, x, (output.shape[-2], output.shape[-1]))
        if self.mode == "record":
            self.switch[name] = windows.detach().argmax(dim=2)
        idx = self.switch[name].repeat_interleave(self.rep, 0)
        best = windows.gather(2, idx[:, :, None])
        k = torch.arange(windows.shape[2], device=x.device)[None, None, :, None]
        own = k == idx[:, :, None, :]
        cons = torch.where(own, torch.full_like(windows, math.inf), best - windows)
        self.values[name] = cons.flatten(1)
        if self.mode == "record":
            return None
        return best.squeeze(2).reshape(output.shape)

    def forward(self, x: Tensor, mode: str, rep: int = 1) -> Tensor:
        """Run the copy; ``mode`` is "record" (fresh pattern) or "frozen" (stored pattern)."""
        self.mode, self.rep, self.depth = mode, rep, 0
        self.values = {}
        if mode == "record":
            self.pre, self.masks, self.switch = {}, {}, {}
        with _FunctionalGuard(self):
            out = self.model(x)
        if not isinstance(out, Tensor) or out.dim() != 2:
            raise ValueError("model should return logits of shape (N, C)")
        return out

    def constraints(self) -> Tensor:
        """Constraint values of the last pass concatenated in call order, (rows, U)."""
        if not self.values:
            return torch.zeros(0, 0, dtype=torch.float64)
        return torch.cat(list(self.values.values()), dim=1)

    def layout(self) -> list[tuple[str, int]]:
        """(layer name, number of constraints) in the order of :meth:`constraints`."""
        return [(k, v.shape[1]) for k, v in self.values.items()]


class _FunctionalGuard(TorchFunctionMode):
    """Raises when a nonlinearity runs outside a hooked module (a functional relu)."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        name = getattr(func, "__name__", "")
        if self.tracer.depth == 0 and name in _FUNCTIONAL_NONLINEAR:
            raise ValueError(
                f"model calls {name!r} outside an nn.ReLU/nn.LeakyReLU/nn.MaxPool2d module; "
                "region analysis needs every nonlinearity as a module (e.g. nn.ReLU())"
            )
        return func(*args, **(kwargs or {}))


def _as_input(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(x).to(torch.float64)
    if t.dim() < 2 or t.shape[0] == 0:
        raise ValueError(f"x of shape {tuple(t.shape)} should be a non-empty batch (N, ...)")
    return t


@torch.no_grad()
def _record(model: nn.Module, x: Tensor | np.ndarray) -> _Tracer:
    tracer = _Tracer(model)
    tracer.forward(_as_input(x), "record")
    return tracer


def activation_patterns(model: nn.Module, x: Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """ReLU activation patterns (SCIENCE.md sect. 5).

    Args:
        model: A network whose nonlinearities are nn.ReLU/nn.LeakyReLU/nn.MaxPool2d modules.
        x: Inputs, (N, ...).

    Returns:
        Layer (module name) -> (N, units) bool, True where the ReLU input is > 0. Max-pool
        argmax indices are returned by :func:`pool_switches`.
    """
    tracer = _record(model, x)
    return {k: v.flatten(1).numpy().copy() for k, v in tracer.masks.items()}


def pool_switches(model: nn.Module, x: Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Max-pool part of the activation pattern (SCIENCE.md sect. 5).

    Args:
        model: As in :func:`activation_patterns`.
        x: Inputs, (N, ...).

    Returns:
        Max-pool module name -> (N, C * L) int64: index in [0, kh*kw) of the argmax within each
        of the L windows of each channel (first maximum on ties; -inf padding counts as a
        candidate, as in nn.MaxPool2d).
    """
    tracer = _record(model, x)
    return {k: v.flatten(1).numpy().copy() for k, v in tracer.switch.items()}


def dead_neuron_rate(model: nn.Module, x: Tensor | np.ndarray) -> dict[str, float]:
    """Fraction of ReLU outputs that are zero over a batch, per layer (SCIENCE.md sect. 5).

    An output counts as zero when its input g <= 0 (for nn.LeakyReLU: the inactive side).

    Args:
        model: As in :func:`activation_patterns`.
        x: Inputs, (N, ...).

    Returns:
        Layer -> fraction in [0, 1] over the N x units outputs of that layer.
    """
    return {k: float(1.0 - v.mean()) for k, v in activation_patterns(model, x).items()}


def dead_units(model: nn.Module, x: Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Units never active on the batch.

    Args:
        model: As in :func:`activation_patterns`.
        x: Inputs, (N, ...).

    Returns:
        Layer -> (units,) bool, True where g <= 0 for all N samples.
    """
    return {k: np.asarray(~v.any(axis=0)) for k, v in activation_patterns(model, x).items()}


def _compare(
    a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]
) -> tuple[dict[str, float | None], dict[str, str]]:
    out: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name in list(a) + [k for k in b if k not in a]:
        if name not in a or name not in b:
            out[name] = None
            reasons[name] = f"layer {name!r} is missing in {'b' if name in a else 'a'}"
            continue
        pa, pb = np.asarray(a[name]), np.asarray(b[name])
        if pa.shape[0] != pb.shape[0]:
            raise ValueError(
                f"layer {name!r}: {pa.shape[0]} vs {pb.shape[0]} samples; patterns must be "
                "computed on the same inputs"
            )
        if pa.shape[1:] != pb.shape[1:]:
            out[name] = None
            reasons[name] = f"layer {name!r}: widths differ ({pa.shape[1:]} vs {pb.shape[1:]})"
            continue
        out[name] = float(np.mean(pa != pb)) if pa.size else 0.0
    return out, reasons


def pattern_agreement(
    patterns_a: Mapping[str, np.ndarray], patterns_b: Mapping[str, np.ndarray]
) -> dict[str, float | None]:
    """Mean Hamming distance between two models' patterns on the same inputs, per layer.

    Args:
        patterns_a: Layer -> (N, units) pattern, e.g. from :func:`activation_patterns`.
        patterns_b: Same for the other model (same N inputs).

    Returns:
        Layer -> fraction of (sample, unit) entries that differ, in [0, 1]; None for a layer
        present in only one model or whose widths differ (e.g. after structured pruning); see
        :func:`pattern_mismatch_reasons` for why.

    Raises:
        ValueError: If a shared layer has a different number of samples.
    """
    return _compare(patterns_a, patterns_b)[0]


def pattern_mismatch_reasons(
    patterns_a: Mapping[str, np.ndarray], patterns_b: Mapping[str, np.ndarray]
) -> dict[str, str]:
    """Layer -> reason, for each layer that :func:`pattern_agreement` reports as None."""
    return _compare(patterns_a, patterns_b)[1]


def _no_check() -> None:
    return None


@torch.no_grad()
def _tangent_norms(
    tracer: _Tracer, x: Tensor, n_constraints: int, cancel_check: CancelCheck = _no_check
) -> tuple[Tensor, Tensor, Tensor]:
    """Squared gradient norms of all constraints and all logits of a sample chunk.

    Args:
        tracer: Tracer whose pattern was just recorded on ``x``.
        x: Inputs, (n, *input_shape).
        n_constraints: U.
        cancel_check: Called before every block of tangents.

    Returns:
        (n, U) squared norms of the constraint gradients, (n, C) squared norms of
        grad(o_c - o_k) with c the logits' argmax, and the frozen logits (n, C).
    """
    n = x.shape[0]
    d = x[0].numel()
    k = max(1, min(d, _TANGENT_ELEMENTS // max(1, n * max(n_constraints, 1))))
    norm2 = torch.zeros(n, n_constraints, dtype=torch.float64)
    lnorm2: Tensor | None = None
    logits: Tensor | None = None
    for start in range(0, d, k):
        cancel_check()
        kk = min(k, d - start)
        xr = x.repeat_interleave(kk, 0)
        tangent = torch.zeros(n * kk, d, dtype=torch.float64)
        tangent[torch.arange(n * kk), torch.arange(start, start + kk).repeat(n)] = 1.0
        with fwAD.dual_level(), warnings.catch_warnings():
            # torch's lazy import of its forward-AD decompositions warns about torch.jit.script.
            warnings.filterwarnings("ignore", r".*torch\.jit\.script", DeprecationWarning)
            out = tracer.forward(fwAD.make_dual(xr, tangent.reshape(xr.shape)), "frozen", kk)
            primal, t_out = fwAD.unpack_dual(out)
            t_cons = fwAD.unpack_dual(tracer.constraints()).tangent
        if t_cons is not None:
            norm2 += t_cons.reshape(n, kk, -1).square().sum(1)
        c = primal.shape[1]
        if logits is None:
            logits = primal.reshape(n, kk, c)[:, 0].detach()
            lnorm2 = torch.zeros(n, c, dtype=torch.float64)
        assert lnorm2 is not None
        if t_out is not None:
            t = t_out.reshape(n, kk, c)
            top = logits.argmax(1)
            t_top = t.gather(2, top[:, None, None].expand(n, kk, 1))
            lnorm2 += (t_top - t).square().sum(1)
    assert logits is not None and lnorm2 is not None
    return norm2, lnorm2, logits


def _safe_ratio(value: Tensor, norm: Tensor) -> Tensor:
    """|value| / norm, +inf where the gradient vanishes (the constraint never binds)."""
    ratio = value.abs() / norm.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.where(norm > 0, ratio, torch.full_like(ratio, math.inf))


def region_distances(
    model: nn.Module,
    x: Tensor | np.ndarray,
    chunk: int = 16,
    cancel_check: CancelCheck | None = None,
) -> dict[str, np.ndarray]:
    """Exact distances to the boundary of the own activation region and to the decision boundary.

    SCIENCE.md sect. 5: region distance = min over constraints g of |g(x)| / ||grad g(x)|| with
    the pattern frozen (ReLU inputs and max-pool constraints x_m - x_j); decision distance
    = min_{k != c} (o_c - o_k) / ||grad o_c - grad o_k|| with c the predicted class, computed on
    the affine map of the region.

    Args:
        model: As in :func:`activation_patterns`; must return logits (N, C).
        x: Inputs, (N, *input_shape).
        chunk: Samples per batch of forward-mode passes (memory ~ chunk * D forward rows,
            capped by the tangent budget).
        cancel_check: Called before every chunk and every block of tangents; raise from it
            to stop.

    Returns:
        Dict of (N,) arrays:

        - ``region_distance``: float64, exact L2 distance to the region's boundary (+inf if no
          constraint can bind, e.g. a model without ReLUs);
        - ``region_constraint``: int64 index of the closest constraint in the concatenation of
          all layers' constraints in call order (-1 if none);
        - ``region_layer``: str, module name of that constraint ("" if none);
        - ``region_unit``: int64 index of that constraint within its layer (for a ReLU layer the
          flattened unit; for a max-pool layer the flattened (C, K, L) window candidate);
        - ``predicted``: int64 class c = argmax of the logits;
        - ``decision_class``: int64 minimising class k (-1 if C = 1);
        - ``decision_distance_affine``: float64, min_k (o_c - o_k) / ||grad(o_c - o_k)|| of
          the region's affine map (may exceed the region distance);
        - ``decision_exact``: bool, decision_distance_affine < region_distance;
        - ``decision_distance``: float64, the exact distance to the decision boundary where
          ``decision_exact``, else the region distance, which is then a certified lower bound
          (i.e. min(decision_distance_affine, region_distance)).

    Raises:
        ValueError: On an unsupported model (see the module docstring) or bad ``chunk``.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} should be a positive integer")
    check = cancel_check or _no_check
    xs = _as_input(x)
    tracer = _Tracer(model)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, xs.shape[0], chunk):
        check()
        xc = xs[start : start + chunk]
        with torch.no_grad():
            logits = tracer.forward(xc, "record")
            values = tracer.constraints().detach()
        layout = tracer.layout()
        norm2, lnorm2, frozen_logits = _tangent_norms(tracer, xc, values.shape[1], check)
        if not torch.allclose(frozen_logits, logits, rtol=1e-9, atol=1e-9):
            raise ValueError(
                "the frozen-pattern network does not reproduce the model's logits; the model "
                "has a nonlinearity that is not an nn.ReLU/nn.LeakyReLU/nn.MaxPool2d module"
            )
        n = xc.shape[0]
        if values.shape[1]:
            dist = _safe_ratio(values, norm2.sqrt())
            region, idx = dist.min(dim=1)
            idx = torch.where(torch.isfinite(region), idx, torch.full_like(idx, -1))
        else:
            region = torch.full((n,), math.inf, dtype=torch.float64)
            idx = torch.full((n,), -1, dtype=torch.int64)
        offsets = np.cumsum([0] + [u for _, u in layout])
        names = np.array([""] * n, dtype=object)
        units = np.full(n, -1, dtype=np.int64)
        for i, j in enumerate(idx.tolist()):
            if j >= 0:
                layer = int(np.searchsorted(offsets, j, side="right")) - 1
                names[i], units[i] = layout[layer][0], j - offsets[layer]
        top = logits.argmax(1)
        gap = logits.gather(1, top[:, None]) - logits
        lnorm = lnorm2.sqrt()
        ratio = torch.where(
            lnorm > 0,
            gap / lnorm.clamp_min(torch.finfo(torch.float64).tiny),
            torch.where(gap > 0, math.inf, 0.0),
        )
        ratio.scatter_(1, top[:, None], math.inf)
        affine, kmin = ratio.min(dim=1)
        if logits.shape[1] == 1:
            kmin = torch.full_like(kmin, -1)
        exact = affine < region
        out = {
            "region_distance": region.numpy(),
            "region_constraint": idx.numpy(),
            "region_layer": names.astype(str),
            "region_unit": units,
            "predicted": top.numpy(),
            "decision_class": kmin.numpy(),
            "decision_distance_affine": affine.numpy(),
            "decision_exact": exact.numpy(),
            "decision_distance": torch.minimum(affine, region).numpy(),
        }
        for key, val in out.items():
            parts.setdefault(key, []).append(val)
    return {k: np.concatenate(v) for k, v in parts.items()}


def closest_constraint(model: nn.Module, x_single: Tensor | np.ndarray) -> tuple[float, Tensor]:
    """Distance to the closest region constraint and the unit direction towards it.

    Args:
        model: As in :func:`activation_patterns`.
        x_single: One input, shape ``input_shape`` (no batch dimension).

    Returns:
        (d, u): d the exact region distance (as in :func:`region_distances`), u a float64 unit
        vector of shape ``input_shape`` pointing from x towards the closest constraint's
        hyperplane (the direction of decreasing |g|), so x + d u lies on the region's boundary.
        (inf, zeros) when no constraint can bind.
    """
    xs = _as_input(torch.as_tensor(x_single)[None])
    res = region_distances(model, xs, chunk=1)
    j = int(res["region_constraint"][0])
    if j < 0:
        return math.inf, torch.zeros_like(xs[0])
    tracer = _Tracer(model)
    with torch.no_grad():
        tracer.forward(xs, "record")
    xg = xs.clone().requires_grad_(True)
    tracer.forward(xg, "frozen", 1)
    value = tracer.constraints()[0, j]
    (grad,) = torch.autograd.grad(value, xg)
    norm = grad.norm()
    normal = (-torch.sign(value.detach()) * grad / norm)[0].detach()
    return float(value.detach().abs() / norm), normal


DIRECTION_GRADIENT = "margin_gradient"
DIRECTION_SAMPLE = "towards_sample"
# |upper - lower| <= _MEET_RTOL * lower: both ends agree, the distance is known exactly. The two
# ends come from different exact computations (forward-AD norms vs. 1-D pieces), which agree to
# rounding where the crossing lies inside the sample's own region.
_MEET_RTOL = 1e-6
# Self-check at each crossing point: the two classes tie up to this (relative to the logits).
_TIE_RTOL = 1e-7
_POOL_BATCH = 256


@dataclass
class DecisionIntervals:
    """Certified interval [lower, upper] for each sample's L2 distance to the decision boundary.

    Attributes:
        lower: (N,) float64, certified lower end: no decision boundary is closer. Exact inside
            the sample's own activation region, else the region distance (``decision_distance``
            of :func:`region_distances`).
        upper: (N,) float64, distance to the nearest decision crossing found along the rays
            (a point on the decision boundary, so the distance is at most this); NaN where no
            ray crossed within its length.
        exact: (N,) bool, the distance is known exactly: ``decision_exact`` of
            :func:`region_distances`, or both ends agree within a relative 1e-6.
        predicted: (N,) int64, class c predicted at x.
        direction: (N,) str, kind of the ray that gave ``upper``: :data:`DIRECTION_GRADIENT`
            (down the margin gradient), :data:`DIRECTION_SAMPLE` (towards a pool sample
            predicted otherwise), "" where none crossed.
        target: (N,) int64, pool index of that sample for :data:`DIRECTION_SAMPLE`, else -1.
        crossing_class: (N,) int64, class predicted just beyond the crossing, -1 if none.
        rays: (N,) int64, number of rays walked (at most 1 + n_neighbours).
        directions: (N, *input_shape) float64 unit direction u of that ray (zeros if none).
        crossings: (N, *input_shape) float64 exact crossing point x + s u with s the crossing
            distance (NaN if none).
    """

    lower: np.ndarray
    upper: np.ndarray
    exact: np.ndarray
    predicted: np.ndarray
    direction: np.ndarray
    target: np.ndarray
    crossing_class: np.ndarray
    rays: np.ndarray
    directions: np.ndarray
    crossings: np.ndarray


def _margin_gradients(
    tracer: _Tracer,
    x: Tensor,
    top: np.ndarray,
    other: np.ndarray,
    chunk: int = 16,
    cancel_check: CancelCheck = _no_check,
) -> Tensor:
    """(N, D) input gradients of o_c - o_k (c = ``top``, k = ``other``) on each sample's
    frozen pattern, i.e. of the region's affine map; zero rows where k < 0 or k == c."""
    n = x.shape[0]
    grads = torch.zeros(n, x[0].numel(), dtype=torch.float64)
    for start in range(0, n, chunk):
        cancel_check()
        xc = x[start : start + chunk]
        rows = torch.arange(xc.shape[0])
        c = torch.as_tensor(top[start : start + chunk], dtype=torch.int64)
        k = torch.as_tensor(other[start : start + chunk], dtype=torch.int64)
        with torch.no_grad():
            tracer.forward(xc, "record")
        xg = xc.clone().requires_grad_(True)
        with torch.enable_grad():
            logits = tracer.forward(xg, "frozen", 1)
            margin = logits[rows, c] - logits[rows, k.clamp_min(0)]
            (g,) = torch.autograd.grad(margin.sum(), xg)
        g = g.reshape(xc.shape[0], -1).detach()
        grads[start : start + chunk] = torch.where(((k >= 0) & (k != c))[:, None], g, 0.0)
    return grads


def _predict(tracer: _Tracer, x: Tensor, cancel_check: CancelCheck = _no_check) -> np.ndarray:
    out = np.zeros(x.shape[0], dtype=np.int64)
    with torch.no_grad():
        for start in range(0, x.shape[0], _POOL_BATCH):
            cancel_check()
            logits = tracer.forward(x[start : start + _POOL_BATCH], "record")
            out[start : start + _POOL_BATCH] = logits.argmax(1).numpy()
    return out


def decision_intervals(
    model: nn.Module,
    x: Tensor | np.ndarray,
    pool: Tensor | np.ndarray | None = None,
    *,
    n_neighbours: int = 3,
    reach: float = 4.0,
    distances: Mapping[str, np.ndarray] | None = None,
    chunks: int = 4,
    max_pieces: int = 100_000,
    after_sample: Callable[[int], None] | None = None,
    cancel_check: CancelCheck | None = None,
) -> DecisionIntervals:
    """Certified interval of each sample's L2 distance to the decision boundary (SCIENCE.md
    sect. 5).

    Lower end: the certified bound of :func:`region_distances` (exact when the decision
    boundary of the region's affine map is closer than the region's boundary, else the
    region distance). Upper end: rays x + s u are walked with the exact 1-D machinery of
    :class:`backend.analysis.linear_regions.DecisionWalker` ((h0, hd) carried through the
    network, split at ReLU / max-pool breakpoints) to the smallest s at which the predicted
    class changes; that point lies on the decision boundary, so the distance is at most s. The
    rays, in this order:

    1. down the margin gradient, u = -grad(o_c - o_k) / ||grad(o_c - o_k)|| on the frozen
       pattern, with k the class of the region's nearest affine decision boundary
       (``decision_class``); along it the crossing is exactly the lower end when that end is
       exact. Walked up to the distance of the nearest pool sample predicted otherwise, or
       without one ``reach`` times the affine estimate ``decision_distance_affine``;
    2. towards each of the ``n_neighbours`` nearest pool samples predicted otherwise, walked
       up to that sample, so a crossing is certain (its end is predicted otherwise).

    Each ray is cut at the smallest crossing found so far (a farther one cannot improve it),
    so later rays are short. Cost: at most 1 + ``n_neighbours`` walks per sample.

    Args:
        model: A network both :func:`region_distances` and
            :func:`backend.analysis.linear_regions.check_supported` accept.
        x: Inputs, (N, *input_shape).
        pool: Candidate targets, (M, *input_shape), e.g. test samples (``target`` indexes
            them); None for the margin-gradient ray only.
        n_neighbours: Rays towards the nearest pool samples of another predicted class (>= 0).
        reach: Length of the margin-gradient ray, as a multiple of the affine estimate, when
            no pool sample is predicted otherwise (> 0).
        distances: The output of :func:`region_distances` on ``x`` if already computed.
        chunks: Sub-intervals per ray; the walk stops in the first that crosses.
        max_pieces: Piece budget per ray; a ray over it gives no upper end.
        after_sample: Called with the count of samples done after each one (a job reports
            progress there).
        cancel_check: Called between the passes over the samples, before every ray and
            inside each ray's walk (a ray through a large network can take minutes); raise
            from it to stop.

    Returns:
        DecisionIntervals; ``lower <= upper`` wherever ``upper`` is finite (an upper end below
        the lower one by rounding only is raised to it).

    Raises:
        ValueError: On bad arguments, a pool of another shape, or an unsupported model
            (:class:`backend.analysis.linear_regions.UnsupportedModuleError` where the 1-D walk
            cannot follow it, e.g. a padded max-pool).
        SelfCheckError: A crossing point where the two classes do not tie in a plain forward
            pass, or a crossing closer than the certified lower end.
    """
    if isinstance(n_neighbours, bool) or not isinstance(n_neighbours, int) or n_neighbours < 0:
        raise ValueError(f"n_neighbours={n_neighbours!r} should be a non-negative integer")
    if not (isinstance(reach, (int, float)) and math.isfinite(reach) and reach > 0):
        raise ValueError(f"reach={reach!r} should be a positive finite number")
    xs = _as_input(x)
    n, shape = xs.shape[0], tuple(xs.shape[1:])
    ps = torch.zeros(0, *shape, dtype=torch.float64)
    if pool is not None:
        ps = torch.as_tensor(pool).to(torch.float64)
        if ps.dim() < 1 or tuple(ps.shape[1:]) != shape:
            raise ValueError(
                f"pool of shape {tuple(ps.shape)} should be (M, {', '.join(map(str, shape))})"
            )
    check = cancel_check or _no_check
    if distances is None:
        distances = region_distances(model, xs, cancel_check=check)
    lower = np.asarray(distances["decision_distance"], dtype=np.float64).copy()
    if lower.shape != (n,):
        raise ValueError(f"distances hold {lower.shape[0]} samples, x has {n}")
    predicted = np.asarray(distances["predicted"], dtype=np.int64)
    runner_up = np.asarray(distances["decision_class"], dtype=np.int64)
    affine = np.asarray(distances["decision_distance_affine"], dtype=np.float64)
    tracer = _Tracer(model)
    grads = _margin_gradients(tracer, xs, predicted, runner_up, cancel_check=check)
    pool_pred = _predict(tracer, ps, check) if ps.shape[0] else np.zeros(0, dtype=np.int64)
    walker = DecisionWalker(model, cancel_check=check)
    flat_dim = xs[0].numel()
    flat_x, flat_pool = xs.reshape(n, -1), ps.reshape(ps.shape[0], flat_dim)

    upper = np.full(n, math.nan)
    direction = np.full(n, "", dtype=object)
    target = np.full(n, -1, dtype=np.int64)
    crossing_class = np.full(n, -1, dtype=np.int64)
    rays = np.zeros(n, dtype=np.int64)
    directions = torch.zeros(n, flat_x.shape[1], dtype=torch.float64)
    for i in range(n):
        c = int(predicted[i])
        others = np.flatnonzero(pool_pred != c)
        gaps = (flat_pool[others] - flat_x[i]).norm(dim=1).numpy()
        others, gaps = others[gaps > 0], gaps[gaps > 0]
        order = np.argsort(gaps, kind="stable")[:n_neighbours]
        candidates: list[tuple[str, int, Tensor, float]] = []
        norm = float(grads[i].norm())
        if norm > 0:
            length = float(gaps[order[0]]) if order.size else reach * float(affine[i])
            candidates.append((DIRECTION_GRADIENT, -1, -grads[i] / norm, length))
        for j in order:
            u = (flat_pool[others[j]] - flat_x[i]) / float(gaps[j])
            candidates.append((DIRECTION_SAMPLE, int(others[j]), u, float(gaps[j])))
        best = math.inf
        for kind, tgt, u, length in candidates:
            length = min(length, best)
            if not (math.isfinite(length) and length > 0):
                continue
            check()
            rays[i] += 1
            end = xs[i] + length * u.reshape(shape)
            try:
                hit = walker.first_crossing(xs[i], end, chunks=chunks, max_pieces=max_pieces)
            except PieceBudgetExceeded:
                continue  # too many pieces for the budget: this ray gives no upper end
            # hit.before != c only on an exact tie at x itself
            if hit is None or hit.before != c or hit.distance >= best:
                continue
            best = hit.distance
            upper[i], direction[i], target[i] = best, kind, tgt
            crossing_class[i], directions[i] = hit.after, u
        if after_sample is not None:
            after_sample(i + 1)
    found = np.isfinite(upper)
    crossings = torch.full_like(directions, math.nan)
    s = torch.as_tensor(np.where(found, upper, 0.0))
    crossings[found] = (flat_x + s[:, None] * directions)[found]
    _check_crossings(
        tracer, crossings[found].reshape(-1, *shape), predicted[found], crossing_class[found]
    )
    too_close = found & (upper < lower)
    if np.any(too_close & (lower - upper > _MEET_RTOL * lower)):
        i = int(np.flatnonzero(too_close & (lower - upper > _MEET_RTOL * lower))[0])
        raise SelfCheckError(
            f"sample {i}: a decision crossing at distance {upper[i]:.6g} is closer than the "
            f"certified lower end {lower[i]:.6g}"
        )
    upper = np.where(too_close, lower, upper)  # rounding only
    meet = found & (upper - lower <= _MEET_RTOL * lower)
    exact = np.asarray(distances["decision_exact"], dtype=bool) | meet
    return DecisionIntervals(
        lower=lower,
        upper=upper,
        exact=exact,
        predicted=predicted.copy(),
        direction=direction.astype(str),
        target=target,
        crossing_class=crossing_class,
        rays=rays,
        directions=directions.reshape(n, *shape).numpy(),
        crossings=crossings.reshape(n, *shape).numpy(),
    )


def _check_crossings(
    tracer: _Tracer, points: Tensor, before: np.ndarray, after: np.ndarray
) -> None:
    """Raise SelfCheckError unless classes ``before`` and ``after`` tie at each crossing point
    in a plain forward pass, up to rounding."""
    if points.shape[0] == 0:
        return
    with torch.no_grad():
        logits = tracer.forward(points, "record")
    rows = torch.arange(points.shape[0])
    gap = (logits[rows, torch.as_tensor(before)] - logits[rows, torch.as_tensor(after)]).abs()
    scale = 1.0 + logits.abs().amax(dim=1)
    bad = gap > _TIE_RTOL * scale
    if bool(bad.any()):
        j = int(bad.nonzero()[0, 0])
        raise SelfCheckError(
            f"at a decision crossing point the logits of classes {int(before[j])} and "
            f"{int(after[j])} differ by {float(gap[j]):.3g} in a plain forward pass"
        )


def local_complexity(
    model: nn.Module,
    x: Tensor | np.ndarray,
    radius: float,
    n_dirs: int | None = None,
    seed: int = 0,
    cancel_check: CancelCheck | None = None,
) -> np.ndarray:
    """Local complexity of Humayun et al. 2024 (SCIENCE.md sect. 5).

    Number of ReLU neurons whose sign (g > 0) is not constant over the 2 * n vertices
    x +- radius * v_i of a cross-polytope around x. Max-pool switches are not neurons and are
    not counted.

    Args:
        model: As in :func:`activation_patterns`.
        x: Inputs, (N, *input_shape).
        radius: Vertex distance r > 0.
        n_dirs: None for the D coordinate axes v_i = e_i; else a random set of n_dirs
            orthonormal directions (QR of a Gaussian matrix, drawn once for all samples from
            ``seed``), for large D, e.g. CIFAR's 3072. n_dirs = D gives a randomly rotated
            full cross-polytope.
        seed: Seed of the random directions.
        cancel_check: Called before every forward pass; raise from it to stop.

    Returns:
        (N,) int64 counts.

    Raises:
        ValueError: On radius <= 0 or n_dirs outside [1, D].
    """
    if not (isinstance(radius, (int, float)) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius={radius!r} should be a positive finite number")
    xs = _as_input(x)
    n, d = xs.shape[0], xs[0].numel()
    if n_dirs is None:
        dirs = torch.eye(d, dtype=torch.float64)
    else:
        if isinstance(n_dirs, bool) or not isinstance(n_dirs, int) or not 1 <= n_dirs <= d:
            raise ValueError(f"n_dirs={n_dirs!r} should be an integer in [1, {d}]")
        gen = torch.Generator().manual_seed(seed)
        gauss = torch.randn(d, n_dirs, generator=gen, dtype=torch.float64)
        dirs = torch.linalg.qr(gauss).Q.T.contiguous()
    vertices = torch.cat([dirs, -dirs]) * float(radius)  # (2 n_dirs, D)
    tracer = _Tracer(model)
    counts = np.zeros(n, dtype=np.int64)
    n_vert = vertices.shape[0]
    per_pass = max(1, _LC_ROWS // n_vert)  # samples per forward pass
    v_block = min(n_vert, _LC_ROWS)  # vertices per forward pass
    with torch.no_grad():
        for s0 in range(0, n, per_pass):
            xc = xs[s0 : s0 + per_pass].reshape(-1, 1, d)
            m = xc.shape[0]
            pos: dict[str, Tensor] = {}
            neg: dict[str, Tensor] = {}
            for v0 in range(0, n_vert, v_block):
                if cancel_check is not None:
                    cancel_check()
                v = vertices[v0 : v0 + v_block]
                pts = (xc + v[None]).reshape(-1, *xs.shape[1:])
                tracer.forward(pts, "record")
                for name, g in tracer.pre.items():
                    gs = g.reshape(m, v.shape[0], -1)
                    p, q = (gs > 0).any(1), (gs <= 0).any(1)
                    pos[name] = pos[name] | p if name in pos else p
                    neg[name] = neg[name] | q if name in neg else q
            total = torch.zeros(m, dtype=torch.int64)
            for name in pos:
                total += (pos[name] & neg[name]).sum(1)
            counts[s0 : s0 + m] = total.numpy()
    return counts
