"""Content-addressed artifact store (local folder).

Artifacts (datasets, checkpoints, per-sample Parquet tables) are addressed by the sha256 of
their bytes and laid out as ``<root>/<sha[:2]>/<sha>``. Every write goes to a temporary file in
the destination folder and is published with ``os.replace``, so a reader never sees a half-written
artifact, and a crash leaves at most a stray ``.tmp`` file that :meth:`ArtifactStore.clean_temp`
removes. Identical content is stored once.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class ArtifactNotFound(KeyError):
    """No artifact with that sha256 in the store."""


class ArtifactCorrupted(IOError):
    """The bytes on disk no longer hash to the artifact's address."""


def _check_sha(sha: str) -> str:
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError(f"sha={sha!r} is not a lowercase hex sha256 digest")
    return sha


class ArtifactStore:
    """A folder of immutable, sha256-addressed blobs."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        """Where the artifact with this digest lives (it may not exist)."""
        _check_sha(sha)
        return self.root / sha[:2] / sha

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put_stream(self, stream: BinaryIO) -> str:
        """Copy a binary stream into the store, hashing on the way; returns its sha256."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self.root, suffix=".tmp")
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
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, dest)
            return sha
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their sha256."""
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: str | Path) -> str:
        """Store a copy of a file; returns its sha256."""
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def get_bytes(self, sha: str, verify: bool = True) -> bytes:
        """Read an artifact, checking that it still hashes to its address."""
        path = self.path(sha)
        if not path.is_file():
            raise ArtifactNotFound(sha)
        data = path.read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != sha:
            raise ArtifactCorrupted(f"artifact {sha} is corrupted on disk ({path})")
        return data

    def open(self, sha: str) -> BinaryIO:
        """Open an artifact for reading (no verification: for large, streamed reads)."""
        path = self.path(sha)
        if not path.is_file():
            raise ArtifactNotFound(sha)
        return open(path, "rb")

    def clean_temp(self) -> int:
        """Remove temporary files left by writers that crashed; returns how many."""
        removed = 0
        for tmp in self.root.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed
