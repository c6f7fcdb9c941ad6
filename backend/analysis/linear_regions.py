"""Exact linear-region statistics along 1-D segments of ReLU networks (SCIENCE.md sect. 5).

Along the segment x(t) = a + t (b - a), t in [0, 1], every hidden value of a ReLU network is
piecewise affine in t. We carry, per piece [lo, hi] of [0, 1], the pair (h0, hd) with
h(t) = h0 + t hd through the ``torch.fx`` graph of the model in float64:

* affine layers (Linear, Conv2d, BatchNorm in eval mode, average pools, flatten/reshape) map
  h0 with their bias and hd without it; residual adds add both parts;
* at a ReLU / LeakyReLU the piece is split at every t = -h0/hd strictly inside it (per unit);
  on each sub-piece a unit is on or off, read from the sign at the sub-piece midpoint;
* at a MaxPool2d the piece is split where a window's argmax changes: the pairwise crossings of
  the candidates' affine functions inside the piece that lie on the window's upper envelope;
  the argmax is read at the sub-piece midpoints.

The whole interval is propagated until the first nonlinearity, split there, and every piece is
then continued separately (a batched piece list), so downstream breakpoints are found within
each piece. Pieces whose patterns are equal and adjacent (e.g. across ``chunks`` borders) are
merged at the end.

Definitions used in :class:`SegmentRegions`:

* activation pattern: the sign (> 0) of every ReLU/LeakyReLU input unit and the argmax of every
  max-pool window (first index on ties, as PyTorch). It is stored per node as a 128-bit BLAKE2b
  digest of the packed bits, so "distinct" is exact up to a 2^-128 collision chance.
* live neuron: a ReLU/LeakyReLU input unit that is not structurally dead. A unit is dead when
  its pre-activation is identically zero for every input: computed by propagating a support
  mask through the graph with |effective weight| (pruning masks applied), so a unit whose
  incoming effective weights are all zero (or whose inputs are all dead) and whose bias
  contributions (layer bias, BN shift) are zero is dead.
* density_per_length = activation_pieces / |b - a|; density_per_live_neuron =
  density_per_length / live_neurons (Hanin & Rolnick 2019 normalisation).

Numerical conventions: a breakpoint must lie more than ``1e-12`` (in t) inside its piece, and
breakpoints closer than that are merged; linear pieces merge neighbouring activation pieces
whose output slopes d(logits)/dt agree within ``1e-9 * (1 + max |slope|)``.

Stopping early: a segment through a large network can take minutes, so the counters take a
``cancel_check`` callable, called before every node of every batch of pieces (well under a
second apart); it stops the computation by raising (a job passes its cancellation check).
"""

from __future__ import annotations

import copy
import hashlib
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from backend.pruning.masks import effective_weight

__all__ = [
    "CancelCheck",
    "DecisionCrossing",
    "DecisionWalker",
    "PieceBudgetExceeded",
    "SegmentRegions",
    "SelfCheckError",
    "UnsupportedModuleError",
    "check_supported",
    "count_regions",
    "count_regions_batch",
    "first_decision_crossing",
    "sample_patterns",
    "segment_sets",
    "verify_segment",
]

_EPS_T = 1e-12  # minimum distance (in t) of a breakpoint from its piece's ends
_SLOPE_RTOL = 1e-9
_SELF_CHECK_TOL = 1e-9
# pieces per batch x largest activation size: bounds memory, and the work of one node on one
# batch (a 64-channel conv of resnet20 on 64 x 64 inputs: about half a second), which is how
# late a cancel_check call can come
_BATCH_ELEMENTS = 2**20

CancelCheck = Callable[[], None]
"""Called between units of work; raises to stop (e.g. a job's cancellation check)."""


def _no_check() -> None:
    return None


_AFFINE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
_LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)
_RELU_FUNCS: set[Any] = {F.relu, torch.relu, torch.relu_, F.relu_}
_ADD_FUNCS: set[Any] = {operator.add, operator.iadd, torch.add}
_SHAPE_METHODS = {"view", "reshape", "flatten"}


class UnsupportedModuleError(ValueError):
    """The model contains a module or operation the exact counter cannot follow."""


class PieceBudgetExceeded(ValueError):
    """The segment needs more pieces than ``max_pieces``; no partial result is returned."""


class SelfCheckError(RuntimeError):
    """The piecewise-affine output disagrees with a plain forward pass."""


