"""A worker's memory guard: a job that outgrows the machine fails once, with a reason.

Without it, a job that needs more memory than there is gets its worker killed by the kernel;
the worker looks lost, and the job is retried (``PRUNESCOPE_JOB_RETRIES``), taking the machine
down again each time. :class:`MemoryGuard` watches the worker's resident memory while a job
runs (every 50 ms, from ``/proc/self/statm``); past the limit (``PRUNESCOPE_WORKER_MAX_MEMORY``,
default 90% of the memory of this machine or its container's cgroup) it records the job as
failed, "ran out of memory while <stage>", with both numbers, and ends the worker process at
once: memory that a C extension holds cannot be taken back from inside. The executor starts a
new worker; the job, already failed, is not retried.

Imports must stay light (the runner imports this before torch).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

POLL_S = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident memory in bytes (None where /proc is not there)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE


def machine_memory() -> int | None:
    """The memory this process may use: its cgroup's limit when one is set (a container),
    else the machine's total; None where neither can be read."""
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < (1 << 60):
            total = _meminfo_total()
            return min(int(raw), total) if total else int(raw)
    return _meminfo_total()


def _meminfo_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_limit(configured: int) -> int | None:
    """The guard's limit: ``configured`` bytes, or 90% of :func:`machine_memory` for 0."""
    if configured > 0:
        return configured
    total = machine_memory()
    return int(total * 0.9) if total else None


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


class MemoryGuard(threading.Thread):
    """Watches this process's memory while one job runs (see the module docstring).

    Args:
        limit: bytes of resident memory the worker may reach.
        on_exceeded: called once with ``(rss, limit)`` when the limit is passed; it records
            the failure. The process is then killed (SIGKILL) unless ``kill`` is False.
    """

    def __init__(
        self, limit: int, on_exceeded: Callable[[int, int], None], kill: bool = True
    ) -> None:
        super().__init__(daemon=True, name="memory-guard")
        self.limit = limit
        self.on_exceeded = on_exceeded
        self.kill = kill
        self.stopped = threading.Event()
        self.tripped = False

    def run(self) -> None:
        while not self.stopped.wait(POLL_S):
            rss = rss_bytes()
            if rss is None:
                return
            if rss > self.limit:
                self.tripped = True
                try:
                    self.on_exceeded(rss, self.limit)
                except Exception:  # recording failed: the kill still protects the machine
                    log.exception("could not record the memory failure")
                if self.kill:
                    log.error("worker ends: %s resident, limit %s", gib(rss), gib(self.limit))
                    os.kill(os.getpid(), signal.SIGKILL)
                return

    def stop(self) -> None:
        self.stopped.set()
