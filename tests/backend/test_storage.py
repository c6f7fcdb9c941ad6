from __future__ import annotations

import hashlib
import io

import pytest

from backend.storage import ArtifactCorrupted, ArtifactNotFound, ArtifactStore


def test_put_get_roundtrip_is_content_addressed(tmp_path):
    store = ArtifactStore(tmp_path)
    data = b"pruned weights" * 1000
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(sha) == data
    assert store.path(sha) == tmp_path / sha[:2] / sha


def test_identical_content_is_stored_once(tmp_path):
    store = ArtifactStore(tmp_path)
    a = store.put_bytes(b"x" * 10)
    b = store.put_stream(io.BytesIO(b"x" * 10))
    assert a == b
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_large_stream_is_hashed_in_chunks(tmp_path):
    store = ArtifactStore(tmp_path)
    data = bytes(range(256)) * 20_000  # 5 MB, several chunks
    sha = store.put_stream(io.BytesIO(data))
    assert sha == hashlib.sha256(data).hexdigest()


def test_corruption_is_detected_on_read(tmp_path):
    store = ArtifactStore(tmp_path)
    sha = store.put_bytes(b"original")
    store.path(sha).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupted, match=sha):
        store.get_bytes(sha)


def test_missing_artifact_and_bad_digest(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("0" * 64)
    with pytest.raises(ValueError, match="not a lowercase hex sha256"):
        store.path("../../etc/passwd")


def test_failed_write_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)

    class Boom(io.RawIOBase):
        def readinto(self, b):  # type: ignore[no-untyped-def]
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put_stream(Boom())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_clean_temp_removes_leftovers(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / "abc.tmp").write_bytes(b"half")
    assert store.clean_temp() == 1
    assert not (tmp_path / "abc.tmp").exists()
