"""No orphan after an import that does not finish (issue 19, "Leftovers"), on both real stacks
(see conftest.py): the upload of an import whose worker was killed mid-read goes once the job
has failed, and so does that of a cancelled import, queued or mid-read. Afterwards the store
holds only files that rows name.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest

from backend import artifacts
from backend.db.session import session_scope
from backend.storage import ArtifactStore
from tests.backend.jobs.test_job_suite import _kill_job_process, submit, wait_for

# big enough that reading it takes seconds on one core (~28 MiB deflated, 100 MiB of uint8)
SAMPLES = 100_000


@pytest.fixture(scope="module")
def big_npz() -> bytes:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(SAMPLES, 1, 32, 32), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, y=np.arange(SAMPLES) % 10)
    return buf.getvalue()


def upload(stack: Any, data: bytes, name: str = "big.npz") -> tuple[int, str]:
    """Upload a dataset file through the API; returns its import job's id and the sha256."""
    answer = stack.client.post("/api/datasets/upload", files={"file": (name, data)})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert ArtifactStore(stack.settings.artifact_location).exists(body["sha256"])
    return int(body["job_id"]), str(body["sha256"])


def reading(stack: Any, job_id: int, timeout: float = 120.0) -> dict[str, Any]:
    """Wait until the import is reading its file."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = stack.client.get(f"/api/jobs/{job_id}").json()
        if job["status"] == "running" and job["stage"].startswith("reading"):
            return job
        assert job["status"] not in ("succeeded", "failed", "cancelled"), job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} was never seen reading: {job}")


def gone(store: ArtifactStore, sha: str, timeout: float = 10.0) -> bool:
    """Whether the file leaves the store (the process that ended the job removes it just
    after the job's status is written)."""
    deadline = time.monotonic() + timeout
    while store.exists(sha) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not store.exists(sha)


def orphans(stack: Any) -> set[str]:
    """Files in the store that no row names (nor a download's conversion cache)."""
    store = ArtifactStore(stack.settings.artifact_location)
    with session_scope(stack.settings.database_url) as s:
        referenced = artifacts.referenced_shas(s)
    return artifacts.stored_shas(store) - referenced - artifacts.derived_shas(store)


def test_a_worker_killed_mid_import_leaves_no_orphan(stack_no_retry, big_npz):
    """Its retries spent (none here), the job fails and its upload goes; while a lost job is
    queued again the upload stays (tests/backend/test_artifacts.py, recover_lost)."""
    stack = stack_no_retry
    c, store = stack.client, ArtifactStore(stack.settings.artifact_location)
    job_id, sha = upload(stack, big_npz)
    reading(stack, job_id)
    _kill_job_process(stack, job_id)
    job = wait_for(c, job_id, timeout=90)
    assert job["status"] == "failed" and "worker was lost" in job["error"], job
    assert gone(store, sha)
    assert orphans(stack) == set()
    assert c.get("/api/datasets").json()["count"] == 0


def test_a_cancelled_import_leaves_no_orphan(stack, big_npz):
    c, store = stack.client, ArtifactStore(stack.settings.artifact_location)
    # queued: the only worker is busy, the cancel ends it at once
    blocker = submit(c, "ping", seconds=30.0)
    wait_for(c, blocker["id"], statuses=("running",))
    small = io.BytesIO()
    np.savez(small, x=np.zeros((20, 4), np.float32), y=np.arange(20) % 2)
    queued, queued_sha = upload(stack, small.getvalue(), name="small.npz")
    assert c.post(f"/api/jobs/{queued}/cancel").json()["status"] == "cancelled"
    assert gone(store, queued_sha)
    assert c.post(f"/api/jobs/{blocker['id']}/cancel").json()["status"] == "cancelling"
    assert wait_for(c, blocker["id"])["status"] == "cancelled"
    # running: cancelled while it reads
    job_id, sha = upload(stack, big_npz)
    reading(stack, job_id)
    assert c.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelling"
    job = wait_for(c, job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert gone(store, sha)
    assert orphans(stack) == set()
    assert c.get("/api/datasets").json()["count"] == 0
