"""How a dataset is stored: an uncompressed .npz whose arrays every job reads memory-mapped.

A stored dataset is one artifact: a zip archive with the members ``x_train.npy``,
``y_train.npy``, ``x_test.npy``, ``y_test.npy`` and ``class_names.npy``, every member *stored*
(not deflated) and every array's data aligned to 64 bytes in the file. ``np.load`` reads it like
any .npz; :func:`open_dataset` maps each array straight from the file instead
(``np.memmap``, copy-on-write), so a job holds only the pages it touches and nothing is decoded.

Inputs keep the dtype they were uploaded in when that is ``uint8`` (images: four times smaller
than float32); every other input is float32. A uint8 input stands for ``value / 255`` in
[0, 1], converted one batch at a time where a model reads it (:func:`float_inputs`,
:func:`backend.data.batches.model_input`), never for the whole split.

Writing streams: :class:`DatasetWriter` writes each array in chunks, optionally gathering rows
of a source array (a stratified split) chunk by chunk, so storing a dataset needs no second
copy of it. Artifacts written before this format (a deflated .npz of float32) are still read,
by loading them whole (:func:`open_dataset` falls back to ``np.load``).
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from backend.data.registry import ArrayDataset

if TYPE_CHECKING:
    from backend.storage import ArtifactStore

__all__ = [
    "ALIGN",
    "DatasetWriter",
    "float_inputs",
    "iter_rows",
    "open_dataset",
    "save_dataset",
    "store_dataset",
]

ALIGN = 64  # bytes; what numpy aligns .npy data to
CHUNK_BYTES = 1 << 22  # 4 MiB of a source array per chunk written or converted
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
SPLITS = ("train", "test")
CheckFn = Callable[[], None]


def _rows_per_chunk(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def float_inputs(x: np.ndarray) -> np.ndarray:
    """float32 copy of some stored inputs: uint8 scaled to [0, 1] (``x / 255``), float32 kept.

    Use it on a batch or a few rows, never on a whole split (that is the copy the stored
    form avoids).
    """
    if x.dtype == np.uint8:
        out = x.astype(np.float32)
        out /= np.float32(255.0)
        return out
    return np.asarray(x, dtype=np.float32)


def iter_rows(
    x: np.ndarray, rows: np.ndarray | None = None, check: CheckFn | None = None
) -> Iterator[np.ndarray]:
    """``x`` (or ``x[rows]``) in chunks of about 4 MiB, in order; ``check()`` between chunks
    (a job's cancellation check)."""
    n = len(x) if rows is None else len(rows)
    step = _rows_per_chunk(int(np.prod(x.shape[1:], dtype=np.int64)) * x.dtype.itemsize)
    for start in range(0, n, step):
        if check is not None:
            check()
        if rows is None:
            yield np.ascontiguousarray(x[start : start + step])
        else:
            yield np.ascontiguousarray(x[rows[start : start + step]])


def _npy_header(shape: tuple[int, ...], dtype: np.dtype, data_start: int) -> bytes:
    """A .npy version 1.0 header for a C-ordered array, padded so that the array's data
    begins at a multiple of :data:`ALIGN` in the file (``data_start`` is where the header
    begins)."""
    desc = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    fixed = 10  # magic (6) + version (2) + header length (2)
    body = len(desc) + 1  # + "\n"
    pad = (-(data_start + fixed + body)) % ALIGN
    header = (desc + " " * pad + "\n").encode("latin1")
    if len(header) > 0xFFFF:
        raise ValueError(f"array header too long for shape {shape}")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


class DatasetWriter:
    """Writes a stored dataset (see the module docstring) to a file, array by array.

    Example::

        with DatasetWriter(path) as w:
            w.array("x_train", x, rows=train_rows, check=ctx.check_cancelled)
            ...
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED)
        self.names: list[str] = []

    def array(
        self,
        name: str,
        x: np.ndarray,
        rows: np.ndarray | None = None,
        check: CheckFn | None = None,
        convert: Callable[[np.ndarray], np.ndarray] | None = None,
        dtype: np.dtype | type | None = None,
    ) -> None:
        """Write ``x`` (or ``x[rows]``) as member ``name``.npy, chunk by chunk.

        Args:
            convert: applied to every chunk before it is written (a dtype conversion);
                ``dtype`` is then the dtype it produces (default: ``x.dtype``).
        """
        if name in self.names:
            raise ValueError(f"array {name!r} written twice")
        out_dtype = np.dtype(dtype if dtype is not None else x.dtype)
        n = len(x) if rows is None else len(rows)
        shape = (n, *x.shape[1:])
        if out_dtype.hasobject:
            raise ValueError(f"{name}: object arrays are not stored")
        # The zip layer writes the local header first; its length is fixed once the name is.
        fp = self._zip.fp
        assert fp is not None
        with self._zip.open(name + ".npy", "w", force_zip64=True) as out:
            out.write(_npy_header(shape, out_dtype, fp.tell()))
            for chunk in iter_rows(x, rows, check):
                if convert is not None:
                    chunk = convert(chunk)
                if chunk.dtype != out_dtype:
                    raise TypeError(f"{name}: a chunk is {chunk.dtype}, expected {out_dtype}")
                out.write(np.ascontiguousarray(chunk).data.cast("B"))
        self.names.append(name)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_dataset(ds: ArrayDataset, path: str | os.PathLike[str]) -> None:
    """Write an in-memory dataset in the stored form."""
    with DatasetWriter(path) as w:
        for split in SPLITS:
            x, y = ds.split(split)
            w.array(f"x_{split}", x if x.dtype == np.uint8 else x.astype(np.float32, copy=False))
            w.array(f"y_{split}", y.astype(np.int64, copy=False))
        w.array("class_names", np.array(ds.class_names))


@contextlib.contextmanager
def spooled(store: ArtifactStore) -> Iterator[Path]:
    """A temporary file path next to the store's files (a rename, not a copy, on a local
    store), removed afterwards."""
    where = store.root if store.is_local else None
    with tempfile.TemporaryDirectory(dir=where, prefix="dataset-", suffix=".tmp") as tmp:
        yield Path(tmp) / "dataset.npz"


def store_dataset(store: ArtifactStore, ds: ArrayDataset) -> str:
    """Store an in-memory dataset; returns the artifact's sha256."""
    with spooled(store) as path:
        save_dataset(ds, path)
        return store.put_file(path)


