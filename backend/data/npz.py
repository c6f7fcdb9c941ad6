"""The ``npz`` upload format: a NumPy .npz archive of arrays.

Arrays ``X`` and ``y`` (split by ``test_fraction``), or ``x_train``, ``y_train`` [,
``x_test``, ``y_test``] (kept as given; what :meth:`ArrayDataset.to_npz_bytes
<backend.data.registry.ArrayDataset.to_npz_bytes>` writes), optional ``class_names``. uint8
inputs are scaled to [0, 1], other inputs kept as stored; (N, H, W) becomes (N, 1, H, W);
(N, H, W, C) becomes (N, C, H, W) unless axis 1 looks like channels (1, 3 or 4) and the last
axis does not, in which case it is taken as channels-first already; (N, D) features are kept.
Labels may be integers or strings.

Guarantees: the .npz is a zip and goes through :mod:`backend.data.archives` like any other;
each array's header is read before the array, so object (pickled) arrays and arrays of more
than :attr:`Limits.max_samples` rows are refused unread, and ``np.load`` always runs with
``allow_pickle=False``.
"""

from __future__ import annotations

import io

import numpy as np

from backend.data.archives import Member, Source
from backend.data.arrays import (
    Loaded,
    ReadOptions,
    channels_first,
    check_pair,
    check_sample_count,
    samples,
    string_labels,
)
from backend.data.limits import DatasetFormatError, Limits

__all__ = ["looks_like", "read_upload"]


def looks_like(names: list[str]) -> bool:
    """An npz (or a zip of .npy files) holds ``X.npy``, ``x.npy`` or ``x_train.npy`` at its top."""
    top = {n[:-4] for n in names if n.endswith(".npy") and "/" not in n}
    return bool(top & {"X", "x", "x_train"})


def _load_npy(src: Source, member: Member, limits: Limits) -> np.ndarray:
    """One array, its header checked before the data is parsed; never unpickled."""
    data = src.read(member)
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            shape, dtype = None, None
    except ValueError as exc:
        raise DatasetFormatError(f"{member.name}: not a .npy array ({exc})") from exc
    if dtype is not None and dtype.hasobject:
        raise DatasetFormatError(
            f"{member.name}: holds an object array, which would need pickle; refused"
        )
    if shape and shape[0] > limits.max_samples:
        raise DatasetFormatError(
            f"{member.name}: {shape[0]} rows, more than the limit of {limits.max_samples}"
        )
    f.seek(0)
    try:
        arr = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetFormatError(f"{member.name}: cannot be loaded ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DatasetFormatError(f"{member.name}: is an .npz archive, expected one array")
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
    names = None
    if "class_names" in arrays:
        names = _names_from_array(_load_npy(src, arrays["class_names"], opts.limits), "class_names")

    raw = [
        (_load_npy(src, arrays[xk], opts.limits), _load_npy(src, arrays[yk], opts.limits))
        for xk, yk in used
    ]
    check_sample_count(sum(len(y) for _, y in raw), opts.limits)
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
