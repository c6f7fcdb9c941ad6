"""Readers for user-uploaded dataset files, hardened against hostile archives.

:func:`read_dataset` turns one upload into an :class:`~backend.data.registry.ArrayDataset`
(float32 inputs, (N, C, H, W) images or (N, D) features, int64 labels) plus a summary dict.
Formats (:data:`FORMATS`):

- ``npz``: arrays ``X`` and ``y`` (split by ``test_fraction``), or ``x_train``, ``y_train``
  [, ``x_test``, ``y_test``] (kept as given; what :meth:`ArrayDataset.to_npz_bytes` writes),
  optional ``class_names``. uint8 inputs are scaled to [0, 1], other inputs kept as stored;
  (N, H, W) becomes (N, 1, H, W); (N, H, W, C) becomes (N, C, H, W) unless axis 1 looks like
  channels (1, 3 or 4) and the last axis does not, in which case it is taken as channels-first
  already; (N, D) features are kept. Labels may be integers or strings.
- ``cifar10``: the CIFAR-10 python tar.gz (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``). The batches are pickles; they are read by an unpickler that knows only
  the five globals these files use, and rebuilds numpy arrays itself from their raw bytes, so no
  other code can run and numpy's own unpickling paths are never reached.
- ``cifar10c``: ``<corruption>.npy`` files next to ``labels.npy`` (Hendrycks & Dietterich,
  ICLR 2019), as a tar, zip or folder, read by :func:`backend.data.cifar10c.load_cifar10c`.
  A chosen corruption and severity (default all five) becomes the *test* split; the train
  split is empty (CIFAR-10-C is an evaluation set; :class:`ArrayDataset` accepts an empty
  split of the right trailing shape), and the normalisation statistics are then taken over
  the test split.
- ``mnist``: MNIST / Fashion-MNIST idx files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-*``; raw or gzipped) in a zip or tar.
- ``imagefolder``: ``[root/]<class>/<image>`` PNG/JPEG files of one size in a zip or tar
  (or ``root/train/<class>/...`` with ``root/test`` or ``root/val``, kept as the split);
  class names are the folder names, sorted; 8-bit grayscale stays one channel, anything
  else becomes RGB.

Safety: every archive (and every .npz, which is a zip) is listed and checked before a byte of
a member is read: absolute paths, ``..`` components, links, devices, encrypted members,
duplicate names, too many members, too many uncompressed bytes and a compression ratio above
:attr:`Limits.max_ratio` (per member and overall) are refused, naming the member. While
reading, every member goes through a bounded reader (never more than its declared size, nor
more than the overall budget), the decompressed stream of a compressed tar is capped by the
same limits, and gzipped idx files and images are checked against their headers before their
pixels are decoded. ``np.load`` always runs with ``allow_pickle=False``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import pickle
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from backend.data.cifar10c import CifarCFormatError, load_cifar10c
from backend.data.registry import ArrayDataset

__all__ = [
    "CIFAR10_CLASSES",
    "FORMATS",
    "DatasetFormatError",
    "Limits",
    "check_classes",
    "detect_format",
    "read_dataset",
]

FORMATS = ("npz", "cifar10", "cifar10c", "mnist", "imagefolder")

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

_CHUNK = 1 << 20
_IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_PIL_FORMATS = ("PNG", "JPEG")
# folder name -> split, in order of preference for the test split
_SPLIT_DIRS = {"train": "train", "test": "test", "val": "test", "valid": "test"}
_SPLIT_DIRS["validation"] = "test"
_CIFAR_BATCH = re.compile(r"data_batch_(\d+)|test_batch|batches\.meta")
_IDX_FILES = {
    "train-images-idx3-ubyte": ("train", "images"),
    "train-labels-idx1-ubyte": ("train", "labels"),
    "t10k-images-idx3-ubyte": ("test", "images"),
    "t10k-labels-idx1-ubyte": ("test", "labels"),
}
_JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


class DatasetFormatError(ValueError):
    """The upload is not a usable dataset; the message says what is wrong."""


@dataclass(frozen=True)
class Limits:
    """Bounds that an upload must respect; exceeding one raises :class:`DatasetFormatError`.

    Attributes:
        max_members: entries (files and folders) in an archive or folder.
        max_total_uncompressed: bytes of all members together, once decompressed; also the
            bound on the decompressed stream of a compressed tar and on decoded image pixels.
        max_ratio: uncompressed / compressed size, per member and over the archive.
        max_samples: samples over both splits.
        ratio_exempt_below: the ratio check applies only to members (and archives) that
            decompress to more than this many bytes: a few MiB of zeros hurt nobody, and small
            synthetic arrays compress far better than 200:1.
        max_classes: labels must be below this.
        max_image_side: images wider or taller than this many pixels are refused before they
            are decoded.
    """

    max_members: int = 200_000
    max_total_uncompressed: int = 4 * 2**30
    max_ratio: float = 200.0
    max_samples: int = 2_000_000
    ratio_exempt_below: int = 16 * 2**20
    max_classes: int = 100_000
    max_image_side: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "max_members",
            "max_total_uncompressed",
            "max_samples",
            "max_classes",
            "max_image_side",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} should be a positive integer")
        if isinstance(self.ratio_exempt_below, bool) or not isinstance(
            self.ratio_exempt_below, int
        ):
            raise ValueError(f"ratio_exempt_below={self.ratio_exempt_below!r} should be an int")
        if not float(self.max_ratio) >= 1.0:
            raise ValueError(f"max_ratio={self.max_ratio!r} should be >= 1")


# --------------------------------------------------------------------------------------------
# Archive access


@dataclass(frozen=True)
class _Member:
    name: str  # normalised: '/'-separated, no leading './', never absolute, never '..'
    size: int  # declared uncompressed size
    ref: Any  # ZipInfo, TarInfo or Path


def _safe_name(raw: str) -> str:
    """The normalised member path; absolute paths and '..' components are refused."""
    if "\x00" in raw:
        raise DatasetFormatError(f"refusing member {raw!r}: NUL byte in its name")
    if raw.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", raw):
        raise DatasetFormatError(f"refusing member {raw!r}: absolute path")
    parts = re.split(r"[/\\]", raw)
    if ".." in parts:
        raise DatasetFormatError(f"refusing member {raw!r}: '..' in its path")
    return "/".join(p for p in parts if p not in ("", "."))


def _is_junk(name: str) -> bool:
    """Desktop litter (macOS resource forks, thumbnails, hidden files), skipped silently."""
    parts = name.split("/")
    return any(p in _JUNK_NAMES or p.startswith(".") for p in parts)


class _MemberReader(io.RawIOBase):
    """Reads one member, never more than its declared size nor the remaining budget."""

    def __init__(self, inner: IO[bytes], member: _Member, source: _Source) -> None:
        super().__init__()
        self._inner = inner
        self._member = member
        self._source = source
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        # one byte past the declared size, to notice a member that lies about it
        want = min(len(view), self._member.size - self.done + 1)
        if want <= 0:
            return 0
        try:
            data = self._inner.read(want)
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            tarfile.TarError,
            EOFError,
            OSError,
        ) as exc:
            raise DatasetFormatError(f"{self._member.name}: corrupt member ({exc})") from exc
        self.done += len(data)
        if self.done > self._member.size:
            raise DatasetFormatError(
                f"{self._member.name}: decompresses to more than its declared "
                f"{self._member.size} bytes"
            )
        self._source.spend(len(data), self._member.name)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _Source:
    """The regular-file members of an upload (zip, tar or folder), checked when listed."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label = label
        self.limits = limits
        self.members: list[_Member] = []
        self.ignored: list[str] = []
        self._entries = 0
        self._total = 0
        self._names: set[str] = set()
        self._budget = limits.max_total_uncompressed

    # listing ----------------------------------------------------------------------------

    def _entry(self, raw: str) -> str:
        self._entries += 1
        if self._entries > self.limits.max_members:
            raise DatasetFormatError(
                f"{self.label}: more than {self.limits.max_members} members (at {raw!r})"
            )
        return _safe_name(raw)

    def _add(self, name: str, size: int, ref: Any) -> None:
        if not name:
            raise DatasetFormatError(f"{self.label}: a file member has an empty name")
        if name in self._names:
            raise DatasetFormatError(f"refusing member {name!r}: it appears twice")
        self._names.add(name)
        self._total += size
        if self._total > self.limits.max_total_uncompressed:
            raise DatasetFormatError(
                f"{self.label}: more than {self.limits.max_total_uncompressed} bytes "
                f"uncompressed (limit reached at member {name!r})"
            )
        if _is_junk(name):
            self.ignored.append(name)
        else:
            self.members.append(_Member(name, size, ref))

    def _check_ratio(self, uncompressed: int, compressed: int, what: str) -> None:
        lim = self.limits
        if uncompressed > lim.ratio_exempt_below and uncompressed > lim.max_ratio * max(
            compressed, 1
        ):
            ratio = uncompressed / max(compressed, 1)
            raise DatasetFormatError(
                f"refusing {what}: compression ratio {ratio:.0f}:1 exceeds "
                f"{lim.max_ratio:g}:1 ({uncompressed} bytes from {compressed})"
            )

    # reading ----------------------------------------------------------------------------

    def spend(self, n: int, name: str) -> None:
        self._budget -= n
        if self._budget < 0:
            raise DatasetFormatError(
                f"{name}: reading it exceeds the limit of "
                f"{self.limits.max_total_uncompressed} uncompressed bytes"
            )

    def _open_raw(self, member: _Member) -> IO[bytes]:
        raise NotImplementedError

    def open(self, member: _Member) -> io.BufferedReader:
        return io.BufferedReader(_MemberReader(self._open_raw(member), member, self), _CHUNK)

    def read(self, member: _Member) -> bytes:
        """The whole member; a member shorter than declared is refused."""
        chunks = []
        with self.open(member) as f:
            while chunk := f.read(_CHUNK):
                chunks.append(chunk)
        data = b"".join(chunks)
        if len(data) != member.size:
            raise DatasetFormatError(
                f"{member.name}: {len(data)} bytes, but the archive declares {member.size}"
            )
        return data

    def copy_to(self, member: _Member, dest: Path) -> None:
        with self.open(member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out, _CHUNK)
            written = out.tell()
        if written != member.size:
            raise DatasetFormatError(
                f"{member.name}: {written} bytes, but the archive declares {member.size}"
            )

    def close(self) -> None:
        """Release the archive."""

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ZipSource(_Source):
    def __init__(self, path: Path, limits: Limits) -> None:
        super().__init__(path.name, limits)
        try:
            self._zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DatasetFormatError(f"{path.name}: not a readable zip archive ({exc})") from exc
        try:
            self._scan(os.path.getsize(path))
        except BaseException:
            self._zf.close()
            raise

    def _scan(self, archive_size: int) -> None:
        infos = self._zf.infolist()
        if len(infos) > self.limits.max_members:
            raise DatasetFormatError(
                f"{self.label}: {len(infos)} members, more than {self.limits.max_members}"
            )
        for info in infos:
            name = self._entry(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise DatasetFormatError(f"refusing member {info.filename!r}: symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DatasetFormatError(
                    f"refusing member {info.filename!r}: not a regular file "
                    "(device, fifo or socket)"
                )
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise DatasetFormatError(f"refusing member {name!r}: encrypted")
            if info.compress_type not in _ZIP_METHODS:
                raise DatasetFormatError(
                    f"refusing member {name!r}: unsupported compression method {info.compress_type}"
                )
            self._check_ratio(info.file_size, info.compress_size, f"member {name!r}")
            self._add(name, info.file_size, info)
        self._check_ratio(self._total, archive_size, f"archive {self.label!r}")

    def _open_raw(self, member: _Member) -> IO[bytes]:
        try:
            return self._zf.open(member.ref)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise DatasetFormatError(f"{member.name}: cannot be read ({exc})") from exc

    def close(self) -> None:
        self._zf.close()


class _GuardedStream:
    """The decompressed stream of a tar, capped in total and in ratio to the file's size.

    A lying or hostile header (a pax record claiming gigabytes, a gzip bomb between members)
    cannot make tarfile decompress past the cap: reads and seeks beyond it raise.
    """

    def __init__(self, inner: IO[bytes], label: str, compressed: int | None, lim: Limits):
        self._inner = inner
        self._label = label
        self.pos = 0
        # room for tar headers and padding on top of the members' bytes
        self._cap = lim.max_total_uncompressed + 1536 * lim.max_members + 20480
        self._why = f"more than {lim.max_total_uncompressed} bytes"
        if compressed is not None:
            ratio_cap = max(lim.ratio_exempt_below, int(lim.max_ratio * max(compressed, 1)))
            if ratio_cap < self._cap:
                self._cap = ratio_cap
                self._why = f"more than {lim.max_ratio:g} times its compressed size"

    def _refuse(self) -> DatasetFormatError:
        return DatasetFormatError(
            f"refusing archive {self._label!r}: its tar stream decompresses to {self._why}"
        )

    def read(self, n: int | None = -1) -> bytes:
        room = self._cap - self.pos
        want = room + 1 if n is None or n < 0 or n > room else n
        data = self._inner.read(want)
        self.pos += len(data)
        if self.pos > self._cap:
            raise self._refuse()
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.pos
        elif whence != 0:
            raise io.UnsupportedOperation("seek from the end of a compressed stream")
        if offset > self._cap:
            raise self._refuse()
        self._inner.seek(offset)
        self.pos = self._inner.tell()
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self._inner.close()


class _TarSource(_Source):
    def __init__(self, path: Path, compression: str | None, limits: Limits) -> None:
        super().__init__(path.name, limits)
        self._raw = open(path, "rb")
        try:
            inner: Any
            if compression == "gz":
                inner = gzip.GzipFile(fileobj=self._raw, mode="rb")
            elif compression == "bz2":
                inner = bz2.BZ2File(self._raw)
            elif compression == "xz":
                inner = lzma.LZMAFile(self._raw)
            else:
                inner = self._raw
            size = os.path.getsize(path) if compression else None
            self._stream = _GuardedStream(inner, path.name, size, limits)
            try:
                self._tf = tarfile.open(fileobj=self._stream, mode="r:")  # type: ignore[call-overload]
                self._scan(size)
            except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
                raise DatasetFormatError(
                    f"{path.name}: not a readable tar archive ({exc})"
                ) from exc
        except BaseException:
            self._raw.close()
            raise

    def _scan(self, compressed: int | None) -> None:
        while True:
            # the limits are checked on each header before tarfile moves past the member
            info = self._tf.next()
            if info is None:
                break
            name = self._entry(info.name)
            if info.issym() or info.islnk():
                raise DatasetFormatError(
                    f"refusing member {info.name!r}: link to {info.linkname!r}"
                )
            if info.ischr() or info.isblk() or info.isfifo():
                raise DatasetFormatError(f"refusing member {info.name!r}: device or fifo")
            if info.isdir():
                continue
            if not info.isreg() or info.issparse():
                raise DatasetFormatError(
                    f"refusing member {info.name!r}: not a regular file (type {info.type!r})"
                )
            self._add(name, info.size, info)
            if compressed is not None:
                self._check_ratio(
                    self._total, compressed, f"archive {self.label!r} at member {name!r}"
                )

    def _open_raw(self, member: _Member) -> IO[bytes]:
        f = self._tf.extractfile(member.ref)
        if f is None:  # pragma: no cover - only regular files are listed
            raise DatasetFormatError(f"{member.name}: not a regular file")
        return f

    def close(self) -> None:
        try:
            self._tf.close()
            self._stream.close()
        finally:
            self._raw.close()


class _DirSource(_Source):
    def __init__(self, path: Path, limits: Limits) -> None:
        super().__init__(path.name, limits)
        self.root = path
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                full = Path(dirpath) / name
                rel = self._entry(full.relative_to(path).as_posix())
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    raise DatasetFormatError(f"refusing member {rel!r}: symbolic link")
                if stat.S_ISDIR(mode):
                    continue
                if not stat.S_ISREG(mode):
                    raise DatasetFormatError(f"refusing member {rel!r}: not a regular file")
                self._add(rel, os.lstat(full).st_size, full)

    def _open_raw(self, member: _Member) -> IO[bytes]:
        return open(member.ref, "rb")


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except tarfile.TarError:
        return False
    return True


def _single_file_kind(head: bytes) -> str:
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array; upload an .npz with arrays X and y instead"
    if head[:2] == b"\x80\x02" or head[:2] == b"\x80\x04":
        return "a single pickle; upload the CIFAR-10 python tar.gz as distributed"
    if head[:4] in (b"\x00\x00\x08\x03", b"\x00\x00\x08\x01"):
        return "a single MNIST idx file; upload a zip or tar of the four idx files"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        return "a single image; upload a zip of <class>/<image> folders"
    return "not a zip, tar, gzip or folder"


def _open_source(path: Path, limits: Limits) -> _Source:
    if path.is_dir():
        return _DirSource(path, limits)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _ZipSource(path, limits)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(512)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{path.name}: corrupt gzip file ({exc})") from exc
        if not _is_tar_header(inner):
            raise DatasetFormatError(
                f"cannot tell the dataset format of {path.name}: gzip of {_single_file_kind(inner)}"
            )
        return _TarSource(path, "gz", limits)
    if head[:3] == b"BZh":
        return _TarSource(path, "bz2", limits)
    if head[:6] == b"\xfd7zXZ\x00":
        return _TarSource(path, "xz", limits)
    if _is_tar_header(head):
        return _TarSource(path, None, limits)
    raise DatasetFormatError(
        f"cannot tell the dataset format of {path.name}: {_single_file_kind(head)}"
    )


def _basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _idx_key(name: str) -> tuple[str, str] | None:
    base = _basename(name).lower()
    if base.endswith(".gz"):
        base = base[:-3]
    return _IDX_FILES.get(base.replace(".", "-"))


def _classify(src: _Source) -> str | None:
    names = [m.name for m in src.members]
    bases = {_basename(n) for n in names}
    if any(_CIFAR_BATCH.fullmatch(b) and b != "batches.meta" for b in bases):
        return "cifar10"
    if any(_idx_key(n) for n in names):
        return "mnist"
    top = {n[:-4] for n in names if n.endswith(".npy") and "/" not in n}
    if top & {"X", "x", "x_train"}:
        return "npz"
    if "labels.npy" in bases and sum(n.endswith(".npy") for n in names) >= 2:
        return "cifar10c"
    if any(n.lower().endswith(_IMAGE_EXTS) for n in names):
        return "imagefolder"
    return None


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of an upload, told from its content, not its file name.

    Args:
        path: a zip, tar (optionally gz/bz2/xz), .npz or folder.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DatasetFormatError: not an archive, an unsafe archive, or no known layout inside.
        FileNotFoundError: ``path`` does not exist.
    """
    with _open_source(Path(path), Limits()) as src:
        return _detect(src)


def _detect(src: _Source) -> str:
    fmt = _classify(src)
    if fmt is None:
        shown = ", ".join(m.name for m in src.members[:5]) or "no files"
        raise DatasetFormatError(
            f"cannot tell the dataset format of {src.label}: found {shown}; expected one of "
            f"{', '.join(FORMATS)}"
        )
    return fmt


# --------------------------------------------------------------------------------------------
# Array conversion and validation


@dataclass
class _Loaded:
    """What a format reader produced, before splitting and validation."""

    dtype_in: str
    class_names: list[str] | None = None
    train: tuple[np.ndarray, np.ndarray] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    pool: tuple[np.ndarray, np.ndarray] | None = None  # split by test_fraction
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Options:
    corruption: str | None
    severity: int | None
    limits: Limits
    warnings: list[str]


def _check_finite(x: np.ndarray, name: str) -> None:
    step = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        finite = np.isfinite(chunk).reshape(len(chunk), -1)
        rows = finite.all(axis=1)
        if not rows.all():
            row = start + int(np.argmin(rows))
            raise DatasetFormatError(f"{name} has NaN or infinite values (first in row {row})")


def _to_float32(x: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
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
        out = x.astype(np.float32, order="C")
        _check_finite(out, name)
        if out.ndim > 2 and out.size and (out.min() < 0.0 or out.max() > 1.0):
            warnings.append(
                f"{name} holds floats in [{out.min():g}, {out.max():g}]; they are used as "
                "stored, not rescaled to [0, 1]"
            )
        return out
    raise DatasetFormatError(f"{name} has dtype {x.dtype}; expected uint8 or floating point")


def _layout(x: np.ndarray, name: str) -> np.ndarray:
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


def _labels(y: np.ndarray, name: str, warnings: list[str], limits: Limits) -> np.ndarray:
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


def _string_labels(
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


def _pair(x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> None:
    if len(x) != len(y):
        raise DatasetFormatError(f"{xname} has {len(x)} rows but {yname} has {len(y)}")


def _stratified_split(
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


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Mean and (population) std of axis 1 over all other axes, float64, merged chunk-wise.

    Chunks are combined with Chan et al.'s pairwise update, so the result is as accurate as a
    two-pass computation and no float64 copy of ``x`` is ever made.
    """
    channels = x.shape[1]
    per_row = int(np.prod(x.shape[1:]))
    step = max(1, (1 << 22) // max(1, per_row))
    n = 0
    mean = np.zeros(channels)
    m2 = np.zeros(channels)
    for start in range(0, len(x), step):
        block = np.moveaxis(x[start : start + step].astype(np.float64), 1, 0).reshape(channels, -1)
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


# --------------------------------------------------------------------------------------------
# npz


def _load_npy(src: _Source, member: _Member, limits: Limits) -> np.ndarray:
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


def _read_npz(src: _Source, opts: _Options) -> _Loaded:
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
    total = sum(len(y) for _, y in raw)
    if total > opts.limits.max_samples:
        raise DatasetFormatError(f"{total} samples, more than the limit {opts.limits.max_samples}")
    ys = [y for _, y in raw]
    if any(y.dtype.kind in "US" for y in ys):
        if not all(y.dtype.kind in "US" for y in ys):
            raise DatasetFormatError("labels are strings in one split and numbers in another")
        ys, names = _string_labels(ys, names)
    splits = []
    for (xk, yk), (x, _), y in zip(used, raw, ys, strict=True):
        _pair(x, y, xk, yk)
        splits.append(
            (
                _to_float32(_layout(x, xk), xk, opts.warnings),
                _labels(y, yk, opts.warnings, opts.limits),
            )
        )
    dtype_in = ", ".join(sorted({str(x.dtype) for x, _ in raw}))
    if len(used) == 2:
        return _Loaded(dtype_in, names, train=splits[0], test=splits[1])
    if used[0][0] == "x_train":
        opts.warnings.append("the npz has no test split; it was split by test_fraction")
    return _Loaded(dtype_in, names, pool=splits[0])


# --------------------------------------------------------------------------------------------
# CIFAR-10 python batches


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
    _pair(x, y, f"{name} data", f"{name} labels")
    return x.reshape(-1, 3, 32, 32), y


def _read_cifar10(src: _Source, opts: _Options) -> _Loaded:
    found: dict[str, _Member] = {}
    for m in src.members:
        base = _basename(m.name)
        if _CIFAR_BATCH.fullmatch(base):
            if base in found:
                raise DatasetFormatError(
                    f"two members are called {base}: {found[base].name} and {m.name}"
                )
            found[base] = m
    train_names = sorted(
        (b for b in found if b.startswith("data_batch_")), key=lambda b: int(b[11:])
    )
    seen = 0

    def load(base: str) -> tuple[np.ndarray, np.ndarray]:
        nonlocal seen
        member = found[base]
        if member.size > 64 * 2**20:  # a real batch is 31 MB
            raise DatasetFormatError(f"{member.name}: {member.size} bytes, too large for a batch")
        x, y = _cifar_batch(src.read(member), member.name)
        seen += len(y)
        if seen > opts.limits.max_samples:
            raise DatasetFormatError(f"more than {opts.limits.max_samples} samples")
        return x, y

    def joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts]).astype(np.int64)
        return _to_float32(x, "data", opts.warnings), _labels(y, "labels", [], opts.limits)

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
        top = max(int(s[1].max()) for s in (train, test) if s is not None and len(s[1]))
        if top < len(CIFAR10_CLASSES):
            names = list(CIFAR10_CLASSES)
            opts.warnings.append("no batches.meta; using the standard CIFAR-10 class names")
    if train is not None and test is not None:
        return _Loaded("uint8", names, train=train, test=test)
    missing = "test_batch" if test is None else "data_batch_*"
    opts.warnings.append(f"no {missing} in the archive; the rest was split by test_fraction")
    return _Loaded("uint8", names, pool=train if train is not None else test)


