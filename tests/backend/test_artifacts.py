"""Reference counts of artifacts by sha256 and the sweep of files no row names (issue 19,
"Leftovers"), on SQLite and PostgreSQL: every ``*_sha`` column, the JSON that names artifacts
and the specs of unfinished jobs count (backend/artifacts.py, the one place that knows them);
a failed or cancelled import removes its upload unless another row names it; the sweep removes
exactly the unreferenced files older than its grace period, on a local folder and on fsspec.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend import artifacts
from backend.api.app import create_app
from backend.artifacts import referenced_shas, references, sha_columns, sweep_orphans
from backend.cli import main as cli_main
from backend.config import Settings
from backend.db.session import migrate, session_scope
from backend.db.tables import (
    AnalysisRow,
    AttributionResultRow,
    ComparisonMemberRow,
    ComparisonResultRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    ModelRow,
    RegionResultRow,
)
from backend.jobs.context import JobContext
from backend.jobs.lifecycle import recover_lost
from backend.storage import ArtifactStore

HOURS_AGO = 2 * 3600.0
COLUMN_KEYS = sorted(f"{c.table.name}.{c.name}" for c in sha_columns())
# where else rows name artifacts: JSON under keys ending in "sha", and unfinished jobs
JSON_KEYS = (
    "models.arch_kwargs",
    "models.pruning_params",
    "region_results.summary",
    "datasets.params",
)
JOB_KEYS = ("queued import's spec", "running job's result")


@dataclass
class World:
    store: ArtifactStore
    named: dict[str, str]  # where a row names it -> sha256 (each distinct bytes)
    unnamed: dict[str, str]  # what no row names -> sha256


def age(store: ArtifactStore, sha: str, seconds: float = HOURS_AGO) -> None:
    """Make a local blob look stored ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(store.path(sha), (then, then))


def build_world(settings: Settings, store: ArtifactStore | None = None) -> World:
    """One row of each table that names artifacts, every ``*_sha`` column (and each place in
    JSON, each unfinished job) naming bytes of its own; and files nothing names."""
    migrate(settings.database_url)
    store = store or ArtifactStore(settings.artifact_location)
    named = {key: store.put_bytes(key.encode()) for key in (*COLUMN_KEYS, *JSON_KEYS, *JOB_KEYS)}
    unnamed = {
        what: store.put_bytes(what.encode())
        for what in ("an orphan", "a finished job's upload", "a failed job's half")
    }

    def shas(table: str) -> dict[str, str]:
        """Every ``*_sha`` column of ``table`` (those added later too) with its own bytes."""
        return {k.split(".", 1)[1]: named[k] for k in COLUMN_KEYS if k.startswith(f"{table}.")}

    with session_scope(settings.database_url) as s:
        ds = DatasetRow(
            name="d", source="t", num_classes=2, class_names=["a", "b"], input_shape=[4],
            n_train=1, n_test=1, **shas("datasets"),
        )  # fmt: skip
        ds.params = {"summary": {"format": "npz"}, "arrays": {"x_sha": named["datasets.params"]}}
        s.add(ds)
        s.flush()
        model = ModelRow(
            name="m", architecture="onnx", dataset_id=ds.id, n_params=1, n_nonzero=1,
            **shas("models"),
        )  # fmt: skip
        model.arch_kwargs = {"graph_sha": named["models.arch_kwargs"]}
        # a pruned model's start weights (the learning distance's theta_start)
        model.pruning_params = {
            "sparsity": 0.5,
            "learning": {"distance": 1.0, "start_sha": named["models.pruning_params"]},
        }
        s.add(model)
        s.flush()
        s.add(
            AnalysisRow(
                model_id=model.id, dataset_id=ds.id, split="test", accuracy=1.0, n_samples=1,
                summary={}, **shas("analyses"),
            )
        )  # fmt: skip
        comp = ComparisonRow(name="c", dataset_id=ds.id, model_a_id=model.id)
        comp.members = [ComparisonMemberRow(model_id=model.id, position=0)]
        s.add(comp)
        s.flush()
        region_summary = {"slice": {"artifact_sha": named["region_results.summary"]}}
        s.add_all(
            [
                ComparisonResultRow(
                    comparison_id=comp.id, model_b_id=model.id, summary={},
                    **shas("comparison_results"),
                ),
                RegionResultRow(
                    comparison_id=comp.id, model_id=model.id, summary=region_summary,
                    **shas("region_results"),
                ),
                AttributionResultRow(
                    comparison_id=comp.id, model_b_id=model.id, sample_index=0, params_key="p",
                    **shas("attribution_results"),
                ),
                JobRow(
                    kind="import_dataset", status="queued",
                    spec={"upload_sha": named["queued import's spec"]},
                ),
                JobRow(
                    kind="train", status="running", spec={},
                    result={"partial": [{"checkpoint_sha": named["running job's result"]}]},
                ),
                # a finished job's spec and result are history: they keep nothing
                JobRow(
                    kind="import_model", status="failed",
                    spec={"upload_sha": unnamed["a finished job's upload"]},
                ),
                JobRow(
                    kind="train", status="succeeded", spec={},
                    result={"checkpoint_sha": unnamed["a failed job's half"]},
                ),
            ]
        )  # fmt: skip
    return World(store, named, unnamed)


