"""The text a failed job shows to API readers names the user's file and never a server path
(backend/jobs/public_error.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from backend.jobs.public_error import (
    ERROR_CHARS,
    public_error,
    scrub_paths,
    server_roots,
    shown_name,
)
from backend.storage import ArtifactStore

SHA = "65dc4e3d48e2b5bad7dfbaeb3878b0db8c0d533c4d9dd3f7111740933b99bc68"


@pytest.fixture
def roots(tmp_path: Path) -> list[str]:
    # a data folder with a space in its name: the generic path pattern stops at spaces, the
    # known roots must not
    data = tmp_path / "my data"
    return server_roots(data, data / "artifacts")


def test_shown_name_is_the_quoted_file_name_or_a_neutral_word() -> None:
    assert shown_name("model.safetensors") == "'model.safetensors'"
    assert shown_name("C:\\Users\\me\\model.pt") == "'model.pt'"  # a client's whole path
    assert shown_name("/home/me/data.npz") == "'data.npz'"
    assert shown_name("", "the checkpoint") == "the checkpoint"
    assert shown_name(None, "the upload") == "the upload"


def test_server_roots_hold_the_temp_folder_and_never_the_filesystem_root(tmp_path: Path) -> None:
    found = server_roots(tmp_path, "/", "", None, "s3://bucket/prefix/")
    assert str(tmp_path) in found and tempfile.gettempdir() in found
    assert "s3://bucket/prefix" in found
    assert "/" not in found and "" not in found
    assert [len(r) for r in found] == sorted((len(r) for r in found), reverse=True)


@pytest.mark.parametrize(
    "template",
    [
        "'{path}': 'prunescope' metadata is not JSON",  # quoted, as repr() writes it
        '"{path}": not a file',
        "[Errno 2] No such file or directory: '{path}'",  # OSError
        "artifact {sha} is corrupted ({path})",  # in brackets
        "cannot read {path}: permission denied",  # unquoted, before a colon
    ],
)
def test_paths_under_the_roots_become_the_file_name(roots: list[str], template: str) -> None:
    data = [r for r in roots if r.endswith("my data")][0]
    for path in (f"{data}/artifacts/65/{SHA}", f"{data}/upload-x1y2.tmp"):
        text = template.format(path=path, sha=SHA)
        shown = scrub_paths(text, roots=roots, shown="'model.safetensors'", upload_sha=SHA)
        assert data not in shown and "my data" not in shown and SHA[:12] not in shown, shown
        assert "'model.safetensors'" in shown
        assert "''" not in shown  # the path's own quotes went with it


def test_any_other_absolute_path_is_hidden_too() -> None:
    text = (
        "cannot open '/srv/prunescope/cache/x.bin' nor /var/lib/other/y.npy, "
        "nor C:\\ProgramData\\ps\\z.pt"
    )
    shown = scrub_paths(text, shown="the upload")
    assert "/srv" not in shown and "/var" not in shown and "ProgramData" not in shown
    assert shown == "cannot open the upload nor the upload, nor the upload"


@pytest.mark.parametrize(
    "text",
    [
        "sparsity 1/2 of the weights",  # a fraction
        "see https://example.org/docs/page and POST /api/models/upload",  # URL, the REST API
        "shape (1, 3, 32, 32) and classes cats/dogs",  # a relative name
        "divide by /2",  # one part is not a path
        "model 5 is already in comparison 2",
    ],
)
def test_what_is_not_a_server_path_is_kept(text: str) -> None:
    assert scrub_paths(text, shown="'f'") == text


def test_the_upload_is_named_wherever_its_digest_shows() -> None:
    # the stored artifact's name (importer names files by their last part), a remote store's
    # temporary download of it, and the bare digest
    for where in (f"'{SHA}'", f"'artifact-{SHA[:12]}-k2j3h4'", SHA):
        text = f"{where} holds no tensors"
        assert scrub_paths(text, shown="'m.pt'", upload_sha=SHA) == "'m.pt' holds no tensors"


def test_public_error_names_the_type_and_the_file_and_is_bounded(roots: list[str]) -> None:
    data = [r for r in roots if r.endswith("my data")][0]
    exc = ValueError(f"'{data}/artifacts/65/{SHA}': architecture=5 should be a string")
    text = public_error(exc, roots=roots, filename="lying.safetensors", upload_sha=SHA)
    assert text == "ValueError: 'lying.safetensors': architecture=5 should be a string"
    neutral = public_error(exc, roots=roots, upload_sha=SHA, neutral="the checkpoint")
    assert neutral == "ValueError: the checkpoint: architecture=5 should be a string"
    long = public_error(OSError(f"{data}/x " * 10_000), roots=roots)
    assert len(long) == ERROR_CHARS and data not in long


def test_a_real_store_path_is_hidden(tmp_path: Path) -> None:
    """The artifact store's own path of an upload, as an exception from a reader of it says."""
    store = ArtifactStore(tmp_path / "data" / "artifacts")
    sha = store.put_bytes(b"not a checkpoint")
    with store.local_path(sha) as path:
        try:
            open(os.path.join(path, "inner"))  # noqa: SIM115 - raises: the path is a file
        except OSError as exc:
            error = exc
    roots = server_roots(tmp_path / "data", store.url, str(store.root))
    text = public_error(error, roots=roots, filename="m.pt", upload_sha=sha)
    assert str(tmp_path) not in text and sha[:12] not in text
    assert "'m.pt'" in text and text.startswith("NotADirectoryError: ")


def test_a_root_inside_a_relative_path_is_kept() -> None:
    roots = server_roots("/srv/ps")
    assert scrub_paths("member data/tmp/x.png", roots=roots, shown="'f'") == "member data/tmp/x.png"
    assert scrub_paths("in /srv/ps/artifacts/ab", roots=roots, shown="'f'") == "in 'f'"
