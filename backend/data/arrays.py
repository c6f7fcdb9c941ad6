"""Arrays from an upload, made into what :class:`~backend.data.registry.ArrayDataset` takes.

Shared by every format reader of :mod:`backend.data.formats`: what a reader returns
(:class:`Loaded`) and the options it gets (:class:`ReadOptions`, which also keeps the memory
budget of the import: :meth:`ReadOptions.reserve`); inputs become (N, C, H, W) images or (N, D)
features (:func:`channels_first`), uint8 kept as uint8 (it stands for ``x / 255``, converted
per batch where a model reads it; see :mod:`backend.data.stored`), anything else float32 with
NaN/Inf refused (:func:`stored_inputs`, :func:`to_float32`); labels become (N,)
int64 class indices, never negative nor above :attr:`Limits.max_classes` (:func:`int_labels`,
:func:`string_labels`); inputs and labels must have as many rows (:func:`check_pair`). Then
the split and the normalisation statistics of a dataset (:func:`stratified_split`,
:func:`channel_stats`). Every refusal is a :class:`DatasetFormatError` naming the array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.data.limits import DatasetFormatError, Limits

__all__ = [
    "Loaded",
    "ReadOptions",
    "channel_stats",
    "channels_first",
    "check_pair",
    "check_sample_count",
    "count_samples",
    "int_labels",
    "samples",
    "stored_inputs",
    "stratified_split",
    "string_labels",
    "to_float32",
]


@dataclass
class Loaded:
    """What a format reader produced, before splitting and validation."""

    dtype_in: str
    class_names: list[str] | None = None
    train: tuple[np.ndarray, np.ndarray] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    pool: tuple[np.ndarray, np.ndarray] | None = None  # split by test_fraction
    extra: dict[str, Any] = field(default_factory=dict)


GiB = float(2**30)


def gib(n: int) -> str:
    """A byte count for a message: "1.07 GiB", "72.0 MiB" or "38.0 KiB"."""
    if n >= 2**30:
        return f"{n / GiB:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


# what an import holds besides the arrays: the chunks being gathered, converted and written
# (backend.data.stored.CHUNK_BYTES each) and the statistics' float64 blocks; never more than
# the arrays themselves (a small upload's chunks are the whole upload)
IMPORT_OVERHEAD = 32 * 2**20


@dataclass
class ReadOptions:
    """What a format reader is given: the CIFAR-10-C choice, the limits, a list that collects
    the warnings for the summary, the import's memory budget and its cancellation check.

    Attributes:
        max_memory: most bytes the import may plan to hold (``PRUNESCOPE_MAX_IMPORT_MEMORY``);
            None: unbounded (reading a file in a notebook).
        check: called between chunks of every long read (a job's cancellation check).
        reserved: bytes reserved so far (:meth:`reserve`); :attr:`planned` adds the working
            memory of the chunks: the import's peak memory estimate.
        decoded: of those, the bytes of the arrays as stored in the upload, decoded.
    """

    corruption: str | None
    severity: int | None
    limits: Limits
    warnings: list[str]
    max_memory: int | None = None
    check: Callable[[], None] | None = None
    reserved: int = 0
    decoded: int = 0

    @property
    def planned(self) -> int:
        """The peak memory estimate: what was reserved plus the chunks' working memory."""
        return self.reserved + min(IMPORT_OVERHEAD, self.decoded)

    def reserve(self, nbytes: int, decoded: int = 0, what: str = "this dataset") -> None:
        """Count ``nbytes`` the import will hold (``decoded`` of them the upload's own arrays)
        before allocating them; refuse when the total passes :attr:`max_memory`.

        Raises:
            DatasetFormatError: naming the memory needed, the decoded size and the limit.
        """
        self.reserved += int(nbytes)
        self.decoded += int(decoded)
        if self.max_memory is not None and self.planned > self.max_memory:
            raise DatasetFormatError(
                f"importing {what} needs about {gib(self.planned)} of memory (its arrays are "
                f"{gib(self.decoded)} decoded), more than the limit of {gib(self.max_memory)} "
                "(PRUNESCOPE_MAX_IMPORT_MEMORY)"
            )

    def tick(self) -> None:
        """Between two chunks of a long read: the job's cancellation check."""
        if self.check is not None:
            self.check()


def _check_finite(x: np.ndarray, name: str) -> None:
    step = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        finite = np.isfinite(chunk).reshape(len(chunk), -1)
        rows = finite.all(axis=1)
        if not rows.all():
            row = start + int(np.argmin(rows))
            raise DatasetFormatError(f"{name} has NaN or infinite values (first in row {row})")


def to_float32(x: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
    """float32, C-contiguous; uint8 scaled to [0, 1], other numbers kept as stored."""
    if x.dtype == np.uint8:
        out = x.astype(np.float32, order="C")
        out /= np.float32(255.0)
        return out
    kind = x.dtype.kind
    if kind == "b":
        return x.astype(np.float32, order="C")
    if kind in "iu":
        warnings.append(
            f"{name} is {x.dtype}; its values are kept as stored (only uint8 is scaled to [0, 1])"
        )
        return x.astype(np.float32, order="C")
    if kind == "f":
        out = x.astype(np.float32, order="C", copy=x.dtype != np.float32)
        _check_finite(out, name)
        if out.ndim > 2 and out.size and (out.min() < 0.0 or out.max() > 1.0):
            warnings.append(
                f"{name} holds floats in [{out.min():g}, {out.max():g}]; they are used as "
                "stored, not rescaled to [0, 1]"
            )
        return out
    raise DatasetFormatError(f"{name} has dtype {x.dtype}; expected uint8 or floating point")


def stored_inputs(x: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
    """Inputs in the stored form: uint8 kept as it is (no copy; it stands for ``x / 255``),
    everything else :func:`to_float32`."""
    if x.dtype == np.uint8:
        return x
    return to_float32(x, name, warnings)


def input_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes the stored form of inputs of this shape and dtype takes on top of the decoded
    array: none for uint8 and C-ordered float32, a float32 copy otherwise."""
    n = int(np.prod(shape, dtype=np.int64))
    return 0 if dtype in (np.dtype(np.uint8), np.dtype(np.float32)) else 4 * n


def label_bytes(n: int) -> int:
    """Bytes the labels of ``n`` samples need while they are checked and split: int64 copies,
    sort orders and split indices."""
    return 6 * 8 * n


def channels_first(x: np.ndarray, name: str) -> np.ndarray:
    """(N, D) kept, (N, H, W) -> (N, 1, H, W), (N, H, W, C) -> (N, C, H, W) (a view)."""
    if x.ndim < 2 or x.ndim > 4:
        raise DatasetFormatError(
            f"{name} has shape {x.shape}; expected (N, D) features or (N, H, W[, C]) images"
        )
    if 0 in x.shape[1:]:
        raise DatasetFormatError(f"{name} has shape {x.shape}: empty samples")
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x[:, None, :, :]
    channels = (1, 3, 4)
    if x.shape[1] in channels and x.shape[3] not in channels:
        return x  # already (N, C, H, W), as ArrayDataset.to_npz_bytes writes it
    return x.transpose(0, 3, 1, 2)


def int_labels(y: np.ndarray, name: str, warnings: list[str], limits: Limits) -> np.ndarray:
    """Integer labels as int64, shape (N,)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetFormatError(f"{name} has shape {y.shape}; expected (N,) integer labels")
    kind = y.dtype.kind
    if kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise DatasetFormatError(f"{name} holds non-integer values; expected class indices")
        warnings.append(f"{name} is {y.dtype}; its integral values were taken as class indices")
    elif kind not in "iub":
        raise DatasetFormatError(f"{name} has dtype {y.dtype}; expected integer labels")
    if len(y):
        lo, hi = y.min(), y.max()
        if lo < 0:
            raise DatasetFormatError(f"{name} has a negative label {lo}")
        if hi >= limits.max_classes:
            raise DatasetFormatError(
                f"{name} has label {hi}; labels must be below {limits.max_classes}"
            )
    return y.astype(np.int64)


def string_labels(
    ys: list[np.ndarray], names: list[str] | None
) -> tuple[list[np.ndarray], list[str]]:
    """Map string labels to indices into ``names`` (default: the sorted distinct labels)."""
    decoded = [
        np.char.decode(y, "utf-8", "replace") if y.dtype.kind == "S" else y.astype(str) for y in ys
    ]
    if names is None:
        names = sorted(set().union(*(np.unique(y).tolist() for y in decoded)))
    index = {n: i for i, n in enumerate(names)}
    out = []
    for y in decoded:
        uniq, inverse = np.unique(y, return_inverse=True)
        missing = [u for u in uniq.tolist() if u not in index]
        if missing:
            raise DatasetFormatError(f"label {missing[0]!r} is not one of the class names")
        out.append(np.array([index[u] for u in uniq.tolist()], np.int64)[inverse.ravel()])
    return out, names


def check_pair(x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> None:
    """Refuse inputs and labels of different lengths."""
    if len(x) != len(y):
        raise DatasetFormatError(f"{xname} has {len(x)} rows but {yname} has {len(y)}")


def samples(
    x: np.ndarray, y: np.ndarray, xname: str, yname: str, opts: ReadOptions
) -> tuple[np.ndarray, np.ndarray]:
    """``(stored_inputs(x), int_labels(y))``: one split's inputs and labels, checked."""
    return stored_inputs(x, xname, opts.warnings), int_labels(y, yname, opts.warnings, opts.limits)


def check_sample_count(n: int, limits: Limits) -> None:
    """Refuse an upload whose arrays hold more than :attr:`Limits.max_samples` rows."""
    if n > limits.max_samples:
        raise DatasetFormatError(f"{n} samples, more than the limit {limits.max_samples}")


def count_samples(seen: int, n: int, limits: Limits) -> int:
    """``seen + n``, refused once it passes :attr:`Limits.max_samples` (files read one by one)."""
    seen += n
    if seen > limits.max_samples:
        raise DatasetFormatError(f"more than {limits.max_samples} samples")
    return seen


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test), each sorted; every class with >= 2 samples on both sides."""
    rng = np.random.default_rng(seed)
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y)
    train, test = [], []
    start = 0
    for n in counts.tolist():
        rows = rng.permutation(order[start : start + n])
        start += n
        k = math.floor(n * test_fraction + 0.5)
        k = min(max(k, 1), n - 1) if n >= 2 else 0
        test.append(rows[:k])
        train.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def channel_stats(
    x: np.ndarray, rows: np.ndarray | None = None, check: Callable[[], None] | None = None
) -> tuple[list[float], list[float]]:
    """Mean and (population) std of axis 1 over all other axes, float64, merged chunk-wise.

    Chunks are combined with Chan et al.'s pairwise update, so the result is as accurate as a
    two-pass computation and no float64 copy of ``x`` is ever made.

    Args:
        x: (N, C, ...) inputs; uint8 counts as ``x / 255`` (the stored form).
        rows: only these rows of ``x`` (a split of a pool), read chunk by chunk.
        check: called between chunks (a job's cancellation check).
    """
    channels = x.shape[1]
    per_row = int(np.prod(x.shape[1:]))
    # 2**18 values a chunk: its float64 block and the update's temporaries stay ~8 MiB
    step = max(1, (1 << 18) // max(1, per_row))
    count = len(x) if rows is None else len(rows)
    n = 0
    mean = np.zeros(channels)
    m2 = np.zeros(channels)
    for start in range(0, count, step):
        if check is not None:
            check()
        part = x[start : start + step] if rows is None else x[rows[start : start + step]]
        if part.dtype == np.uint8:  # as the model reads it: float32 x / 255
            part = part.astype(np.float32) / np.float32(255.0)
        block = np.moveaxis(part.astype(np.float64), 1, 0).reshape(channels, -1)
        m = block.shape[1]
        b_mean = block.mean(axis=1)
        b_m2 = ((block - b_mean[:, None]) ** 2).sum(axis=1)
        delta = b_mean - mean
        total = n + m
        mean += delta * (m / total)
        m2 += b_m2 + delta**2 * (n * m / total)
        n = total
    std = np.sqrt(m2 / max(n, 1))
    return mean.tolist(), std.tolist()
