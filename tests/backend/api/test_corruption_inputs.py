"""Corruptions filter images: asking for them on a dataset of feature vectors is refused at
submission with the reason, and nothing is written (it used to fail the compare job later)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def ok(resp: Any) -> Any:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def test_corruptions_of_a_non_image_dataset_are_refused_up_front(client: TestClient) -> None:
    ds = ok(client.post("/api/datasets", json={"builtin": "blobs", "params": {"dim": 12}}))
    assert ds["input_shape"] == [12]
    spec = {"dataset_id": ds["id"], "architecture": "mlp", "epochs": 1}
    a = ok(client.post("/api/jobs", json={"kind": "train", "spec": spec}))["result"]["model_id"]
    prune = {"model_id": a, "sparsity": 0.5, "finetune": {"epochs": 1}}
    b = ok(client.post("/api/jobs", json={"kind": "prune", "spec": prune}))["result"]["model_id"]
    jobs_before = ok(client.get("/api/jobs"))["count"]

    body = {"model_a_id": a, "model_b_ids": [b], "corruptions": ["gaussian_noise"]}
    resp = client.post("/api/comparisons", json=body)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "corruptions apply to images" in detail and "shape (12)" in detail
    assert ok(client.get("/api/comparisons"))["count"] == 0  # nothing written

    analyze = {"model_id": a, "corruptions": ["fog"], "severities": [1]}
    resp = client.post("/api/jobs", json={"kind": "analyze", "spec": analyze})
    assert resp.status_code == 422 and "corruptions apply to images" in resp.json()["detail"]
    assert ok(client.get("/api/jobs"))["count"] == jobs_before

    # without corruptions the same comparison is fine
    comp = ok(client.post("/api/comparisons", json={**body, "corruptions": None}))
    job = ok(client.get(f"/api/jobs/{comp['job_id']}"))
    assert job["status"] == "succeeded", job["error"]


def test_image_datasets_still_take_corruptions(client: TestClient) -> None:
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    assert len(ds["input_shape"]) == 3
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    a = ok(client.post("/api/jobs", json={"kind": "train", "spec": spec}))["result"]["model_id"]
    analyze = {"model_id": a, "corruptions": ["fog"], "severities": [1]}
    job = ok(client.post("/api/jobs", json={"kind": "analyze", "spec": analyze}))
    assert job["status"] == "succeeded", job["error"]
