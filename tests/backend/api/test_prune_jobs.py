"""Every registered pruning method through the real prune job; sweeps; lineage; validation."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch

from backend.data.stored import float_inputs
from backend.pruning import list_methods, method_info
from backend.pruning.finetune import predict
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint

FAST = {"epochs": 1, "batch_size": 128}


@pytest.fixture
def parent(client):
    """A briefly trained digits_cnn and its dataset."""
    torch.set_num_threads(1)
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    job = client.post(
        "/api/jobs",
        json={
            "kind": "train",
            "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 2},
        },
    ).json()
    assert job["status"] == "succeeded", job
    return job["result"]["model_id"], ds


def submit(client, spec):
    resp = client.post("/api/jobs", json={"kind": "prune", "spec": spec})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["status"] == "succeeded", job["error"]
    return job


@pytest.mark.parametrize("name", list_methods())
def test_every_method_runs_as_a_job_and_its_checkpoint_reproduces_its_predictions(
    client, settings, parent, name
):
    model_id, ds = parent
    params = {"prune_fraction": 0.5} if name == "lottery_ticket" else {}
    job = submit(
        client,
        {
            "model_id": model_id,
            "method": name,
            "sparsity": 0.5,
            "params": params,
            "finetune": FAST,
            "analyze": True,
        },
    )
    result = job["result"]
    pruned = client.get(f"/api/models/{result['model_id']}").json()
    assert pruned["pruning_method"] == name
    assert pruned["accuracy"] == pytest.approx(result["accuracy"])
    report = client.get(f"/api/models/{pruned['id']}/report").json()
    for key in (
        "flops_dense",
        "flops_nonzero",
        "theoretical_speedup",
        "latency_ms_dense",
        "latency_ms_pruned",
        "measured_speedup",
        "note",
        "compression_ratio",
    ):
        assert key in report, key
    assert pruned["compression_ratio"] == pytest.approx(report["params_dense"] / report["nonzero"])
    if method_info(name)["scope"] != "structured":
        n_layers = len(report["layers"])
        total = sum(layer["numel"] for layer in report["layers"])
        assert abs(pruned["sparsity"] - 0.5) * total <= n_layers
    else:
        assert pruned["n_params"] < client.get(f"/api/models/{model_id}").json()["n_params"]
    # loading the stored checkpoint reproduces the analysed predictions exactly
    from backend.db.session import session_scope
    from backend.db.tables import AnalysisRow, ModelRow

    store = ArtifactStore(settings.artifacts)
    with session_scope(settings.database_url) as s:
        sha = s.get(ModelRow, pruned["id"]).checkpoint_sha
        samples_sha = s.get(AnalysisRow, result["analysis_id"]).samples_sha
    with store.local_path(sha) as path:
        model, _ = load_checkpoint(path)
    table = pd.read_parquet(io.BytesIO(store.get_bytes(samples_sha)))
    from backend.data import ArrayDataset
    from backend.db.tables import DatasetRow

    with session_scope(settings.database_url) as s:
        arrays = ArrayDataset.from_npz_bytes(
            store.get_bytes(s.get(DatasetRow, ds["id"]).artifact_sha)
        )
    logits = predict(model, torch.from_numpy(float_inputs(arrays.x_test)))
    np.testing.assert_array_equal(logits.argmax(1).numpy(), table["pred"].to_numpy())
    probs = torch.softmax(logits.double(), 1).numpy()
    np.testing.assert_allclose(probs[:, 0], table["p0"].to_numpy(), atol=1e-5)


def test_lottery_ticket_keeps_every_round_as_a_lineage(client, parent):
    model_id, _ = parent
    job = submit(
        client,
        {
            "model_id": model_id,
            "method": "lottery_ticket",
            "sparsity": 0.6,
            "params": {"prune_fraction": 0.3},
            "finetune": FAST,
        },
    )
    rounds = job["result"]["round_model_ids"]
    assert len(rounds) == 2  # 0.3, 0.51, then the final 0.6
    chain, current = [], job["result"]["model_id"]
    while current is not None:
        m = client.get(f"/api/models/{current}").json()
        chain.append(m)
        current = m["parent_id"]
    assert [m["id"] for m in chain] == [job["result"]["model_id"], *reversed(rounds), model_id]
    assert [round(m["sparsity"], 2) for m in chain] == [0.6, 0.51, 0.3, 0.0]
    # every round records how far its training moved the kept weights (an original: nothing)
    assert all(m["learning_distance"] > 0 for m in chain[:-1])
    assert chain[-1]["learning_distance"] is None


def test_schedule_defaults_follow_the_method(client, parent):
    model_id, _ = parent
    one_shot = submit(client, {"model_id": model_id, "sparsity": 0.3})
    assert (
        one_shot["result"]
        and client.get(f"/api/models/{one_shot['result']['model_id']}").json()["pruning_params"][
            "training"
        ]["epochs"]
        == 3
    )
    at_init = submit(client, {"model_id": model_id, "method": "snip", "sparsity": 0.3})
    params = client.get(f"/api/models/{at_init['result']['model_id']}").json()["pruning_params"]
    assert params["training"]["epochs"] == 2  # the parent's own training


def test_sweep_expands_into_child_jobs(client, parent):
    model_id, _ = parent
    resp = client.post(
        "/api/jobs",
        json={
            "kind": "sweep",
            "spec": {
                "model_id": model_id,
                "methods": ["global_magnitude", {"method": "random"}],
                "sparsities": [0.3, 0.6],
                "seeds": [0, 1],
                "finetune": FAST,
                "analyze": True,
            },
        },
    )
    assert resp.status_code == 201, resp.text
    sweep = resp.json()
    assert sweep["kind"] == "sweep" and sweep["status"] == "succeeded"
    children = [
        j for j in client.get("/api/jobs").json()["data"] if j["parent_job_id"] == sweep["id"]
    ]
    assert len(children) == 8
    combos = {(c["spec"]["method"], c["spec"]["sparsity"], c["spec"]["seed"]) for c in children}
    assert combos == {
        (m, s, seed) for m in ("global_magnitude", "random") for s in (0.3, 0.6) for seed in (0, 1)
    }
    assert sorted(sweep["result"]["model_ids"]) == sorted(c["result"]["model_id"] for c in children)
    # the random method's own seed follows the sweep seed: two seeds, two different masks
    random_models = [
        client.get(f"/api/models/{c['result']['model_id']}").json()
        for c in children
        if c["spec"]["method"] == "random"
    ]
    assert {m["pruning_params"]["seed"] for m in random_models} == {0, 1}
    assert len(client.get("/api/analyses").json()["data"]) == 8


def test_bad_sweeps_and_schedules_are_refused_and_write_nothing(client, parent):
    model_id, _ = parent
    before = client.get("/api/jobs").json()["count"]
    cases = [
        (
            {
                "kind": "sweep",
                "spec": {"model_id": model_id, "methods": ["nope"], "sparsities": [0.5]},
            },
            "unknown pruning method 'nope'",
        ),
        (
            {
                "kind": "sweep",
                "spec": {"model_id": model_id, "methods": ["random"], "sparsities": [0.5, 1.0]},
            },
            "spec.sparsities.1",
        ),
        (
            {
                "kind": "sweep",
                "spec": {
                    "model_id": model_id,
                    "methods": ["random"] * 50,
                    "sparsities": [0.1] * 11,
                },
            },
            "at most 500",
        ),
        (
            {
                "kind": "prune",
                "spec": {
                    "model_id": model_id,
                    "method": "lottery_ticket",
                    "sparsity": 0.5,
                    "params": {"rewind_step": 100000},
                    "finetune": FAST,
                },
            },
            "rewind_step=100000 is beyond training (11 steps)",
        ),
    ]
    for body, detail in cases:
        resp = client.post("/api/jobs", json=body)
        assert resp.status_code == 422, resp.text
        assert detail in resp.json()["detail"], resp.json()
    assert client.get("/api/jobs").json()["count"] == before


def test_methods_endpoint_lists_the_registry(client):
    body = client.get("/api/methods").json()
    assert [m["name"] for m in body["data"]] == list_methods()
    lottery = next(m for m in body["data"] if m["name"] == "lottery_ticket")
    assert lottery["schedule"] == "iterative" and lottery["defaults"]["prune_fraction"] == 0.2
