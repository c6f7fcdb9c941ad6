"""Job dispatch: how long a trivial job waits between submission and starting, and how many
trivial jobs per second two workers get through (issue 6).

- job_dispatch_local: median over 100 ping jobs of (started_at - created_at) with the
  embedded default (SQLite + LocalExecutor, spawned workers), against the bare transport it
  uses: a multiprocessing queue hand-off to a spawned process.
- job_dispatch_celery: the same with PostgreSQL + CeleryExecutor + Redis + a real
  `prunescope worker`, against job_dispatch_local measured in this run.
- job_throughput_celery: 200 ping jobs submitted at once, two Celery workers, jobs finished
  per second, against the LocalExecutor with two workers on the same 200 jobs.

Needs the local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_line  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select  # noqa: E402

from backend.api.app import create_app  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.db.session import session_scope  # noqa: E402
from backend.db.tables import JobRow  # noqa: E402

N_DISPATCH = 100
N_THROUGHPUT = 200
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER = "redis://127.0.0.1:6379/12"


def _echo(q_in: mp.Queue, q_out: mp.Queue) -> None:  # type: ignore[type-arg]
    while (item := q_in.get()) is not None:
        q_out.put((item, time.time()))


def bare_queue_handoff() -> float:
    """Median seconds from put() to get() in a spawned process (the transport alone)."""
    ctx = mp.get_context("spawn")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_echo, args=(q_in, q_out))
    proc.start()
    lat = []
    for i in range(N_DISPATCH + 5):
        t0 = time.time()
        q_in.put(i)
        _, t1 = q_out.get()
        if i >= 5:
            lat.append(t1 - t0)
    q_in.put(None)
    proc.join()
    return statistics.median(lat)


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "backend.cli",
        "worker",
        "--device",
        "cpu",
        "--loglevel",
        "WARNING",
    ]
    proc = subprocess.Popen(cmd, env=settings.child_environ(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "PruneScope worker" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    time.sleep(3.0)  # connected and consuming (the banner precedes the consumer start)
    return proc


def dispatch_latency(c: TestClient, settings: Settings) -> float:
    """Median of started_at - created_at over ping jobs submitted one at a time."""
    lat = []
    for i in range(N_DISPATCH + 5):
        job_id = c.post("/api/jobs", json={"kind": "ping", "spec": {}}).json()["id"]
        while True:
            with session_scope(settings.database_url) as s:
                job = s.get(JobRow, job_id)
                assert job is not None
                if job.status in ("succeeded", "failed"):
                    assert job.status == "succeeded", job.error
                    assert job.started_at is not None
                    if i >= 5:  # the first jobs warm imports and connections
                        lat.append((job.started_at - job.created_at).total_seconds())
                    break
            time.sleep(0.002)
    return statistics.median(lat)


def throughput(c: TestClient, settings: Settings) -> float:
    """Jobs per second for N_THROUGHPUT pings submitted at once."""
    t0 = time.perf_counter()
    ids = [
        c.post("/api/jobs", json={"kind": "ping", "spec": {}}).json()["id"]
        for _ in range(N_THROUGHPUT)
    ]
    while True:
        with session_scope(settings.database_url) as s:
            done = s.scalars(
                select(JobRow.status).where(JobRow.id.in_(ids), JobRow.status == "succeeded")
            ).all()
        if len(done) == len(ids):
            break
        time.sleep(0.02)
    return len(ids) / (time.perf_counter() - t0)


def local_run(tmp: Path, workers: int) -> TestClient:
    settings = Settings(data_dir=tmp / f"local{workers}", workers=workers, warm_embeddings=False)
    return TestClient(create_app(settings, dashboard=False)), settings  # type: ignore[return-value]


def main() -> None:
    import psycopg
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    transport = bare_queue_handoff()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        c, settings = local_run(tmp, 1)  # type: ignore[misc]
        with c:
            local = dispatch_latency(c, settings)
        c, settings = local_run(tmp, 2)  # type: ignore[misc]
        with c:
            local_tp = throughput(c, settings)

        name = f"prunescope_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        workers: list[subprocess.Popen[bytes]] = []
        try:
            settings = Settings(
                data_dir=tmp / "celery",
                database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                executor="celery",
                broker_url=BROKER,
                warm_embeddings=False,
            )
            app = create_app(settings, dashboard=False)
            workers.append(start_worker(settings, tmp / "w0.log"))
            with TestClient(app) as c:
                celery = dispatch_latency(c, settings)
                workers.append(start_worker(settings, tmp / "w1.log"))
                celery_tp = throughput(c, settings)
        finally:
            for w in workers:
                w.terminate()
                w.wait(20)
            from backend.db.session import dispose_engines

            dispose_engines()
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    bench_line(
        "job_dispatch_local",
        local * 1e3,
        "ms",
        transport * 1e3,
        "bare multiprocessing queue hand-off to a spawned process",
    )
    bench_line(
        "job_dispatch_celery",
        celery * 1e3,
        "ms",
        local * 1e3,
        "job_dispatch_local (SQLite + LocalExecutor), same run",
    )
    bench_line(
        "job_throughput_celery",
        celery_tp,
        "jobs/s",
        local_tp,
        "LocalExecutor with 2 workers, same 200 jobs",
    )


if __name__ == "__main__":
    main()
