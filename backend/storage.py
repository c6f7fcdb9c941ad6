"""Content-addressed artifact store on a local folder or any fsspec filesystem.

Artifacts (datasets, checkpoints, per-sample Parquet tables) are addressed by the sha256 of
their bytes and laid out as ``<root>/<sha[:2]>/<sha>``. Identical content is stored once.

Where the store lives is given by a location string:

* a plain path, or a ``file://`` URL (e.g. a shared volume ``file:///mnt/shared/artifacts``):
  the local filesystem, used directly;
* any other fsspec URL (``memory://name`` in tests, ``s3://bucket/prefix`` when s3fs is
  installed, ...): resolved with :func:`fsspec.core.url_to_fs`. Credentials and endpoints come
  from the backend's usual sources (environment variables, fsspec configuration), so that the
  URL alone, :attr:`ArtifactStore.url`, is enough to rebuild an equivalent store in another
  process.

Atomicity. A reader never sees a half-written artifact:

* local: the bytes go to ``<root>/<random>.tmp`` (same filesystem as the destination), are
  fsynced, and are published with ``os.replace``, which is atomic on POSIX;
* remote: the bytes are uploaded to ``<root>/tmp/<uuid>.tmp`` and then moved into place with
  the filesystem's ``mv``. On object stores that is a server-side copy, and an object only
  becomes visible once complete. When the digest is known before uploading
  (:meth:`ArtifactStore.put_bytes`, :meth:`ArtifactStore.put_file`) an artifact that already
  exists is not uploaded again.

A writer that crashes leaves at most a stray ``.tmp`` file; :meth:`ArtifactStore.clean_temp`
removes them (call it when no writer is running, e.g. at startup, or with ``older_than``).

Listing and age. :meth:`ArtifactStore.list_artifacts` lists every blob with when it was last
stored, so that a sweep can remove those no database row names (backend/artifacts.py) once
they are old enough: storing bytes that are already there refreshes that time on a local
store, so a blob just uploaded again is young again. ``ArtifactStore(location, record=True)``
also notes the digests it newly stores in :attr:`ArtifactStore.created` (a job's store: what a
failed job wrote can be removed).

Verification. The address is the digest, so every read can be checked:
:meth:`ArtifactStore.get_bytes` hashes what it read, :meth:`ArtifactStore.local_path` hashes the
file before handing it out, and the reader returned by :meth:`ArtifactStore.open` hashes as it
is read and raises :class:`ArtifactCorrupted` when the end of the stream is reached.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")


class ArtifactNotFound(KeyError):
    """No artifact with that sha256 in the store."""


class ArtifactCorrupted(IOError):
    """The stored bytes no longer hash to the artifact's address."""


@dataclass(frozen=True)
class StoredArtifact:
    """One blob of a store: its digest, size in bytes and when it was last stored (seconds
    since the epoch; None where the filesystem does not say)."""

    sha: str
    size: int
    stored_at: float | None


def _check_sha(sha: str) -> str:
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"sha={sha!r} is not a lowercase hex sha256 digest")
    return sha


