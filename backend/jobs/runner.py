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

from sqlalchemy import update

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.context import JobCancelled, JobContext
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(settings: Settings, job_id: int) -> bool:
    """Atomically move a queued job to running; False when someone else has it or it ended."""
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
        return res.rowcount == 1  # type: ignore[attr-defined]


def _finish(settings: Settings, job_id: int, **values: Any) -> None:
    with session_scope(settings.database_url) as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(finished_at=utcnow(), **values))


class _Heartbeat(threading.Thread):
    def __init__(self, settings: Settings, job_id: int) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.settings, self.job_id = settings, job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.heartbeat_seconds):
            try:
                with session_scope(self.settings.database_url) as s:
                    s.execute(
                        update(JobRow).where(JobRow.id == self.job_id).values(heartbeat_at=utcnow())
                    )
            except Exception:  # a missed beat is not worth killing the job for
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)


def run_job(job_id: int, settings: Settings) -> str:
    """Claim and run job ``job_id``; returns its final status ('' if it was not claimable)."""
    if not claim(settings, job_id):
        return ""
    from backend.jobs.kinds import get_kind  # imports torch lazily

    store = ArtifactStore(settings.artifacts)
    ctx = JobContext(job_id, settings, store, settings.torch_device())
    beat = _Heartbeat(settings, job_id)
    beat.start()
    try:
        with ctx.session() as s:
            job = s.get(JobRow, job_id)
            assert job is not None
            s.expunge(job)
        result = get_kind(job.kind)(job, ctx)
    except JobCancelled:
        _finish(settings, job_id, status="cancelled", stage="cancelled")
        return "cancelled"
    except Exception as exc:
        from backend.pruning.finetune import TrainingCancelled

        if isinstance(exc, TrainingCancelled):
            _finish(settings, job_id, status="cancelled", stage="cancelled")
            return "cancelled"
        log.exception("job %s failed", job_id)
        _finish(
            settings,
            job_id,
            status="failed",
            stage="failed",
            error=f"{type(exc).__name__}: {exc}"[:2000],
            traceback=traceback.format_exc()[-20000:],
        )
        return "failed"
    finally:
        beat.stopped.set()
    _finish(settings, job_id, status="succeeded", stage="done", progress=1.0, result=result)
    return "succeeded"
