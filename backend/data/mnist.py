"""The ``mnist`` upload format: MNIST / Fashion-MNIST idx files in a zip or tar.

``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (raw or gzipped, ``.`` or ``-`` in the name, any case, at any
depth); images become (N, 1, H, W) in [0, 1]; a lone train or t10k pair is split by
``test_fraction``. Class names are the label indices.

Guarantees: each idx header (magic number, dimensions) is checked before the data is read:
no more than :attr:`Limits.max_samples` items, no side over :attr:`Limits.max_image_side`; a
raw file must hold exactly the bytes its header announces, and a gzipped one is held to the
compression-ratio and uncompressed-size limits of :mod:`backend.data.archives` by the size
its header announces, before it is inflated.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from typing import IO, Any

import numpy as np

from backend.data.archives import CHUNK, Member, Source, basename, index_members
from backend.data.arrays import Loaded, ReadOptions, check_pair, count_samples, samples
from backend.data.limits import DatasetFormatError

__all__ = ["looks_like", "read_upload"]

_IDX_FILES = {
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}


def _idx_key(name: str) -> tuple[str, str] | None:
    """(split, "images" | "labels") of an idx file name, else None."""
    base = basename(name).lower()
    if base.endswith(".gz"):
        base = base[:-3]
    return _IDX_FILES.get(base.replace(".", "-"))


def looks_like(names: list[str]) -> bool:
    """An MNIST archive holds at least one of the four idx files."""
    return any(_idx_key(n) for n in names)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes: fewer only where the stream ends."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _read_idx(src: Source, member: Member, ndim: int, opts: ReadOptions) -> np.ndarray:
    """An idx array of unsigned bytes with ``ndim`` dimensions, its header checked first (and
    the memory it needs reserved, :meth:`ReadOptions.reserve`), then read a chunk at a time
    into its own buffer."""
    limits = opts.limits
    kind = "images" if ndim == 3 else "labels"
    with src.open(member) as raw:
        gz = raw.peek(2)[:2] == b"\x1f\x8b"
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            head = _read_exact(stream, 4)
            want = 0x0800 + ndim
            if len(head) < 4 or int.from_bytes(head, "big") != want:
                raise DatasetFormatError(
                    f"{member.name}: magic 0x{int.from_bytes(head, 'big'):08x}, expected "
                    f"0x{want:08x} (idx {kind} of unsigned bytes)"
                )
            dims_raw = _read_exact(stream, 4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DatasetFormatError(f"{member.name}: truncated idx header")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            if dims[0] == 0 or dims[0] > limits.max_samples:
                raise DatasetFormatError(
                    f"{member.name}: {dims[0]} {kind}; expected 1..{limits.max_samples}"
                )
            if any(d == 0 or d > limits.max_image_side for d in dims[1:]):
                raise DatasetFormatError(f"{member.name}: images of {dims[1:]} pixels refused")
            size = math.prod(dims)
            header = 4 + 4 * ndim
            if gz:
                src.check_ratio(size, member.size, f"member {member.name!r}")
                if size > limits.max_total_uncompressed:
                    raise DatasetFormatError(f"{member.name}: {size} bytes of data refused")
            elif member.size != header + size:
                raise DatasetFormatError(
                    f"{member.name}: the header announces {dims} ({size} bytes) but the file "
                    f"holds {member.size - header} bytes of data"
                )
            extra = size if ndim == 3 else size + 8 * 6 * dims[0]  # labels: int64 working copies
            opts.reserve(extra, size, src.label)
            data = np.empty(size, dtype=np.uint8)
            done = 0
            while done < size:
                opts.tick()
                got = stream.readinto(data.data[done : done + CHUNK])
                if not got:
                    break
                done += got
            if done != size:
                raise DatasetFormatError(
                    f"{member.name}: ends after {done} of the {size} bytes its header announces"
                )
            if stream.read(1):
                raise DatasetFormatError(f"{member.name}: longer than its header announces")
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{member.name}: corrupt gzip data ({exc})") from exc
    return data.reshape(dims)


def read_upload(src: Source, opts: ReadOptions) -> Loaded:
    """The splits of an MNIST idx archive (see the module docstring)."""
    found = index_members(
        src.members,
        lambda m: _idx_key(m.name),
        lambda key, a, b: f"two {key[0]} {key[1]} files: {a.name} and {b.name}",
    )
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total = 0
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = found.get((split, "images")), found.get((split, "labels"))
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            have = (images or labels).name  # type: ignore[union-attr]
            lack = f"{prefix}-{'images-idx3' if images is None else 'labels-idx1'}-ubyte"
            raise DatasetFormatError(f"{have} has no matching {lack}")
        x = _read_idx(src, images, 3, opts)
        y = _read_idx(src, labels, 1, opts)
        check_pair(x, y, images.name, labels.name)
        total = count_samples(total, len(y), opts.limits)
        splits[split] = samples(x[:, None], y, images.name, labels.name, opts)
    if not splits:
        raise DatasetFormatError(
            "no MNIST idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in the archive"
        )
    if len(splits) == 2:
        return Loaded("uint8", train=splits["train"], test=splits["test"])
    opts.warnings.append("only one of train-*/t10k-* is present; it was split by test_fraction")
    return Loaded("uint8", pool=next(iter(splits.values())))