@pytest.fixture
def world(settings: Settings) -> World:
    return build_world(settings)


# reference counts ----------------------------------------------------------------------------
def test_the_world_fills_every_sha_column_of_every_table(world):
    """A ``*_sha`` column added later fails here until build_world fills it (then the tests
    below count it)."""
    assert set(COLUMN_KEYS) <= world.named.keys()
    assert {"datasets.artifact_sha", "datasets.upload_sha", "models.checkpoint_sha",
            "models.upload_sha", "analyses.samples_sha", "analyses.features_sha",
            "analyses.corruptions_sha", "comparison_results.samples_sha",
            "region_results.segments_sha", "region_results.samples_sha",
            "attribution_results.artifact_sha"} <= set(COLUMN_KEYS)  # fmt: skip


def test_every_place_a_row_names_an_artifact_counts_once(settings, world):
    with session_scope(settings.database_url) as s:
        for where, sha in world.named.items():
            assert references(s, sha) == 1, where
        for what, sha in world.unnamed.items():
            assert references(s, sha) == 0, what
        assert referenced_shas(s) == set(world.named.values())
        everything = {*world.named.values(), *world.unnamed.values()}
        assert referenced_shas(s, among=everything) == set(world.named.values())


def test_the_same_bytes_named_twice_count_twice(settings, world):
    shared = world.named["models.checkpoint_sha"]
    with session_scope(settings.database_url) as s:
        model = s.query(ModelRow).one()
        s.add(
            ModelRow(
                name="copy", architecture="mlp", arch_kwargs={"graph_sha": shared}, n_params=1,
                n_nonzero=1, checkpoint_sha=shared,
            )
        )  # fmt: skip
        s.add(JobRow(kind="import_model", status="running", spec={"upload_sha": shared}))
        assert model.checkpoint_sha == shared
    with session_scope(settings.database_url) as s:
        assert references(s, shared) == 4  # two columns, one JSON value, one unfinished job


def test_a_job_may_leave_its_own_spec_out(settings, world):
    upload = world.named["queued import's spec"]
    with session_scope(settings.database_url) as s:
        job_id = s.query(JobRow).filter(JobRow.status == "queued").one().id
        assert references(s, upload, except_jobs=(job_id,)) == 0
        assert upload not in referenced_shas(s, except_jobs=(job_id,))
        s.get(JobRow, job_id).status = "cancelled"  # type: ignore[union-attr]
    with session_scope(settings.database_url) as s:
        assert references(s, upload) == 0  # a job that ended keeps nothing


# ended jobs ----------------------------------------------------------------------------------
def _job(settings: Settings, **values: Any) -> int:
    with session_scope(settings.database_url) as s:
        job = JobRow(**values)
        s.add(job)
        s.flush()
        return job.id


def test_a_failed_or_cancelled_import_removes_its_upload_unless_another_row_names_it(
    settings, world
):
    store = world.store
    alone, shared = store.put_bytes(b"refused upload"), store.put_bytes(b"uploaded twice")
    failed = _job(settings, kind="import_dataset", status="failed", spec={"upload_sha": alone})
    cancelled = _job(settings, kind="import_model", status="cancelled", spec={"upload_sha": shared})
    _job(settings, kind="import_model", status="queued", spec={"upload_sha": shared})
    assert artifacts.release_job(settings, failed) == 1
    assert artifacts.release_job(settings, cancelled) == 0
    assert not store.exists(alone) and store.exists(shared)
    # a job still going, or one that succeeded, keeps what it names
    running = _job(settings, kind="import_dataset", status="running", spec={"upload_sha": alone})
    store.put_bytes(b"refused upload")
    assert artifacts.release_job(settings, running) == 0 and store.exists(alone)


