"""The job lifecycle on both real stacks (see conftest.py): SQLite + LocalExecutor and
PostgreSQL + CeleryExecutor with a `prunescope worker` process and Redis.

queued -> running -> succeeded | failed | cancelled; a lost worker's job is retried up to
Settings.job_retries and then failed; a retried job never leaves two results.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import func, select

from backend.db.session import session_scope
from backend.db.tables import JobRow, ModelRow

FINAL = ("succeeded", "failed", "cancelled")


def wait_for(client, job_id, statuses=FINAL, timeout=120.0, stage_prefix=None):
    deadline = time.monotonic() + timeout
    job = {}
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses and (
            stage_prefix is None or job["stage"].startswith(stage_prefix)
        ):
            return job
        if job["status"] in FINAL:  # ended otherwise: waiting longer cannot help
            raise AssertionError(f"job {job_id} ended {job['status']}, not {statuses}: {job}")
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")


def submit(client, kind, **spec):
    resp = client.post("/api/jobs", json={"kind": kind, "spec": spec})
    assert resp.status_code == 201, resp.text
    return resp.json()


def row(settings, job_id) -> JobRow:
    with session_scope(settings.database_url) as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        s.expunge(job)
        return job


def models_of_job(settings, job_id) -> int:
    with session_scope(settings.database_url) as s:
        return int(s.scalar(select(func.count()).where(ModelRow.job_id == job_id)) or 0)


@pytest.fixture
def digits(stack):
    return stack.client.post("/api/datasets", json={"builtin": "digits"}).json()["id"]


def test_train_then_prune_run_in_a_worker_process(stack, digits):
    c = stack.client
    train = submit(c, "train", dataset_id=digits, architecture="mlp", epochs=2)
    assert train["status"] == "queued"
    train = wait_for(c, train["id"])
    assert train["status"] == "succeeded", train
    worker = row(stack.settings, train["id"]).worker
    assert worker and int(worker.rsplit(":", 1)[1]) != os.getpid()  # not run in the API
    assert train["attempts"] == 1 and train["progress"] == 1.0
    prune = submit(
        c, "prune", model_id=train["result"]["model_id"], sparsity=0.7, finetune={"epochs": 1}
    )
    prune = wait_for(c, prune["id"])
    assert prune["status"] == "succeeded", prune
    model = c.get(f"/api/models/{prune['result']['model_id']}").json()
    assert model["sparsity"] == pytest.approx(0.7, abs=1e-3)
    assert models_of_job(stack.settings, prune["id"]) == 1


def test_queued_job_cancelled_before_it_runs_never_runs(stack):
    c = stack.client
    blocker = submit(c, "ping", seconds=3.0)  # the single worker is busy with this one
    wait_for(c, blocker["id"], statuses=("running",))
    queued = submit(c, "ping", seconds=0.0)
    assert c.post(f"/api/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    assert wait_for(c, blocker["id"])["status"] == "succeeded"
    time.sleep(0.5)  # the worker has seen the queued job's message by now
    job = row(stack.settings, queued["id"])
    assert job.status == "cancelled" and job.attempts == 0 and job.started_at is None


def test_cancel_mid_training_stops_within_seconds_and_leaves_no_model(stack, digits):
    c = stack.client
    job = submit(c, "train", dataset_id=digits, architecture="digits_cnn", epochs=5000)
    wait_for(c, job["id"], statuses=("running",), stage_prefix="training: epoch")
    t0 = time.monotonic()
    assert c.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelling"
    job = wait_for(c, job["id"], timeout=30)
    assert job["status"] == "cancelled"
    assert time.monotonic() - t0 < 5
    assert c.get("/api/models").json()["count"] == 0


def _kill_job_process(stack, job_id) -> int:
    pid = int(row(stack.settings, job_id).worker.rsplit(":", 1)[1])
    if stack.celery:  # the job runs in the worker's pool child, never in the main process
        assert pid in stack.workers[0].child_pids()
    os.kill(pid, signal.SIGKILL)
    return pid


def test_killed_worker_job_is_retried_and_completes_once(stack, digits):
    c = stack.client
    job = submit(c, "train", dataset_id=digits, architecture="digits_cnn", epochs=6)
    wait_for(c, job["id"], statuses=("running",), stage_prefix="training: epoch")
    killed = _kill_job_process(stack, job["id"])
    job = wait_for(c, job["id"], timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert int(row(stack.settings, job["id"]).worker.rsplit(":", 1)[1]) != killed
    assert models_of_job(stack.settings, job["id"]) == 1
    assert c.get("/api/models").json()["count"] == 1


def test_retried_job_that_had_written_its_model_still_leaves_one(stack, digits):
    """Kill after the result was registered but before the job was marked done: the retry
    updates the same row instead of adding a second model."""
    c = stack.client
    job = submit(c, "train", dataset_id=digits, architecture="mlp", epochs=1)
    job = wait_for(c, job["id"])
    assert job["status"] == "succeeded"
    # replay what a lost worker leaves behind: the model row exists, the job looks running
    from sqlalchemy import update

    with session_scope(stack.settings.database_url) as s:
        s.execute(
            update(JobRow)
            .where(JobRow.id == job["id"])
            .values(status="queued", result=None, finished_at=None)
        )
    c.app.state.executor.submit(job["id"], "gpu")
    again = wait_for(c, job["id"])
    assert again["status"] == "succeeded" and again["attempts"] == 2
    assert again["result"]["model_id"] == job["result"]["model_id"]
    assert models_of_job(stack.settings, job["id"]) == 1


def test_lost_worker_fails_the_job_once_retries_are_spent(stack_no_retry):
    c = stack_no_retry.client
    job = submit(c, "ping", seconds=60.0)
    wait_for(c, job["id"], statuses=("running",))
    _kill_job_process(stack_no_retry, job["id"])
    job = wait_for(c, job["id"], timeout=60)
    assert job["status"] == "failed", job
    assert "worker was lost" in job["error"] and "1 attempt" in job["error"]
    # the pool replaced the lost process: the next job runs
    nxt = wait_for(c, submit(c, "ping", seconds=0.0)["id"], timeout=60)
    assert nxt["status"] == "succeeded"


def test_unknown_job_id_and_unreadable_spec_are_reported_not_fatal(stack):
    c = stack.client
    executor = c.app.state.executor
    executor.submit(987654, "cpu")  # an id this database never had
    with session_scope(stack.settings.database_url) as s:
        bad = JobRow(kind="ping", spec={"seconds": "soon"}, status="queued", stage="queued")
        s.add(bad)
        s.flush()
        bad_id = bad.id
    executor.submit(bad_id, "cpu")
    job = wait_for(c, bad_id)
    assert job["status"] == "failed"
    assert "stored spec cannot be read: spec.seconds" in job["error"], job["error"]
    # the worker survived both
    assert wait_for(c, submit(c, "ping")["id"])["status"] == "succeeded"
    if stack.celery:
        assert "job 987654 does not exist in this database" in stack.workers[0].text()


def test_sweep_children_run_on_the_stack(stack, digits):
    c = stack.client
    parent = wait_for(c, submit(c, "train", dataset_id=digits, architecture="mlp", epochs=1)["id"])
    sweep = submit(
        c,
        "sweep",
        model_id=parent["result"]["model_id"],
        methods=["random", "global_magnitude"],
        sparsities=[0.5],
        finetune={"epochs": 0},
        analyze=False,
    )
    sweep = wait_for(c, sweep["id"], timeout=120)
    assert sweep["status"] == "succeeded", sweep
    assert len(sweep["result"]["model_ids"]) == 2
