"""Layer-by-layer comparison of an original model A with pruned models B (SCIENCE.md sect. 7).

Per prunable layer (``backend.pruning.masks.prunable_layers``: every Conv1d/2d/3d and Linear),
matched between A and B by qualified name:

- **layer similarity**: linear CKA (Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural
  Network Representations Revisited", ICML 2019) between the layer's outputs in A and in B on
  the same n samples, each output flattened per sample. With X (n x p1) and Y (n x p2)
  column-centred, ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` (the feature form), or,
  with the Gram matrices K = X X^T, L = Y Y^T and H = I - 11^T / n,
  ``CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F)`` (the Gram form, used when p > n). Computed in
  float64. The CKA of a constant input (all zero after centring) is undefined: it is NaN here.
- **dead-ReLU rate** of the activation that follows the layer (SCIENCE.md sect. 5), see
  :func:`dead_relu_rates`;
- weight figures of the effective weights (``weight_orig * weight_mask`` when masked): sparsity,
  kept output channels, relative weight change ``||W_B - W_A||_F / ||W_A||_F`` (same shapes
  only) and log10-magnitude histograms over shared bins, see :func:`weight_stats`.

Memory: the outputs of every layer of a network on n samples are large (resnet20 on 1,000
CIFAR images: about 0.7 GB in float32 per model), so :func:`compare_layers` never holds them.
Per model it keeps one n x n centred Gram matrix per layer of the current *layer group*,
accumulated over column slices: a forward pass over the n samples (in batches) fills buffers
for as many output columns as ``feature_budget`` bytes allow, their contribution
``Xc_s Xc_s^T`` (each column centred over the n samples) is added to the Gram matrix, and the
next pass takes the next columns. Centring is per column, so the sum over slices is exactly the
centred Gram matrix. Layer groups are sized by ``gram_budget`` (A's and one B's Gram matrices of
the group's layers); A's Grams of a group are reused for every B.

Stopping early: ``cancel_check`` is called before every batch of every forward pass and between
column chunks of every Gram accumulation; it stops the computation by raising.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from backend.data.batches import input_dtype, model_input
from backend.pruning.masks import effective_weight, prunable_layers

__all__ = [
    "HIST_BINS",
    "RELU_TYPES",
    "LayerComparison",
    "WeightHistogram",
    "centred_gram",
    "cka",
    "compare_layers",
    "dead_relu_rates",
    "linear_cka",
    "linear_cka_gram",
    "weight_histogram",
    "weight_stats",
]

HIST_BINS = 40
RELU_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
# A centred input whose squared norm is below this fraction of the raw input's is constant up
# to rounding (the mean of n equal floats is not always exactly that float): its CKA is NaN.
CONSTANT_RTOL = 1e-20
# The same from uncentred Grams: centring K = X X^T leaves rounding errors of about eps * |K|
# in HKH, so the threshold on trace(HKH) / trace(K) is higher (std / rms below 1e-6).
GRAM_CONSTANT_RTOL = 1e-12
MiB = 2**20
_CHUNK_BYTES = 32 * MiB  # float64 columns converted at once while accumulating a Gram matrix

Check = Callable[[], None]
Progress = Callable[[float, str], None]


# linear CKA ---------------------------------------------------------------------------------
def _f64(a: Tensor | np.ndarray) -> Tensor:
    t = a.detach() if isinstance(a, Tensor) else torch.from_numpy(np.asarray(a))
    return t.to(torch.float64)


def _as_rows(a: Tensor | np.ndarray, name: str) -> Tensor:
    t = _f64(a)
    if t.ndim < 1 or t.shape[0] < 1:
        raise ValueError(
            f"{name} should have at least one sample (row), got shape {tuple(t.shape)}"
        )
    return t.reshape(t.shape[0], -1)


def _constant(centred_sq: float, raw_sq: float, rtol: float = CONSTANT_RTOL) -> bool:
    """Whether an input is constant over the samples: its centred squared norm vanishes (up to
    rounding) next to the raw one."""
    return raw_sq == 0.0 or abs(centred_sq) <= rtol * raw_sq


def linear_cka(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Linear CKA in feature form (Kornblith et al., ICML 2019, eq. 5; SCIENCE.md sect. 7).

    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` with X and Y column-centred, in float64.
    Costs O(n p1 p2) time and O(p1 p2) memory: for wide layers (p > n) use
    :func:`linear_cka_gram` (or :func:`cka`, which picks the cheaper form).

    Args:
        x: (n, ...) outputs of one network on n samples (flattened to (n, p1)).
        y: (n, ...) outputs of the other network on the same n samples, (n, p2).

    Returns:
        CKA in [0, 1]; NaN when x or y is constant over the samples (zero after centring).

    Raises:
        ValueError: If the sample counts differ or are zero.
    """
    xs, ys = _as_rows(x, "x"), _as_rows(y, "y")
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"x has {xs.shape[0]} samples but y has {ys.shape[0]}")
    xc, yc = xs - xs.mean(0, keepdim=True), ys - ys.mean(0, keepdim=True)
    if _constant(float((xc**2).sum()), float((xs**2).sum())) or _constant(
        float((yc**2).sum()), float((ys**2).sum())
    ):
        return math.nan
    num = torch.linalg.matrix_norm(yc.T @ xc) ** 2
    den = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return float(num / den)


