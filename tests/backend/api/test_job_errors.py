"""A failed import's error, as any reader of the job sees it through the API, names the file
the user uploaded and the problem, never a path of the server (issue 19; on SQLite and
PostgreSQL, jobs inline)."""

from __future__ import annotations

import json
import struct
import tempfile

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as safetensors_bytes

from backend.config import Settings

WEIGHTS = {"w": torch.zeros(2, 3)}


def lying_header(data: bytes, **changes: object) -> bytes:
    """A safetensors file whose JSON header says something else than its bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.update(changes)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def with_meta(meta: str) -> bytes:
    return safetensors_bytes(WEIGHTS, metadata={"prunescope": meta})


# what the file holds, and what its job's error must say about it
LIES = {
    "metadata not JSON": (with_meta("not json"), "metadata is not JSON"),
    "unknown format version": (
        with_meta('{"format_version": 99, "architecture": "mlp"}'),
        "format_version=99",
    ),
    "architecture not a string": (
        with_meta('{"format_version": 1, "architecture": 5}'),
        "architecture=5 should be a string",
    ),
    "offsets past the data": (
        lying_header(
            safetensors_bytes(WEIGHTS),
            w={"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 4096]},
        ),
        "ends at byte 4096 of the data",
    ),
    "metadata not text": (
        lying_header(safetensors_bytes(WEIGHTS), __metadata__={"prunescope": 5}),
        "__metadata__ should map str to str",
    ),
    "kwargs not an object": (
        with_meta('{"format_version": 1, "architecture": "mlp", "kwargs": [1]}'),
        "kwargs=[1] should be a JSON object",
    ),
}


@pytest.mark.parametrize("lie", LIES, ids=list(LIES))
def test_a_lying_checkpoint_fails_naming_the_file_not_the_server(
    client: TestClient, settings: Settings, lie: str
) -> None:
    data, problem = LIES[lie]
    filename = "my lying model.safetensors"
    answer = client.post("/api/models/upload", files={"file": (filename, data)})
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    job = client.get(f"/api/jobs/{upload['job_id']}").json()
    assert job["status"] == "failed", job
    error = job["error"]
    assert f"'{filename}'" in error and problem in error, error
    server = {
        str(settings.data_dir),
        str(settings.artifact_location),
        tempfile.gettempdir(),
        "artifacts/",
        upload["sha256"][:12],  # the stored copy's name is the digest
    }
    assert not [s for s in server if s in error], error
    assert error.count("'") % 2 == 0  # no path left half-quoted ("'/x/'name''")
    # the listing shows the same text
    listed = {j["id"]: j for j in client.get("/api/jobs").json()["data"]}
    assert listed[job["id"]]["error"] == error


def test_a_truncated_dataset_fails_naming_the_file_not_the_server(
    client: TestClient, settings: Settings
) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((10, 1, 4, 4), np.uint8), y=np.arange(10) % 2)
    data = buf.getvalue()[: len(buf.getvalue()) // 2]
    answer = client.post("/api/datasets/upload", files={"file": ("my data.npz", data)})
    assert answer.status_code == 201, answer.text
    job = client.get(f"/api/jobs/{answer.json()['job_id']}").json()
    assert job["status"] == "failed", job
    assert "'my data.npz'" in job["error"], job["error"]
    assert str(settings.data_dir) not in job["error"] and tempfile.gettempdir() not in job["error"]
