"""Every job kind stops within seconds of a cancel, on a real worker (issue 19, item 2).

Each test starts a job sized to run for minutes, waits until it is deep in its main loop,
cancels it through the API and asserts that it reaches "cancelled" within
``CANCEL_WITHIN_S`` (the README promises seconds), leaves no result rows, and leaves no
temporary files: nothing in the workers' ``TMPDIR`` (a folder of the test's own) and no
``*.tmp`` in the artifact store. Runs on both stacks of the job suite (SQLite + local worker
pool, PostgreSQL + a real Celery worker); the world the jobs work on (datasets, models, a
comparison) is built once per stack with jobs run inline, so each test costs seconds.
"""

from __future__ import annotations

import functools
import io
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.api.app import create_app
from backend.config import Settings
from backend.data.corruptions import CORRUPTIONS
from backend.db.session import session_scope
from backend.db.tables import (
    AnalysisRow,
    AttributionResultRow,
    ComparisonMemberRow,
    ComparisonResultRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    LayerResultRow,
    ModelRow,
    RegionResultRow,
)
from backend.jobs.executor import InlineExecutor
from tests.backend.conftest import _settings
from tests.backend.jobs.conftest import Stack, make_stack
from tests.backend.jobs.test_job_suite import submit, wait_for
from tests.conftest import free_port

CANCEL_WITHIN_S = 5.0
# generated images, large enough that resnet20 takes a while on each (64 x 64: four times
# CIFAR's cost), few of them, so that building the world stays cheap
IMAGE_SHAPE = (3, 64, 64)
N_TRAIN, N_TEST, N_CLASSES = 16, 16, 4
N_EVAL = 512  # test samples of the dataset an imported model is evaluated on
ALL_CORRUPTIONS = list(CORRUPTIONS)  # 15 corruptions x 5 severities: 75 passes
RESULT_TABLES = (
    ModelRow,
    AnalysisRow,
    ComparisonResultRow,
    RegionResultRow,
    AttributionResultRow,
    LayerResultRow,
)


@dataclass
class World:
    stack: Stack
    tmp: Path  # the workers' TMPDIR
    digits: int  # built-in dataset
    images: int  # uploaded (N, 3, 64, 64) uint8 images
    evalset: int  # the same kind of images, N_EVAL test samples
    small: int  # digits_cnn trained on digits
    net: int  # resnet20 trained on the images
    other: int  # the same with another seed, analysed with net in ``comparison``
    unanalysed: int  # a third one, analysed without corruptions only
    comparison: int  # net vs other, analysed with one corruption
    stale_comparison: int  # net vs unanalysed: a compare job with corruptions analyses B again


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def upload_dataset(c: TestClient, name: str, data: bytes) -> dict:  # type: ignore[type-arg]
    return ok(c.post("/api/datasets/upload", files={"file": (name, data)}, data={"name": name}))


def done(c: TestClient, kind: str, **spec: object) -> dict:  # type: ignore[type-arg]
    job = ok(c.get(f"/api/jobs/{submit(c, kind, **spec)['id']}"))
    assert job["status"] == "succeeded", job
    return job["result"]  # type: ignore[no-any-return]