def _centre_gram(k: Tensor) -> Tensor:
    """HKH with H = I - 11^T / n, without forming H."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def _cka_centred(kc: Tensor, lc: Tensor) -> float:
    """<Kc, Lc>_F / (||Kc||_F ||Lc||_F) of two centred Gram matrices (nonzero)."""
    den = torch.linalg.matrix_norm(kc) * torch.linalg.matrix_norm(lc)
    return math.nan if float(den) == 0.0 else float((kc * lc).sum() / den)


def linear_cka_gram(k: Tensor | np.ndarray, l: Tensor | np.ndarray) -> float:  # noqa: E741
    """Linear CKA from the n x n Gram matrices K = X X^T and L = Y Y^T (Kornblith et al.,
    ICML 2019, eq. 3 with linear kernels; SCIENCE.md sect. 7).

    ``CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F)`` with H = I - 11^T / n, in float64; equal to
    :func:`linear_cka` on the features. Costs O(n^2) given the Grams, whatever the widths.

    Args:
        k: (n, n) Gram matrix of one network's outputs (not centred; centring is done here).
        l: (n, n) Gram matrix of the other network's outputs on the same samples.

    Returns:
        CKA in [0, 1]; NaN when either input is constant over the samples (trace(HKH) below
        ``GRAM_CONSTANT_RTOL`` * trace(K)).

    Raises:
        ValueError: If the matrices are not square or their sizes differ.
    """
    kt, lt = _f64(k), _f64(l)
    for name, t in (("k", kt), ("l", lt)):
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 1:
            raise ValueError(f"{name} should be a square (n, n) Gram matrix, got {tuple(t.shape)}")
    if kt.shape != lt.shape:
        raise ValueError(f"k is {tuple(kt.shape)} but l is {tuple(lt.shape)}")
    kc, lc = _centre_gram(kt), _centre_gram(lt)
    if _constant(float(kc.trace()), float(kt.trace()), GRAM_CONSTANT_RTOL) or _constant(
        float(lc.trace()), float(lt.trace()), GRAM_CONSTANT_RTOL
    ):
        return math.nan
    return _cka_centred(kc, lc)


def cka(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
    """Linear CKA of two (n, ...) outputs: the Gram form when a width exceeds n (then the
    n x n Grams are the smaller matrices), else the feature form. Both give the same number
    (:func:`linear_cka`, :func:`linear_cka_gram`)."""
    xs, ys = _as_rows(x, "x"), _as_rows(y, "y")
    if max(xs.shape[1], ys.shape[1]) > xs.shape[0]:
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(f"x has {xs.shape[0]} samples but y has {ys.shape[0]}")
        return linear_cka_gram(xs @ xs.T, ys @ ys.T)
    return linear_cka(xs, ys)


@dataclass
class _Gram:
    """A centred Gram matrix accumulated over column slices, with the raw squared norm
    (to tell a constant input)."""

    k: Tensor  # (n, n) float64, sum over slices of Xc_s Xc_s^T
    raw_sq: float = 0.0

    @property
    def constant(self) -> bool:
        return _constant(float(self.k.trace()), self.raw_sq)


def _accumulate(gram: _Gram, cols: Tensor, cancel_check: Check | None) -> None:
    """Add the centred Gram of the (n, c) columns ``cols`` to ``gram``, a chunk of columns at a
    time in float64 (each column centred over the n samples)."""
    n = cols.shape[0]
    step = max(1, _CHUNK_BYTES // (8 * n))
    for lo in range(0, cols.shape[1], step):
        if cancel_check is not None:
            cancel_check()
        xc = cols[:, lo : lo + step].to(gram.k.device, torch.float64)
        gram.raw_sq += float(torch.linalg.vector_norm(xc)) ** 2
        xc -= xc.mean(0, keepdim=True)
        gram.k.addmm_(xc, xc.T)


def centred_gram(
    x: Tensor | np.ndarray, block: int | None = None, cancel_check: Check | None = None
) -> Tensor:
    """The centred Gram matrix ``(HX)(HX)^T = HKH`` of (n, ...) outputs, accumulated over blocks
    of columns in float64 (how :func:`compare_layers` builds it from column slices of the
    outputs, never holding a wide layer in float64).

    Args:
        x: (n, ...) outputs, flattened to (n, p).
        block: Columns per block (default: about 32 MiB of float64 at a time).
        cancel_check: Called before every block; raise from it to stop.

    Returns:
        (n, n) float64 tensor.
    """
    xs = x.detach() if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x))
    xs = xs.reshape(xs.shape[0], -1)
    gram = _Gram(torch.zeros(xs.shape[0], xs.shape[0], dtype=torch.float64))
    step = block or xs.shape[1] or 1
    for lo in range(0, xs.shape[1], step):
        _accumulate(gram, xs[:, lo : lo + step], cancel_check)
    return gram.k


# weights ------------------------------------------------------------------------------------
@dataclass
class WeightHistogram:
    """Counts of log10|w| of the nonzero weights of A and of B over shared bins, and the exact
    zeros of each (pruned weights have no logarithm)."""

    log10_edges: list[float]  # HIST_BINS + 1 increasing edges
    a: list[int]
    b: list[int]
    zeros_a: int
    zeros_b: int


def _np(w: Tensor | np.ndarray | None) -> np.ndarray | None:
    if w is None:
        return None
    a = w.detach().cpu().to(torch.float64).numpy() if isinstance(w, Tensor) else np.asarray(w)
    return a.astype(np.float64, copy=False)


def weight_histogram(
    w_a: Tensor | np.ndarray | None, w_b: Tensor | np.ndarray | None, bins: int = HIST_BINS
) -> WeightHistogram:
    """Histograms of log10|w| of the nonzero weights of A and B over the same ``bins`` bins.

    The edges span the smallest to the largest log10|w| over both nonzero sets (widened by 0.5
    on each side when that range is a single value; [-1, 0] when no weight is nonzero). A
    missing layer (None) has all counts zero.

    Args:
        w_a: A's effective weight of the layer (any shape), or None.
        w_b: B's, or None.
        bins: Number of bins, >= 1.

    Returns:
        :class:`WeightHistogram`; ``sum(a) + zeros_a`` is the number of weights of A.
    """
    arrays = [_np(w_a), _np(w_b)]
    logs = [np.log10(np.abs(a[a != 0])) if a is not None else np.zeros(0) for a in arrays]
    both = np.concatenate(logs)
    if both.size == 0:
        lo, hi = -1.0, 0.0
    else:
        lo, hi = float(both.min()), float(both.max())
        if hi - lo <= 0:
            lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(v, bins=edges)[0] for v in logs]
    zeros = [int((a == 0).sum()) if a is not None else 0 for a in arrays]
    return WeightHistogram(
        [float(e) for e in edges],
        [int(c) for c in counts[0]],
        [int(c) for c in counts[1]],
        zeros[0],
        zeros[1],
    )


def _kept_channels(w: np.ndarray) -> int:
    """Output channels (first axis) with any nonzero weight."""
    return int(np.any(w.reshape(w.shape[0], -1) != 0, axis=1).sum()) if w.ndim else 0


def weight_stats(
    w_a: Tensor | np.ndarray | None, w_b: Tensor | np.ndarray | None
) -> dict[str, Any]:
    """Weight figures of one layer in A and B (SCIENCE.md sect. 7), from effective weights
    (``weight_orig * weight_mask`` for a masked layer, :func:`effective_weight`).

    Args:
        w_a: A's weight, (out, ...) (Conv: (C_out, C_in / groups, *kernel); Linear:
            (out_features, in_features)), or None when A has no such layer.
        w_b: B's weight, or None.

    Returns:
        ``shape_a``, ``shape_b`` (lists or None), ``channels`` (A's output channels, else B's),
        ``params`` (weights of A's layer, else B's), ``sparsity_a``, ``sparsity_b`` (fraction of
        zero weights), ``kept_channels_a``, ``kept_channels_b`` (output channels with a nonzero
        weight), ``relative_weight_change`` ``||W_B - W_A||_F / ||W_A||_F`` (None unless both
        exist with the same shape; NaN when W_A is all zero) and ``hist``
        (:func:`weight_histogram`, as a dict). Missing sides are None.
    """
    a, b = _np(w_a), _np(w_b)
    ref = a if a is not None else b
    change: float | None = None
    if a is not None and b is not None and a.shape == b.shape:
        norm = float(np.linalg.norm(a.ravel()))
        change = float(np.linalg.norm((b - a).ravel())) / norm if norm > 0 else math.nan
    return {
        "shape_a": list(a.shape) if a is not None else None,
        "shape_b": list(b.shape) if b is not None else None,
        "channels": int(ref.shape[0]) if ref is not None and ref.ndim else None,
        "params": int(ref.size) if ref is not None else 0,
        "sparsity_a": float((a == 0).mean()) if a is not None and a.size else None,
        "sparsity_b": float((b == 0).mean()) if b is not None and b.size else None,
        "kept_channels_a": _kept_channels(a) if a is not None else None,
        "kept_channels_b": _kept_channels(b) if b is not None else None,
        "relative_weight_change": change,
        "hist": asdict(weight_histogram(a, b)),
    }


# hooks: layer outputs and dead ReLUs ---------------------------------------------------------
@dataclass
class _Slice:
    """Output columns [lo, hi) of layer ``name`` (flattened per sample) kept in one pass."""

    name: str
    lo: int
    hi: int


@dataclass
class _Recorder:
    """Forward hooks on a model's prunable layers and ReLU modules for one pass.

    ``current`` is the prunable layer that ran last in this forward pass (None before the
    first), so a ReLU call is counted for it; ``buffers`` receive the kept column slices of
    the batch's rows ``rows``; ``order`` lists the prunable layers in the order they first ran,
    with ``sizes`` their flattened output widths and ``dtypes`` their output dtypes."""

    prunable: dict[str, nn.Module]
    slices: dict[str, list[tuple[_Slice, Tensor]]] = field(default_factory=dict)
    dead: dict[str, list[int]] | None = None
    current: str | None = None
    rows: slice = field(default_factory=lambda: slice(0, 0))
    seen: set[str] = field(default_factory=set)
    order: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    dtypes: dict[str, torch.dtype] = field(default_factory=dict)

    def start_batch(self, rows: slice) -> None:
        self.current, self.rows = None, rows
        self.seen.clear()

    def layer_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.current = name
            if name in self.seen or not isinstance(output, Tensor):
                return  # a layer called twice in one pass: its first call counts
            self.seen.add(name)
            # per sample of the batch (a layer applied to (B, T, D) tokens: T x D columns)
            flat = output.detach().reshape(self.rows.stop - self.rows.start, -1)
            if name not in self.sizes:
                self.order.append(name)
                self.sizes[name], self.dtypes[name] = int(flat.shape[1]), output.dtype
            for part, buf in self.slices.get(name, ()):
                buf[self.rows] = flat[:, part.lo : part.hi].to(buf.dtype)

        return hook

    def relu_hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if self.dead is None or self.current is None or not isinstance(output, Tensor):
            return
        counts = self.dead.setdefault(self.current, [0, 0])
        # output <= 0 <=> input <= 0 for ReLU, ReLU6 and LeakyReLU (positive slope); the
        # output also holds for in-place ReLUs, whose input is overwritten
        counts[0] += int((output.detach() <= 0).sum())
        counts[1] += output.numel()

    @contextmanager
    def attached(self, model: nn.Module) -> Iterator[None]:
        handles = [m.register_forward_hook(self.layer_hook(n)) for n, m in self.prunable.items()]
        handles += [
            m.register_forward_hook(self.relu_hook)
            for m in model.modules()
            if isinstance(m, RELU_TYPES)
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def _forward_pass(
    model: nn.Module,
    x: Tensor,
    recorder: _Recorder,
    *,
    batch_size: int,
    device: torch.device,
    cancel_check: Check | None,
    after_batch: Callable[[int], None] | None = None,
) -> None:
    """One forward pass over x in batches with the recorder's hooks attached."""
    x_dtype = input_dtype(model, x)
    with _evaluating(model), recorder.attached(model):
        for start in range(0, x.shape[0], batch_size):
            if cancel_check is not None:
                cancel_check()
            xb = model_input(x[start : start + batch_size].to(device), x_dtype)
            recorder.start_batch(slice(start, start + xb.shape[0]))
            model(xb)
            if after_batch is not None:
                after_batch(start + xb.shape[0])


