"""Celery wiring for ``executor = "celery"``: one task, run by name with a job id.

The API side only publishes ``prunescope.run_job(job_id)`` to an explicit queue (``gpu`` for
model work, ``cpu`` for light comparison work; see ``specs.KIND_QUEUE``); it imports neither
torch nor the job code. The worker side (``prunescope worker``) runs the task body, which is
the same :func:`backend.jobs.runner.run_job` the local executor and the tests call.

Choices, and why:
- ``acks_late`` + prefetch 1 + concurrency 1: a worker holds exactly one job per GPU, and a
  message is acknowledged only when its job ended.
- ``task_reject_on_worker_lost`` stays off: when a job's process dies, PruneScope's own
  lifecycle (heartbeat staleness, ``Settings.job_retries``) decides whether it runs again, so
  the retry budget is counted once, in the database, whatever the broker redelivers. A
  redelivered or duplicated message is harmless: ``runner.claim`` lets only a queued job run.
- ``task_create_missing_queues`` off: a typo in a queue name is an error, not a new queue
  nobody consumes.
- publishing never retries and the broker socket times out after ``Settings.broker_timeout``:
  with Redis down a submission fails fast (the API answers 503) instead of hanging.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu import Exchange, Queue
from sqlalchemy.engine import make_url

from backend.config import Settings
from backend.jobs.specs import QUEUES

log = logging.getLogger(__name__)

TASK_NAME = "prunescope.run_job"


def safe_url(url: str) -> str:
    """A broker or database URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy-style URL: show only the scheme and host part
        return url.split("@")[-1]


def create_celery(settings: Settings) -> Celery:
    """The Celery app for these settings (no connection is opened here)."""
    timeout = settings.broker_timeout
    app = Celery("prunescope", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[
            Queue(q, Exchange("prunescope", type="direct"), routing_key=q) for q in QUEUES
        ],
        task_default_queue="gpu",
        task_default_exchange="prunescope",
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_hijack_root_logger=False,
        task_publish_retry=False,
        broker_connection_timeout=timeout,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
            # a long job's unacknowledged message is redelivered after this; the duplicate is
            # dropped by runner.claim, so this only bounds how long the broker remembers it
            "visibility_timeout": 6 * 3600,
        },
    )

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def run_job_task(job_id: int) -> str:
        """Run one job by id (the body every executor shares)."""
        from backend.jobs.runner import run_job

        return run_job(int(job_id), settings, guard_memory=True)

    return app


def send_job(app: Celery, job_id: int, queue: str) -> None:
    """Publish one job id to ``queue``; raise ``ExecutorUnavailable`` if the broker is down."""
    from kombu.exceptions import OperationalError

    from backend.jobs.executor import ExecutorUnavailable

    if queue not in QUEUES:
        raise ValueError(f"queue={queue!r} is not one of {', '.join(QUEUES)}")
    try:
        app.send_task(TASK_NAME, args=[job_id], queue=queue, retry=False)
    except (OperationalError, OSError, ConnectionError) as exc:
        raise ExecutorUnavailable(
            f"the job broker at {safe_url(str(app.conf.broker_url))} is unreachable ({exc})"
        ) from exc


def ping_broker(app: Celery) -> str:
    """'ok' when the broker answers, else a one-line reason."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
    except Exception as exc:  # any failure means the same to a health check
        return f"unreachable: {safe_url(str(app.conf.broker_url))} ({exc})"
    return "ok"


def worker_process_init(settings: Settings) -> Any:
    """Set up a freshly forked pool process: own database connections, torch threads."""

    def _init(**_kw: Any) -> None:
        from backend.db.session import dispose_engines

        # connections the parent opened must not be shared with the child
        dispose_engines(close=False)
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)

    return _init
