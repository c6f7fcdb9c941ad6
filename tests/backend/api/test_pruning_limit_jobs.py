"""The pruning_limit job through the REST API (SCIENCE.md sect. 7): served per model, read by a
share link's viewer of a comparison whose A it is, its one-shot accuracy checked against an
independent pruning with torch.nn.utils.prune.global_unstructured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select
from torch.nn.utils import prune

from backend.api.app import create_app
from backend.data.stored import load_from_store
from backend.db.session import session_scope
from backend.db.tables import ComparisonRow, DatasetRow, ModelRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint

SPEC = {"iterations": 6, "vectors": 2, "batches": 2, "batch_size": 64, "eps_batches": 8}
GRID = 10


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def test_pruning_limit_job_serves_theory_and_observed_accuracy(client, settings):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    train = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 2}
    job = ok(client.post("/api/jobs", json={"kind": "train", "spec": train}))
    assert job["status"] == "succeeded", job["error"]
    model_id = job["result"]["model_id"]

    missing = client.get(f"/api/models/{model_id}/pruning-limit")
    assert missing.status_code == 404
    assert "submit a job of kind 'pruning_limit'" in missing.json()["detail"]
    assert client.get("/api/models/999/pruning-limit").status_code == 404
    dry = ok(
        client.post(
            "/api/jobs?dry_run=true", json={"kind": "pruning_limit", "spec": {"model_id": model_id}}
        )
    )
    assert dry["spec"]["iterations"] == 20 and dry["spec"]["vectors"] == 4
    assert dry["spec"]["grid"] == 20
    refused = client.post("/api/jobs", json={"kind": "pruning_limit", "spec": {"model_id": 999}})
    assert refused.status_code == 422 and "model 999 does not exist" in refused.json()["detail"]

    spec = {"model_id": model_id, **SPEC, "grid": GRID}
    job = ok(client.post("/api/jobs", json={"kind": "pruning_limit", "spec": spec}))
    assert job["status"] == "succeeded", job["error"]
    body = ok(client.get(f"/api/models/{model_id}/pruning-limit"))
    assert body["job_id"] == job["id"] and body["model_id"] == model_id
    assert body["sparsities"] == pytest.approx([i / GRID for i in range(GRID)])
    assert body["eps"] > 0 and body["hessian_batches"] == 2 and body["loss_batches"] == 8
    density = body["density"]
    assert sum(density["weights"]) == pytest.approx(1.0)
    assert len(density["nodes"]) <= 2 * 6 and density["dimension"] == body["n_weights"]
    predicted = np.asarray(body["predicted"])
    assert predicted[0] == 1.0 and np.all(np.diff(predicted) <= 1e-12)  # R grows with s
    assert np.all((predicted >= 0) & (predicted <= 1))
    assert body["radii"][0] == 0.0 and np.all(np.diff(body["radii"]) > 0)
    gap = np.abs(predicted - np.asarray(body["sparsities"]))
    assert (
        body["index"] == int(np.argmin(gap)) and body["limit"] == body["sparsities"][body["index"]]
    )
    observed = body["observed"]
    assert len(observed["accuracy"]) == GRID and observed["fine_tuned"] is False
    assert observed["threshold"] == pytest.approx(observed["dense_accuracy"] - 0.01)

    # the observed one-shot accuracy at s = 0.7 against an independent pruning + evaluation
    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        checkpoint = s.get(ModelRow, model_id).checkpoint_sha  # type: ignore[union-attr]
        dataset_sha = s.scalars(select(DatasetRow).where(DatasetRow.id == ds["id"])).one()
        dataset_sha = dataset_sha.artifact_sha
    with store.local_path(checkpoint) as path:
        model, _ = load_checkpoint(path)
    layers = [
        (m, "weight") for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.7)
    x_test, y_test = load_from_store(store, dataset_sha).split("test")
    with torch.no_grad():
        logits = model.eval()(torch.as_tensor(np.asarray(x_test), dtype=torch.float32))
    want = float((logits.argmax(1).numpy() == np.asarray(y_test)).mean())
    assert observed["accuracy"][7] == pytest.approx(want, abs=1e-6)  # float32 mean; 1/n = 2e-3

    # a share link's viewer of a comparison whose A is this model reads it too
    with session_scope(settings.database_url) as s:
        comp = ComparisonRow(name="limit", dataset_id=ds["id"], model_a_id=model_id)
        s.add(comp)
        s.flush()
        comparison_id = comp.id
    share = ok(client.post(f"/api/comparisons/{comparison_id}/shares", json={"label": "limit"}))
    on = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(on, executor=InlineExecutor(on), dashboard=False)) as viewer:
        url = f"/api/models/{model_id}/pruning-limit"
        assert viewer.get(url).status_code == 401
        seen = viewer.get(url, headers={"Authorization": f"Bearer {share['token']}"})
        assert seen.status_code == 200 and seen.json() == body