def _relu_rates(dead: Mapping[str, list[int]], names: Sequence[str]) -> dict[str, float | None]:
    return {n: (dead[n][0] / dead[n][1] if n in dead and dead[n][1] else None) for n in names}


def dead_relu_rates(
    model: nn.Module,
    x: Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    cancel_check: Check | None = None,
) -> dict[str, float | None]:
    """Dead-ReLU rate of the activation after every prunable layer (SCIENCE.md sect. 5 and 7):
    the fraction of that activation's outputs that are zero (input <= 0; for nn.LeakyReLU the
    inactive side) over the samples of x.

    Attribution rule (generic, no knowledge of the architecture): forward hooks on the
    prunable layers and on every nn.ReLU, nn.ReLU6 and nn.LeakyReLU module; each *call* of such
    a ReLU module counts for the prunable layer that ran last before it in the same forward
    pass. A module called twice (torchvision's BasicBlock calls its one ``relu`` after ``bn1``
    and after the residual addition) counts once per call, for whichever layer ran last then.
    A ReLU before the first prunable layer counts for none. A layer with no ReLU call before
    the next prunable layer runs (the classifier, a layer followed by a residual addition whose
    shortcut convolution runs after it) gets None. Functional ``F.relu`` calls are not seen.

    Args:
        model: The network (run in eval mode, without gradients; its mode is restored).
        x: (N, ...) inputs (uint8 pixels are read as ``x / 255``).
        batch_size: Samples per forward pass.
        device: Where the model runs (it is moved there).
        cancel_check: Called before every batch; raise from it to stop.

    Returns:
        Prunable layer name -> rate in [0, 1], or None; in ``named_modules()`` order.
    """
    dev = torch.device(device)
    model.to(dev)
    prunable = dict(prunable_layers(model, scoped=False))
    recorder = _Recorder(prunable, dead={})
    _forward_pass(model, x, recorder, batch_size=batch_size, device=dev, cancel_check=cancel_check)
    assert recorder.dead is not None
    return _relu_rates(recorder.dead, list(prunable))