@dataclass
class SegmentRegions:
    """Exact region statistics of one segment x(t) = a + t (b - a), t in [0, 1].

    Attributes:
        breakpoints: Sorted t where the activation pattern changes.
        activation_pieces: Number of maximal sub-intervals with one activation pattern
            (len(breakpoints) + 1).
        distinct_patterns: Number of distinct activation patterns met along the segment.
        linear_pieces: Number of maximal sub-intervals on which the logits are affine in t.
        linear_breakpoints: Sorted t where the output slope d(logits)/dt changes.
        decision_crossings: Number of changes of the argmax logit along the segment.
        decision_points: Sorted t of those changes.
        length: |b - a| (Euclidean).
        density_per_length: activation_pieces / length.
        live_neurons: ReLU/LeakyReLU units that are not structurally dead (module docstring).
        density_per_live_neuron: density_per_length / live_neurons (0 if none is live).
        piece_bounds: (P, 2) [lo, hi] of the activation pieces (not in to_json()).
        logit_offsets: (P, C) logits = offsets + t * slopes on each piece (not in to_json()).
        logit_slopes: (P, C).
    """

    breakpoints: list[float]
    activation_pieces: int
    distinct_patterns: int
    linear_pieces: int
    linear_breakpoints: list[float]
    decision_crossings: int
    decision_points: list[float]
    length: float
    density_per_length: float
    live_neurons: int
    density_per_live_neuron: float
    piece_bounds: np.ndarray = field(repr=False)
    logit_offsets: np.ndarray = field(repr=False)
    logit_slopes: np.ndarray = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable) without the per-piece affine maps."""
        return {
            "breakpoints": [float(t) for t in self.breakpoints],
            "activation_pieces": int(self.activation_pieces),
            "distinct_patterns": int(self.distinct_patterns),
            "linear_pieces": int(self.linear_pieces),
            "linear_breakpoints": [float(t) for t in self.linear_breakpoints],
            "decision_crossings": int(self.decision_crossings),
            "decision_points": [float(t) for t in self.decision_points],
            "length": float(self.length),
            "density_per_length": float(self.density_per_length),
            "live_neurons": int(self.live_neurons),
            "density_per_live_neuron": float(self.density_per_live_neuron),
        }


# ----------------------------------------------------------------------------- graph


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", repr(fn))


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types; all mean "cannot follow this model"
        raise UnsupportedModuleError(
            f"{type(model).__name__} cannot be traced by torch.fx: {exc}"
        ) from exc


def _classify(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str:
    """Kind of a graph node, or UnsupportedModuleError naming the module/function and node."""
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        if not isinstance(node.args[0], torch.fx.Node):
            raise UnsupportedModuleError(
                f"model output {node.args[0]!r} should be a single logits tensor"
            )
        return "output"
    if node.op == "call_module":
        m = modules[str(node.target)]
        name = f"{type(m).__name__} '{node.target}'"
        if isinstance(m, _AFFINE_MODULES):
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m.running_var is None:
                raise UnsupportedModuleError(
                    f"{name} without running statistics is not affine in eval mode"
                )
            return "affine"
        if isinstance(m, _LINEAR_MODULES):
            return "linear"
        if isinstance(m, nn.ReLU | nn.LeakyReLU):
            return "relu"
        if isinstance(m, nn.MaxPool2d):
            pad = m.padding if isinstance(m.padding, tuple) else (m.padding,)
            if any(p != 0 for p in pad) or m.ceil_mode or m.return_indices:
                raise UnsupportedModuleError(
                    f"{name} with padding, ceil_mode or return_indices is not supported"
                )
            return "maxpool"
        raise UnsupportedModuleError(f"{name} is not supported by the exact region counter")
    if node.op == "call_function":
        if node.target in _RELU_FUNCS or node.target is F.leaky_relu:
            return "relu"
        if node.target in _ADD_FUNCS:
            return "add"
        if node.target is torch.flatten:
            return "shape"
        raise UnsupportedModuleError(
            f"function {_fn_name(node.target)} at node '{node.name}' is not supported by the "
            "exact region counter"
        )
    if node.op == "call_method":
        if node.target in _SHAPE_METHODS:
            return "shape"
        if node.target == "size":
            return "size"
        if node.target == "relu":
            return "relu"
        if node.target == "add":
            return "add"
        raise UnsupportedModuleError(
            f"method .{node.target}() at node '{node.name}' is not supported by the exact "
            "region counter"
        )
    raise UnsupportedModuleError(f"graph node '{node.name}' ({node.op}) is not supported")


def _checked_graph(model: nn.Module) -> tuple[torch.fx.GraphModule, list[tuple[Any, str]]]:
    gm = _trace(model)
    modules = dict(gm.named_modules())
    nodes = [(node, _classify(node, modules)) for node in gm.graph.nodes]
    if sum(kind == "input" for _, kind in nodes) != 1:
        raise UnsupportedModuleError("model forward should take exactly one input tensor")
    return gm, nodes


# Modules that make a network not piecewise linear: no finite set of linear regions exists.
_SMOOTH_TYPES: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softmax,
    nn.Softplus,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.MultiheadAttention,
)


def not_piecewise_linear(model: nn.Module) -> str | None:
    """A sentence saying why ``model`` is not piecewise linear, or None if nothing says so.

    Linear regions (SCIENCE.md sect. 5) exist only for piecewise-linear networks: ReLU /
    LeakyReLU, max-pooling, BatchNorm in eval, residual additions, flatten, dropout in eval.
    Smooth activations (GELU, SiLU, ...), normalisation over features computed from the input
    (LayerNorm, GroupNorm) and attention (softmax of products of the input) are not: such a
    network has no finite set of linear regions to count.
    """
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, _SMOOTH_TYPES) or "attention" in kind.lower():
            found.setdefault(kind, name)
    if not found:
        return None
    uses = ", ".join(f"{kind} {name!r}" for kind, name in list(found.items())[:4])
    return (
        f"linear-region statistics are defined for piecewise-linear networks (ReLU, LeakyReLU, "
        f"max-pooling, BatchNorm, residual additions); this network uses {uses}, which are not "
        "piecewise linear, so it has no linear regions to count"
    )


def check_supported(model: nn.Module) -> None:
    """Raise UnsupportedModuleError (naming module type and name) unless every operation of
    ``model``'s fx graph is supported: Linear, Conv2d, BatchNorm1d/2d (eval), ReLU, LeakyReLU,
    MaxPool2d (no padding), AvgPool2d, AdaptiveAvgPool2d, Flatten / view / reshape, Dropout
    (eval), Identity, residual adds, relu calls. A network that is not piecewise linear at all
    (:func:`not_piecewise_linear`) is refused with that sentence first."""
    reason = not_piecewise_linear(model)
    if reason is not None:
        raise UnsupportedModuleError(reason)
    _checked_graph(model)


def _relu_slope(node: torch.fx.Node, modules: dict[str, nn.Module]) -> float:
    """Slope of the negative side: 0 for ReLU, negative_slope for LeakyReLU."""
    if node.op == "call_module":
        m = modules[str(node.target)]
        return float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
    if node.target is F.leaky_relu:
        if len(node.args) > 1:
            return float(node.args[1])  # type: ignore[arg-type]
        return float(node.kwargs.get("negative_slope", 0.01))  # type: ignore[arg-type]
    return 0.0


def _bn_affine(m: nn.Module) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift per channel, shapes (C,)."""
    assert isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)
    assert m.running_var is not None and m.running_mean is not None
    scale = 1.0 / torch.sqrt(m.running_var + m.eps)
    if m.weight is not None:
        scale = scale * m.weight
    shift = -m.running_mean * scale
    if m.bias is not None:
        shift = shift + m.bias
    return scale.detach(), shift.detach()