def images_dataset(c: TestClient, name: str, n_train: int, n_test: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    data = npz_bytes(
        x_train=rng.integers(0, 256, (n_train, *IMAGE_SHAPE), dtype=np.uint8),
        y_train=np.arange(n_train) % N_CLASSES,
        x_test=rng.integers(0, 256, (n_test, *IMAGE_SHAPE), dtype=np.uint8),
        y_test=np.arange(n_test) % N_CLASSES,
    )
    job = ok(c.get(f"/api/jobs/{upload_dataset(c, name, data)['job_id']}"))
    assert job["status"] == "succeeded", job
    return int(job["result"]["dataset_id"])


def build(c: TestClient) -> dict[str, int]:
    """Datasets, models and a comparison, with every job run inline (seconds)."""
    torch.set_num_threads(1)
    digits = ok(c.post("/api/datasets", json={"builtin": "digits"}))["id"]
    images = images_dataset(c, "images.npz", N_TRAIN, N_TEST, seed=0)
    evalset = images_dataset(c, "evalset.npz", N_CLASSES, N_EVAL, seed=1)
    small = done(c, "train", dataset_id=digits, architecture="digits_cnn", epochs=1)["model_id"]
    net, other, unanalysed = (
        done(c, "train", dataset_id=images, architecture="resnet20", epochs=1, seed=seed)[
            "model_id"
        ]
        for seed in (0, 1, 2)
    )
    body = {"model_a_id": net, "model_b_ids": [other], "embedding": "pca"}
    comp = ok(c.post("/api/comparisons", json={**body, "corruptions": ["gaussian_noise"]}))
    assert ok(c.get(f"/api/jobs/{comp['job_id']}"))["status"] == "succeeded"
    body = {"model_a_id": net, "model_b_ids": [unanalysed], "embedding": "pca"}
    stale = ok(c.post("/api/comparisons", json=body))
    assert ok(c.get(f"/api/jobs/{stale['job_id']}"))["status"] == "succeeded"
    return {
        "digits": digits,
        "images": images,
        "evalset": evalset,
        "small": small,
        "net": net,
        "other": other,
        "unanalysed": unanalysed,
        "comparison": comp["id"],
        "stale_comparison": stale["id"],
    }


def resnet50_checkpoint(path: Path) -> Path:
    """A timm ResNet-50 state dict for N_CLASSES classes (95 MB)."""
    import timm

    torch.manual_seed(0)
    torch.save(timm.create_model("resnet50", num_classes=N_CLASSES).state_dict(), path)
    return path


@functools.cache  # seconds to build: once for both stacks
def big_npz() -> bytes:
    """500,000 x 1 x 32 x 32 uint8 (512 MiB decoded, about 2 % of the bytes set): an npz of
    30 MiB whose compression ratio (17:1) is under the limit."""
    rng = np.random.default_rng(1)
    n = 500_000
    x = np.zeros((n, 1, 32, 32), dtype=np.uint8)
    flat = x.reshape(-1)
    hot = rng.integers(0, flat.size, flat.size // 50)
    flat[hot] = rng.integers(1, 256, hot.size, dtype=np.uint8)
    return npz_bytes(X=x, y=(np.arange(n) % 10).astype(np.int64))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    base = tmp_path_factory.mktemp(f"cancel-{request.param}")
    tmp = base / "worker-tmp"
    tmp.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        # the workers (spawned or started after this) write their temporary files here
        mp.setenv("TMPDIR", str(tmp))
        with contextmanager(_settings)(request.param, base, free_port()) as settings:
            app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
            with TestClient(app) as c:
                ids = build(c)
            with contextmanager(make_stack)(settings, base) as stack:
                yield World(stack, tmp, **ids)


def results_of(settings: Settings, job_id: int) -> dict[str, int]:
    """How many rows each result table holds that job ``job_id`` wrote."""
    with session_scope(settings.database_url) as s:
        return {
            table.__tablename__: int(
                s.scalar(select(func.count()).where(table.job_id == job_id)) or 0
            )
            for table in RESULT_TABLES
        }


def leftovers(world: World) -> list[str]:
    """Temporary files of the workers and unfinished writes in the artifact store (not the
    ``pymp-*`` folder multiprocessing keeps for each process of a Celery worker's pool)."""
    found = [str(p) for p in world.tmp.iterdir() if not p.name.startswith("pymp-")]
    store = world.stack.settings.artifacts
    found += [str(p) for p in store.rglob("*.tmp")] if store.exists() else []
    return found


def cancel_mid_run(world: World, job_id: int, stage: str, settle: float = 1.0) -> float:
    """Wait until the job runs and its stage starts with ``stage``, let it work ``settle``
    seconds more, cancel it through the API; returns the seconds until it was cancelled,
    after checking that it was cancelled in time and left no results and no files."""
    c = world.stack.client
    try:
        wait_for(c, job_id, statuses=("running",), stage_prefix=stage, timeout=180)
        time.sleep(settle)
        t0 = time.monotonic()
        assert c.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelling"
        job = wait_for(c, job_id, timeout=120)
        latency = time.monotonic() - t0
    except BaseException:
        c.post(f"/api/jobs/{job_id}/cancel")  # not left to block the worker for later tests
        raise
    assert job["status"] == "cancelled", job
    assert latency < CANCEL_WITHIN_S, f"{job_id} took {latency:.1f} s to cancel ({stage})"
    assert not any(results_of(world.stack.settings, job_id).values())
    deadline = t0 + CANCEL_WITHIN_S
    while (left := leftovers(world)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left
    return latency


def test_cancel_ping(world: World) -> None:
    job = submit(world.stack.client, "ping", seconds=600.0)
    cancel_mid_run(world, job["id"], "pinging", settle=0.2)


def test_cancel_train_between_steps(world: World) -> None:
    c = world.stack.client
    job = submit(c, "train", dataset_id=world.digits, architecture="digits_cnn", epochs=5000)
    cancel_mid_run(world, job["id"], "training: epoch")


def test_cancel_prune_while_fine_tuning(world: World) -> None:
    c = world.stack.client
    spec = {"model_id": world.small, "sparsity": 0.7, "method": "global_magnitude"}
    job = submit(c, "prune", **spec, finetune={"epochs": 5000})
    cancel_mid_run(world, job["id"], "fine-tuning: epoch")


def test_cancel_analyze_between_corruption_batches(world: World) -> None:
    c = world.stack.client
    job = submit(c, "analyze", model_id=world.net, corruptions=ALL_CORRUPTIONS)
    cancel_mid_run(world, job["id"], "corruption")


def test_cancel_compare_while_it_analyses(world: World) -> None:
    """B's analysis has no corruptions: the compare job analyses it again under every
    corruption first, and is cancelled there; no result and no new analysis stays."""
    c = world.stack.client
    spec = {"comparison_id": world.stale_comparison, "embedding": "pca"}
    job = submit(c, "compare", **spec, corruptions=ALL_CORRUPTIONS)
    cancel_mid_run(world, job["id"], "corruption")
    with session_scope(world.stack.settings.database_url) as s:
        analysis = s.scalars(select(AnalysisRow).where(AnalysisRow.model_id == world.unanalysed))
        assert [a.corruptions_sha for a in analysis] == [None]


def test_cancel_regions_inside_a_segment(world: World) -> None:
    """A segment through resnet20 on 64 x 64 images takes minutes: the job stops inside it."""
    c = world.stack.client
    job = submit(c, "regions", comparison_id=world.comparison, n_pairs=2, n_samples=8)
    cancel_mid_run(world, job["id"], f"model {world.net}: within_class", settle=2.0)


def test_cancel_layers_between_batches(world: World) -> None:
    """resnet20 against another on the N_EVAL images of 64 x 64 (a comparison row of its own,
    the layers job needs no analyses): many forward passes and Gram matrices, stopped in the
    first; no layer result stays."""
    c = world.stack.client
    with session_scope(world.stack.settings.database_url) as s:
        comp = ComparisonRow(name="layers", dataset_id=world.evalset, model_a_id=world.net)
        comp.members.append(ComparisonMemberRow(model_id=world.other, position=0))
        s.add(comp)
        s.flush()
        comparison_id = comp.id
    job = submit(c, "layers", comparison_id=comparison_id, n_samples=N_EVAL)
    cancel_mid_run(world, job["id"], "model A")


def test_cancel_fourier_between_batches(world: World) -> None:
    """resnet20 against another on 64 of the images of 64 x 64 (a comparison row of its own:
    the fourier job needs no analyses): 2,050 frequencies x 64 samples, 1,025 batches, stopped
    in the first few; no result is stored."""
    c = world.stack.client
    with session_scope(world.stack.settings.database_url) as s:
        comp = ComparisonRow(name="fourier", dataset_id=world.evalset, model_a_id=world.net)
        comp.members.append(ComparisonMemberRow(model_id=world.other, position=0))
        s.add(comp)
        s.flush()
        comparison_id = comp.id
    job = submit(c, "fourier", comparison_id=comparison_id, n_samples=64)
    cancel_mid_run(world, job["id"], "Fourier heat maps")
    assert c.get(f"/api/jobs/{job['id']}").json()["result"] is None
    assert c.get(f"/api/comparisons/{comparison_id}/fourier").status_code == 404


def test_cancel_pruning_limit_between_hessian_vector_products(world: World) -> None:
    """resnet20's Hessian density by Lanczos (one Hessian-vector product per step over two
    training batches of the 16 images): stopped between products; no result is stored."""
    c = world.stack.client
    spec = {"iterations": 20, "vectors": 4, "batches": 2, "batch_size": 8, "eps_batches": 2}
    job = submit(c, "pruning_limit", model_id=world.net, **spec)
    cancel_mid_run(world, job["id"], "Hessian density")
    assert c.get(f"/api/jobs/{job['id']}").json()["result"] is None
    assert c.get(f"/api/models/{world.net}/pruning-limit").status_code == 404


def test_cancel_attribution_between_patches(world: World) -> None:
    c = world.stack.client
    spec = {"comparison_id": world.comparison, "index": 0, "patch": 1, "stride": 1}
    job = submit(c, "attribution", **spec)
    cancel_mid_run(world, job["id"], "attribution of model")


def test_cancel_import_model_while_evaluating(world: World, tmp_path: Path) -> None:
    """A timm ResNet-50 evaluated on 512 images of 64 x 64, one batch of many seconds on a
    CPU: the job stops inside the forward pass (between layers)."""
    c = world.stack.client
    path = resnet50_checkpoint(tmp_path / "resnet50.pt")
    form = {"architecture": "timm/resnet50", "dataset_id": str(world.evalset)}
    with open(path, "rb") as fh:
        up = ok(c.post("/api/models/upload", files={"file": ("resnet50.pt", fh)}, data=form))
    cancel_mid_run(world, up["job_id"], "evaluating on the dataset")


def test_cancel_import_dataset_while_reading(world: World) -> None:
    """A 512 MiB npz (30 MiB, ratio 17:1, under every limit) is cancelled while it is read."""
    c = world.stack.client
    up = upload_dataset(c, "big.npz", big_npz())
    cancel_mid_run(world, up["job_id"], "reading the dataset", settle=0.5)
    with session_scope(world.stack.settings.database_url) as s:
        assert s.scalar(select(func.count()).where(DatasetRow.name == "big.npz")) == 0


def test_cancelled_job_keeps_nothing_in_memory(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner as a worker calls it, here in this process so that its memory can be seen:
    after the cancel, no model the job loaded is alive and the module-level caches a job
    fills (compare's tables and features, the embeddings' kNN graphs) are empty."""
    from backend.analysis import embeddings
    from backend.jobs import runner
    from backend.jobs.kinds import compare, regions

    settings = world.stack.settings
    loaded: list[weakref.ref[torch.nn.Module]] = []
    real = regions.load_model

    def load_model(ctx, model_id):  # type: ignore[no-untyped-def]
        row, model = real(ctx, model_id)
        loaded.append(weakref.ref(model))
        return row, model

    monkeypatch.setattr(regions, "load_model", load_model)
    with session_scope(settings.database_url) as s:
        an = s.scalars(select(AnalysisRow).where(AnalysisRow.model_id == world.net)).first()
        assert an is not None
        compare._load_table(settings.artifact_location, an.samples_sha)
        job = JobRow(kind="regions", spec={"comparison_id": world.comparison, "n_pairs": 2})
        s.add(job)
        s.flush()
        job_id = job.id
    embeddings.knn_graph(np.random.default_rng(0).normal(size=(40, 3)), 5)
    ran = threading.Thread(target=runner.run_job, args=(job_id, settings))
    ran.start()
    c = world.stack.client
    try:
        wait_for(c, job_id, ("running",), timeout=120, stage_prefix=f"model {world.net}: within")
    finally:
        c.post(f"/api/jobs/{job_id}/cancel")
        ran.join(60)
    assert ok(c.get(f"/api/jobs/{job_id}"))["status"] == "cancelled"
    assert loaded and [r() for r in loaded] == [None] * len(loaded)
    assert compare._load_table.cache_info().currsize == 0
    assert compare._load_features.cache_info().currsize == 0
    assert not embeddings._knn_cache


def test_workers_keep_working_after_the_cancels(world: World) -> None:
    """The worker that ran the cancelled jobs takes the next one at once."""
    c = world.stack.client
    job = wait_for(c, submit(c, "ping", seconds=0.0)["id"], timeout=30)
    assert job["status"] == "succeeded", job