# the comparison -----------------------------------------------------------------------------
@dataclass
class LayerComparison:
    """One prunable layer of A and one B (SCIENCE.md sect. 7). Figures of a side that lacks the
    layer are None; ``cka`` is None for a layer in one model only and NaN for a constant one."""

    name: str
    kind: str  # "conv" or "linear"
    shape_a: list[int] | None
    shape_b: list[int] | None
    channels: int | None
    params: int
    sparsity_a: float | None
    sparsity_b: float | None
    kept_channels_a: int | None
    kept_channels_b: int | None
    relative_weight_change: float | None
    cka: float | None
    dead_relu_a: float | None
    dead_relu_b: float | None
    hist: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: NaN and infinities become None."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return "conv"
    return type(module).__name__.lower()


@dataclass
class _Net:
    """A model with what the comparison learned of it: prunable layers by name, their output
    widths and dtypes, execution order, and dead-ReLU counts (from its first full pass)."""

    model: nn.Module
    prunable: dict[str, nn.Module]
    sizes: dict[str, int] = field(default_factory=dict)
    dtypes: dict[str, torch.dtype] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    dead: dict[str, list[int]] | None = None


def _probe(net: _Net, x: Tensor, device: torch.device) -> None:
    """Output widths and execution order of the prunable layers, from one sample."""
    recorder = _Recorder(net.prunable)
    _forward_pass(net.model, x[:1], recorder, batch_size=1, device=device, cancel_check=None)
    net.sizes, net.dtypes = recorder.sizes, recorder.dtypes
    net.order = recorder.order + [n for n in net.prunable if n not in recorder.sizes]


