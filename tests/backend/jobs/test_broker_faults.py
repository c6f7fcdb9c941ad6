"""When the broker is unreachable the API keeps serving reads, answers submissions with 503
quickly, and leaves nothing half-written; when it is back, submissions work again."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.api.app import create_app
from backend.db.session import session_scope
from backend.db.tables import ComparisonRow, JobRow
from backend.jobs.executor import InlineExecutor


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket is closed


def count(settings, table) -> int:
    with session_scope(settings.database_url) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_submissions_get_503_and_reads_work_when_the_broker_is_down(settings):
    down = settings.model_copy(
        update={
            "executor": "celery",
            "broker_url": f"redis://127.0.0.1:{closed_port()}/0",
            "broker_timeout": 1.0,
        }
    )
    with TestClient(create_app(down, dashboard=False)) as c:
        health = c.get("/api/health").json()
        assert health["status"] == "ok" and health["job_queue"].startswith("unreachable")
        ds = c.post("/api/datasets", json={"builtin": "digits"})  # needs no broker
        assert ds.status_code == 201
        t0 = time.monotonic()
        resp = c.post("/api/jobs", json={"kind": "ping", "spec": {}})
        assert time.monotonic() - t0 < 5, "a submission must not hang on a dead broker"
        assert resp.status_code == 503
        assert resp.json()["detail"].startswith("Job queue unavailable: the job broker at redis:")
        assert resp.json()["detail"].endswith("Nothing was submitted.")
        train = {"dataset_id": ds.json()["id"], "architecture": "mlp", "epochs": 1}
        assert c.post("/api/jobs", json={"kind": "train", "spec": train}).status_code == 503
        assert count(down, JobRow) == 0  # nothing half-written
        assert c.get("/api/jobs").json() == {"data": [], "count": 0}
        assert c.get("/api/datasets").json()["count"] == 1


def test_comparison_is_not_left_behind_without_its_job(settings):
    """The broker is down when a comparison is created: 503, and no comparison row is left
    without the compare job that would fill it."""
    with TestClient(create_app(settings, executor=InlineExecutor(settings), dashboard=False)) as c:
        ds = c.post("/api/datasets", json={"builtin": "digits"}).json()
        train = {"dataset_id": ds["id"], "architecture": "mlp", "epochs": 1}
        a = c.post("/api/jobs", json={"kind": "train", "spec": train}).json()["result"]
        prune = {"model_id": a["model_id"], "sparsity": 0.5, "finetune": {"epochs": 0}}
        b = c.post("/api/jobs", json={"kind": "prune", "spec": prune}).json()["result"]
    jobs_before = count(settings, JobRow)
    down = settings.model_copy(
        update={"executor": "celery", "broker_url": f"redis://127.0.0.1:{closed_port()}/0"}
    )
    with TestClient(create_app(down, dashboard=False)) as c:
        body = {"model_a_id": a["model_id"], "model_b_ids": [b["model_id"]], "embedding": "pca"}
        resp = c.post("/api/comparisons", json=body)
        assert resp.status_code == 503, resp.text
        assert count(down, ComparisonRow) == 0
        assert count(down, JobRow) == jobs_before
        assert c.get("/api/comparisons").json()["count"] == 0


@pytest.fixture
def own_redis(tmp_path: Path):
    """A redis-server of this test's own, so it can be stopped without touching others."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = closed_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    procs = [start()]
    yield port, procs, start
    for p in procs:
        p.kill()
        p.wait()


def wait_for(client, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_stopped_broker_then_restarted(pg_settings, own_redis, spawn_worker):
    """A real Redis goes away under a running stack and comes back: submissions fail with 503
    meanwhile, reads keep working, the worker reconnects, and every job that was accepted
    runs exactly once."""
    port, procs, start = own_redis
    stack = pg_settings.model_copy(
        update={
            "executor": "celery",
            "broker_url": f"redis://127.0.0.1:{port}/0",
            "broker_timeout": 1.0,
        }
    )
    app = create_app(stack, dashboard=False)
    spawn_worker(stack)
    with TestClient(app) as c:
        first = c.post("/api/jobs", json={"kind": "ping", "spec": {}})
        assert first.status_code == 201
        assert wait_for(c, first.json()["id"])["status"] == "succeeded"

        procs[0].kill()  # Redis is gone
        procs[0].wait()
        resp = c.post("/api/jobs", json={"kind": "ping", "spec": {}})
        assert resp.status_code == 503
        assert c.get("/api/jobs").json()["count"] == 1  # reads work, nothing half-written
        assert c.get(f"/api/jobs/{first.json()['id']}").status_code == 200

        procs.append(start())  # back on the same port, empty (nothing was persisted)
        accepted = []
        deadline = time.monotonic() + 30
        while len(accepted) < 3:
            assert time.monotonic() < deadline, "submissions never recovered"
            r = c.post("/api/jobs", json={"kind": "ping", "spec": {}})
            if r.status_code == 201:
                accepted.append(r.json()["id"])
            else:
                assert r.status_code == 503
                time.sleep(0.2)
        for job_id in accepted:
            job = wait_for(c, job_id, timeout=90)
            assert job["status"] == "succeeded" and job["attempts"] == 1
        assert c.get("/api/jobs").json()["count"] == 1 + len(accepted)
