"""What a job kind's ``run(job, ctx)`` gets: device, progress, artifact store, cancellation."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)

_RELEASERS: list[Callable[[], None]] = []


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


def on_release(release: Callable[[], None]) -> Callable[[], None]:
    """Register ``release`` (e.g. a module-level cache's ``cache_clear``) with
    :func:`release_memory`; returns it. Job kinds register their caches when imported."""
    if release not in _RELEASERS:
        _RELEASERS.append(release)
    return release


def release_memory() -> None:
    """Give back what a job that ended without a result (cancelled) still holds: empty the
    registered module-level caches (:func:`on_release`), collect reference cycles (models,
    fx graphs and hooks form them), return cached GPU memory to the driver and freed heap to
    the operating system. The runner calls it once the job's frames are gone."""
    for release in _RELEASERS:
        try:
            release()
        except Exception:  # one cache that cannot be cleared must not keep the others
            log.warning("releasing %r failed", release, exc_info=True)
    gc.collect()
    torch = sys.modules.get("torch")  # only if a job imported it
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


@dataclass
class JobContext:
    """Services a running job uses; the job never touches executors."""

    job_id: int
    settings: Settings
    store: ArtifactStore
    device: str
    min_report_interval: float = 0.25
    _last_report: float = field(default=0.0, repr=False)
    _last_check: float = field(default=0.0, repr=False)
    _cancel_requested: bool = field(default=False, repr=False)
    # the part of the job's progress this context reports into (see :meth:`span`)
    _span: tuple[float, float] = field(default=(0.0, 1.0), repr=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.settings.database_url) as s:
            yield s

    def span(self, lo: float, hi: float) -> JobContext:
        """This context for a part of the job: its ``report(0..1)`` fills ``lo..hi`` of this
        one's progress, so a step that reports from 0 to 1 (analysing one model of a compare
        job) moves the job's bar forward only."""
        start, end = self._span
        return replace(self, _span=(start + (end - start) * lo, start + (end - start) * hi))

    def report(self, progress: float, stage: str, force: bool = False) -> None:
        """Write progress (0..1 of this context's span) and a short stage text to the job row
        (throttled)."""
        start, end = self._span
        progress = start + (end - start) * min(max(float(progress), 0.0), 1.0)
        now = time.monotonic()
        if not force and now - self._last_report < self.min_report_interval and progress < 1.0:
            return
        self._last_report = now
        with self.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == self.job_id)
                .values(progress=min(max(float(progress), 0.0), 1.0), stage=stage[:200])
            )

    def should_stop(self) -> bool:
        """True once cancellation of this job was requested (checked at most twice a second)."""
        if self._cancel_requested:
            return True
        now = time.monotonic()
        if now - self._last_check < 0.5:
            return False
        self._last_check = now
        with self.session() as s:
            status = s.get(JobRow, self.job_id, populate_existing=True)
            self._cancel_requested = status is not None and status.status == "cancelling"
        return self._cancel_requested

    def check_cancelled(self) -> None:
        if self.should_stop():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    @contextmanager
    def forward_checks(self) -> Iterator[None]:
        """Inside the block, check for cancellation before the forward pass of every module
        this thread calls (a global forward pre-hook of torch), so a job also stops inside a
        long forward pass (a large model on a large batch takes many seconds on a CPU), within
        one layer. Other threads' forward passes are not checked: the runner wraps each job
        in this, and inline jobs of a server run in threads of their own."""
        import torch

        owner = threading.get_ident()

        def check(_module: object, _args: object) -> None:
            if threading.get_ident() == owner:
                self.check_cancelled()

        handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
        try:
            yield
        finally:
            handle.remove()
