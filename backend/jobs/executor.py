"""Executors move job ids to workers.

The embedded default (:class:`LocalExecutor`) runs spawned processes of the server;
:class:`CeleryExecutor` (``Settings.executor = "celery"``) sends the id by task name to Celery
workers (``prunescope worker``) on any host. Both share the job lifecycle of
:mod:`backend.jobs.lifecycle`: a lost worker's job is retried or failed, never half-done.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from typing import Any, Protocol

from sqlalchemy import select, update

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow
from backend.devices import ALWAYS_THERE
from backend.jobs.lifecycle import ACTIVE, reap_stale, recover_lost
from backend.jobs.specs import RUNNABLE_KINDS

log = logging.getLogger(__name__)


class ExecutorUnavailable(RuntimeError):
    """Jobs cannot be handed out right now (the broker is unreachable)."""


class Executor(Protocol):
    def start(self) -> None: ...
    def submit(self, job_id: int, queue: str | None = None) -> None: ...
    def shutdown(self) -> None: ...
    def health(self) -> str: ...


def _exit_when_orphaned(parent: int, interval: float = 1.0) -> None:
    """Watch from a thread of a worker: once the server that started it is gone, end the
    worker at once, even in the middle of a job. Nobody follows that job any more (the next
    server finds it lost and retries or fails it), and running it to its end would hold a
    CPU and its memory for nothing, for as long as the job takes."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            log.warning("the server (pid %s) is gone; this worker ends", parent)
            os._exit(1)


def _worker_main(settings_data: dict[str, Any], jobs: Any, busy: Any, parent: int) -> None:
    """Body of one spawned worker process: run job ids from the queue until a None arrives,
    or until the process that started it is gone (it was killed without shutting us down;
    :func:`_exit_when_orphaned` ends the worker then, mid-job too)."""
    import os

    import torch

    from backend.jobs.runner import run_job

    threading.Thread(
        target=_exit_when_orphaned, args=(parent,), daemon=True, name="orphan-watch"
    ).start()
    settings = Settings(**settings_data)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    warmed = not settings.warm_embeddings
    while True:
        try:
            job_id = jobs.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            if not warmed:
                # numba compiles UMAP on first use (tens of seconds on two cores): do it while
                # idle, so the first comparison does not pay for it
                warmed = True
                from backend.analysis.embeddings import warm_up

                log.info("embeddings warmed up in %.1f s", warm_up(seed=0, large=False))
            continue
        if job_id is None:
            return
        busy.value = job_id
        try:
            run_job(job_id, settings, guard_memory=True)
        except Exception:  # the runner records failures; this guards the loop itself
            log.exception("worker crashed outside job %s", job_id)
        finally:
            busy.value = 0


