"""The instability job through the REST API (Frankle et al., ICML 2020; SCIENCE.md sect. 4) on a
small lottery ticket of digits_cnn: served per model, its path and barrier consistent, zero
epochs giving two identical copies (a flat path at the rewind point's own error, checked against
an independent rebuild of the masked initialisation), a model without a rewind point refused,
the barrier in the Experiments table (one SQL statement a page still), and read by a share
link's viewer of a comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from backend.api.app import create_app
from backend.data.stored import load_from_store
from backend.db.session import get_engine, session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonRow, DatasetRow, ModelRow
from backend.jobs.executor import InlineExecutor
from backend.pruning.masks import current_mask, prunable_layers
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint
from models.registry import create as create_model

FAST = {"epochs": 1, "batch_size": 128}


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def submit(client, kind, spec):  # type: ignore[no-untyped-def]
    job = ok(client.post("/api/jobs", json={"kind": kind, "spec": spec}))
    assert job["status"] == "succeeded", job["error"]
    return job


def test_instability_job_on_a_lottery_ticket(client, settings):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    train = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    original = submit(client, "train", train)["result"]["model_id"]
    prune_spec = {
        "model_id": original,
        "method": "lottery_ticket",
        "sparsity": 0.5,
        "params": {"prune_fraction": 0.5},  # one round: dense, then the ticket
        "finetune": FAST,
    }
    ticket = submit(client, "prune", prune_spec)["result"]["model_id"]

    url = f"/api/models/{ticket}/instability"
    missing = client.get(url)
    assert missing.status_code == 404
    assert "submit a job of kind 'instability'" in missing.json()["detail"]
    assert client.get("/api/models/999/instability").status_code == 404
    dry = ok(
        client.post(
            "/api/jobs?dry_run=true", json={"kind": "instability", "spec": {"model_id": ticket}}
        )
    )
    assert dry["spec"]["points"] == 30 and dry["spec"]["seeds"] == [1, 2]
    assert dry["spec"]["epochs"] is None
    refused = client.post("/api/jobs", json={"kind": "instability", "spec": {"model_id": original}})
    assert refused.status_code == 422, refused.text
    assert f"model {original} has no rewind point" in refused.json()["detail"]
    same = {"model_id": ticket, "seeds": [3, 3]}
    refused = client.post("/api/jobs", json={"kind": "instability", "spec": same})
    assert refused.status_code == 422 and "should differ" in refused.text

    # zero epochs: both copies are the rewind point itself, so the path is flat, barrier 0
    flat = submit(client, "instability", {"model_id": ticket, "epochs": 0})["result"]
    assert flat["barrier"] == 0.0 and len(set(flat["errors"])) == 1
    assert flat["start"]["rest"].startswith("a fresh initialisation")
    # ... at the error of the masked initialisation (a lottery ticket rewound to step 0)
    model = ok(client.get(f"/api/models/{ticket}"))
    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        checkpoint = s.get(ModelRow, ticket).checkpoint_sha  # type: ignore[union-attr]
        dataset_sha = s.scalars(select(DatasetRow).where(DatasetRow.id == ds["id"])).one()
        dataset_sha = dataset_sha.artifact_sha
    with store.local_path(checkpoint) as path:
        trained, _ = load_checkpoint(path)
    masks = {n: current_mask(m) for n, m in prunable_layers(trained, scoped=False)}
    torch.manual_seed(model["pruning_params"]["training"]["seed"])
    init = create_model("digits_cnn", **model["arch_kwargs"])
    with torch.no_grad():
        for name, layer in prunable_layers(init, scoped=False):
            layer.weight.mul_(masks[name])
    x_test, y_test = load_from_store(store, dataset_sha).split("test")
    with torch.no_grad():
        logits = init.eval()(torch.as_tensor(np.asarray(x_test), dtype=torch.float32))
    want = float((logits.argmax(1).numpy() != np.asarray(y_test)).mean())
    assert flat["errors"][0] == pytest.approx(want, abs=1e-6)

    job = submit(client, "instability", {"model_id": ticket, "epochs": 1})
    body = ok(client.get(url))  # the latest succeeded job's
    assert body["job_id"] == job["id"] and body["model_id"] == ticket
    assert body["alphas"] == pytest.approx(list(np.linspace(0, 1, 30)))
    errors = np.asarray(body["errors"])
    assert len(errors) == 30 and np.all((errors >= 0) & (errors <= 1))
    assert body["endpoint_errors"] == [errors[0], errors[-1]]
    assert body["barrier"] == pytest.approx(errors.max() - (errors[0] + errors[-1]) / 2)
    assert body["barrier"] >= 0 and body["seeds"] == [1, 2] and body["epochs"] == 1
    assert errors[0] < want and errors[-1] < want  # both copies learnt from the rewind point

    # the Experiments table shows the latest barrier, null for a model without one, still in
    # one SQL statement per page
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = get_engine(settings.database_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        rows = ok(client.get("/api/experiments", params={"limit": 100}))["data"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(seen) == 1
    barrier = {r["id"]: r["instability_barrier"] for r in rows}
    assert barrier[ticket] == pytest.approx(body["barrier"]) and barrier[original] is None

    # a share link's viewer of a comparison with this B reads it too
    with session_scope(settings.database_url) as s:
        comp = ComparisonRow(name="instability", dataset_id=ds["id"], model_a_id=original)
        comp.members.append(ComparisonMemberRow(model_id=ticket, position=0))
        s.add(comp)
        s.flush()
        comparison_id = comp.id
    share = ok(client.post(f"/api/comparisons/{comparison_id}/shares", json={"label": "lmc"}))
    on = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(on, executor=InlineExecutor(on), dashboard=False)) as viewer:
        assert viewer.get(url).status_code == 401
        seen = viewer.get(url, headers={"Authorization": f"Bearer {share['token']}"})
        assert seen.status_code == 200 and seen.json() == body
