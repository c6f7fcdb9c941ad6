"""The shared lifecycle rules, called directly (no executor, no broker): claim, finish,
lost-worker recovery with its retry budget, stale-heartbeat detection, bad job rows."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import update

from backend.db.session import migrate, session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.lifecycle import reap_stale, recover_lost, stale_jobs
from backend.jobs.runner import claim, finish, run_job


@pytest.fixture
def db(settings):
    migrate(settings.database_url)
    return settings.model_copy(update={"job_retries": 2, "heartbeat_timeout": 10.0})


def add_job(settings, **values) -> int:
    with session_scope(settings.database_url) as s:
        job = JobRow(kind="ping", spec={}, status="queued", stage="queued", **values)
        s.add(job)
        s.flush()
        return job.id


def get(settings, job_id) -> JobRow:
    with session_scope(settings.database_url) as s:
        job = s.get(JobRow, job_id)
        s.expunge(job)
        return job


def test_claim_is_exclusive_and_counts_attempts(db):
    job_id = add_job(db)
    assert claim(db, job_id) == 1
    assert claim(db, job_id) == 0  # already running: a duplicate message is dropped
    assert get(db, job_id).status == "running"


def test_retry_budget(db):
    """job_retries=2: attempts 1 and 2 are requeued, the third loss fails the job."""
    job_id = add_job(db)
    outcomes = []
    for _ in range(3):
        attempt = claim(db, job_id)
        outcomes.append(recover_lost(db, job_id, "test kill", attempt=attempt))
    assert outcomes == ["queued", "queued", "failed"]
    job = get(db, job_id)
    assert job.status == "failed" and job.attempts == 3
    assert "worker was lost" in job.error and "3 attempt(s)" in job.error
    assert recover_lost(db, job_id, "again") == ""  # an ended job is left alone


def test_recovery_of_an_old_attempt_is_ignored(db):
    job_id = add_job(db)
    first = claim(db, job_id)
    assert recover_lost(db, job_id, "lost", attempt=first) == "queued"
    second = claim(db, job_id)
    # a second detector still holding the first attempt must not touch the new one
    assert recover_lost(db, job_id, "lost", attempt=first) == ""
    assert get(db, job_id).status == "running"
    # and the lost first attempt cannot overwrite the outcome of the second
    assert not finish(db, job_id, first, status="succeeded", stage="done")
    assert finish(db, job_id, second, status="succeeded", stage="done")


def test_a_job_being_cancelled_is_cancelled_not_retried(db):
    job_id = add_job(db)
    claim(db, job_id)
    with session_scope(db.database_url) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(status="cancelling"))
    assert recover_lost(db, job_id, "lost") == "cancelled"
    assert get(db, job_id).status == "cancelled"


def test_stale_heartbeats_are_found_and_fresh_ones_are_not(db):
    fresh, stale = add_job(db), add_job(db)
    for job_id in (fresh, stale):
        claim(db, job_id)
    with session_scope(db.database_url) as s:
        s.execute(
            update(JobRow)
            .where(JobRow.id == stale)
            .values(heartbeat_at=utcnow() - timedelta(seconds=60))
        )
    assert [j for j, _ in stale_jobs(db)] == [stale]
    assert reap_stale(db) == [stale]
    assert get(db, stale).status == "queued" and get(db, fresh).status == "running"
    assert "no heartbeat for more than 10 s" in get(db, stale).stage


def test_unknown_job_id_is_logged_and_dropped(db, caplog):
    with caplog.at_level(logging.ERROR, logger="backend.jobs.runner"):
        assert run_job(424242, db) == ""
    assert "job 424242 does not exist in this database" in caplog.text


def test_unreadable_spec_fails_the_job_with_a_clear_error(db):
    job_id = add_job(db)
    with session_scope(db.database_url) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(spec={"seconds": -1}))
    assert run_job(job_id, db) == "failed"
    job = get(db, job_id)
    assert job.error.startswith("JobSpecError: the ping job's stored spec cannot be read")
    assert "spec.seconds" in job.error and job.result is None


def test_publishing_a_job_does_not_import_torch(tmp_path):
    """The API side of the Celery executor only moves ids (a broker at a closed port makes the
    send fail fast; what matters is what got imported on the way)."""
    code = (
        "import sys\n"
        "from backend.config import Settings\n"
        "from backend.jobs.executor import CeleryExecutor, ExecutorUnavailable\n"
        f"s = Settings(data_dir={str(tmp_path)!r}, executor='celery',"
        " broker_url='redis://127.0.0.1:9/0', broker_timeout=0.5)\n"
        "try:\n    CeleryExecutor(s).submit(1, 'gpu')\n"
        "except ExecutorUnavailable:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_span_reports_into_its_share_of_the_job(db, tmp_path):
    """A step that reports 0..1 of its own (one model's analysis inside a compare job) moves
    the job's bar within its share only: the demo's bar fell from 79% to 10% (issue 18)."""
    from backend.jobs.context import JobContext
    from backend.storage import ArtifactStore

    job_id = add_job(db)
    ctx = JobContext(job_id, db, ArtifactStore(str(tmp_path / "store")), "cpu")
    seen = []
    for i in range(3):  # three models, each analysed from 0 to 1
        part = ctx.span(0.6 * i / 3, 0.6 * (i + 1) / 3)
        for p in (0.0, 0.1, 0.5, 0.97, 1.0):
            part.report(p, f"model {i}", force=True)
            seen.append(get(db, job_id).progress)
    assert seen == sorted(seen)
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(0.6)
    assert seen[5] == pytest.approx(0.2) and seen[6] == pytest.approx(0.2 + 0.2 * 0.1)
    nested = ctx.span(0.5, 1.0).span(0.5, 1.0)  # spans compose
    nested.report(0.0, "nested", force=True)
    assert get(db, job_id).progress == pytest.approx(0.75)
