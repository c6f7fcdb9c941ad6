"""The layers job through the REST API (SCIENCE.md sect. 7): per prunable layer of A and every
B, read back by the owner and by a share link's viewer, checked against an independent CKA."""

from __future__ import annotations

import math

import numpy as np
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.api.app import create_app
from backend.data.stored import load_from_store
from backend.db.session import session_scope
from backend.db.tables import DatasetRow, LayerResultRow, ModelRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint

N = 64  # test samples


def textbook_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (ICML 2019): HSIC with an explicit centring matrix H."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h  # noqa: E741
    return float(np.sum(k * l) / math.sqrt(np.sum(k * k) * np.sum(l * l)))


def layer_output(model: torch.nn.Module, x: torch.Tensor, name: str) -> np.ndarray:
    got: list[torch.Tensor] = []
    handle = dict(model.named_modules())[name].register_forward_hook(
        lambda _m, _i, out: got.append(out.detach())
    )
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return got[0].reshape(x.shape[0], -1).double().numpy()


def stored_model(settings, store: ArtifactStore, model_id: int) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    with session_scope(settings.database_url) as s:
        row = s.get(ModelRow, model_id)
        assert row is not None
        sha = row.checkpoint_sha
    with store.local_path(sha) as path:
        model, _ = load_checkpoint(path)
    return model


def test_layers_job_stores_every_b_and_serves_it(client, settings, pipeline):
    torch.set_num_threads(1)
    cid = pipeline.comparison_id
    resp = client.get(f"/api/comparisons/{cid}/layers")
    assert resp.status_code == 404
    assert resp.json()["detail"] == (
        "no layer results yet: submit a job of kind 'layers' for this comparison"
    )
    assert client.get("/api/comparisons/999/layers").status_code == 404
    dry = client.post(
        "/api/jobs?dry_run=true", json={"kind": "layers", "spec": {"comparison_id": cid}}
    )
    assert dry.status_code == 200 and dry.json()["spec"] == {
        "comparison_id": cid,
        "n_samples": 1000,
    }
    refused = client.post("/api/jobs", json={"kind": "layers", "spec": {"comparison_id": 99}})
    assert refused.status_code == 422 and "comparison 99 does not exist" in refused.json()["detail"]
    job = client.post(
        "/api/jobs", json={"kind": "layers", "spec": {"comparison_id": cid, "n_samples": N}}
    ).json()
    assert job["status"] == "succeeded", job["error"]
    body = client.get(f"/api/comparisons/{cid}/layers").json()
    assert body["comparison_id"] == cid
    assert [r["model_b_id"] for r in body["results"]] == pipeline.pruned_ids
    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        ds_row = s.scalars(select(DatasetRow).where(DatasetRow.id == pipeline.dataset_id)).one()
        sha = ds_row.artifact_sha
    x_test, _ = load_from_store(store, sha).split("test")
    x = torch.as_tensor(np.asarray(x_test[:N]), dtype=torch.float32)
    model_a = stored_model(settings, store, pipeline.original_id)
    names = [
        n for n, m in model_a.named_modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    for result in body["results"]:
        assert result["job_id"] == job["id"] and result["n_samples"] == N
        layers = result["layers"]
        assert sorted(r["name"] for r in layers) == sorted(names)
        for r in layers:
            assert set(r) == {
                "name", "kind", "shape_a", "shape_b", "channels", "params", "sparsity_a",
                "sparsity_b", "kept_channels_a", "kept_channels_b", "relative_weight_change",
                "cka", "dead_relu_a", "dead_relu_b", "hist",
            }  # fmt: skip
            assert r["kind"] in ("conv", "linear") and r["shape_a"] == r["shape_b"]
            assert 0.0 <= r["sparsity_b"] <= 1.0 and r["sparsity_a"] == 0.0
            assert r["cka"] is not None and 0.0 <= r["cka"] <= 1.0 + 1e-12
            hist = r["hist"]
            assert len(hist["log10_edges"]) == 41 and len(hist["a"]) == len(hist["b"]) == 40
            assert sum(hist["a"]) + hist["zeros_a"] == r["params"]
            assert sum(hist["b"]) + hist["zeros_b"] == r["params"]
        assert layers[-1]["kind"] == "linear" and layers[-1]["dead_relu_a"] is None
        assert any(r["dead_relu_a"] is not None for r in layers)
        # the stored CKA of every layer against an independent recomputation
        model_b = stored_model(settings, store, result["model_b_id"])
        for r in layers:
            want = textbook_cka(
                layer_output(model_a, x, r["name"]), layer_output(model_b, x, r["name"])
            )
            assert abs(r["cka"] - want) < 1e-7, r["name"]
    sparser = body["results"][1]["layers"]
    assert sum(r["sparsity_b"] * r["params"] for r in sparser) > sum(
        r["sparsity_b"] * r["params"] for r in body["results"][0]["layers"]
    )
    # run again: the rows are replaced, not added
    again = client.post(
        "/api/jobs", json={"kind": "layers", "spec": {"comparison_id": cid, "n_samples": 8}}
    ).json()
    assert again["status"] == "succeeded", again["error"]
    body = client.get(f"/api/comparisons/{cid}/layers").json()
    assert {r["n_samples"] for r in body["results"]} == {8}
    with session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(LayerResultRow)) == 2

    # a share link's viewer reads it too, on a server that asks for credentials
    share = client.post(f"/api/comparisons/{cid}/shares", json={"label": "layers"}).json()
    on = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(on, executor=InlineExecutor(on), dashboard=False)) as viewer:
        assert viewer.get(f"/api/comparisons/{cid}/layers").status_code == 401
        seen = viewer.get(
            f"/api/comparisons/{cid}/layers", headers={"Authorization": f"Bearer {share['token']}"}
        )
        assert seen.status_code == 200 and seen.json() == body

    # deleting the comparison takes its layer results along
    gone = client.delete(f"/api/comparisons/{cid}").json()
    assert gone["deleted"]["layer_results"] == 2
    with session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(LayerResultRow)) == 0
