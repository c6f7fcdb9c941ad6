"""The ``npz`` upload format: a NumPy .npz archive of arrays.

Arrays ``X`` and ``y`` (split by ``test_fraction``), or ``x_train``, ``y_train`` [,
``x_test``, ``y_test``] (kept as given; what :meth:`ArrayDataset.to_npz_bytes
<backend.data.registry.ArrayDataset.to_npz_bytes>` writes), optional ``class_names``. uint8
inputs are scaled to [0, 1], other inputs kept as stored; (N, H, W) becomes (N, 1, H, W);
(N, H, W, C) becomes (N, C, H, W) unless axis 1 looks like channels (1, 3 or 4) and the last
axis does not, in which case it is taken as channels-first already; (N, D) features are kept.
Labels may be integers or strings.

Guarantees: the .npz is a zip and goes through :mod:`backend.data.archives` like any other;
every array's header is read before any array's data, so object (pickled) arrays, arrays of
more than :attr:`Limits.max_samples` rows (alone or together) and uploads whose import would
need more memory than allowed (:meth:`ReadOptions.reserve`: the decoded arrays, a float32 copy
of inputs that are neither uint8 nor float32, the labels' working copies) are refused unread.
An array is then read straight into its own buffer, a chunk at a time (cancellable between
chunks), so memory holds one decoded copy of it and no more; nothing is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.data.archives import CHUNK, Member, Source
from backend.data.arrays import (
    Loaded,
    ReadOptions,
    channels_first,
    check_pair,
    check_sample_count,
    input_bytes,
    label_bytes,
    samples,
    string_labels,
)
from backend.data.limits import DatasetFormatError, Limits

__all__ = ["looks_like", "read_upload"]


def looks_like(names: list[str]) -> bool:
    """An npz (or a zip of .npy files) holds ``X.npy``, ``x.npy`` or ``x_train.npy`` at its top."""
    top = {n[:-4] for n in names if n.endswith(".npy") and "/" not in n}
    return bool(top & {"X", "x", "x_train"})


@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def _read_header(f: object, name: str) -> _Header:
    try:
        version = np.lib.format.read_magic(f)  # type: ignore[arg-type]
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)  # type: ignore[arg-type]
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise DatasetFormatError(f"{name}: not a .npy array ({exc})") from exc
    return _Header(tuple(int(d) for d in shape), bool(fortran), dtype)


def _header(src: Source, member: Member, limits: Limits) -> _Header:
    """An array's header, read without reading its data; object arrays and arrays of too
    many rows are refused here."""
    with src.open(member) as f:
        head = _read_header(f, member.name)
    if head.dtype.hasobject:
        raise DatasetFormatError(
            f"{member.name}: holds an object array, which would need pickle; refused"
        )
    if head.shape and head.shape[0] > limits.max_samples:
        raise DatasetFormatError(
            f"{member.name}: {head.shape[0]} rows, more than the limit of {limits.max_samples}"
        )
    return head


def _load_npy(src: Source, member: Member, opts: ReadOptions) -> np.ndarray:
    """One array, read a chunk at a time into its own buffer (one copy in memory), its
    header checked (:func:`_header`) before; never unpickled."""
    with src.open(member) as f:
        head = _read_header(f, member.name)
        if head.dtype.hasobject:  # checked again: the caller may not have asked _header
            raise DatasetFormatError(
                f"{member.name}: holds an object array, which would need pickle; refused"
            )
        arr = np.empty(head.shape, dtype=head.dtype, order="F" if head.fortran else "C")
        view = memoryview(arr.reshape(-1, order="A").view(np.uint8))  # type: ignore[arg-type]
        done = 0
        while done < head.nbytes:
            opts.tick()
            got = f.readinto(view[done : done + CHUNK])
            if not got:
                raise DatasetFormatError(
                    f"{member.name}: ends after {done} of its {head.nbytes} bytes of data"
                )
            done += got
        if f.read(1):
            raise DatasetFormatError(f"{member.name}: has data after its array")
    return arr


def _names_from_array(arr: np.ndarray, name: str) -> list[str]:
    if arr.ndim != 1 or arr.dtype.kind not in "US" or len(arr) == 0:
        raise DatasetFormatError(
            f"{name} has shape {arr.shape} and dtype {arr.dtype}; expected a 1-D string array"
        )
    names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr]
    if len(set(names)) != len(names):
        raise DatasetFormatError(f"{name} lists a class name twice: {names}")
    return names


def read_upload(src: Source, opts: ReadOptions) -> Loaded:
    """The splits of an npz upload (see the module docstring)."""
    arrays = {m.name[:-4]: m for m in src.members if m.name.endswith(".npy")}
    others = [m.name for m in src.members if not m.name.endswith(".npy")]
    if others:
        opts.warnings.append(f"ignored {len(others)} non-.npy members: {', '.join(others[:3])}")
    split_keys = ("x_train", "y_train", "x_test", "y_test")
    if any(k in arrays for k in split_keys):
        pairs = [("x_train", "y_train"), ("x_test", "y_test")]
        for xk, yk in pairs:
            if (xk in arrays) != (yk in arrays):
                have, lack = (xk, yk) if xk in arrays else (yk, xk)
                raise DatasetFormatError(f"the npz has {have} but not {lack}")
        if "x_train" not in arrays:
            raise DatasetFormatError("the npz has x_test and y_test but not x_train and y_train")
        used = [(xk, yk) for xk, yk in pairs if xk in arrays]
    else:
        xk_found = next((k for k in ("X", "x") if k in arrays), None)
        yk_found = next((k for k in ("y", "Y") if k in arrays), None)
        if xk_found is None or yk_found is None:
            raise DatasetFormatError(
                "the npz needs arrays X and y (or x_train, y_train, x_test, y_test); it has "
                f"{', '.join(sorted(arrays)) or 'none'}"
            )
        used = [(xk_found, yk_found)]
    unused = sorted(set(arrays) - {k for p in used for k in p} - {"class_names"})
    if unused:
        opts.warnings.append(f"ignored npz arrays: {', '.join(unused)}")
    # every header first: rows, dtypes and the memory the import needs, before any data
    heads = {k: _header(src, arrays[k], opts.limits) for pair in used for k in pair}
    check_sample_count(
        sum(heads[yk].shape[0] if heads[yk].shape else 0 for _, yk in used), opts.limits
    )
    for xk, yk in used:
        hx, hy = heads[xk], heads[yk]
        opts.reserve(hx.nbytes + input_bytes(hx.shape, hx.dtype), hx.nbytes, src.label)
        rows = hy.shape[0] if hy.shape else 0
        opts.reserve(hy.nbytes + label_bytes(rows), hy.nbytes, src.label)
    names = None
    if "class_names" in arrays:
        head = _header(src, arrays["class_names"], opts.limits)
        opts.reserve(2 * head.nbytes, head.nbytes, src.label)
        names = _names_from_array(_load_npy(src, arrays["class_names"], opts), "class_names")

    raw = [(_load_npy(src, arrays[xk], opts), _load_npy(src, arrays[yk], opts)) for xk, yk in used]
    ys = [y for _, y in raw]
    if any(y.dtype.kind in "US" for y in ys):
        if not all(y.dtype.kind in "US" for y in ys):
            raise DatasetFormatError("labels are strings in one split and numbers in another")
        ys, names = string_labels(ys, names)
    splits = []
    for (xk, yk), (x, _), y in zip(used, raw, ys, strict=True):
        check_pair(x, y, xk, yk)
        splits.append(samples(channels_first(x, xk), y, xk, yk, opts))
    dtype_in = ", ".join(sorted({str(x.dtype) for x, _ in raw}))
    if len(used) == 2:
        return Loaded(dtype_in, names, train=splits[0], test=splits[1])
    if used[0][0] == "x_train":
        opts.warnings.append("the npz has no test split; it was split by test_fraction")
    return Loaded(dtype_in, names, pool=splits[0])
