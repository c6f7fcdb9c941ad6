"""The job lifecycle both executors share: lost workers are detected, then retried or failed.

    queued -> running -> succeeded | failed | cancelled      (running -> cancelling -> cancelled)

A job whose worker died (the local pool saw the process exit, or its heartbeat went stale on a
Celery worker) goes back to ``queued`` while it has retries left (``Settings.job_retries``),
otherwise it fails with a message that says the worker was lost. A job that was being cancelled
when its worker died is simply cancelled. Every transition is a conditional UPDATE on the row,
so several API processes may run the detection at once without double-queueing a job; the
attempt number a worker claimed guards against a worker that was declared lost but then
finishes anyway (see ``runner.finish``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.specs import RUNNABLE_KINDS

log = logging.getLogger(__name__)

ACTIVE = ("running", "cancelling")


def recover_lost(settings: Settings, job_id: int, reason: str, attempt: int | None = None) -> str:
    """Deal with a job whose worker is gone.

    Args:
        job_id: the job.
        reason: what happened, for the job's stage/error ("worker process exited with -9").
        attempt: when given, act only if the job is still on that attempt (another process
            may already have requeued it, or a new attempt may be running).

    Returns:
        "queued" when the caller must hand the job to the executor again, "failed" or
        "cancelled" when it ended, "" when the job was no longer active (nothing done).
    """
    with session_scope(settings.database_url) as s:
        job = s.scalars(select(JobRow).where(JobRow.id == job_id).with_for_update()).first()
        if job is None or job.status not in ACTIVE:
            return ""
        if attempt is not None and job.attempts != attempt:
            return ""
        guard = (JobRow.id == job_id, JobRow.status == job.status, JobRow.attempts == job.attempts)
        if job.status == "cancelling":
            values = dict(status="cancelled", stage="cancelled", finished_at=utcnow())
            outcome = "cancelled"
        elif job.attempts <= settings.job_retries:
            values = dict(
                status="queued",
                stage=f"retrying: {reason} (attempt {job.attempts} of {settings.job_retries + 1})",
                progress=0.0,
                worker=None,
                heartbeat_at=None,
            )
            outcome = "queued"
        else:
            values = dict(
                status="failed",
                stage="failed",
                finished_at=utcnow(),
                error=f"the worker was lost while running this job ({reason}); "
                f"gave up after {job.attempts} attempt(s)",
            )
            outcome = "failed"
        res = s.execute(update(JobRow).where(*guard).values(**values))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return ""
    log.warning("job %s: %s -> %s", job_id, reason, outcome)
    return outcome


def stale_jobs(settings: Settings) -> list[tuple[int, int]]:
    """(job id, attempt) of active jobs whose heartbeat is older than the timeout."""
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout)
    with session_scope(settings.database_url) as s:
        rows = s.execute(
            select(JobRow.id, JobRow.attempts).where(
                JobRow.status.in_(ACTIVE),
                JobRow.kind.in_(RUNNABLE_KINDS),
                JobRow.heartbeat_at < cutoff,
            )
        ).all()
    return [(int(r[0]), int(r[1])) for r in rows]


def reap_stale(settings: Settings) -> list[int]:
    """Recover every job with a stale heartbeat; returns the ids to hand out again."""
    requeued = []
    for job_id, attempt in stale_jobs(settings):
        reason = f"no heartbeat for more than {settings.heartbeat_timeout:g} s"
        if recover_lost(settings, job_id, reason, attempt=attempt) == "queued":
            requeued.append(job_id)
    return requeued
