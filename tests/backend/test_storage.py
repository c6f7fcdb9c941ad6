from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from backend.storage import ArtifactCorrupted, ArtifactNotFound, ArtifactStore


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["folder", "file-url", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    """The same store contract over a plain folder, a file:// URL and an in-memory fsspec fs."""
    if request.param == "folder":
        yield ArtifactStore(tmp_path / "store")
    elif request.param == "file-url":
        yield ArtifactStore((tmp_path / "store").as_uri())
    else:
        name = f"memory://prunescope-test-{uuid.uuid4().hex}"
        yield ArtifactStore(name)
        fs = fsspec.filesystem("memory")
        root = fs._strip_protocol(name)
        if fs.exists(root):
            fs.rm(root, recursive=True)


def blobs(store: ArtifactStore) -> list[str]:
    """Every file in the store except temporaries, as paths within its filesystem."""
    files = store.fs.find(str(store.root))
    return sorted(f for f in files if not f.endswith(".tmp"))


def temporaries(store: ArtifactStore) -> list[str]:
    return [f for f in store.fs.find(str(store.root)) if f.endswith(".tmp")]


def tamper(store: ArtifactStore, sha: str, data: bytes) -> None:
    """Overwrite a stored blob behind the store's back."""
    key = f"{store.root}/{sha[:2]}/{sha}"
    with store.fs.open(key, "wb") as fh:
        fh.write(data)


# -- behaviour every layout shares -----------------------------------------------------------


def test_roundtrip_is_content_addressed(store: ArtifactStore) -> None:
    data = b"pruned weights" * 1000
    sha = store.put_bytes(data)
    assert sha == sha256(data)
    assert store.exists(sha)
    assert store.get_bytes(sha) == data
    with store.open(sha) as fh:
        assert fh.read() == data
    with store.local_path(sha) as path:
        assert path.read_bytes() == data
    assert blobs(store) == [f"{store.root}/{sha[:2]}/{sha}"]


def test_identical_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 10)
    a = store.put_bytes(b"x" * 10)
    b = store.put_stream(io.BytesIO(b"x" * 10))
    c = store.put_file(src)
    assert a == b == c == sha256(b"x" * 10)
    assert len(blobs(store)) == 1
    assert temporaries(store) == []


def test_large_stream_is_hashed_in_chunks(store: ArtifactStore) -> None:
    data = bytes(range(256)) * 20_000  # 5 MB, several chunks
    sha = store.put_stream(io.BytesIO(data))
    assert sha == sha256(data)
    with store.open(sha) as fh:
        # small reads through the verifying reader, then the end-of-stream check
        parts = []
        while part := fh.read(777_777):
            parts.append(part)
    assert b"".join(parts) == data


def test_corruption_is_detected_by_every_reader(store: ArtifactStore) -> None:
    sha = store.put_bytes(b"original")
    tamper(store, sha, b"tampered")
    with pytest.raises(ArtifactCorrupted, match=sha):
        store.get_bytes(sha)
    assert store.get_bytes(sha, verify=False) == b"tampered"
    with store.open(sha) as fh, pytest.raises(ArtifactCorrupted, match=sha):
        fh.read()
    with store.open(sha) as fh:
        buf = bytearray(3)
        with pytest.raises(ArtifactCorrupted, match=sha):
            while fh.readinto(buf):
                pass
    with pytest.raises(ArtifactCorrupted, match=sha), store.local_path(sha):
        pytest.fail("a corrupted artifact must not be handed out")


def test_missing_artifact_and_bad_digest(store: ArtifactStore) -> None:
    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFound):
        store.get_bytes(missing)
    with pytest.raises(ArtifactNotFound):
        store.open(missing)
    with pytest.raises(ArtifactNotFound), store.local_path(missing):
        pass
    with pytest.raises(ValueError, match="not a lowercase hex sha256"):
        store.get_bytes("../../etc/passwd")


def test_interrupted_write_leaves_no_artifact_and_no_temp_file(store: ArtifactStore) -> None:
    class Flaky(io.RawIOBase):
        """Yields some bytes, then fails the way a dropped upload does."""

        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b):  # type: ignore[no-untyped-def]
            if self.sent >= 3:
                raise OSError("connection reset")
            self.sent += 1
            b[:4] = b"data"
            return 4

    with pytest.raises(OSError, match="connection reset"):
        store.put_stream(Flaky())  # type: ignore[arg-type]
    assert blobs(store) == []
    assert temporaries(store) == []
    assert not store.exists(sha256(b"data" * 3))