def _plan_passes(
    names: Sequence[str], sizes: Mapping[str, int], elem: Mapping[str, int], n: int, budget: int
) -> list[list[_Slice]]:
    """Column slices of the layers' outputs, packed into passes of at most ``budget`` bytes
    of buffers (n rows each; a wide layer is split over several passes)."""
    passes: list[list[_Slice]] = []
    current: list[_Slice] = []
    used = 0
    for name in names:
        lo, p, row = 0, sizes[name], n * elem[name]
        while lo < p:
            room = (budget - used) // row
            if room < 1:
                if current:
                    passes.append(current)
                current, used = [], 0
                room = max(1, budget // row)
            hi = min(p, lo + room)
            current.append(_Slice(name, lo, hi))
            used += (hi - lo) * row
            lo = hi
    if current:
        passes.append(current)
    return passes


def _groups(names: Sequence[str], n: int, budget: int) -> list[list[str]]:
    """Layers in groups whose Gram matrices (A's and one B's, n x n float64 each) fit
    ``budget`` bytes (at least one layer per group)."""
    per_group = max(1, budget // (2 * 8 * n * n))
    return [list(names[i : i + per_group]) for i in range(0, len(names), per_group)]


def compare_layers(
    model_a: nn.Module,
    models_b: Sequence[nn.Module],
    x: Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    feature_budget: int = 256 * MiB,
    gram_budget: int = 256 * MiB,
    cancel_check: Check | None = None,
    progress: Progress | None = None,
) -> list[list[LayerComparison]]:
    """Per prunable layer, A against every B (SCIENCE.md sect. 7; module docstring).

    Layers are matched by qualified name and listed in A's forward-execution order (layers that
    never ran, then layers only B has, follow in module order). CKA compares the layer's
    outputs (before any normalisation or activation that follows) on the samples of x; for
    a layer in only one of the two models the paired figures (CKA, relative weight change)
    are None.

    Args:
        model_a: The original network.
        models_b: The pruned networks (any number; structured ones may have fewer channels).
        x: (n, ...) inputs, the same for every model (uint8 pixels are read as ``x / 255``).
        batch_size: Samples per forward pass.
        device: Where the models run and the Gram matrices are accumulated (the models are
            moved there).
        feature_budget: Bytes of layer outputs kept at once per forward pass (more passes when
            smaller; a wide layer is split over passes by columns).
        gram_budget: Bytes of n x n float64 Gram matrices kept at once (A's and one B's for a
            group of layers).
        cancel_check: Called before every batch and between column chunks; raise from it to
            stop.
        progress: Called with (fraction in [0, 1], stage text) after each batch.

    Returns:
        One list per B (in the order given) of :class:`LayerComparison`.

    Raises:
        ValueError: If x has no samples.
    """
    n = int(x.shape[0])
    if n < 1:
        raise ValueError("x should hold at least one sample")
    dev = torch.device(device)
    nets = []
    for model in [model_a, *models_b]:
        model.to(dev)
        net = _Net(model, dict(prunable_layers(model, scoped=False)))
        _probe(net, x, dev)
        nets.append(net)
    a, bs = nets[0], nets[1:]
    paired = [name for name in a.order if name in a.sizes and any(name in b.sizes for b in bs)]
    groups = _groups(paired, n, gram_budget)
    elem = {name: 8 if a.dtypes[name] == torch.float64 else 4 for name in a.sizes}
    for b in bs:
        elem.update(
            {k: 8 if v == torch.float64 else 4 for k, v in b.dtypes.items() if k not in elem}
        )
    plans = [_plan_passes(group, a.sizes, elem, n, feature_budget) for group in groups]
    b_plans = [
        [
            _plan_passes([k for k in group if k in b.sizes], b.sizes, elem, n, feature_budget)
            for b in bs
        ]
        for group in groups
    ]
    # every model runs at least once in full (which counts its dead ReLUs)
    total_passes = sum(len(p) for p in plans) + sum(len(p) for row in b_plans for p in row)
    total_passes += sum(1 for i, _ in enumerate(nets) if not _runs(i, plans, b_plans))
    done = [0]
    cka_values: list[dict[str, float]] = [{} for _ in bs]

    def run(net: _Net, slices: list[_Slice], grams: dict[str, _Gram], label: str) -> None:
        recorder = _Recorder(net.prunable, dead={} if net.dead is None else None)
        for part in slices:
            buf = torch.empty(n, part.hi - part.lo, device=dev, dtype=_buffer_dtype(net, part))
            recorder.slices.setdefault(part.name, []).append((part, buf))

        def after_batch(rows: int) -> None:
            if progress is not None:
                progress((done[0] + rows / n) / total_passes, f"{label}: {rows}/{n} samples")

        _forward_pass(
            net.model,
            x,
            recorder,
            batch_size=batch_size,
            device=dev,
            cancel_check=cancel_check,
            after_batch=after_batch,
        )
        if recorder.dead is not None:
            net.dead = recorder.dead
        for name, parts in recorder.slices.items():
            if name not in grams:
                grams[name] = _Gram(torch.zeros(n, n, dtype=torch.float64, device=dev))
            for _part, buf in parts:
                _accumulate(grams[name], buf, cancel_check)
        recorder.slices.clear()
        done[0] += 1

    def model_grams(net: _Net, plan: list[list[_Slice]], label: str) -> dict[str, _Gram]:
        grams: dict[str, _Gram] = {}
        for slices in plan:
            run(net, slices, grams, label)
        return grams

    for g, plan in enumerate(plans):
        label = f"layer group {g + 1}/{len(groups)}"
        grams_a = model_grams(a, plan, f"model A, {label}")
        for i, b in enumerate(bs):
            grams_b = model_grams(b, b_plans[g][i], f"model B{i + 1}, {label}")
            for name in grams_b:
                ga, gb = grams_a[name], grams_b[name]
                cka_values[i][name] = (
                    math.nan if ga.constant or gb.constant else _cka_centred(ga.k, gb.k)
                )
            del grams_b
        del grams_a
    for i, net in enumerate(nets):  # a model no group ran in full yet: count its dead ReLUs
        if net.dead is None:
            run(net, [], {}, "model A" if i == 0 else f"model B{i}")
    return [_report(a, b, cka_values[i]) for i, b in enumerate(bs)]


def _runs(i: int, plans: list[list[list[_Slice]]], b_plans: list[list[list[list[_Slice]]]]) -> bool:
    """Whether net i (0: A, i: the i-th B) has a pass in the plans."""
    if i == 0:
        return any(plans)
    return any(row[i - 1] for row in b_plans)


def _buffer_dtype(net: _Net, part: _Slice) -> torch.dtype:
    return torch.float64 if net.dtypes.get(part.name) == torch.float64 else torch.float32


def _report(a: _Net, b: _Net, ckas: Mapping[str, float]) -> list[LayerComparison]:
    """The rows of one B, in A's execution order, then the layers only B has."""
    names = list(a.order) + [name for name in b.order if name not in a.prunable]
    dead_a = _relu_rates(a.dead or {}, names)
    dead_b = _relu_rates(b.dead or {}, names)
    rows = []
    for name in names:
        ma, mb = a.prunable.get(name), b.prunable.get(name)
        module = ma if ma is not None else mb
        assert module is not None
        with torch.no_grad():
            stats = weight_stats(
                effective_weight(ma) if ma is not None else None,
                effective_weight(mb) if mb is not None else None,
            )
        rows.append(
            LayerComparison(
                name=name,
                kind=_kind(module),
                cka=ckas.get(name),
                dead_relu_a=dead_a[name] if ma is not None else None,
                dead_relu_b=dead_b[name] if mb is not None else None,
                **stats,
            )
        )
    return rows