def test_a_lost_import_keeps_its_upload_while_retried_and_removes_it_when_it_fails(settings, world):
    upload = world.store.put_bytes(b"an upload whose worker dies")
    spec = {"upload_sha": upload}
    job_id = _job(settings, kind="import_dataset", status="running", spec=spec, attempts=1)
    retrying = settings.model_copy(update={"job_retries": 1})
    assert recover_lost(retrying, job_id, "worker process exited with code -9") == "queued"
    assert world.store.exists(upload)  # the next attempt reads it
    with session_scope(settings.database_url) as s:
        job = s.get(JobRow, job_id)
        job.status, job.attempts = "running", 2  # type: ignore[union-attr]
    assert recover_lost(retrying, job_id, "worker process exited with code -9") == "failed"
    assert not world.store.exists(upload)
    # a lost job that was being cancelled is cancelled, and lets go of its upload too
    world.store.put_bytes(b"an upload whose worker dies")
    cancelling = _job(settings, kind="import_model", status="cancelling", spec=spec, attempts=1)
    assert recover_lost(retrying, cancelling, "no heartbeat") == "cancelled"
    assert not world.store.exists(upload)


def test_a_failed_job_removes_what_it_stored_first_unless_a_row_took_it(settings, world):
    store = ArtifactStore(settings.artifact_location, record=True)
    half = store.put_bytes(b"written, then the job failed")
    taken = world.named["models.checkpoint_sha"]
    store.put_bytes(b"models.checkpoint_sha")  # a row names these bytes: kept
    assert store.created == {half}  # bytes that were there already are not the job's
    failed = _job(settings, kind="train", status="failed", spec={}, attempts=1)
    done = _job(settings, kind="train", status="succeeded", spec={}, attempts=1)
    assert artifacts.release_job(settings, done, written={half}) == 0
    assert artifacts.release_job(settings, failed, attempt=2, written={half}) == 0  # moved on
    assert store.exists(half)
    assert artifacts.release_job(settings, failed, attempt=1, written={half, taken}) == 1
    assert not store.exists(half) and store.exists(taken)


# the sweep -----------------------------------------------------------------------------------
def orphans(settings: Settings, store: ArtifactStore) -> set[str]:
    with session_scope(settings.database_url) as s:
        referenced = referenced_shas(s)
    return artifacts.stored_shas(store) - referenced - artifacts.derived_shas(store)


def _cache(store: ArtifactStore, checkpoint: str, converted: str) -> Path:
    """A download's conversion cache entry (as backend.api.routes.models writes it)."""
    where = Path(store.root, artifacts.DERIVED_DIR, checkpoint[:2], checkpoint, "pt.json")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(json.dumps({"sha": converted}))
    return where


def test_the_sweep_removes_exactly_the_unreferenced_files_older_than_its_grace(settings, world):
    store = world.store
    for sha in store.list_artifacts():
        age(store, sha.sha)
    young = store.put_bytes(b"an upload whose job is being written")
    # conversions: one of a checkpoint a row names (stays), one of a checkpoint gone (goes)
    kept_conversion = store.put_bytes(b"model.pt of a live checkpoint")
    kept_cache = _cache(store, world.named["models.checkpoint_sha"], kept_conversion)
    gone_checkpoint = "f" * 64
    gone_conversion = store.put_bytes(b"model.pt of a deleted checkpoint")
    gone_cache = _cache(store, gone_checkpoint, gone_conversion)
    age(store, kept_conversion)
    age(store, gone_conversion)
    stale_tmp, fresh_tmp = Path(store.root, "old.tmp"), Path(store.root, "writing.tmp")
    stale_dir = Path(store.root, "dataset-x.tmp")
    stale_dir.mkdir()
    for tmp in (stale_tmp, fresh_tmp, stale_dir / "dataset.npz"):
        tmp.write_bytes(b"half")
    then = time.time() - HOURS_AGO
    os.utime(stale_tmp, (then, then))
    os.utime(stale_dir, (then, then))
    before = artifacts.stored_shas(store)
    doomed = {*world.unnamed.values(), gone_conversion}

    dry = sweep_orphans(settings, grace_seconds=3600, dry_run=True)
    assert (dry.removed, dry.young, dry.caches) == (len(doomed), 1, 1) == (4, 1, 1)
    assert dry.message.startswith("Would remove 4 artifact files")
    assert artifacts.stored_shas(store) == before

    done = sweep_orphans(settings, grace_seconds=3600)
    assert (done.removed, done.young, done.caches, done.temporary) == (4, 1, 1, 2), done.message
    assert done.removed_bytes == sum(len(s.encode()) for s in world.unnamed) + len(
        b"model.pt of a deleted checkpoint"
    )
    assert artifacts.stored_shas(store) == before - doomed
    assert store.exists(young) and kept_cache.exists() and not gone_cache.parent.exists()
    assert not stale_tmp.exists() and not stale_dir.exists() and fresh_tmp.exists()
    assert orphans(settings, store) == {young}
    # every file a row names is still there, and with no grace the young one goes too
    assert set(world.named.values()) <= artifacts.stored_shas(store)
    assert sweep_orphans(settings, grace_seconds=0).removed == 1
    assert orphans(settings, store) == set()