def test_url_reopens_the_same_store(store: ArtifactStore) -> None:
    sha = store.put_bytes(b"shared")
    again = ArtifactStore(store.url)
    assert again.url == store.url
    assert again.is_local == store.is_local
    assert again.get_bytes(sha) == b"shared"
    assert ArtifactStore(f"{store.url}/").url == store.url  # a trailing slash names it too


def test_concurrent_puts_of_the_same_content_leave_one_blob(store: ArtifactStore) -> None:
    data = b"same checkpoint" * 50_000
    shas: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def put() -> None:
        try:
            start.wait()
            shas.append(store.put_stream(io.BytesIO(data)))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert shas == [sha256(data)] * 8
    assert len(blobs(store)) == 1
    assert temporaries(store) == []
    assert store.get_bytes(sha256(data)) == data


def test_clean_temp_removes_leftovers(store: ArtifactStore) -> None:
    sha = store.put_bytes(b"kept")
    # where a crashed writer of each layout leaves its temporary file
    tmp_dir = str(store.root) if store.is_local else f"{store.root}/tmp"
    store.fs.pipe_file(f"{tmp_dir}/abc.tmp", b"half")
    assert store.clean_temp() == 1
    assert temporaries(store) == []
    assert store.get_bytes(sha) == b"kept"


# -- layout specifics ------------------------------------------------------------------------


def test_local_layout_and_path(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put_bytes(b"on disk")
    assert store.is_local
    assert store.url == str(tmp_path)
    assert store.root == tmp_path
    assert store.path(sha) == tmp_path / sha[:2] / sha
    with store.local_path(sha) as path:
        assert path == store.path(sha)  # verified in place, not copied
    assert store.path(sha).exists()
    with pytest.raises(ValueError, match="not a lowercase hex sha256"):
        store.path("../../etc/passwd")


def test_file_url_is_a_local_store(tmp_path: Path) -> None:
    store = ArtifactStore((tmp_path / "shared").as_uri())
    assert store.is_local
    assert store.root == tmp_path / "shared"
    assert store.url == str(tmp_path / "shared")
    sha = store.put_bytes(b"v")
    assert (tmp_path / "shared" / sha[:2] / sha).read_bytes() == b"v"


def test_relative_folder_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore("artifacts")
    assert store.url == str(tmp_path / "artifacts")


def test_memory_store_has_no_local_path() -> None:
    store = ArtifactStore(f"memory://prunescope-test-{uuid.uuid4().hex}")
    assert not store.is_local
    assert store.url.startswith("memory://")
    sha = store.put_bytes(b"remote")
    with pytest.raises(RuntimeError, match="not on the local filesystem.*local_path"):
        store.path(sha)
    with store.local_path(sha) as path:
        assert path.read_bytes() == b"remote"
        assert sha256(path.read_bytes()) == sha
    assert not path.exists()  # the download is removed afterwards
    store.fs.rm(str(store.root), recursive=True)


def test_remote_put_skips_upload_of_existing_artifact(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ArtifactStore(f"memory://prunescope-test-{uuid.uuid4().hex}")
    sha = store.put_bytes(b"once")
    opened: list[str] = []
    real_open = store.fs.open

    def spy(path, mode="rb", **kw):  # type: ignore[no-untyped-def]
        opened.append(mode)
        return real_open(path, mode, **kw)

    monkeypatch.setattr(store.fs, "open", spy)
    assert store.put_bytes(b"once") == sha
    assert "wb" not in opened
    store.fs.rm(str(store.root), recursive=True)


def test_failed_local_write_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    class Boom(io.RawIOBase):
        def readinto(self, b):  # type: ignore[no-untyped-def]
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put_stream(Boom())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_clean_temp_in_local_folder(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    (tmp_path / "abc.tmp").write_bytes(b"half")
    assert store.clean_temp() == 1
    assert not (tmp_path / "abc.tmp").exists()