# --------------------------------------------------------------------------------------------
# MNIST idx


def _read_exact(f: IO[bytes], n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _read_idx(src: _Source, member: _Member, ndim: int, limits: Limits) -> np.ndarray:
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
                src._check_ratio(size, member.size, f"member {member.name!r}")
                if size > limits.max_total_uncompressed:
                    raise DatasetFormatError(f"{member.name}: {size} bytes of data refused")
            elif member.size != header + size:
                raise DatasetFormatError(
                    f"{member.name}: the header announces {dims} ({size} bytes) but the file "
                    f"holds {member.size - header} bytes of data"
                )
            data = _read_exact(stream, size)
            if len(data) != size:
                raise DatasetFormatError(
                    f"{member.name}: ends after {len(data)} of the {size} bytes its header "
                    "announces"
                )
            if stream.read(1):
                raise DatasetFormatError(f"{member.name}: longer than its header announces")
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{member.name}: corrupt gzip data ({exc})") from exc
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_mnist(src: _Source, opts: _Options) -> _Loaded:
    found: dict[tuple[str, str], _Member] = {}
    for m in src.members:
        key = _idx_key(m.name)
        if key is not None:
            if key in found:
                raise DatasetFormatError(
                    f"two {key[0]} {key[1]} files: {found[key].name} and {m.name}"
                )
            found[key] = m
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
        x = _read_idx(src, images, 3, opts.limits)
        y = _read_idx(src, labels, 1, opts.limits)
        _pair(x, y, images.name, labels.name)
        total += len(y)
        if total > opts.limits.max_samples:
            raise DatasetFormatError(f"more than {opts.limits.max_samples} samples")
        splits[split] = (
            _to_float32(x[:, None], images.name, opts.warnings),
            _labels(y, labels.name, opts.warnings, opts.limits),
        )
    if not splits:
        raise DatasetFormatError(
            "no MNIST idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in the archive"
        )
    if len(splits) == 2:
        return _Loaded("uint8", train=splits["train"], test=splits["test"])
    opts.warnings.append("only one of train-*/t10k-* is present; it was split by test_fraction")
    return _Loaded("uint8", pool=next(iter(splits.values())))


# --------------------------------------------------------------------------------------------
# Image folders


def _image_layout(images: list[_Member], warnings: list[str]) -> dict[str, str | None]:
    """member name -> split ('train'/'test', or None when the folder has no split)."""
    containers: dict[tuple[str, ...], str] = {}
    for m in images:
        parts = tuple(m.name.split("/"))
        if len(parts) < 2:
            raise DatasetFormatError(
                f"{m.name}: images must sit in <class>/<image> folders (under an optional root)"
            )
        containers.setdefault(parts[:-2], m.name)
    if len(containers) == 1:
        return {m.name: None for m in images}
    parents = {c[:-1] for c in containers if c}
    lasts = {c[-1].lower(): c for c in containers if c}
    if len(parents) == 1 and len(lasts) == len(containers) and set(lasts) <= set(_SPLIT_DIRS):
        if "train" in lasts:
            test_dir = next((d for d in _SPLIT_DIRS if d != "train" and d in lasts), None)
            keep = {lasts["train"]: "train"}
            if test_dir is not None:
                keep[lasts[test_dir]] = "test"
            dropped = sorted(set(lasts) - {"train", test_dir or ""})
            if dropped:
                warnings.append(f"ignored the {', '.join(dropped)} folder(s)")
            return {
                m.name: keep.get(tuple(m.name.split("/"))[:-2])
                for m in images
                if tuple(m.name.split("/"))[:-2] in keep
            }
    a, b = list(containers.values())[:2]
    raise DatasetFormatError(
        f"images must sit in <root>/<class>/<image> under one root (or root/train and "
        f"root/test); found {a!r} and {b!r}"
    )


def _decode_image(
    data: bytes, name: str, limits: Limits, first: tuple[str, tuple[int, int]] | None
) -> tuple[np.ndarray, bool]:
    """(H, W) or (H, W, 3) uint8, and whether an alpha channel was dropped."""
    try:
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as im:
            w, h = im.size
            side = limits.max_image_side
            if w > side or h > side:
                raise DatasetFormatError(f"{name}: {w}x{h} pixels, beyond the {side}x{side} limit")
            if first is not None and first[1] != (w, h):
                fw, fh = first[1]
                raise DatasetFormatError(
                    f"images differ in size: {first[0]} is {fw}x{fh} but {name} is {w}x{h}; "
                    "resize them to one size"
                )
            if im.mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L")), im.mode == "LA"
            if im.mode.startswith(("I", "F")):
                raise DatasetFormatError(
                    f"{name}: mode {im.mode} (16-bit or float pixels) is not supported; "
                    "save 8-bit PNG or JPEG"
                )
            alpha = "A" in im.mode or "transparency" in im.info
            return np.asarray(im.convert("RGB")), alpha
    except DatasetFormatError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetFormatError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise DatasetFormatError(f"{name}: not a readable PNG or JPEG image ({exc})") from exc


def _read_imagefolder(src: _Source, opts: _Options) -> _Loaded:
    images = [m for m in src.members if m.name.lower().endswith(_IMAGE_EXTS)]
    skipped = [m.name for m in src.members if not m.name.lower().endswith(_IMAGE_EXTS)]
    if skipped:
        opts.warnings.append(f"ignored {len(skipped)} non-image files: {', '.join(skipped[:3])}")
    if not images:
        raise DatasetFormatError("no .png, .jpg or .jpeg images in the upload")
    if len(images) > opts.limits.max_samples:
        raise DatasetFormatError(
            f"{len(images)} images, more than the limit of {opts.limits.max_samples}"
        )
    split_of = _image_layout(images, opts.warnings)
    images = [m for m in images if m.name in split_of]
    class_of = {m.name: m.name.split("/")[-2] for m in images}
    class_names = sorted(set(class_of.values()))

    pixels: dict[str, np.ndarray] = {}
    first: tuple[str, tuple[int, int]] | None = None
    alpha = False
    for m in images:  # archive order: a compressed tar is read front to back once
        arr, dropped = _decode_image(src.read(m), m.name, opts.limits, first)
        alpha |= dropped
        if first is None:
            first = (m.name, (arr.shape[1], arr.shape[0]))
            if len(images) * arr.shape[0] * arr.shape[1] * 3 > opts.limits.max_total_uncompressed:
                raise DatasetFormatError(
                    f"{len(images)} images of {arr.shape[1]}x{arr.shape[0]} pixels exceed "
                    f"{opts.limits.max_total_uncompressed} bytes once decoded"
                )
        pixels[m.name] = arr
    color = any(a.ndim == 3 for a in pixels.values())
    if color and any(a.ndim == 2 for a in pixels.values()):
        opts.warnings.append("grayscale and colour images are mixed; all were made RGB")
    if alpha:
        opts.warnings.append("alpha channels (transparency) were dropped")

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if color:
            arrays = [
                np.repeat(pixels[n][..., None], 3, axis=2) if pixels[n].ndim == 2 else pixels[n]
                for n in names
            ]
            x = np.stack(arrays).transpose(0, 3, 1, 2)
        else:
            x = np.stack([pixels[n] for n in names])[:, None]
        y = np.array([class_names.index(class_of[n]) for n in names], dtype=np.int64)
        return _to_float32(x, "images", opts.warnings), y

    ordered = sorted(pixels, key=lambda n: (class_names.index(class_of[n]), n))
    if all(s is None for s in split_of.values()):
        return _Loaded("uint8", class_names, pool=stack(ordered))
    train = stack([n for n in ordered if split_of[n] == "train"])
    tests = [n for n in ordered if split_of[n] == "test"]
    if not tests:
        opts.warnings.append("no test folder; the train folder was split by test_fraction")
        return _Loaded("uint8", class_names, pool=train)
    return _Loaded("uint8", class_names, train=train, test=stack(tests))


# --------------------------------------------------------------------------------------------
# CIFAR-10-C


def _read_cifar10c(src: _Source, opts: _Options) -> _Loaded:
    labels = [m for m in src.members if _basename(m.name) == "labels.npy"]
    if not labels:
        raise DatasetFormatError("no labels.npy: CIFAR-10-C has <corruption>.npy + labels.npy")
    if len(labels) > 1:
        raise DatasetFormatError(
            f"several labels.npy files ({', '.join(m.name for m in labels)}); upload one "
            "CIFAR-10-C folder"
        )
    label_member = labels[0]
    folder = label_member.name.rpartition("/")[0]
    files = {
        _basename(m.name)[:-4]: m
        for m in src.members
        if m.name.endswith(".npy") and m is not label_member and m.name.rpartition("/")[0] == folder
    }
    if not files:
        raise DatasetFormatError(f"no <corruption>.npy next to {label_member.name}")
    if opts.corruption is not None:
        if opts.corruption not in files:
            raise DatasetFormatError(
                f"corruption {opts.corruption!r} is not in the upload; it has "
                f"{', '.join(sorted(files))}"
            )
        name = opts.corruption
    elif len(files) == 1:
        name = next(iter(files))
    else:
        raise DatasetFormatError(
            f"the upload holds {len(files)} corruptions; choose one with corruption=: "
            f"{', '.join(sorted(files))}"
        )
    severities = [opts.severity] if opts.severity is not None else [1, 2, 3, 4, 5]

    def load(folder_path: Path) -> list[Any]:
        try:
            return list(load_cifar10c(folder_path, corruptions=[name], severities=severities))
        except (CifarCFormatError, FileNotFoundError, ValueError) as exc:
            raise DatasetFormatError(str(exc)) from exc

    if isinstance(src, _DirSource):
        blocks = load(src.root / folder)
    else:
        with tempfile.TemporaryDirectory(prefix="prunescope-cifar10c-") as tmp:
            src.copy_to(label_member, Path(tmp) / "labels.npy")
            src.copy_to(files[name], Path(tmp) / f"{name}.npy")
            blocks = load(Path(tmp))
    x = np.concatenate([b.x for b in blocks])
    y = np.concatenate([b.y for b in blocks])
    if len(y) > opts.limits.max_samples:
        raise DatasetFormatError(f"{len(y)} samples, more than the limit {opts.limits.max_samples}")
    y = _labels(y, "labels.npy", opts.warnings, opts.limits)
    top = int(y.max()) if len(y) else 0
    names = list(CIFAR10_CLASSES) if top < len(CIFAR10_CLASSES) else None
    opts.warnings.append(
        "CIFAR-10-C is an evaluation set: the selection is the test split, the train split is empty"
    )
    extra = {"corruption": name, "severity": opts.severity}
    return _Loaded("uint8", names, test=(x, y), extra=extra)


_READERS: dict[str, Callable[[_Source, _Options], _Loaded]] = {
    "npz": _read_npz,
    "cifar10": _read_cifar10,
    "cifar10c": _read_cifar10c,
    "mnist": _read_mnist,
    "imagefolder": _read_imagefolder,
}


# --------------------------------------------------------------------------------------------
# Public entry points


def read_dataset(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    corruption: str | None = None,
    severity: int | None = None,
    limits: Limits | None = None,
) -> tuple[ArrayDataset, dict[str, Any]]:
    """Read an uploaded dataset file into an :class:`ArrayDataset`.

    Args:
        path: the upload: a zip, tar (optionally gz/bz2/xz), .npz, or a folder.
        fmt: one of :data:`FORMATS`; default: :func:`detect_format` on the content.
        test_fraction: share of each class held out for the test split when the upload has
            a single pool of samples (npz X/y, image folder, a lone split); in (0, 1).
        seed: seed of that stratified split.
        corruption: CIFAR-10-C corruption to read (required when the upload has several).
        severity: CIFAR-10-C severity 1..5 (default: all five, concatenated).
        limits: safety bounds (default :class:`Limits()`).

    Returns:
        ``(dataset, summary)``. dataset: x (N, C, H, W) or (N, D) float32, y (N,) int64.
        summary: ``format``, ``source``, ``n_train``, ``n_test``, ``input_shape``,
        ``num_classes``, ``class_names``, ``class_counts`` ({"train": [...], "test": [...]},
        one count per class), ``normalisation`` ({"mean": [...], "std": [...], "split": ...}:
        per channel (per feature for (N, D)) over the training inputs, or over the test
        inputs when the train split is empty; population std, same units as x),
        ``dtype_in`` (the stored dtype), ``split`` ("file", "random" or "test_only"),
        ``warnings`` (list of str), and for CIFAR-10-C ``corruption`` and ``severity``.

    Raises:
        DatasetFormatError: the upload is unsafe, malformed or not a usable dataset (labels
            out of range, fewer than two classes, NaN/Inf inputs, ...).
        ValueError: a bad argument (fmt, test_fraction, seed, severity).
        FileNotFoundError: ``path`` does not exist.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} should be one of {', '.join(FORMATS)}")
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(f"test_fraction={test_fraction!r} should be in (0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} should be a non-negative integer")
    if severity is not None and (
        isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5
    ):
        raise ValueError(f"severity={severity!r} should be an integer in 1..5")
    if corruption is not None and not isinstance(corruption, str):
        raise ValueError(f"corruption={corruption!r} should be a string")
    limits = limits if limits is not None else Limits()
    opts = _Options(corruption, severity, limits, [])
    path = Path(path)
    with _open_source(path, limits) as src:
        fmt = fmt or _detect(src)
        if src.ignored:
            opts.warnings.append(
                f"ignored {len(src.ignored)} hidden or system files: {', '.join(src.ignored[:3])}"
            )
        loaded = _READERS[fmt](src, opts)
    return _finish(loaded, fmt, path.name, float(test_fraction), seed, opts)


def _finish(
    loaded: _Loaded, fmt: str, source: str, test_fraction: float, seed: int, opts: _Options
) -> tuple[ArrayDataset, dict[str, Any]]:
    warnings = opts.warnings
    params: dict[str, Any] = {"format": fmt, "source": source}
    if loaded.pool is not None:
        x, y = loaded.pool
        tr, te = _stratified_split(y, test_fraction, seed)
        train, test = (x[tr], y[tr]), (x[te], y[te])
        split = "random"
        params.update(test_fraction=test_fraction, seed=seed)
    else:
        split = "file" if loaded.train is not None else "test_only"
        ref = loaded.train if loaded.train is not None else loaded.test
        assert ref is not None
        empty = (ref[0][:0], ref[1][:0])
        train = loaded.train if loaded.train is not None else empty
        test = loaded.test if loaded.test is not None else empty
    params.update({k: v for k, v in loaded.extra.items()})

    y_all = np.concatenate([train[1], test[1]])
    if len(y_all) == 0:
        raise DatasetFormatError("the upload holds no samples")
    if len(y_all) > opts.limits.max_samples:
        raise DatasetFormatError(
            f"{len(y_all)} samples, more than the limit of {opts.limits.max_samples}"
        )
    names = loaded.class_names
    if names is None:
        names = [str(i) for i in range(int(y_all.max()) + 1)]
    for split_name, y in (("train", train[1]), ("test", test[1])):
        if len(y) and int(y.max()) >= len(names):
            raise DatasetFormatError(
                f"{split_name} label {int(y.max())} is out of range for {len(names)} classes "
                f"[0, {len(names)})"
            )
    present = len(np.unique(y_all))
    if len(names) < 2 or present < 2:
        raise DatasetFormatError(
            f"the dataset has {present} class{'es' if present != 1 else ''} with samples; at "
            "least 2 are needed"
        )
    try:
        ds = ArrayDataset(train[0], train[1], test[0], test[1], list(names), params)
    except ValueError as exc:
        raise DatasetFormatError(str(exc)) from exc

    counts = {
        "train": np.bincount(ds.y_train, minlength=len(names)).tolist(),
        "test": np.bincount(ds.y_test, minlength=len(names)).tolist(),
    }
    for split_name, per_class in counts.items():
        if sum(per_class):
            empty_classes = [names[i] for i, c in enumerate(per_class) if c == 0]
            if empty_classes:
                warnings.append(
                    f"{len(empty_classes)} classes have no {split_name} samples: "
                    f"{', '.join(empty_classes[:5])}"
                )
    if split == "random" and not len(ds.y_test):
        warnings.append("the test split is empty: too few samples per class for test_fraction")
    stats_split = "train" if len(ds.y_train) else "test"
    mean, std = _channel_stats(ds.split(stats_split)[0])
    summary: dict[str, Any] = {
        "format": fmt,
        "source": source,
        "n_train": len(ds.y_train),
        "n_test": len(ds.y_test),
        "input_shape": ds.input_shape,
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "class_counts": counts,
        "normalisation": {"mean": mean, "std": std, "split": stats_split},
        "dtype_in": loaded.dtype_in,
        "split": split,
        "warnings": warnings,
        **loaded.extra,
    }
    return ds, summary


def check_classes(ds: ArrayDataset, expected: int) -> None:
    """Refuse a dataset whose class count differs from what a model predicts.

    Raises:
        DatasetFormatError: e.g. "dataset has 10 classes but the model predicts 3".
    """
    if ds.num_classes != expected:
        raise DatasetFormatError(
            f"dataset has {ds.num_classes} classes but the model predicts {expected}"
        )
