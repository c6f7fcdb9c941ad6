"""A job that outgrows its worker's memory fails once, with a reason, and is not retried
(issue 19: one upload used to take the machine down three times over).

The worker here is a real process running :func:`backend.jobs.runner.run_job` with the memory
guard on, as the local pool and Celery workers do; its limit is set to what it already holds
plus 150 MiB, and the job imports an upload of 300 MiB. The guard must record the failure and
end the process (SIGKILL); the lost-worker recovery the executors run afterwards must then leave
the job failed instead of queueing it again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from backend.db.session import migrate, session_scope
from backend.db.tables import DatasetRow, JobRow
from backend.jobs.lifecycle import recover_lost
from backend.jobs.memory import MemoryGuard, machine_memory, memory_limit, rss_bytes
from backend.storage import ArtifactStore

WORKER = textwrap.dedent(
    """
    import sys
    from backend.config import Settings
    from backend.jobs.memory import rss_bytes
    from backend.jobs.runner import run_job
    import backend.jobs.kinds.import_dataset  # what a worker has loaded before its first job
    settings = Settings()  # from the PRUNESCOPE_* environment, as a worker reads them
    limit = rss_bytes() + 150 * 2**20
    settings = settings.model_copy(update={"worker_max_memory": limit})
    print(run_job(int(sys.argv[1]), settings, guard_memory=True), flush=True)
    """
)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_job_past_the_memory_limit_fails_once_and_is_not_retried(settings, tmp_path):
    if rss_bytes() is None:
        pytest.skip("no /proc: the guard cannot read the worker's memory here")
    migrate(settings.database_url)
    settings = settings.model_copy(update={"job_retries": 2, "max_import_memory": 4 * 2**30})
    upload = tmp_path / "big.npz"
    n = 300 * 1024  # 300 MiB of uint8 32x32 images, stored (not deflated): quick to write
    np.savez(upload, X=np.zeros((n, 1, 32, 32), np.uint8), y=np.arange(n) % 10)
    sha = ArtifactStore(settings.artifacts).put_file(upload)
    with session_scope(settings.database_url) as s:
        job = JobRow(
            kind="import_dataset",
            spec={"upload_sha": sha, "filename": "big.npz"},
            status="queued",
            stage="queued",
        )
        s.add(job)
        s.flush()
        job_id = job.id
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(job_id)],
        capture_output=True,
        text=True,
        timeout=300,
        env=settings.child_environ(),
    )
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    with session_scope(settings.database_url) as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        status, error, attempts = row.status, row.error or "", row.attempts
        datasets = s.query(DatasetRow).count()
    assert status == "failed" and attempts == 1
    assert error.startswith("ran out of memory while reading the dataset"), error
    assert "PRUNESCOPE_WORKER_MAX_MEMORY" in error and "not retried" in error
    assert datasets == 0
    # what an executor does when it sees the process gone: nothing, the job has ended
    assert recover_lost(settings, job_id, "worker process exited with -9") == ""
    with session_scope(settings.database_url) as s:
        assert s.get(JobRow, job_id).status == "failed"  # type: ignore[union-attr]


def test_guard_calls_back_once_past_its_limit_and_not_below():
    if rss_bytes() is None:
        pytest.skip("no /proc")
    seen: list[tuple[int, int]] = []
    quiet = MemoryGuard(rss_bytes() + 2**30, lambda r, lim: seen.append((r, lim)), kill=False)
    quiet.start()
    quiet.stopped.wait(0.3)
    quiet.stop()
    quiet.join(2)
    assert seen == [] and not quiet.tripped
    low = MemoryGuard(1, lambda r, lim: seen.append((r, lim)), kill=False)
    low.start()
    low.join(2)
    assert low.tripped and len(seen) == 1 and seen[0][0] > seen[0][1] == 1


def test_default_limit_is_ninety_percent_of_the_machine():
    total = machine_memory()
    if total is None:
        pytest.skip("memory size not readable here")
    assert memory_limit(0) == int(total * 0.9)
    assert memory_limit(12345) == 12345
