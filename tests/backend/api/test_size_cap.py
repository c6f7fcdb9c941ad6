"""The model-size cap (PRUNESCOPE_MAX_PARAMS): a network built from a name and arguments is
counted on the meta device at submission, so an absurd one is a 422 naming its count and the
limit, with no job row and no memory taken; a normal request still passes."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save
from sqlalchemy import func, select

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow, ModelRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore

ABSURD = {"hidden": [10**9, 10**9]}
# digits: 1 x 8 x 8 inputs, 10 classes
ABSURD_COUNT = (64 + 1) * 10**9 + (10**9 + 1) * 10**9 + (10**9 + 1) * 10
LIMIT_TEXT = "the limit is 500,000,000 parameters (PRUNESCOPE_MAX_PARAMS)"


def rows(settings: Settings, table: type) -> int:
    with session_scope(settings.database_url) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.fixture
def digits(client: TestClient) -> int:
    torch.set_num_threads(1)
    resp = client.post("/api/datasets", json={"builtin": "digits"})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def train(client: TestClient, spec: dict, dry_run: bool = False):  # type: ignore[no-untyped-def]
    params = {"dry_run": "true"} if dry_run else None
    return client.post("/api/jobs", params=params, json={"kind": "train", "spec": spec})


def test_an_absurd_mlp_is_refused_before_anything_is_allocated(client, settings, digits):
    normal = {"dataset_id": digits, "architecture": "mlp", "epochs": 1}
    assert train(client, normal, dry_run=True).status_code == 200  # torch and mlp loaded
    before = rss()
    resp = train(client, {**normal, "arch_kwargs": ABSURD})
    after = rss()
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (
        f"spec.arch_kwargs: mlp with these arguments has {ABSURD_COUNT:,} parameters; {LIMIT_TEXT}"
    )
    assert rows(settings, JobRow) == 0
    assert after - before < 256 * 2**20, f"RSS grew by {(after - before) / 2**20:.0f} MiB"

    dry = train(client, {**normal, "arch_kwargs": ABSURD}, dry_run=True)
    assert dry.status_code == 422
    [issue] = dry.json()["detail"]
    assert issue["loc"] == ["spec", "arch_kwargs"] and f"{ABSURD_COUNT:,}" in issue["msg"]

    # a normal request still passes and trains
    job = train(client, {**normal, "arch_kwargs": {"hidden": [32]}})
    assert job.status_code == 201, job.text
    assert job.json()["status"] == "succeeded", job.json()


def test_a_library_architecture_over_the_cap_is_refused(client, digits):
    spec = {
        "dataset_id": digits,
        "architecture": "torchvision/resnet18",
        "arch_kwargs": {"num_classes": 10**7},
    }
    resp = train(client, spec, dry_run=True)
    assert resp.status_code == 422, resp.text
    [issue] = resp.json()["detail"]
    assert issue["loc"] == ["spec", "arch_kwargs"]
    assert "torchvision/resnet18 with these arguments has 5,141,176,512 " in issue["msg"]
    assert LIMIT_TEXT in issue["msg"]


@pytest.fixture
def small_cap(settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    capped = settings.model_copy(update={"max_params": 100_000})
    app = create_app(capped, executor=InlineExecutor(capped), dashboard=False)
    with TestClient(app) as c:
        yield c, capped


def test_the_cap_is_the_setting(small_cap, digits):
    client, _ = small_cap
    spec = {"dataset_id": digits, "architecture": "resnet20", "epochs": 1}
    resp = train(client, spec)
    assert resp.status_code == 422
    assert resp.json()["detail"].endswith("the limit is 100,000 parameters (PRUNESCOPE_MAX_PARAMS)")
    ok = train(client, {**spec, "architecture": "digits_cnn"}, dry_run=True)
    assert ok.status_code == 200, ok.text


def upload(client: TestClient, **fields: object):  # type: ignore[no-untyped-def]
    blob = save({"weight": torch.zeros(2, 2)})
    form = {k: str(v) for k, v in fields.items()}
    return client.post("/api/models/upload", files={"file": ("m.safetensors", blob)}, data=form)


def stored(settings: Settings) -> set[str]:
    root = ArtifactStore(settings.artifact_location).root
    return {str(p) for p in root.rglob("*") if p.is_file()}


def test_an_upload_of_an_absurd_builtin_is_refused_at_once(client, settings, digits):
    kept = stored(settings)
    resp = upload(
        client,
        architecture="mlp",
        arch_kwargs='{"hidden": [1000000000, 1000000000]}',
        dataset_id=digits,
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"] == (
        f"arch_kwargs: mlp with these arguments has {ABSURD_COUNT:,} parameters; {LIMIT_TEXT}"
    )
    assert rows(settings, JobRow) == rows(settings, ModelRow) == 0
    assert stored(settings) == kept  # the upload's bytes were not kept
    dry = client.post(
        "/api/jobs",
        params={"dry_run": "true"},
        json={
            "kind": "import_model",
            "spec": {"architecture": "mlp", "arch_kwargs": ABSURD, "dataset_id": digits},
        },
    )
    assert dry.status_code == 422 and dry.json()["detail"][0]["loc"] == ["spec", "arch_kwargs"]


def test_an_upload_of_an_absurd_library_architecture_fails_its_job_unallocated(small_cap):
    client, _ = small_cap
    before = rss()
    resp = upload(
        client, architecture="torchvision/resnet18", arch_kwargs='{"num_classes": 10000000}'
    )
    assert resp.status_code == 201, resp.text  # counted by the job, which has torch
    job = client.get(f"/api/jobs/{resp.json()['job_id']}").json()
    assert job["status"] == "failed", job
    assert "torchvision/resnet18 with these arguments has 5,141,176,512 parameters" in job["error"]
    assert "the limit is 100,000 parameters" in job["error"]
    assert rss() - before < 256 * 2**20  # 5e9 parameters (20 GB) were never allocated


def test_json_numbers_are_read_as_the_factory_reads_them(client, digits):
    """1e9 in JSON is a float: the factory's own refusal, not a count."""
    spec = {"dataset_id": digits, "architecture": "mlp", "arch_kwargs": {"hidden": [1e9]}}
    resp = train(client, spec)
    assert resp.status_code == 422
    assert "should be a positive integer" in resp.json()["detail"]
