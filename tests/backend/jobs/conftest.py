"""The job suite runs on two real stacks: SQLite + LocalExecutor (the embedded default) and
PostgreSQL + CeleryExecutor with real `prunescope worker` processes and the real local Redis.

`settings` is parametrised over sqlite and postgres (tests/backend/conftest.py); `stack` picks
the executor that goes with each database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings

REDIS = "redis://127.0.0.1:6379"
# a Redis database of the tests' own, emptied before each use (0 is left to people)
TEST_REDIS_DB = 13


def redis_or_skip(url: str = f"{REDIS}/{TEST_REDIS_DB}", flush: bool = True) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        if flush:
            client.flushdb()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {url}: {exc}")
        pytest.skip(f"Redis is not reachable at {url}: {exc}")


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_worker(settings: Settings, log: Path, *extra: str, timeout: float = 60.0) -> Worker:
    """`prunescope worker` in a real subprocess; returns once Celery says it is ready."""
    cmd = [sys.executable, "-m", "backend.cli", "worker", "--device", "cpu", *extra]
    out = open(log, "wb")  # noqa: SIM115 - closed when the process ends
    proc = subprocess.Popen(cmd, env=settings.child_environ(), stdout=out, stderr=subprocess.STDOUT)
    worker = Worker(proc, log)
    deadline = time.monotonic() + timeout
    while " ready." not in worker.text():
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker did not start:\n{worker.text()}")
        time.sleep(0.1)
    return worker


@dataclass
class Stack:
    client: TestClient
    settings: Settings
    workers: list[Worker] = field(default_factory=list)
    tmp: Path = Path()

    @property
    def celery(self) -> bool:
        return self.settings.executor == "celery"

    def add_worker(self) -> Worker:
        worker = start_worker(self.settings, self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker


# fast failure detection for the tests; production defaults are 2 s beats, 30 s timeout
TEST_TIMING = {"heartbeat_seconds": 0.5, "heartbeat_timeout": 3.0, "job_retries": 1}


def make_stack(settings: Settings, tmp: Path, **overrides: object) -> Iterator[Stack]:
    values = {**TEST_TIMING, **overrides}
    if settings.database_url.startswith("sqlite"):
        local = settings.model_copy(update=values)
        with TestClient(create_app(local, dashboard=False)) as c:  # LocalExecutor
            yield Stack(c, local, tmp=tmp)
        return
    redis_or_skip()
    values |= {"executor": "celery", "broker_url": f"{REDIS}/{TEST_REDIS_DB}"}
    scaled = settings.model_copy(update=values)
    app = create_app(scaled, dashboard=False)  # migrates before any worker looks
    stack = Stack(TestClient(app), scaled, tmp=tmp)
    try:
        stack.add_worker()
        with stack.client:
            yield stack
    finally:
        for w in stack.workers:
            w.stop()


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(settings, tmp_path)


@pytest.fixture
def stack_no_retry(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(settings, tmp_path, job_retries=0)


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `prunescope worker` processes for given settings; all stopped afterwards."""
    workers: list[Worker] = []

    def spawn(settings: Settings, *extra: str) -> Worker:
        worker = start_worker(settings, tmp_path / f"spawned{len(workers)}.log", *extra)
        workers.append(worker)
        return worker

    yield spawn
    for w in workers:
        w.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Settings], str]]:
    """Start `prunescope serve` for given settings in a real subprocess; returns its URL."""
    import httpx

    procs: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> str:
        log = open(tmp_path / f"serve{len(procs)}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "backend.cli", "serve"]
        proc = subprocess.Popen(cmd, env=settings.child_environ(), stdout=log, stderr=log)
        procs.append(proc)
        url = f"http://127.0.0.1:{settings.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / f"serve{len(procs) - 1}.log").read_text())
            time.sleep(0.2)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def broker_url() -> str:
    """The tests' own (emptied) database on the real local Redis."""
    redis_or_skip()
    return f"{REDIS}/{TEST_REDIS_DB}"