def _member_offset(fh: IO[bytes], info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes begin in the file (after its local header)."""
    fh.seek(info.header_offset)
    raw = fh.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
        raise ValueError(f"{info.filename}: bad local header")
    fields = _LOCAL_HEADER.unpack(raw)
    name_len, extra_len = fields[-2], fields[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def _map_member(path: Path, fh: IO[bytes], info: zipfile.ZipInfo) -> np.ndarray:
    """One stored .npy member as a copy-on-write memory map (small ones read into memory)."""
    start = _member_offset(fh, info)
    fh.seek(start)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if fortran or dtype.hasobject:
        raise ValueError(f"{info.filename}: not a C-ordered plain array")
    offset = fh.tell()
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes > start + info.file_size:
        raise ValueError(f"{info.filename}: shorter than its header says")
    if nbytes < (1 << 16):  # a memory map costs a page and a file handle; read small arrays
        data = fh.read(nbytes)
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    # copy-on-write: writable (torch.from_numpy takes it without a warning), file untouched
    return np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=tuple(shape))


def open_dataset(path: str | os.PathLike[str]) -> ArrayDataset:
    """A stored dataset, its arrays memory-mapped from ``path`` (which must outlive them; on
    Linux a map keeps the file's data even after the file is removed).

    Older artifacts (deflated members) are loaded into memory whole.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        if any(i.compress_type != zipfile.ZIP_STORED for i in infos.values()):
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        else:
            with open(path, "rb") as fh:
                arrays = {k: _map_member(path, fh, i) for k, i in infos.items()}
    return ArrayDataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=[str(c) for c in arrays["class_names"]],
    )


def load_from_store(store: ArtifactStore, sha: str) -> ArrayDataset:
    """A stored dataset from the artifact store, memory-mapped where the store is a local
    folder (verified first, as every read of an artifact is)."""
    with store.local_path(sha) as path:
        return open_dataset(path)


def dataset_bytes(ds: ArrayDataset) -> bytes:
    """The stored form in memory (small datasets: tests, built-ins)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        save_dataset(ds, path)
        return path.read_bytes()
