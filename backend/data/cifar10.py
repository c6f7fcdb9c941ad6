"""The ``cifar10`` upload format: the CIFAR-10 python tar.gz as distributed.

``data_batch_1..5`` (the train split), ``test_batch`` (the test split) and ``batches.meta``
(the class names; without it, the standard :data:`CIFAR10_CLASSES` when the labels fit them),
at any depth of the archive; a lone train or test part is split by ``test_fraction``.

Guarantees: the batches are pickles, and they are read by an unpickler that knows only the
five globals these files use and rebuilds numpy arrays itself from their raw bytes (a dozen
plain dtypes, shapes checked against the byte count), so no other code can run and numpy's
own unpickling paths are never reached. A batch over 64 MiB (a real one is 31 MB) is refused
before it is read.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from backend.data.archives import Source, basename, index_members
from backend.data.arrays import Loaded, ReadOptions, check_pair, count_samples, samples
from backend.data.limits import DatasetFormatError

__all__ = ["CIFAR10_CLASSES", "looks_like", "read_upload", "standard_class_names"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_CIFAR_BATCH = re.compile(r"data_batch_(\d+)|test_batch|batches\.meta")


def looks_like(names: list[str]) -> bool:
    """A CIFAR-10 archive holds a ``data_batch_<n>`` or ``test_batch`` at some depth."""
    return any(
        _CIFAR_BATCH.fullmatch(b) and b != "batches.meta" for b in {basename(n) for n in names}
    )


def standard_class_names(top_label: int) -> list[str] | None:
    """:data:`CIFAR10_CLASSES` when labels up to ``top_label`` fit them, else None."""
    return list(CIFAR10_CLASSES) if top_label < len(CIFAR10_CLASSES) else None


class _Callable:
    """A pickle global that may be called and nothing else (no attributes to overwrite)."""

    __slots__ = ("_fn", "_label")
    _fn: Callable[..., Any]
    _label: str

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_label", label)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise DatasetFormatError(f"refusing to set {name!r} on {self._label} while unpickling")


class _DtypeProxy:
    """What ``numpy.dtype(spec, align, copy)`` becomes; turned into a dtype after loading."""

    def __init__(self, spec: Any, *args: Any) -> None:
        self.spec = spec
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ArrayProxy:
    """What ``_reconstruct(ndarray, ...)`` becomes; its state carries the raw bytes."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _refuse_ndarray(*args: Any) -> Any:
    raise DatasetFormatError("refusing to call numpy.ndarray while unpickling")


_NDARRAY = _Callable(_refuse_ndarray, "numpy.ndarray")


def _reconstruct(subtype: Any, *args: Any) -> _ArrayProxy:
    if subtype is not _NDARRAY:
        raise DatasetFormatError("refusing to reconstruct anything but a numpy.ndarray")
    return _ArrayProxy()


