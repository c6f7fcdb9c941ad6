"""Issue 18 figure: adding a fifth pruned model to a comparison against recomputing it all.

Data: the built-in digits (1,347 train / 450 test 8x8 images); digits_cnn trained once (5
epochs), pruned five times with one fine-tuning epoch each: global magnitude at 50%, 70% and
90%, layer magnitude at 50% (the four Bs of the comparison), and global magnitude at 80% (the
fifth, added: a sparsity sibling of three of them, so their population statistics change and
are computed again, their embeddings kept). The comparison uses the demo's defaults: all 15
corruptions at severities 1-5, the default embedding (aligned UMAP, seed 0).

Everything runs in this process through the REST API with jobs inline (``InlineExecutor``),
after the four-B comparison has been computed once (so numba's compilation of UMAP, about a
minute on two cores, counts for neither figure). Each figure is the compare job's own time
(its row's ``finished_at - started_at``), with the per-worker table caches emptied before it:

- ``add_model_to_comparison``: ``POST /api/comparisons/{id}/models`` with the fifth B: its
  analysis (clean + 75 corrupted evaluations), its aligned embedding with A, the population
  statistics of its siblings, the similarity map over all six models;
- baseline: the analyses of all six models deleted, a new comparison of A with the same five
  Bs from scratch (six analyses, five pair comparisons with five aligned embeddings, the map).

The target is a ratio of at most 0.4. Run: ``.venv/bin/python bench/bench_add_model.py``
(a few minutes).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _common import bench_line  # noqa: E402

EXISTING = (("global_magnitude", 0.5), ("global_magnitude", 0.7), ("global_magnitude", 0.9))
EXISTING += (("layer_magnitude", 0.5),)
ADDED = ("global_magnitude", 0.8)


def ok(resp: Any) -> Any:
    if resp.status_code not in (200, 201):
        raise RuntimeError(resp.text)
    return resp.json()


def finished(client: Any, job_id: int) -> dict[str, Any]:
    job = ok(client.get(f"/api/jobs/{job_id}"))
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
    return dict(job)


def job_seconds(job: dict[str, Any]) -> float:
    """The compare job's own time, from its row."""
    start, end = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


def empty_caches() -> None:
    from backend.jobs.kinds import compare

    compare._load_table.cache_clear()
    compare._load_features.cache_clear()


def main() -> None:
    from fastapi.testclient import TestClient
    from sqlalchemy import delete

    from backend.api.app import create_app
    from backend.config import Settings
    from backend.data.corruptions import list_corruptions
    from backend.db.session import session_scope
    from backend.db.tables import AnalysisRow
    from backend.jobs.executor import InlineExecutor

    with tempfile.TemporaryDirectory(prefix="bench-add-model-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", warm_embeddings=False)
        app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
        with TestClient(app) as c:
            t0 = time.perf_counter()
            ds = ok(c.post("/api/datasets", json={"builtin": "digits"}))
            spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 5}
            a = finished(c, ok(c.post("/api/jobs", json={"kind": "train", "spec": spec}))["id"])
            a_id = a["result"]["model_id"]
            b_ids = []
            for method, sparsity in (*EXISTING, ADDED):
                spec = {"model_id": a_id, "method": method, "sparsity": sparsity}
                spec["finetune"] = {"epochs": 1}
                job = ok(c.post("/api/jobs", json={"kind": "prune", "spec": spec}))
                b_ids.append(finished(c, job["id"])["result"]["model_id"])
            *existing, added = b_ids
            defaults = {"corruptions": list_corruptions()}  # the demo's: severities 1-5, auto
            body = {"model_a_id": a_id, "model_b_ids": existing, **defaults}
            comp = ok(c.post("/api/comparisons", json=body))
            first = finished(c, comp["job_id"])
            print(
                f"# setup (train, 5 prunes, comparison of A + 4 Bs: {job_seconds(first):.1f} s) "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )

            empty_caches()
            url = f"/api/comparisons/{comp['id']}/models"
            added_job = finished(c, ok(c.post(url, json={"model_b_ids": [added]}))["job_id"])
            incremental = job_seconds(added_job)
            print(
                f"# incremental: B {added} added; results kept as they were: "
                f"{added_job['result']['reused_b_ids']}; "
                f"{incremental:.2f} s",
                flush=True,
            )

            with session_scope(settings.database_url) as s:
                s.execute(delete(AnalysisRow).where(AnalysisRow.model_id.in_([a_id, *b_ids])))
            empty_caches()
            full_comp = ok(c.post("/api/comparisons", json={**body, "model_b_ids": b_ids}))
            full = job_seconds(finished(c, full_comp["job_id"]))
            print(f"# full: A + 5 Bs analysed and compared from scratch: {full:.2f} s", flush=True)
    bench_line("add_model_to_comparison", incremental, "s", full, "full recompute of A + 5 Bs")


if __name__ == "__main__":
    main()