def _fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename into it), where the platform allows it."""
    # Without this a power loss right after os.replace can lose the new name even though the
    # file's bytes were fsynced. Windows cannot open directories, hence best effort.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class VerifyingReader(io.RawIOBase):
    """A read-only stream over an artifact that checks its sha256 as it is read.

    The digest can only be judged once every byte has gone through, so verification happens at
    the end of the stream: the read that reaches end-of-file (``read()`` with no size, or a read
    that returns no bytes) raises :class:`ArtifactCorrupted` if the digest does not match.
    A stream closed before its end is not verified. Seeking is not supported.
    """

    def __init__(self, raw: BinaryIO, sha: str, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._sha = sha
        self._where = where
        self._digest = hashlib.sha256()
        self._verified = False

    def readable(self) -> bool:
        return True

    def _at_eof(self) -> None:
        if not self._verified:
            if self._digest.hexdigest() != self._sha:
                # Kept unverified so that every further read at EOF raises again.
                raise ArtifactCorrupted(f"artifact {self._sha} is corrupted ({self._where})")
            self._verified = True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view)  # type: ignore[attr-defined]
        if n is None:
            raise BlockingIOError("artifact stream is non-blocking and has no data ready")
        if n == 0 and len(view) > 0:
            self._at_eof()
        else:
            self._digest.update(view[:n])
        return int(n)

    def read(self, size: int | None = -1) -> bytes:
        # Delegated rather than inherited: RawIOBase.read() would loop over small readinto calls.
        if size is None or size < 0:
            return self.readall()
        data = self._raw.read(size)
        if not data and size > 0:
            self._at_eof()
        self._digest.update(data)
        return data

    def readall(self) -> bytes:
        data = self._raw.read()
        self._digest.update(data)
        self._at_eof()
        return data

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


class ArtifactStore:
    """Immutable, sha256-addressed blobs in a local folder or an fsspec filesystem.

    Attributes:
        url: Canonical name of the store: the absolute folder for a local store, the fsspec URL
            otherwise. ``ArtifactStore(store.url)`` addresses the same blobs, so it serves as a
            cache key and as the way to hand the store to another process.
        root: The folder (a :class:`~pathlib.Path`) for a local store; the path within the
            filesystem (a string, without protocol) otherwise.
        fs: The fsspec filesystem holding the blobs.
    """

    root: Path | str

    def __init__(self, location: str | Path, record: bool = False) -> None:
        """Open (and create if needed) the store at a location.

        Args:
            location: A folder, a ``file://`` URL, or any URL fsspec knows how to open.
            record: note in :attr:`created` the digest of every blob this object newly
                stores (not those that were there already).
        """
        self.created: set[str] = set()
        self._record = record
        text = os.fspath(location)
        fs_path = text
        if isinstance(location, Path) or ("://" not in text and "::" not in text):
            self.fs: fsspec.AbstractFileSystem = LocalFileSystem()
            self._local: Path | None = Path(os.path.abspath(Path(text).expanduser()))
        else:
            self.fs, fs_path = fsspec.core.url_to_fs(text)
            # file:// URLs (a shared volume) are local: use them with os-level atomic renames.
            is_local = isinstance(self.fs, LocalFileSystem)
            self._local = Path(os.path.abspath(fs_path)) if is_local else None
        if self._local is not None:
            self.root = self._local
            self.url = str(self._local)
            self._local.mkdir(parents=True, exist_ok=True)
        else:
            root = fs_path.rstrip("/")
            self.root = root
            # A chained URL ("simplecache::s3://...") cannot be rebuilt from fs and path alone.
            self.url = text.rstrip("/") if "::" in text else self.fs.unstrip_protocol(root)
            self.fs.makedirs(self._tmp_dir(), exist_ok=True)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    @property
    def is_local(self) -> bool:
        """Whether the blobs are files on this machine's filesystem (see :meth:`path`)."""
        return self._local is not None

    # -- addressing ---------------------------------------------------------------------------

    def path(self, sha: str) -> Path:
        """Where the artifact with this digest lives on disk (it may not exist).

        Raises:
            RuntimeError: The store is not local; use :meth:`local_path` instead.
        """
        _check_sha(sha)
        if self._local is None:
            raise RuntimeError(
                f"artifact store {self.url} is not on the local filesystem, so artifacts have no "
                "local path; use local_path(sha) (a context manager) instead"
            )
        return self._local / sha[:2] / sha

    def _key(self, sha: str) -> str:
        """The artifact's path within :attr:`fs`."""
        _check_sha(sha)
        if self._local is not None:
            return str(self._local / sha[:2] / sha)
        return f"{self.root}/{sha[:2]}/{sha}"

    def _tmp_dir(self) -> str:
        return f"{self.root}/tmp"

    def exists(self, sha: str) -> bool:
        """Whether an artifact with this digest is stored (its content is not checked)."""
        if self._local is not None:
            return self.path(sha).is_file()
        return bool(self.fs.isfile(self._key(sha)))

    # -- writing ------------------------------------------------------------------------------

    def put_stream(self, stream: BinaryIO) -> str:
        """Copy a binary stream into the store, hashing on the way; returns its sha256."""
        if self._local is not None:
            return self._put_local(stream)
        return self._put_remote(stream)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256."""
        # Hashing in memory is cheap next to writing, and spares rewriting a known artifact.
        sha = hashlib.sha256(data).hexdigest()
        if self.exists(sha):
            self._touch(sha)
            return sha
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: str | Path) -> str:
        """Store a copy of a file; returns its sha256."""
        if self._local is None:
            # Reading a local file twice costs less than uploading a duplicate.
            sha = _hash_file(Path(path))
            if self.exists(sha):
                return sha
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def adopt(self, path: str | Path, sha: str) -> str:
        """Move a local file whose sha256 the caller computed while writing it into the store.

        For a local store the file must be on the store's filesystem (e.g. spooled into
        :meth:`spool_dir`): publishing is one atomic rename, with no second pass over the
        bytes. A remote store uploads it. The file is gone afterwards either way.
        """
        _check_sha(sha)
        path = Path(path)
        try:
            if self._local is None:
                with open(path, "rb") as fh:
                    stored = self.put_stream(fh)
                if stored != sha:
                    raise ArtifactCorrupted(f"{path} changed while it was being stored")
                return sha
            dest = self.path(sha)
            if dest.exists():
                self._touch(sha)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                self._note(sha)
            return sha
        finally:
            path.unlink(missing_ok=True)

    def spool_dir(self) -> Path | None:
        """Where uploads should be spooled so :meth:`adopt` can rename them (None: anywhere)."""
        return self._local

    def delete(self, sha: str) -> None:
        """Remove an artifact (only for blobs nothing references, e.g. a refused upload)."""
        if self._local is not None:
            self.path(sha).unlink(missing_ok=True)
        elif self.exists(sha):
            self.fs.rm(self._key(sha))

    def _note(self, sha: str) -> None:
        if self._record:
            self.created.add(sha)

    def _touch(self, sha: str) -> None:
        """Bytes stored again: the blob counts as just stored (a local store; object stores
        cannot change an object's time without copying it)."""
        if self._local is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path(sha))

    def _put_local(self, stream: BinaryIO) -> str:
        assert self._local is not None
        self._local.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        # Same folder as the destination, hence the same filesystem: os.replace stays atomic.
        fd, tmp_name = tempfile.mkstemp(dir=self._local, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            dest = self.path(sha)
            if dest.exists():
                os.unlink(tmp_name)
                self._touch(sha)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, dest)
                _fsync_dir(dest.parent)
                self._note(sha)
            return sha
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def _put_remote(self, stream: BinaryIO) -> str:
        digest = hashlib.sha256()
        tmp = f"{self._tmp_dir()}/{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(tmp, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            if self.exists(sha):
                self.fs.rm_file(tmp)
            else:
                dest = self._key(sha)
                self.fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
                # Two writers of the same content may both get here; the second move replaces
                # the blob with identical bytes, which readers cannot tell apart.
                self.fs.mv(tmp, dest)
                self._note(sha)
            return sha
        except BaseException:
            # Some filesystems commit a file on close even when its writer failed: remove it.
            with contextlib.suppress(Exception):
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            raise

    # -- reading ------------------------------------------------------------------------------

    def get_bytes(self, sha: str, verify: bool = True) -> bytes:
        """Read a whole artifact.

        Args:
            sha: The artifact's sha256 digest.
            verify: Check that the bytes still hash to ``sha``.

        Raises:
            ArtifactNotFound: No such artifact.
            ArtifactCorrupted: ``verify`` and the bytes do not match the digest.
        """
        key = self._key(sha)
        try:
            if self._local is not None:
                data = Path(key).read_bytes()
            else:
                data = self.fs.cat_file(key)
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFound(sha) from None
        if verify and hashlib.sha256(data).hexdigest() != sha:
            raise ArtifactCorrupted(f"artifact {sha} is corrupted ({self._where(sha)})")
        return bytes(data)

    def open(self, sha: str) -> VerifyingReader:
        """Open an artifact for streamed reading.

        The returned reader hashes the bytes as they are read; the read that reaches the end of
        the stream raises :class:`ArtifactCorrupted` if they do not match ``sha``. Bytes read
        before that point are unverified, so consumers must read to the end before trusting
        them (or use :meth:`get_bytes` / :meth:`local_path`).

        Raises:
            ArtifactNotFound: No such artifact.
        """
        key = self._key(sha)
        try:
            raw = open(key, "rb") if self._local is not None else self.fs.open(key, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFound(sha) from None
        return VerifyingReader(raw, sha, self._where(sha))

    @contextlib.contextmanager
    def local_path(self, sha: str) -> Iterator[Path]:
        """A verified local file holding the artifact, for readers that need a filename.

        A local store verifies the file in place and yields its real path (which must not be
        written to). A remote store downloads it to a temporary file, verifying on the way, and
        deletes that file when the block exits.

        Raises:
            ArtifactNotFound: No such artifact.
            ArtifactCorrupted: The bytes do not match the digest.
        """
        if self._local is not None:
            path = self.path(sha)
            try:
                actual = _hash_file(path)
            except (FileNotFoundError, IsADirectoryError):
                raise ArtifactNotFound(sha) from None
            if actual != sha:
                raise ArtifactCorrupted(f"artifact {sha} is corrupted ({path})")
            yield path
            return
        fd, tmp_name = tempfile.mkstemp(prefix=f"artifact-{sha[:12]}-")
        try:
            with os.fdopen(fd, "wb") as out, self.open(sha) as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            yield Path(tmp_name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _where(self, sha: str) -> str:
        return (
            self._key(sha) if self._local is not None else self.fs.unstrip_protocol(self._key(sha))
        )

    # -- maintenance --------------------------------------------------------------------------

    def clean_temp(self, older_than: float | None = None) -> int:
        """Remove temporary files (and folders) named ``*.tmp`` left by writers that crashed;
        returns how many.

        Args:
            older_than: only those last written more than this many seconds ago. Without it
                the temporary files of writers still running are removed too, so call it so
                only when none is (e.g. at startup).
        """
        cutoff = None if older_than is None else time.time() - older_than
        if self._local is not None:
            removed = 0
            for tmp in self._local.glob("*.tmp"):
                try:
                    if cutoff is not None and tmp.stat().st_mtime > cutoff:
                        continue
                    if tmp.is_dir() and not tmp.is_symlink():
                        shutil.rmtree(tmp)
                    else:
                        tmp.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
            return removed
        leftovers = self.fs.glob(f"{self._tmp_dir()}/*.tmp", detail=True)
        removed = 0
        for tmp, info in leftovers.items():
            if cutoff is not None and (_stored_at(info) or cutoff + 1) > cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(tmp)
                removed += 1
        return removed

    def list_artifacts(self) -> Iterator[StoredArtifact]:
        """Every blob in the store (not its temporary files, nor anything else kept beside the
        blobs), in no particular order."""
        if self._local is not None:
            for folder in os.scandir(self._local):
                if not (_PREFIX.fullmatch(folder.name) and folder.is_dir(follow_symlinks=False)):
                    continue
                for entry in os.scandir(folder.path):
                    if not _is_blob(folder.name, entry.name):
                        continue
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                    if entry.is_file(follow_symlinks=False):
                        yield StoredArtifact(entry.name, stat.st_size, stat.st_mtime)
            return
        found = self.fs.glob(f"{self.root}/??/*", detail=True)
        for name, info in found.items():
            folder, _, base = name.rstrip("/").rpartition("/")
            if info.get("type", "file") != "file" or not _is_blob(folder[-2:], base):
                continue
            yield StoredArtifact(base, int(info.get("size") or 0), _stored_at(info))


def _is_blob(folder: str, name: str) -> bool:
    return bool(_SHA256.fullmatch(name)) and name[:2] == folder


def _stored_at(info: dict[str, Any]) -> float | None:
    """When an fsspec entry was last written, from whichever field its filesystem fills in
    (local and sftp: mtime; s3: LastModified; gcs: updated; memory: created)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