class LocalExecutor:
    """A pool of spawned worker processes fed through a multiprocessing queue.

    Spawned (not forked) so a worker never inherits a CUDA context or the server's threads.
    A monitor thread notices a worker that died mid-job, marks that job failed with a message
    that says so, and starts a replacement worker.
    """

    def __init__(self, settings: Settings, workers: int | None = None) -> None:
        self.settings = settings
        self.n_workers = workers or settings.workers
        self._ctx = mp.get_context("spawn")
        self._queue: Any = None
        self._procs: list[tuple[Any, Any]] = []
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        # whether settings.device exists (backend.devices): checked once, as the pool starts
        self._device_checked = threading.Event()
        self._device_problem: str | None = None

    def start(self) -> None:
        self._queue = self._ctx.Queue()
        for _ in range(self.n_workers):
            self._procs.append(self._spawn())
        orphans = self._requeue_orphans()
        if self.settings.device in ALWAYS_THERE:
            self._device_checked.set()
            self._put(orphans)
        else:  # a child process asks torch: seconds the server need not wait for
            threading.Thread(
                target=self._check_device, args=(orphans,), daemon=True, name="device-check"
            ).start()
        self._monitor = threading.Thread(target=self._watch, daemon=True, name="executor-monitor")
        self._monitor.start()

    def _check_device(self, orphans: list[int]) -> None:
        from backend.devices import device_problem

        try:
            self._device_problem = device_problem(self.settings.device)
        finally:
            self._device_checked.set()
        if self._device_problem is None:
            self._put(orphans)
        else:  # the orphans stay queued for a server started with a device that exists
            log.error("jobs are refused until the device is changed: %s", self._device_problem)

    def _spawn(self) -> tuple[Any, Any]:
        busy = self._ctx.Value("q", 0)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(self.settings.model_dump(mode="json"), self._queue, busy, os.getpid()),
            daemon=True,
            name="prunescope-worker",
        )
        proc.start()
        return proc, busy

    def _requeue_orphans(self) -> list[int]:
        """Jobs left 'running' by a previous server (this executor owns every local worker)
        go back to the queue; the ids of the queued ones, for the new workers."""
        with session_scope(self.settings.database_url) as s:
            # sweeps are never run themselves: only their child jobs are
            runnable = JobRow.kind.in_(RUNNABLE_KINDS)
            s.execute(
                update(JobRow)
                .where(JobRow.status.in_(ACTIVE), runnable)
                .values(status="queued", stage="requeued after restart")
            )
            ids = s.scalars(
                select(JobRow.id).where(JobRow.status == "queued", runnable).order_by(JobRow.id)
            ).all()
        return list(ids)

    def _put(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self._queue.put(job_id)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for i, (proc, busy) in enumerate(self._procs):
                if proc.is_alive() or self._stop.is_set():
                    continue
                job_id = busy.value
                log.error("worker %s exited with %s during job %s", proc.pid, proc.exitcode, job_id)
                self._procs[i] = self._spawn()
                if job_id:
                    reason = f"worker process exited with code {proc.exitcode}"
                    if recover_lost(self.settings, job_id, reason) == "queued":
                        self._put([job_id])

    def submit(self, job_id: int, queue: str | None = None) -> None:
        """Hand a job to the pool; :class:`ExecutorUnavailable` (503) when the configured
        device does not exist (after its check, which the first submissions may wait for)."""
        if self._queue is None:
            raise RuntimeError("executor not started")
        self._device_checked.wait()
        if self._device_problem is not None:
            raise ExecutorUnavailable(self._device_problem)
        self._queue.put(job_id)

    def health(self) -> str:
        if not self._device_checked.wait(2.0):
            return f"checking: whether device {self.settings.device} exists (once, at start)"
        if self._device_problem is not None:
            return f"unavailable: {self._device_problem}"
        alive = sum(p.is_alive() for p, _ in self._procs)
        return f"ok: {alive} of {self.n_workers} local workers alive"

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._queue is None:
            return
        for _ in self._procs:
            try:
                self._queue.put_nowait(None)
            except (queue.Full, ValueError, OSError):
                pass
        for proc, _ in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
        self._procs.clear()


class InlineExecutor:
    """Runs each job in the calling thread at submission (for scripts and tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self) -> None:
        pass

    def submit(self, job_id: int, queue: str | None = None) -> None:
        from backend.jobs.runner import run_job

        run_job(job_id, self.settings)

    def shutdown(self) -> None:
        pass

    def health(self) -> str:
        return "ok: jobs run inline"


class CeleryExecutor:
    """Sends job ids by task name to Celery workers through the broker; never imports torch.

    A monitor thread finds running jobs whose heartbeat went stale (their worker was killed,
    its host lost power) and requeues or fails them (:func:`backend.jobs.lifecycle.reap_stale`).
    """

    def __init__(self, settings: Settings) -> None:
        from backend.jobs.celery_app import create_celery

        self.settings = settings
        self.app = create_celery(settings)
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    def start(self) -> None:
        self._monitor = threading.Thread(target=self._watch, daemon=True, name="celery-reaper")
        self._monitor.start()

    def _watch(self) -> None:
        period = min(5.0, max(0.5, self.settings.heartbeat_timeout / 4))
        while not self._stop.wait(period):
            try:
                for job_id in reap_stale(self.settings):
                    self.submit(job_id)
            except Exception:  # the database or broker may be down for a while: try again
                log.warning("checking for lost jobs failed", exc_info=True)

    def submit(self, job_id: int, queue: str | None = None) -> None:
        from backend.jobs.celery_app import send_job

        if queue is None:
            with session_scope(self.settings.database_url) as s:
                job = s.get(JobRow, job_id)
                if job is None:
                    raise ValueError(f"job {job_id} does not exist")
                from backend.jobs.specs import queue_for

                queue = queue_for(job.kind, job.spec)
        send_job(self.app, job_id, queue)

    def shutdown(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(5.0)

    def health(self) -> str:
        from backend.jobs.celery_app import ping_broker

        return ping_broker(self.app)


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(settings)
    if settings.executor == "celery":
        return CeleryExecutor(settings)
    raise ValueError(f"executor={settings.executor!r} is not supported")
