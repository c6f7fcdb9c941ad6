"""The job lifecycle both executors share: lost workers are detected, then retried or failed.

    queued -> running -> succeeded | failed | cancelled      (running -> cancelling -> cancelled)

A job whose worker died (the local pool saw the process exit, or its heartbeat went stale on a
Celery worker) goes back to ``queued`` while it has retries left (``Settings.job_retries``),
otherwise it fails with a message that says the worker was lost. A job that was being cancelled
when its worker died is simply cancelled. Either way, what only it held leaves the artifact
store (an import's upload: :func:`backend.artifacts.release_job`). Every transition is a
conditional UPDATE on the row, so several API processes may run the detection at once without
double-queueing a job; the attempt number a worker claimed guards against a worker that was
declared lost but then finishes anyway (see ``runner.finish``).

A sweep is never run: its status, progress and stage follow its child prune jobs
(:func:`sweep_state`, a pure function that reads derive them with). Whoever moves a child to a
final status (``runner.finish``, :func:`recover_lost`, a cancel, a withdrawn submission) also
stores the sweep's state (:func:`settle_parent`), in the same transaction; reads never write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.artifacts import release_job
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.specs import FINAL_STATUSES, RUNNABLE_KINDS

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
        if outcome != "queued":
            settle_parent(s, job_id)
    log.warning("job %s: %s -> %s", job_id, reason, outcome)
    if outcome != "queued":
        release_job(settings, job_id)  # an import's upload bytes, unless a row names them
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


def sweep_state(status: str, children: Sequence[JobRow]) -> dict[str, Any]:
    """What a sweep shows, from its child jobs: ``status``, ``progress`` (the children's mean)
    and ``stage`` ("3/8 child jobs done"); once every child has ended also ``error``,
    ``finished_at`` (the last child's) and ``result`` (``child_job_ids``, ``model_ids``).

    Pure: it reads the rows and changes nothing. ``status`` is the sweep's stored status (a
    sweep whose cancel was asked ends "cancelled"; one already final stays as it is).
    """
    if status in FINAL_STATUSES:
        return {}
    done = [c for c in children if c.status in FINAL_STATUSES]
    state: dict[str, Any] = {
        "status": status,
        "progress": sum(c.progress for c in children) / len(children) if children else 1.0,
        "stage": f"{len(done)}/{len(children)} child jobs done",
    }
    if len(done) < len(children):
        return state
    failed = [c for c in done if c.status == "failed"]
    state["error"] = None
    if failed:
        state["status"] = "failed"
        state["error"] = f"{len(failed)} of {len(children)} child jobs failed"
    elif all(c.status == "cancelled" for c in done) or status == "cancelling":
        state["status"] = "cancelled"
    else:
        state["status"] = "succeeded"
    ends: list[datetime] = [c.finished_at for c in done if c.finished_at is not None]
    state["finished_at"] = max(ends) if ends else None
    state["result"] = {
        "child_job_ids": [c.id for c in children],
        "model_ids": [c.result["model_id"] for c in done if c.result],
    }
    return state


def sweep_children(session: Session, sweep_ids: Sequence[int]) -> dict[int, list[JobRow]]:
    """The child jobs of these sweeps, by sweep id, read afresh (workers change them)."""
    found: dict[int, list[JobRow]] = {i: [] for i in sweep_ids}
    if sweep_ids:
        rows = session.scalars(
            select(JobRow)
            .where(JobRow.parent_job_id.in_(list(sweep_ids)))
            .order_by(JobRow.id)
            .execution_options(populate_existing=True)
        ).all()
        for row in rows:
            found[row.parent_job_id].append(row)  # type: ignore[index]
    return found


def settle_sweep(session: Session, sweep_id: int) -> None:
    """Store a sweep's state as its children now say (the caller commits). The sweep row is
    locked first, so two children ending at once cannot store an older state last."""
    sweep = session.scalars(
        select(JobRow)
        .where(JobRow.id == sweep_id, JobRow.kind == "sweep")
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if sweep is None or sweep.status in FINAL_STATUSES:
        return
    state = sweep_state(sweep.status, sweep_children(session, [sweep_id])[sweep_id])
    if state.get("status") in FINAL_STATUSES and state.get("finished_at") is None:
        state["finished_at"] = utcnow()
    for key, value in state.items():
        setattr(sweep, key, value)


def settle_parent(session: Session, job_id: int) -> None:
    """After job ``job_id`` ended: store the state of the sweep it belongs to, if any."""
    parent = session.scalar(select(JobRow.parent_job_id).where(JobRow.id == job_id))
    if parent is not None:
        session.flush()
        settle_sweep(session, parent)
