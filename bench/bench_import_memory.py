"""import_peak_rss: the memory an import job holds for a 1,000,000 x 1 x 32 x 32 uint8 .npz.

Issue 19's case: a ~30 MB compressed upload whose images decode to 1 GiB. The import job runs
in its own process exactly as a worker runs it (:func:`backend.jobs.runner.run_job`, SQLite, a
local artifact store); a thread in that process samples its resident memory every 10 ms. The
figure is the job's own peak (peak RSS during the job minus RSS before it: the interpreter,
numpy and torch a worker has loaded anyway are not the job's), and the ratio is against the
upload's decoded size (target <= 1.5; the float32 path before this measured ~8).

Usage: python bench/bench_import_memory.py [--rows N]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_line  # noqa: E402

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from backend.config import Settings
from backend.db.session import migrate, session_scope
from backend.db.tables import JobRow
from backend.jobs.memory import rss_bytes
from backend.jobs.runner import run_job
from backend.storage import ArtifactStore
import backend.jobs.kinds.import_dataset  # loaded by a worker before its first job

settings = Settings()
migrate(settings.database_url)
sha = ArtifactStore(settings.artifacts).put_file(sys.argv[1])
with session_scope(settings.database_url) as s:
    job = JobRow(kind="import_dataset", spec={"upload_sha": sha, "filename": "big.npz"},
                 status="queued", stage="queued")
    s.add(job)
    s.flush()
    job_id = job.id
base = rss_bytes()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_bytes())
        time.sleep(0.01)
t = threading.Thread(target=sample, daemon=True)
t.start()
t0 = time.perf_counter()
status = run_job(job_id, settings)
wall = time.perf_counter() - t0
done.set()
t.join()
with session_scope(settings.database_url) as s:
    row = s.get(JobRow, job_id)
    error = row.error
print(json.dumps({"status": status, "error": error, "base": base, "peak": peak[0], "wall": wall}))
"""


def write_upload(path: Path, rows: int) -> int:
    """An npz of ``rows`` uint8 1x32x32 images (sparse strokes drawn from a pool of 256, so
    it deflates ~30:1 like the issue's file) and int64 labels; returns the decoded size."""
    rng = np.random.default_rng(0)
    pool = (rng.random((256, 1, 32, 32)) < 0.03).astype(np.uint8) * 255
    labels = (np.arange(rows) % 10).astype(np.int64)
    shape = (rows, 1, 32, 32)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("X.npy", "w", force_zip64=True) as out:
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                head, {"descr": "|u1", "fortran_order": False, "shape": shape}
            )
            out.write(head.getvalue())
            step = 50_000
            for start in range(0, rows, step):
                m = min(step, rows - start)
                out.write(pool[rng.integers(0, 256, m)].tobytes())
        buf = io.BytesIO()
        np.save(buf, labels)
        zf.writestr("y.npy", buf.getvalue())
    return rows * 1024 + labels.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = Path(tmp)
        upload = root / "big.npz"
        t0 = time.perf_counter()
        decoded = write_upload(upload, args.rows)
        size = upload.stat().st_size
        print(
            f"# upload: {size / 2**20:.1f} MiB compressed, {decoded / 2**20:.0f} MiB decoded "
            f"(ratio {decoded / size:.0f}:1), written in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        from backend.config import Settings

        settings = Settings(data_dir=root / "data")
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(upload)],
            env=settings.child_environ(),
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr[-4000:])
            raise SystemExit(f"the import process exited with {out.returncode}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["status"] != "succeeded":
            raise SystemExit(f"the import job {result['status']}: {result['error']}")
        job_peak = result["peak"] - result["base"]
        print(
            f"# worker RSS before the job {result['base'] / 2**20:.0f} MiB, peak "
            f"{result['peak'] / 2**20:.0f} MiB; job wall {result['wall']:.1f} s",
            flush=True,
        )
        bench_line(
            "import_peak_rss",
            job_peak / 2**20,
            "MiB",
            decoded / 2**20,
            f"decoded_size({decoded / 2**20:.0f}MiB),target_ratio_1.5",
        )


if __name__ == "__main__":
    main()