def _channel_view(v: Tensor, ndim: int) -> Tensor:
    return v.view(1, -1, *([1] * (ndim - 2)))


def _affine(m: nn.Module, x: Tensor, with_bias: bool) -> Tensor:
    """Apply an affine module to x (N, ...) with or without its constant part."""
    if isinstance(m, nn.Linear):
        return F.linear(x, effective_weight(m), m.bias if with_bias else None)
    if isinstance(m, nn.Conv2d):
        y = m._conv_forward(x, effective_weight(m), None)
        if with_bias and m.bias is not None:
            y = y + _channel_view(m.bias, y.ndim)
        return y
    scale, shift = _bn_affine(m)
    y = x * _channel_view(scale, x.ndim)
    return y + _channel_view(shift, x.ndim) if with_bias else y


def _sub_args(args: Any, env: dict[str, Any], part: Callable[[Any], Any]) -> Any:
    """Replace nodes in (nested) args by part(env value)."""
    return torch.fx.node.map_arg(args, lambda n: part(env[n.name]))


# ----------------------------------------------------------------------------- pieces


@dataclass
class _Pair:
    """h(t) = h0 + t hd on a batch of pieces; h0, hd (P, ...)."""

    h0: Tensor
    hd: Tensor

    def gather(self, rows: Tensor) -> _Pair:
        return _Pair(self.h0[rows], self.hd[rows])


def _digest_rows(rows: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]


def _relu_digests(on: Tensor) -> list[bytes]:
    """on (P, ...) bool -> per-piece digest of the packed sign bits."""
    bits = on.reshape(on.shape[0], -1).cpu().numpy()
    return _digest_rows(np.packbits(bits, axis=1))


def _argmax_digests(idx: Tensor) -> list[bytes]:
    """idx (P, windows) window-local argmax -> per-piece digest."""
    return _digest_rows(np.ascontiguousarray(idx.cpu().numpy().astype(np.int32)))


def _split(
    lo: Tensor, hi: Tensor, piece: Tensor, ts: Tensor
) -> tuple[Tensor, Tensor, Tensor] | None:
    """Split pieces [lo, hi] (P,) at crossings ts (K,) of pieces ``piece`` (K,).

    Returns new (lo, hi, parent) of the P + K' pieces (K' after merging crossings closer than
    _EPS_T), ordered by (parent, t); None if nothing splits.
    """
    if ts.numel() == 0:
        return None
    order = torch.argsort(ts, stable=True)
    piece, ts = piece[order], ts[order]
    order = torch.argsort(piece, stable=True)
    piece, ts = piece[order], ts[order]
    keep = torch.ones_like(ts, dtype=torch.bool)
    keep[1:] = (piece[1:] != piece[:-1]) | (ts[1:] - ts[:-1] > _EPS_T)
    piece, ts = piece[keep], ts[keep]
    n = lo.shape[0]
    k = torch.bincount(piece, minlength=n)
    sizes = k + 1
    start = torch.cumsum(sizes, 0) - sizes  # first new piece of each old piece
    first_cross = torch.cumsum(k, 0) - k
    rank = torch.arange(ts.numel(), device=ts.device) - first_cross[piece]
    pos = start[piece] + 1 + rank
    total = n + ts.numel()
    new_lo = torch.empty(total, dtype=lo.dtype, device=lo.device)
    new_hi = torch.empty_like(new_lo)
    new_lo[start] = lo
    new_lo[pos] = ts
    new_hi[pos - 1] = ts
    new_hi[start + k] = hi
    parent = torch.repeat_interleave(torch.arange(n, device=lo.device), sizes)
    return new_lo, new_hi, parent


