"""Runs one job by id: claim, heartbeat, dispatch to its kind, record the outcome.

This is the body every executor calls; tests call it directly without any executor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.artifacts import release_job
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.context import JobCancelled, JobContext, release_memory
from backend.jobs.lifecycle import settle_parent
from backend.jobs.memory import MemoryGuard, gib, memory_limit
from backend.jobs.public_error import NEUTRAL, NEUTRAL_BY_KIND, public_error, server_roots
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(settings: Settings, job_id: int) -> int:
    """Atomically move a queued job to running.

    Returns:
        The attempt number now running (1 for a first run), or 0 when the job does not exist,
        someone else has it, or it already ended (a redelivered message, a duplicate).
    """
    with session_scope(settings.database_url) as s:
        now = utcnow()
        res = s.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == "queued")
            .values(
                status="running",
                started_at=now,
                heartbeat_at=now,
                stage="starting",
                worker=worker_name(),
                attempts=JobRow.attempts + 1,
            )
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            _explain_unclaimable(s, job_id)
            return 0
        attempts = s.scalar(select(JobRow.attempts).where(JobRow.id == job_id))
        return int(attempts or 1)


def _explain_unclaimable(s: Session, job_id: int) -> None:
    job = s.get(JobRow, job_id)
    if job is None:
        # a message for another database (wrong PRUNESCOPE_DATABASE_URL on this worker?) or
        # for a submission that was rolled back
        log.error("job %s does not exist in this database; message dropped", job_id)
    else:
        log.info("job %s is %s (worker %s); nothing to do", job_id, job.status, job.worker)


def finish(settings: Settings, job_id: int, attempt: int, **values: Any) -> bool:
    """Record how attempt ``attempt`` ended (a final status); ignored when the job has moved on
    (a worker that was declared lost and retried elsewhere must not overwrite the newer
    attempt)."""
    with session_scope(settings.database_url) as s:
        res = s.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.attempts == attempt)
            .values(finished_at=utcnow(), **values)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        settle_parent(s, job_id)  # a sweep's child: the sweep's state follows, same transaction
        return True


def check_spec(job: JobRow) -> None:
    """Raise ``JobSpecError`` when the stored spec cannot be read as this kind's spec."""
    from pydantic import ValidationError

    from backend.jobs.specs import SPEC_TYPES

    if job.kind not in SPEC_TYPES:
        raise JobSpecError(f"unknown job kind {job.kind!r}")
    try:
        SPEC_TYPES[job.kind].model_validate(job.spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "spec"
        raise JobSpecError(
            f"the {job.kind} job's stored spec cannot be read: spec.{loc}: {first['msg']}"
        ) from exc


def shown_error(
    exc: BaseException, settings: Settings, store: ArtifactStore, job: JobRow | None
) -> str:
    """The error API readers see (:func:`backend.jobs.public_error.public_error`): no server
    path; the user's file named as they uploaded it (an import job's ``spec.filename``)."""
    spec = job.spec if job is not None and isinstance(job.spec, dict) else {}
    filename, sha = spec.get("filename"), spec.get("upload_sha")
    kind = job.kind if job is not None else ""
    return public_error(
        exc,
        roots=server_roots(settings.data_dir, store.url, str(store.root), store.spool_dir()),
        filename=filename if isinstance(filename, str) else None,
        upload_sha=sha if isinstance(sha, str) else None,
        neutral=NEUTRAL_BY_KIND.get(kind, NEUTRAL),
    )


class JobSpecError(ValueError):
    """A job row whose spec does not deserialise (written by hand, or by another version)."""


class _Heartbeat(threading.Thread):
    def __init__(self, settings: Settings, job_id: int, attempt: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.settings, self.job_id, self.attempt = settings, job_id, attempt
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.heartbeat_seconds):
            try:
                with session_scope(self.settings.database_url) as s:
                    s.execute(
                        update(JobRow)
                        .where(JobRow.id == self.job_id, JobRow.attempts == self.attempt)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # a missed beat is not worth killing the job for
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)


def _guard_memory(settings: Settings, job_id: int, attempt: int) -> MemoryGuard | None:
    """Start the worker's memory guard for this job (:mod:`backend.jobs.memory`): past the
    limit the job fails, "ran out of memory while <stage>", and the worker process ends, so
    the job is not retried into the same wall."""
    limit = memory_limit(settings.worker_max_memory)
    if limit is None:
        return None

    def exceeded(rss: int, lim: int) -> None:
        with session_scope(settings.database_url) as s:
            stage = s.scalar(select(JobRow.stage).where(JobRow.id == job_id)) or "running"
        finish(
            settings,
            job_id,
            attempt,
            status="failed",
            stage="failed",
            error=f"ran out of memory while {stage}: the worker reached {gib(rss)} of memory, "
            f"more than its limit of {gib(lim)} (PRUNESCOPE_WORKER_MAX_MEMORY); the job was "
            "not retried. Use a smaller input or a machine with more memory.",
        )

    guard = MemoryGuard(limit, exceeded)
    guard.start()
    return guard


def run_job(job_id: int, settings: Settings, guard_memory: bool = False) -> str:
    """Claim and run job ``job_id``; returns its final status ('' if it was not claimable).

    Args:
        guard_memory: watch this process's memory (:func:`_guard_memory`); only for worker
            processes, never for a server running jobs inline (the guard ends the process).
    """
    attempt = claim(settings, job_id)
    if not attempt:
        return ""
    from backend.jobs.kinds import get_kind  # imports torch lazily
    from models.onnx_graph import set_graph_loader

    store = ArtifactStore(settings.artifact_location, record=True)  # what it stores: .created
    # imported ONNX models (architecture "onnx") read their stored graph from this store
    set_graph_loader(store.get_bytes)
    ctx = JobContext(job_id, settings, store, settings.torch_device())
    beat = _Heartbeat(settings, job_id, attempt)
    beat.start()
    guard = _guard_memory(settings, job_id, attempt) if guard_memory else None
    job: JobRow | None = None
    cancelled = False
    try:
        with ctx.session() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            s.expunge(job)
        check_spec(job)
        with ctx.forward_checks():  # a cancel also stops a long forward pass, between layers
            result = get_kind(job.kind)(job, ctx)
    except JobCancelled:
        cancelled = True
        finish(settings, job_id, attempt, status="cancelled", stage="cancelled")
        return "cancelled"
    except Exception as exc:
        from backend.pruning.finetune import TrainingCancelled

        if isinstance(exc, TrainingCancelled):
            cancelled = True
            finish(settings, job_id, attempt, status="cancelled", stage="cancelled")
            return "cancelled"
        log.exception("job %s failed", job_id)
        finish(
            settings,
            job_id,
            attempt,
            status="failed",
            stage="failed",
            error=shown_error(exc, settings, store, job),
            traceback=traceback.format_exc()[-20000:],
        )
        return "failed"
    finally:
        beat.stopped.set()
        if guard is not None:
            guard.stop()
        release_job(settings, job_id, attempt=attempt, written=store.created)  # failed/cancelled
        if cancelled:  # the job's frames are gone by now: what it cached goes too
            release_memory()
    if not finish(
        settings, job_id, attempt, status="succeeded", stage="done", progress=1.0, result=result
    ):
        log.warning("job %s attempt %s finished after it was given up on", job_id, attempt)
    return "succeeded"