def test_bytes_stored_again_are_young_again(settings, world):
    store, orphan = world.store, world.unnamed["an orphan"]
    for sha in world.unnamed.values():
        age(store, sha)
    store.put_bytes(b"an orphan")  # the same file uploaded again, its job not yet written
    assert sweep_orphans(settings, grace_seconds=60).removed == 2  # the two other orphans
    assert store.exists(orphan)


def test_the_sweep_works_on_an_fsspec_store(settings):
    store = ArtifactStore(f"memory://prunescope-sweep-{uuid.uuid4().hex}")
    world = build_world(settings, store)
    listed = {a.sha: a for a in store.list_artifacts()}
    assert listed.keys() == {*world.named.values(), *world.unnamed.values()}
    assert all(a.stored_at and abs(a.stored_at - time.time()) < 600 for a in listed.values())
    assert sweep_orphans(settings, grace_seconds=3600, store=store).removed == 0
    assert sweep_orphans(settings, grace_seconds=0, store=store).removed == 3
    assert artifacts.stored_shas(store) == set(world.named.values())


def test_the_server_sweeps_at_start_up(settings, world):
    orphan = world.unnamed["an orphan"]
    for sha in world.unnamed.values():
        age(world.store, sha)
    fresh = world.store.put_bytes(b"fresh")
    swept = settings.model_copy(update={"orphan_grace_seconds": 600})
    with TestClient(create_app(swept, dashboard=False)):
        # the sweep removes the old unreferenced files one by one, in no set order: wait for
        # all of them (waiting for one raced with the others' removal under load)
        old = set(world.unnamed.values())
        deadline = time.monotonic() + 30
        while any(map(world.store.exists, old)) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not world.store.exists(orphan)
    assert not any(map(world.store.exists, old))
    # what rows name stays, and so does a young orphan. Not ``orphans() == {fresh}``: the
    # world's jobs run meanwhile (the queued import fails and removes its upload; recovery
    # fails the "running" job, whose young result file is then unreferenced), in no set order
    # with the sweep
    assert world.store.exists(fresh)
    rows = {key: sha for key, sha in world.named.items() if key not in JOB_KEYS}
    assert all(map(world.store.exists, rows.values()))


def test_prunescope_gc(tmp_path, capsys):
    settings = Settings(data_dir=tmp_path / "data")
    world = build_world(settings)
    assert cli_main(["gc", "--data-dir", str(settings.data_dir), "--dry-run", "--grace", "0"]) == 0
    assert capsys.readouterr().out.startswith("Would remove 3 artifact files")
    assert cli_main(["gc", "--data-dir", str(settings.data_dir), "--grace", "0"]) == 0
    assert capsys.readouterr().out.startswith("Removed 3 artifact files")
    assert artifacts.stored_shas(world.store) == set(world.named.values())


# through the API (jobs run inline) ------------------------------------------------------------
def test_a_refused_upload_leaves_no_orphan(client, settings):
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((10, 4), np.float32), y=np.arange(7))  # 10 samples, 7 labels
    answer = client.post("/api/datasets/upload", files={"file": ("bad.npz", buf.getvalue())})
    assert answer.status_code == 201, answer.text
    job = client.get(f"/api/jobs/{answer.json()['job_id']}").json()
    assert job["status"] == "failed"
    store = ArtifactStore(settings.artifact_location)
    assert not store.exists(answer.json()["sha256"])
    assert orphans(settings, store) == set()


def test_a_job_that_fails_after_storing_leaves_no_orphan(client, settings, monkeypatch):
    import backend.jobs.kinds as kinds

    def half_done(job: JobRow, ctx: JobContext) -> dict[str, Any]:
        ctx.store.put_bytes(b"a checkpoint whose row was never written")
        raise RuntimeError("failed before registering it")

    monkeypatch.setattr(kinds, "get_kind", lambda kind: half_done)
    job = client.post("/api/jobs", json={"kind": "ping", "spec": {}}).json()
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "failed"
    assert orphans(settings, ArtifactStore(settings.artifact_location)) == set()