def _relu_crossings(x: _Pair, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """(piece index, t) of every unit's zero crossing strictly inside its piece."""
    p = lo.shape[0]
    z0, zd = x.h0.reshape(p, -1), x.hd.reshape(p, -1)
    nz = zd != 0
    t = -z0 / torch.where(nz, zd, torch.ones_like(zd))
    ok = nz & (t > (lo + _EPS_T)[:, None]) & (t < (hi - _EPS_T)[:, None])
    rows = ok.nonzero()[:, 0]
    return rows, t[ok]


def _windows(m: nn.MaxPool2d, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """x (P, C, H, W) -> candidates (P, C * L, K) and the pooled shape (P, C, Ho, Wo)."""
    p, c, h, w = x.shape
    cols = F.unfold(
        x.reshape(p * c, 1, h, w),
        kernel_size=m.kernel_size,
        dilation=m.dilation,
        stride=m.stride,  # type: ignore[arg-type]
    )  # (P*C, K, L)
    k, n_win = cols.shape[1], cols.shape[2]
    ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
    st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
    dl = m.dilation if isinstance(m.dilation, tuple) else (m.dilation,) * 2
    ho = (h - dl[0] * (ks[0] - 1) - 1) // st[0] + 1
    wo = (w - dl[1] * (ks[1] - 1) - 1) // st[1] + 1
    assert ho * wo == n_win
    cand = cols.reshape(p, c, k, n_win).permute(0, 1, 3, 2).reshape(p, c * n_win, k)
    return cand, (p, c, ho, wo)


def _maxpool_crossings(a: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Argmax changes of windows with candidates a + t d, a/d (P, N, K), inside each piece."""
    k = a.shape[2]
    iu = torch.triu_indices(k, k, 1, device=a.device)
    da = a[:, :, iu[0]] - a[:, :, iu[1]]
    dd = d[:, :, iu[0]] - d[:, :, iu[1]]
    nz = dd != 0
    t = -da / torch.where(nz, dd, torch.ones_like(dd))
    ok = nz & (t > (lo + _EPS_T)[:, None, None]) & (t < (hi - _EPS_T)[:, None, None])
    idx = ok.nonzero()
    if idx.shape[0] == 0:
        return idx[:, 0], t[ok]
    tv = t[ok]
    pa, pd = a[idx[:, 0], idx[:, 1]], d[idx[:, 0], idx[:, 1]]  # (E, K)
    vals = pa + tv[:, None] * pd
    vi = vals.gather(1, iu[0][idx[:, 2]][:, None])[:, 0]
    vmax = vals.max(dim=1).values
    # Only crossings on the upper envelope change the argmax; a loose tolerance errs towards
    # extra splits, which are harmless (equal neighbouring patterns are merged).
    on_top = vi >= vmax - 1e-9 * (1.0 + vmax.abs())
    return idx[on_top, 0], tv[on_top]


def _copy64(model: nn.Module) -> nn.Module:
    """Float64 eval-mode deep copy. Pruned modules hold ``weight = orig * mask`` as a non-leaf
    tensor, which deepcopy refuses; it is copied detached (the pre-hook recomputes it)."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        w = m.__dict__.get("weight")
        if isinstance(w, Tensor) and not w.is_leaf:
            memo[id(w)] = w.detach().clone()
    return copy.deepcopy(model, memo).double().eval()


class _Counter:
    """Float64 copy of a model with its checked fx graph; counts pieces along segments."""

    def __init__(self, model: nn.Module) -> None:
        params = list(model.parameters()) + list(model.buffers())
        self.device = params[0].device if params else torch.device("cpu")
        model64 = _copy64(model)
        self.model64 = model64
        self.gm, self.nodes = _checked_graph(model64)
        self.gm.eval()
        self.modules = dict(self.gm.named_modules())
        index = {node.name: i for i, (node, _) in enumerate(self.nodes)}
        self.last_use = {node.name: index[node.name] for node, _ in self.nodes}
        for node, _ in self.nodes:
            for user in node.users:
                self.last_use[node.name] = max(self.last_use[node.name], index[user.name])
        self._support_shape: tuple[int, ...] | None = None
        self.live_neurons = 0
        self.batch_limit = 1
        self.n_pieces = 0
        self.max_pieces = 0
        self.cancel_check: CancelCheck = _no_check

    # --- structural pass: live neurons and the largest activation
    def _support(self, shape: tuple[int, ...]) -> None:
        if self._support_shape == shape:
            return
        env: dict[str, Any] = {}
        live, largest = 0, 1
        with torch.no_grad():
            for node, kind in self.nodes:
                if kind == "input":
                    out: Any = torch.ones((1, *shape), dtype=torch.float64, device=self.device)
                elif kind == "output":
                    break
                else:
                    args = _sub_args(node.args, env, lambda v: v)
                    kwargs = _sub_args(node.kwargs, env, lambda v: v)
                    out = self._support_node(node, kind, args, kwargs)
                if isinstance(out, Tensor):
                    largest = max(largest, out[0].numel())
                    if kind == "relu":
                        live += int((args[0] != 0).sum())
                env[node.name] = out
        self.live_neurons = live
        self.batch_limit = max(1, _BATCH_ELEMENTS // largest)
        self._support_shape = shape

    def _support_node(self, node: torch.fx.Node, kind: str, args: Any, kwargs: Any) -> Any:
        x: Any = args[0] if args else None
        if kind == "affine":
            m = self.modules[str(node.target)]
            if isinstance(m, nn.Linear | nn.Conv2d):
                w = effective_weight(m).abs()
                y = m._conv_forward(x, w, None) if isinstance(m, nn.Conv2d) else F.linear(x, w)
                y = (y > 0).double()
                if m.bias is not None:
                    y = torch.maximum(y, _channel_view((m.bias != 0).double(), y.ndim))
                return y
            scale, shift = _bn_affine(m)
            y = x * _channel_view((scale != 0).double(), x.ndim)
            return torch.maximum(y, _channel_view((shift != 0).double(), x.ndim))
        if kind == "add":
            other = args[1] if len(args) > 1 else kwargs.get("other")
            if isinstance(other, Tensor):
                return ((x + other) > 0).double()
            return torch.ones_like(x) if other else x
        if kind in ("relu", "linear", "maxpool"):
            if kind == "relu" or isinstance(self.modules.get(str(node.target)), nn.Dropout):
                return x
            return (self.modules[str(node.target)](x) > 0).double()
        return self._plain(node, kind, args, kwargs)

    def _plain(self, node: torch.fx.Node, kind: str, args: Any, kwargs: Any) -> Any:
        """shape / size nodes on plain tensors."""
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        return node.target(*args, **kwargs)  # type: ignore[operator]

    # --- exact pass
    def _node_pair(self, node: torch.fx.Node, kind: str, env: dict[str, Any]) -> Any:
        """Output of an affine/linear/shape node on the current pieces."""
        if kind == "size":
            args = _sub_args(node.args, env, lambda v: v.h0 if isinstance(v, _Pair) else v)
            return self._plain(node, kind, args, node.kwargs)
        if kind == "add":
            args = _sub_args(node.args, env, lambda v: v)
            x: Any = args[0]
            other: Any = args[1] if len(args) > 1 else node.kwargs.get("other")
            alpha: Any = node.kwargs.get("alpha", 1)
            if isinstance(other, _Pair) and isinstance(x, _Pair):
                return _Pair(x.h0 + alpha * other.h0, x.hd + alpha * other.hd)
            if isinstance(x, _Pair):
                return _Pair(x.h0 + alpha * other, x.hd)
            raise UnsupportedModuleError(f"add at node '{node.name}' has no tensor input")
        args = _sub_args(node.args, env, lambda v: v)
        x = args[0]
        assert isinstance(x, _Pair)
        p = x.h0.shape[0]
        if kind == "affine":
            m = self.modules[str(node.target)]
            return _Pair(_affine(m, x.h0, True), _affine(m, x.hd, False))
        if kind == "linear":
            m = self.modules[str(node.target)]
            if isinstance(m, nn.Dropout | nn.Identity):
                return x
            y = m(torch.cat([x.h0, x.hd]))
            return _Pair(y[:p], y[p:])
        # shape: apply the same reshape to both parts
        rest = _sub_args(node.args[1:], env, lambda v: v.h0 if isinstance(v, _Pair) else v)
        if node.op == "call_method":
            f0 = getattr(x.h0, str(node.target))(*rest, **node.kwargs)
            fd = getattr(x.hd, str(node.target))(*rest, **node.kwargs)
        else:
            f0 = node.target(x.h0, *rest, **node.kwargs)  # type: ignore[operator]
            fd = node.target(x.hd, *rest, **node.kwargs)  # type: ignore[operator]
        return _Pair(f0, fd)

    def _grow(self, added: int) -> None:
        self.n_pieces += added
        if self.n_pieces > self.max_pieces:
            raise PieceBudgetExceeded(
                f"segment needs more than max_pieces={self.max_pieces} pieces"
            )

    def _run(
        self, start: int, env: dict[str, Any], lo: Tensor, hi: Tensor, keys: list[bytes]
    ) -> list[tuple[Tensor, Tensor, list[bytes], Tensor, Tensor]]:
        """Continue pieces [lo, hi] from node ``start``; returns final (lo, hi, keys, o0, od)."""
        for i in range(start, len(self.nodes)):
            self.cancel_check()  # per node and batch of pieces: a long segment stops in time
            node, kind = self.nodes[i]
            if kind == "output":
                out = env[node.args[0].name]  # type: ignore[union-attr]
                return [
                    (lo, hi, keys, out.h0.reshape(lo.shape[0], -1), out.hd.reshape(lo.shape[0], -1))
                ]
            if kind in ("relu", "maxpool"):
                x = env[node.args[0].name]  # type: ignore[union-attr]
                if kind == "relu":
                    rows, ts = _relu_crossings(x, lo, hi)
                else:
                    m = self.modules[str(node.target)]
                    assert isinstance(m, nn.MaxPool2d)
                    ca, shape = _windows(m, x.h0)
                    cd, _ = _windows(m, x.hd)
                    rows, ts = _maxpool_crossings(ca, cd, lo, hi)
                split = _split(lo, hi, rows, ts)
                if split is not None:
                    lo, hi, parent = split
                    self._grow(parent.shape[0] - len(keys))
                    keys = [keys[j] for j in parent.tolist()]
                    if lo.shape[0] > self.batch_limit:
                        results = []
                        for s in range(0, lo.shape[0], self.batch_limit):
                            e = s + self.batch_limit
                            sub = {
                                k: v.gather(parent[s:e]) if isinstance(v, _Pair) else v
                                for k, v in env.items()
                            }
                            results += self._run(i, sub, lo[s:e], hi[s:e], keys[s:e])
                        return results
                    env = {
                        k: v.gather(parent) if isinstance(v, _Pair) else v for k, v in env.items()
                    }
                    x = env[node.args[0].name]  # type: ignore[union-attr]
                mid = (lo + hi) / 2
                if kind == "relu":
                    view = mid.view(-1, *([1] * (x.h0.ndim - 1)))
                    on = x.h0 + view * x.hd > 0
                    slope = _relu_slope(node, self.modules)
                    factor = torch.where(on, 1.0, slope).to(x.h0.dtype)
                    value: Any = _Pair(x.h0 * factor, x.hd * factor)
                    digests = _relu_digests(on)
                else:
                    if split is not None:
                        ca, shape = _windows(m, x.h0)
                        cd, _ = _windows(m, x.hd)
                    idx = (ca + mid[:, None, None] * cd).argmax(dim=2, keepdim=True)
                    value = _Pair(
                        ca.gather(2, idx).reshape(shape), cd.gather(2, idx).reshape(shape)
                    )
                    digests = _argmax_digests(idx[:, :, 0])
                keys = [k + d for k, d in zip(keys, digests, strict=True)]
            elif kind == "input":
                value = env.pop("__input__")
            else:
                value = self._node_pair(node, kind, env)
            env[node.name] = value
            for k in [k for k in env if k != "__input__" and self.last_use.get(k, -1) <= i]:
                del env[k]
        raise AssertionError("graph without output node")

    def _prepare(
        self, a: Tensor, b: Tensor, chunks: int, max_pieces: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Checked float64 ends, and the ``chunks + 1`` edges of the sub-intervals of [0, 1]."""
        a64, b64 = _check_segment(a, b, self.device)
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ValueError(f"chunks={chunks!r} should be a positive integer")
        if isinstance(max_pieces, bool) or not isinstance(max_pieces, int) or max_pieces < 1:
            raise ValueError(f"max_pieces={max_pieces!r} should be a positive integer")
        self._support(tuple(a64.shape))
        self.n_pieces, self.max_pieces = chunks, max_pieces
        if chunks > max_pieces:
            raise PieceBudgetExceeded(f"chunks={chunks} exceeds max_pieces={max_pieces}")
        edges = torch.linspace(0.0, 1.0, chunks + 1, dtype=torch.float64, device=self.device)
        return a64, b64, edges

    def first_change(
        self, a: Tensor, b: Tensor, *, chunks: int, max_pieces: int
    ) -> DecisionCrossing | None:
        """The first argmax change along a -> b; sub-intervals are walked in order and the walk
        stops in the first one that holds a change (later ones cost nothing)."""
        a64, b64, edges = self._prepare(a, b, chunks, max_pieces)
        start: int | None = None
        with torch.no_grad():
            for c in range(chunks):
                env = {"__input__": _Pair(a64[None], (b64 - a64)[None])}
                found = self._run(0, env, edges[c : c + 1], edges[c + 1 : c + 2], [b""])
                lo = torch.cat([r[0] for r in found]).cpu().numpy()
                hi = torch.cat([r[1] for r in found]).cpu().numpy()
                o0 = torch.cat([r[3] for r in found]).cpu().numpy()
                od = torch.cat([r[4] for r in found]).cpu().numpy()
                for p in np.argsort(lo, kind="stable"):
                    for t, cls in _top_sequence(o0[p], od[p], float(lo[p]), float(hi[p])):
                        if start is None:
                            start = cls
                        elif cls != start:
                            length = float((b64 - a64).norm())
                            return DecisionCrossing(t, t * length, start, cls)
        return None

    def count(
        self, a: Tensor, b: Tensor, *, chunks: int, max_pieces: int, self_check: bool
    ) -> SegmentRegions:
        a64, b64, edges = self._prepare(a, b, chunks, max_pieces)
        results = []
        with torch.no_grad():
            for c in range(chunks):
                env = {"__input__": _Pair(a64[None], (b64 - a64)[None])}
                results += self._run(0, env, edges[c : c + 1], edges[c + 1 : c + 2], [b""])
        lo = torch.cat([r[0] for r in results]).cpu().numpy()
        hi = torch.cat([r[1] for r in results]).cpu().numpy()
        keys = [k for r in results for k in r[2]]
        o0 = torch.cat([r[3] for r in results]).cpu().numpy()
        od = torch.cat([r[4] for r in results]).cpu().numpy()
        result = _summarise(lo, hi, keys, o0, od, float((b64 - a64).norm()), self.live_neurons)
        if self_check:
            err = _verify(self.model64, a64, b64, result, 16, 0)
            if err > _SELF_CHECK_TOL:
                raise SelfCheckError(
                    f"piecewise-affine logits differ from a forward pass by {err:.3g} "
                    f"> {_SELF_CHECK_TOL}"
                )
        return result


def _check_segment(a: Tensor, b: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise ValueError("a and b should be tensors of the model's input shape")
    if a.shape != b.shape:
        raise ValueError(f"a.shape={tuple(a.shape)} and b.shape={tuple(b.shape)} differ")
    a64 = a.detach().to(device=device, dtype=torch.float64)
    b64 = b.detach().to(device=device, dtype=torch.float64)
    for name, v in (("a", a64), ("b", b64)):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    if float((b64 - a64).norm()) == 0.0:
        raise ValueError("zero-length segment: a == b")
    return a64, b64


def _top_sequence(o0: np.ndarray, od: np.ndarray, lo: float, hi: float) -> list[tuple[float, int]]:
    """(start t, class) of the argmax of o0 + t od (C,) on [lo, hi]; classes enter in order of
    increasing slope because the upper envelope of lines is convex."""
    v = o0 + lo * od
    tol = 1e-12 * (1.0 + np.abs(v).max())
    cands = np.flatnonzero(v >= v.max() - tol)
    c = int(cands[np.argmax(od[cands])])
    seq, t = [(lo, c)], lo
    while True:
        steeper = np.flatnonzero(od > od[c])
        if steeper.size == 0:
            return seq
        tk = (o0[c] - o0[steeper]) / (od[steeper] - od[c])
        tk = np.maximum(tk, t)
        j = int(np.argmin(tk))
        if tk[j] >= hi:
            return seq
        tied = steeper[tk <= tk[j] + _EPS_T]
        c, t = int(tied[np.argmax(od[tied])]), float(tk[j])
        seq.append((t, c))


def _summarise(
    lo: np.ndarray,
    hi: np.ndarray,
    keys: list[bytes],
    o0: np.ndarray,
    od: np.ndarray,
    length: float,
    live: int,
) -> SegmentRegions:
    order = np.argsort(lo, kind="stable")
    lo, hi, o0, od = lo[order], hi[order], o0[order], od[order]
    keys = [keys[i] for i in order]
    starts = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
    ends = starts[1:] + [len(keys)]
    bounds = np.array([[lo[s], hi[e - 1]] for s, e in zip(starts, ends, strict=True)])
    off, slo = o0[starts], od[starts]
    breakpoints = [float(lo[s]) for s in starts[1:]]
    tol = _SLOPE_RTOL * (1.0 + float(np.abs(slo).max()))
    lin_bp = [
        breakpoints[i - 1]
        for i in range(1, len(starts))
        if float(np.abs(slo[i] - slo[i - 1]).max()) > tol
    ]
    seq: list[tuple[float, int]] = []
    for i in range(len(starts)):
        seq += _top_sequence(off[i], slo[i], float(bounds[i, 0]), float(bounds[i, 1]))
    decisions = [t for (t, c), (_, prev) in zip(seq[1:], seq[:-1], strict=True) if c != prev]
    pieces = len(starts)
    density = pieces / length
    return SegmentRegions(
        breakpoints=breakpoints,
        activation_pieces=pieces,
        distinct_patterns=len(set(keys)),
        linear_pieces=len(lin_bp) + 1,
        linear_breakpoints=lin_bp,
        decision_crossings=len(decisions),
        decision_points=decisions,
        length=length,
        density_per_length=density,
        live_neurons=live,
        density_per_live_neuron=density / live if live else 0.0,
        piece_bounds=bounds,
        logit_offsets=off,
        logit_slopes=slo,
    )


def _verify(
    model64: nn.Module, a64: Tensor, b64: Tensor, result: SegmentRegions, n: int, seed: int
) -> float:
    ts = np.random.default_rng(seed).random(n)
    piece = np.searchsorted(result.piece_bounds[:, 0], ts, side="right") - 1
    piece = np.clip(piece, 0, len(result.piece_bounds) - 1)
    pred = result.logit_offsets[piece] + ts[:, None] * result.logit_slopes[piece]
    t = torch.as_tensor(ts, dtype=torch.float64, device=a64.device)
    x = a64[None] + t.view(-1, *([1] * a64.ndim)) * (b64 - a64)[None]
    with torch.no_grad():
        ref = model64(x).reshape(n, -1).cpu().numpy()
    return float(np.abs(pred - ref).max())


def verify_segment(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    result: SegmentRegions,
    n_random: int = 16,
    seed: int = 0,
) -> float:
    """Max abs difference between the piecewise-affine logits of ``result`` and a plain float64
    forward pass at ``n_random`` uniform t in [0, 1] (SCIENCE.md sect. 5 self-check).

    Args:
        model: The model ``result`` was computed for (copied to float64, eval mode).
        a: Segment start, the model's input shape.
        b: Segment end, same shape.
        result: Output of :func:`count_regions` for (model, a, b).
        n_random: Number of random t.
        seed: Seed of the t draw.

    Returns:
        max |logits_piecewise(t) - logits_forward(t)| over the draws and classes.
    """
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    model64 = _copy64(model)
    a64, b64 = _check_segment(a, b, device)
    return _verify(model64, a64, b64, result, n_random, seed)


def count_regions(
    model: nn.Module,
    a: Tensor,
    b: Tensor,
    *,
    chunks: int = 1,
    max_pieces: int = 100_000,
    self_check: bool = False,
    cancel_check: CancelCheck | None = None,
) -> SegmentRegions:
    """Exact activation / linear regions crossed by the segment a -> b (SCIENCE.md sect. 5).

    Args:
        model: ReLU network made of supported operations (:func:`check_supported`); pruning
            masks are applied (effective weights). It is copied to float64 in eval mode and run
            on its own device.
        a: Segment start, one input of the model's input shape, e.g. (1, 8, 8) or (64,).
        b: Segment end, same shape.
        chunks: Split [0, 1] into this many sub-intervals processed one after the other
            (bounds memory); results are merged and equal to ``chunks=1``.
        max_pieces: Raise PieceBudgetExceeded if the segment needs more pieces than this.
        self_check: Compare with a plain forward pass at 16 random t and raise SelfCheckError if
            the max abs logit error exceeds 1e-9.
        cancel_check: Called before every node of every batch of pieces; raise from it to stop
            (module docstring).

    Returns:
        SegmentRegions.

    Raises:
        UnsupportedModuleError: The model contains an unsupported module or operation.
        PieceBudgetExceeded: More than ``max_pieces`` pieces.
        ValueError: Shapes differ, non-finite inputs, zero-length segment, bad chunks.
    """
    counter = _Counter(model)
    counter.cancel_check = cancel_check or _no_check
    return counter.count(a, b, chunks=chunks, max_pieces=max_pieces, self_check=self_check)


def count_regions_batch(
    model: nn.Module,
    segments: Sequence[tuple[Tensor, Tensor]],
    *,
    chunks: int = 1,
    max_pieces: int = 100_000,
    self_check: bool = False,
    cancel_check: CancelCheck | None = None,
) -> list[SegmentRegions]:
    """:func:`count_regions` for each (a, b) of ``segments``; the model is prepared once.
    ``cancel_check`` is called between segments and inside each (:func:`count_regions`)."""
    counter = _Counter(model)
    counter.cancel_check = cancel_check or _no_check
    return [
        counter.count(a, b, chunks=chunks, max_pieces=max_pieces, self_check=self_check)
        for a, b in segments
    ]


@dataclass(frozen=True)
class DecisionCrossing:
    """The first change of the predicted class along a segment x(t) = a + t (b - a).

    Attributes:
        t: Smallest t in [0, 1] where the argmax of the logits changes; exact (a root of the
            difference of two affine pieces of the logits), not sampled.
        distance: t * |b - a|, the Euclidean distance from a to the crossing point.
        before: Class predicted on [0, t) (at a; on an exact tie at a, the one that wins
            just after it).
        after: Class predicted just after t.
    """

    t: float
    distance: float
    before: int
    after: int


class DecisionWalker:
    """A model prepared once (float64 eval copy, checked fx graph) for many walks along rays
    to their first decision crossing (SCIENCE.md sect. 5, exact count along a segment).

    Args:
        model: As in :func:`count_regions`.
        cancel_check: Called before every node of every batch of pieces of every walk; raise
            from it to stop (module docstring).

    Raises:
        UnsupportedModuleError: The model contains an unsupported module or operation.
    """

    def __init__(self, model: nn.Module, cancel_check: CancelCheck | None = None) -> None:
        self._counter = _Counter(model)
        self._counter.cancel_check = cancel_check or _no_check

    @property
    def device(self) -> torch.device:
        """Device the segments are walked on (the model's)."""
        return self._counter.device

    def first_crossing(
        self, a: Tensor, b: Tensor, *, chunks: int = 4, max_pieces: int = 100_000
    ) -> DecisionCrossing | None:
        """The first change of the predicted class along a -> b, or None if there is none.

        The segment is carried through the network as (h0, hd) pieces exactly as in
        :func:`count_regions`; [0, 1] is split into ``chunks`` sub-intervals walked from a
        onwards, and the walk stops at the first one that holds a change, so a crossing near a
        costs only its sub-interval.

        Args:
            a: Segment start, one input of the model's input shape.
            b: Segment end, same shape.
            chunks: Number of sub-intervals (>= 1); the answer does not depend on it.
            max_pieces: Raise PieceBudgetExceeded past this many pieces.

        Returns:
            DecisionCrossing, or None when the argmax is constant on [0, 1].

        Raises:
            PieceBudgetExceeded: More than ``max_pieces`` pieces before the crossing.
            ValueError: As in :func:`count_regions`.
        """
        return self._counter.first_change(a, b, chunks=chunks, max_pieces=max_pieces)


def first_decision_crossing(
    model: nn.Module, a: Tensor, b: Tensor, *, chunks: int = 4, max_pieces: int = 100_000
) -> DecisionCrossing | None:
    """:meth:`DecisionWalker.first_crossing` for a single segment (SCIENCE.md sect. 5)."""
    return DecisionWalker(model).first_crossing(a, b, chunks=chunks, max_pieces=max_pieces)


# ----------------------------------------------------------------------------- sampling


class _PatternRecorder(torch.fx.Interpreter):
    """Runs the real modules; records ReLU input signs and max-pool window-local argmax."""

    def __init__(self, gm: torch.fx.GraphModule, kinds: dict[str, str]) -> None:
        super().__init__(gm)
        self.kinds = kinds
        self.records: list[list[bytes]] = []

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        kind = self.kinds.get(n.name)
        if kind in ("relu", "maxpool"):
            x = self.env[n.args[0]]  # type: ignore[index]
            if kind == "relu":
                self.records.append(_relu_digests(x > 0))
            else:
                m = self.fetch_attr(str(n.target))
                self.records.append(_argmax_digests(_pool_local_index(m, x)))
        return out


def _pool_local_index(m: nn.MaxPool2d, x: Tensor) -> Tensor:
    """PyTorch max-pool indices of x (N, C, H, W) as window-local kernel positions (N, C*L)."""
    _, idx = F.max_pool2d(
        x, m.kernel_size, m.stride, 0, m.dilation, ceil_mode=False, return_indices=True
    )
    n, c, ho, wo = idx.shape
    ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
    st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
    dl = m.dilation if isinstance(m.dilation, tuple) else (m.dilation,) * 2
    w = x.shape[3]
    r, col = idx // w, idx % w
    r0 = (torch.arange(ho, device=x.device) * st[0]).view(1, 1, -1, 1)
    c0 = (torch.arange(wo, device=x.device) * st[1]).view(1, 1, 1, -1)
    local = ((r - r0) // dl[0]) * ks[1] + (col - c0) // dl[1]
    return local.reshape(n, -1)


def sample_patterns(
    model: nn.Module, a: Tensor, b: Tensor, n: int | Sequence[float], batch: int = 256
) -> list[bytes]:
    """Activation patterns by brute force at points of the segment (for comparison).

    Args:
        model: The model (copied to float64, eval mode).
        a: Segment start, the model's input shape.
        b: Segment end.
        n: Number of evenly spaced t in [0, 1] (``linspace(0, 1, n)``), or explicit t values.
        batch: Forward-pass batch size.

    Returns:
        One hashable key per t, equal to the key :func:`count_regions` uses for the same pattern
        (per-node digests of ReLU input signs > 0 and window-local max-pool argmax).
    """
    counter = _Counter(model)
    a64, b64 = _check_segment(a, b, counter.device)
    if isinstance(n, int):
        if n < 1:
            raise ValueError(f"n={n} should be a positive integer")
        ts = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    else:
        ts = torch.as_tensor(list(n), dtype=torch.float64)
    kinds = {node.name: kind for node, kind in counter.nodes}
    keys: list[bytes] = []
    with torch.no_grad():
        for s in range(0, ts.numel(), batch):
            t = ts[s : s + batch].to(counter.device)
            x = a64[None] + t.view(-1, *([1] * a64.ndim)) * (b64 - a64)[None]
            rec = _PatternRecorder(counter.gm, kinds)
            rec.run(x)
            keys += [b"".join(parts) for parts in zip(*rec.records, strict=True)]
    return keys


def segment_sets(
    x: Tensor, y: Tensor, n_pairs: int, seed: int, radius: float = 0.5
) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """Deterministic segment families for comparing two models on the same segments.

    Args:
        x: Samples (N, ...).
        y: Labels (N,).
        n_pairs: Segments per family.
        seed: Seed; the same (x, y, n_pairs, seed, radius) gives the same segments.
        radius: Half-length of the local segments.

    Returns:
        ``{"within_class": [...], "across_class": [...], "local": [...]}``, each a list of
        (a, b) pairs of shape x.shape[1:]: two samples of one class; two samples of different
        classes; x_i -/+ radius * u with u a random unit direction.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"x ({x.shape[0]} samples) and y ({y.shape[0]}) should match, N >= 2")
    if radius <= 0 or not math.isfinite(radius):
        raise ValueError(f"radius={radius!r} should be a positive finite number")
    rng = np.random.default_rng(seed)
    labels = y.cpu().numpy()
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    multi = [c for c, idx in by_class.items() if idx.size >= 2]
    out: dict[str, list[tuple[Tensor, Tensor]]] = {
        "within_class": [],
        "across_class": [],
        "local": [],
    }
    for _ in range(n_pairs):
        if multi:
            c = multi[rng.integers(len(multi))]
            i, j = rng.choice(by_class[c], size=2, replace=False)
            out["within_class"].append((x[i].clone(), x[j].clone()))
        if len(by_class) >= 2:
            i = int(rng.integers(len(labels)))
            j = int(rng.choice(np.flatnonzero(labels != labels[i])))
            out["across_class"].append((x[i].clone(), x[j].clone()))
        i = int(rng.integers(len(labels)))
        u = torch.as_tensor(rng.standard_normal(x[i].shape), dtype=x.dtype, device=x.device)
        u = u / u.norm()
        out["local"].append((x[i] - radius * u, x[i] + radius * u))
    return out
