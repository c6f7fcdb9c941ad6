"""The LocalExecutor runs jobs in real spawned worker processes."""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app


def wait_for(client, job_id, statuses=("succeeded", "failed", "cancelled"), timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")


@pytest.fixture
def local_client(settings):
    with TestClient(create_app(settings, dashboard=False)) as c:  # default: LocalExecutor
        yield c


def test_train_prune_analyze_in_worker_processes(local_client, settings):
    c = local_client
    ds = c.post("/api/datasets", json={"builtin": "digits"}).json()
    job = c.post(
        "/api/jobs",
        json={
            "kind": "train",
            "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 3},
        },
    ).json()
    assert job["status"] == "queued"
    job = wait_for(c, job["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["heartbeat_at"] is not None
    _worker_pid(settings, job["id"])  # ran in another process, not in this one
    original = job["result"]["model_id"]
    prune = c.post(
        "/api/jobs",
        json={
            "kind": "prune",
            "spec": {"model_id": original, "sparsity": 0.8, "finetune": {"epochs": 1}},
        },
    ).json()
    prune = wait_for(c, prune["id"])
    assert prune["status"] == "succeeded", prune
    pruned = prune["result"]["model_id"]
    assert c.get(f"/api/models/{pruned}").json()["sparsity"] == pytest.approx(0.8, abs=1e-3)
    comp = c.post(
        "/api/comparisons",
        json={"model_a_id": original, "model_b_ids": [pruned], "embedding": "pca"},
    )
    assert comp.status_code == 201
    compare = wait_for(c, comp.json()["job_id"])
    assert compare["kind"] == "compare" and compare["status"] == "succeeded", compare
    assert c.get(f"/api/comparisons/{comp.json()['id']}/results").status_code == 200
    view = c.get(f"/api/comparisons/{comp.json()['id']}/view")
    assert view.status_code == 200
    assert view.json()["analysis_b"]["n_samples"] == 450


def _worker_pid(settings, job_id) -> int:
    from backend.db.session import session_scope
    from backend.db.tables import JobRow

    with session_scope(settings.database_url) as s:
        worker = s.get(JobRow, job_id).worker
    assert worker and worker != f"{os.uname().nodename}:{os.getpid()}", worker
    return int(worker.rsplit(":", 1)[1])


def test_workers_exit_when_the_server_is_killed(settings):
    """A server killed without a shutdown (SIGKILL) must not leave orphaned worker processes."""
    import subprocess
    import sys

    import httpx
    import psutil

    env = {
        **os.environ,
        "PRUNESCOPE_DATA_DIR": str(settings.data_dir),
        "PRUNESCOPE_PORT": str(settings.port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and not workers:
            try:
                httpx.get(f"http://127.0.0.1:{settings.port}/api/health", timeout=1)
                workers = psutil.Process(server.pid).children()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert workers, "the server started no worker process"
        server.kill()
        server.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], f"orphaned workers still running: {alive}"
    finally:
        if server.poll() is None:
            server.kill()


def test_cancelled_lottery_ticket_leaves_no_partial_lineage(local_client):
    """Cancel after a round has finished: neither the rounds nor the final model appear."""
    c = local_client
    ds = c.post("/api/datasets", json={"builtin": "digits"}).json()
    parent = c.post(
        "/api/jobs",
        json={
            "kind": "train",
            "spec": {"dataset_id": ds["id"], "architecture": "mlp", "epochs": 1},
        },
    ).json()
    parent = wait_for(c, parent["id"])
    job = c.post(
        "/api/jobs",
        json={
            "kind": "prune",
            "spec": {
                "model_id": parent["result"]["model_id"],
                "method": "lottery_ticket",
                "sparsity": 0.9,
                "params": {"prune_fraction": 0.5},
                "finetune": {"epochs": 40},
            },
        },
    ).json()
    deadline = time.monotonic() + 120
    while not c.get(f"/api/jobs/{job['id']}").json()["stage"].startswith("round 2"):
        assert time.monotonic() < deadline, "the job never reached round 2"
        time.sleep(0.1)
    t0 = time.monotonic()
    c.post(f"/api/jobs/{job['id']}/cancel")
    job = wait_for(c, job["id"], timeout=30)
    assert job["status"] == "cancelled"
    assert time.monotonic() - t0 < 10
    assert c.get("/api/models").json()["count"] == 1  # the parent only


def test_a_worker_busy_with_a_job_exits_when_the_server_is_killed(settings):
    """The same, with the worker in the middle of a long job: it used to run the job to its
    end with nobody left to watch it (found: a worker orphaned for an hour at full CPU by a
    test server killed mid-job). A new server finds the job lost and deals with it."""
    import subprocess
    import sys

    import httpx
    import psutil

    env = {
        **os.environ,
        "PRUNESCOPE_DATA_DIR": str(settings.data_dir),
        "PRUNESCOPE_PORT": str(settings.port),
        "PRUNESCOPE_WARM_EMBEDDINGS": "false",
    }
    url = f"http://127.0.0.1:{settings.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        job = httpx.post(f"{url}/api/jobs", json={"kind": "ping", "spec": {"seconds": 600}})
        assert job.status_code == 201, job.text
        while httpx.get(f"{url}/api/jobs/{job.json()['id']}").json()["status"] != "running":
            assert time.monotonic() < deadline + 60, "the ping job never ran"
            time.sleep(0.2)
        workers = psutil.Process(server.pid).children()
        server.kill()
        server.wait(10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], f"orphaned workers still running their job: {alive}"
    finally:
        if server.poll() is None:
            server.kill()