def _latin1(text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
    # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetFormatError(f"refusing to unpickle _codecs.encode({encoding!r})")
    return text.encode("latin1")


_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _Callable(_reconstruct, "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _Callable(_reconstruct, "_reconstruct"),
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Callable(_DtypeProxy, "numpy.dtype"),
    ("_codecs", "encode"): _Callable(_latin1, "_codecs.encode"),
}
_PICKLE_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise DatasetFormatError(f"refusing to unpickle {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetFormatError("refusing to unpickle a persistent id")


def _unpickle(data: bytes, name: str) -> Any:
    try:
        return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DatasetFormatError as exc:
        raise DatasetFormatError(f"{name}: {exc}") from None
    except Exception as exc:  # any failure on untrusted bytes means "not a batch"
        raise DatasetFormatError(
            f"{name}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})"
        ) from exc


def _dtype_of(proxy: Any, where: str) -> np.dtype[Any]:
    if not isinstance(proxy, _DtypeProxy):
        raise DatasetFormatError(f"{where}: array without a dtype")
    spec = proxy.spec.decode("ascii", "replace") if isinstance(proxy.spec, bytes) else proxy.spec
    if spec not in _PICKLE_DTYPES:
        raise DatasetFormatError(f"{where}: refusing dtype {spec!r}")
    dt = np.dtype(spec)
    state = proxy.state
    if isinstance(state, tuple) and len(state) > 1 and dt.itemsize > 1:
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]
        if order in ("<", ">"):
            dt = dt.newbyteorder("<" if order == "<" else ">")
    return dt


def _array_of(obj: Any, where: str) -> np.ndarray:
    """The numpy array an :class:`_ArrayProxy` describes, rebuilt from its raw bytes."""
    if isinstance(obj, list):
        return np.asarray(obj)
    if not isinstance(obj, _ArrayProxy):
        raise DatasetFormatError(f"{where}: expected an array, got {type(obj).__name__}")
    state = obj.state
    if not (isinstance(state, tuple) and len(state) == 5):
        raise DatasetFormatError(f"{where}: malformed array state")
    _, shape, dtype_proxy, fortran, raw = state
    if not (
        isinstance(shape, tuple)
        and len(shape) <= 8
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise DatasetFormatError(f"{where}: malformed array shape {shape!r}")
    dt = _dtype_of(dtype_proxy, where)
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(raw, bytes):
        raise DatasetFormatError(f"{where}: array data is {type(raw).__name__}, not bytes")
    need = math.prod(shape) * dt.itemsize
    if len(raw) != need:
        raise DatasetFormatError(
            f"{where}: an array of shape {shape} needs {need} bytes, the pickle holds {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dt.newbyteorder("="), order="C")


def _entry(d: dict[Any, Any], key: str, name: str) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    shown = ", ".join(repr(k) for k in list(d)[:6])
    raise DatasetFormatError(f"{name}: no {key!r} entry (it has {shown})")


def _cifar_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, name)
    if not isinstance(d, dict):
        raise DatasetFormatError(f"{name}: a {type(d).__name__}, expected a dict")
    x = _array_of(_entry(d, "data", name), f"{name} data")
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DatasetFormatError(
            f"{name}: data has shape {x.shape} and dtype {x.dtype}; expected (N, 3072) uint8"
        )
    labels = _entry(d, "labels", name)
    if isinstance(labels, list) and not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels
    ):
        raise DatasetFormatError(f"{name}: labels are not all integers")
    try:
        y = _array_of(labels, f"{name} labels")
    except OverflowError as exc:
        raise DatasetFormatError(f"{name}: label out of range ({exc})") from exc
    if y.ndim != 1 or (len(y) and y.dtype.kind not in "iu"):
        raise DatasetFormatError(f"{name}: labels have shape {y.shape} and dtype {y.dtype}")
    check_pair(x, y, f"{name} data", f"{name} labels")
    return x.reshape(-1, 3, 32, 32), y


def read_upload(src: Source, opts: ReadOptions) -> Loaded:
    """The splits of a CIFAR-10 python archive (see the module docstring)."""
    found = index_members(
        src.members,
        lambda m: basename(m.name) if _CIFAR_BATCH.fullmatch(basename(m.name)) else None,
        lambda base, a, b: f"two members are called {base}: {a.name} and {b.name}",
    )
    train_names = sorted(
        (b for b in found if b.startswith("data_batch_")), key=lambda b: int(b[11:])
    )
    seen = 0
    batches = [found[b] for b in (*train_names, "test_batch") if b in found]
    size = sum(m.size for m in batches)
    # each batch read and held until its split is joined, then the joined copy
    opts.reserve(2 * size, size, src.label)

    def load(base: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal seen
        opts.tick()
        member = found[base]
        if member.size > 64 * 2**20:  # a real batch is 31 MB
            raise DatasetFormatError(f"{member.name}: {member.size} bytes, too large for a batch")
        x, y = _cifar_batch(src.read(member), member.name)
        seen = count_samples(seen, len(y), opts.limits)
        return x, y

    def joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts]).astype(np.int64)
        return samples(x, y, "data", "labels", opts)

    train = joined([load(b) for b in train_names]) if train_names else None
    test = joined([load("test_batch")]) if "test_batch" in found else None
    if train is None and test is None:
        raise DatasetFormatError("no data_batch_* or test_batch in the archive")

    names: list[str] | None = None
    if "batches.meta" in found:
        meta = _unpickle(src.read(found["batches.meta"]), found["batches.meta"].name)
        if not isinstance(meta, dict):
            raise DatasetFormatError("batches.meta: expected a dict")
        raw_names = _entry(meta, "label_names", "batches.meta")
        if not isinstance(raw_names, list) or not all(
            isinstance(n, bytes | str) for n in raw_names
        ):
            raise DatasetFormatError("batches.meta: label_names is not a list of strings")
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in raw_names]
    else:
        tops = [int(s[1].max()) for s in (train, test) if s is not None and len(s[1])]
        if not tops:
            raise DatasetFormatError("the upload holds no samples")
        top = max(tops)
        names = standard_class_names(top)
        if names is not None:
            opts.warnings.append("no batches.meta; using the standard CIFAR-10 class names")
    if train is not None and test is not None:
        return Loaded("uint8", names, train=train, test=test)
    missing = "test_batch" if test is None else "data_batch_*"
    opts.warnings.append(f"no {missing} in the archive; the rest was split by test_fraction")
    return Loaded("uint8", names, pool=train if train is not None else test)
