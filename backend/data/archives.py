"""Safe access to the files of an upload: a zip (or .npz), a tar (optionally gz/bz2/xz), or
a folder, through one :class:`Source` interface.

:func:`open_source` tells the container from its first bytes (never from its file name) and
lists it. What this module guarantees to every format reader:

- Every archive is listed and checked before a byte of a member is read: absolute paths,
  ``..`` components, NUL bytes, links, devices, fifos, encrypted members, unsupported zip
  compression methods, duplicate names, more than :attr:`Limits.max_members` entries, more than
  :attr:`Limits.max_total_uncompressed` bytes declared, and a compression ratio above
  :attr:`Limits.max_ratio` (per member and over the archive, above
  :attr:`Limits.ratio_exempt_below`) are refused with a :class:`DatasetFormatError` naming the
  member.
- :attr:`Source.members` holds only regular files, with normalised ``/``-separated names;
  desktop litter (``__MACOSX``, ``Thumbs.db``, hidden files) goes to :attr:`Source.ignored`.
- Every member is read through a bounded reader: never more than its declared size, nor more
  than what is left of the overall budget; a member shorter than declared is refused by
  :meth:`Source.read` and :meth:`Source.copy_to`.
- The decompressed stream of a compressed tar is capped by the same limits, so a lying header
  (a pax record claiming gigabytes, a gzip bomb between members) cannot make tarfile
  decompress past them.
- A single file that is no container (a lone .npy, pickle, idx file or image) is refused with
  a message saying what to upload instead.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from backend.data.limits import DatasetFormatError, Limits

__all__ = [
    "CHUNK",
    "DirSource",
    "Member",
    "Source",
    "TarSource",
    "ZipSource",
    "basename",
    "index_members",
    "open_source",
]

K = TypeVar("K")

CHUNK = 1 << 20
_JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini"}
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class Member:
    """One regular file of a :class:`Source`."""

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


def _check_complete(member: Member, n: int) -> None:
    """Refuse a member that ended before its declared size (its reader refuses a longer one)."""
    if n != member.size:
        raise DatasetFormatError(
            f"{member.name}: {n} bytes, but the archive declares {member.size}"
        )


class _MemberReader(io.RawIOBase):
    """Reads one member, never more than its declared size nor the remaining budget."""

    def __init__(self, inner: IO[bytes], member: Member, source: Source) -> None:
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


class Source:
    """The regular-file members of an upload (zip, tar or folder), checked when listed."""

    def __init__(self, label: str, limits: Limits) -> None:
        self.label = label
        self.limits = limits
        self.members: list[Member] = []
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
            self.members.append(Member(name, size, ref))

    def check_ratio(self, uncompressed: int, compressed: int, what: str) -> None:
        """Refuse ``what`` when it decompresses more than :attr:`Limits.max_ratio` times."""
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
        """Count ``n`` bytes read from member ``name`` against the overall budget."""
        self._budget -= n
        if self._budget < 0:
            raise DatasetFormatError(
                f"{name}: reading it exceeds the limit of "
                f"{self.limits.max_total_uncompressed} uncompressed bytes"
            )

    def _open_raw(self, member: Member) -> IO[bytes]:
        raise NotImplementedError

    def open(self, member: Member) -> io.BufferedReader:
        """A bounded reader of the member (see :class:`_MemberReader`)."""
        return io.BufferedReader(_MemberReader(self._open_raw(member), member, self), CHUNK)

    def read(self, member: Member) -> bytes:
        """The whole member; a member shorter than declared is refused."""
        chunks = []
        with self.open(member) as f:
            while chunk := f.read(CHUNK):
                chunks.append(chunk)
        data = b"".join(chunks)
        _check_complete(member, len(data))
        return data

    def copy_to(self, member: Member, dest: Path) -> None:
        """Write the whole member to ``dest``; a member shorter than declared is refused."""
        with self.open(member) as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out, CHUNK)
            written = out.tell()
        _check_complete(member, written)

    def close(self) -> None:
        """Release the archive."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZipSource(Source):
    """A zip archive (an .npz is one)."""

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
            self.check_ratio(info.file_size, info.compress_size, f"member {name!r}")
            self._add(name, info.file_size, info)
        self.check_ratio(self._total, archive_size, f"archive {self.label!r}")

    def _open_raw(self, member: Member) -> IO[bytes]:
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


class TarSource(Source):
    """A tar archive, plain or gz/bz2/xz-compressed, read front to back through a capped stream."""

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
                self.check_ratio(
                    self._total, compressed, f"archive {self.label!r} at member {name!r}"
                )

    def _open_raw(self, member: Member) -> IO[bytes]:
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


class DirSource(Source):
    """A folder on the server's disk; symbolic links are refused, not followed."""

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

    def _open_raw(self, member: Member) -> IO[bytes]:
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


def open_source(path: Path, limits: Limits) -> Source:
    """The checked listing of a folder, zip or (compressed) tar, told from its first bytes.

    Raises:
        DatasetFormatError: not a container, a corrupt one, or an unsafe one.
        FileNotFoundError: ``path`` does not exist.
    """
    if path.is_dir():
        return DirSource(path, limits)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return ZipSource(path, limits)
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
        return TarSource(path, "gz", limits)
    if head[:3] == b"BZh":
        return TarSource(path, "bz2", limits)
    if head[:6] == b"\xfd7zXZ\x00":
        return TarSource(path, "xz", limits)
    if _is_tar_header(head):
        return TarSource(path, None, limits)
    raise DatasetFormatError(
        f"cannot tell the dataset format of {path.name}: {_single_file_kind(head)}"
    )


def basename(name: str) -> str:
    """The last component of a member name."""
    return name.rsplit("/", 1)[-1]


def index_members(
    members: list[Member],
    key: Callable[[Member], K | None],
    clash: Callable[[K, Member, Member], str],
) -> dict[K, Member]:
    """The members that ``key`` recognises, by key; two with one key raise ``clash(key, a, b)``."""
    found: dict[K, Member] = {}
    for m in members:
        k = key(m)
        if k is not None:
            if k in found:
                raise DatasetFormatError(clash(k, found[k], m))
            found[k] = m
    return found
