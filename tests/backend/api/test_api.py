"""REST API against a temporary SQLite database, including every error case of issue 2."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.db.session import session_scope
from backend.db.tables import ComparisonRow, DatasetRow, JobRow, ModelRow


def counts(settings) -> dict[str, int]:
    with session_scope(settings.database_url) as s:
        return {
            t.__tablename__: s.scalar(select(func.count()).select_from(t))
            for t in (DatasetRow, JobRow, ModelRow, ComparisonRow)
        }


def test_health_and_docs(client, settings):
    body = client.get("/api/health").json()
    expected = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    assert body["status"] == "ok" and body["database"] == expected
    assert client.get("/api/docs").status_code == 200
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/comparisons/{comparison_id}/view" in paths


def test_empty_lists(client):
    for res in ("datasets", "models", "jobs", "analyses", "comparisons"):
        assert client.get(f"/api/{res}").json() == {"data": [], "count": 0}


@pytest.mark.parametrize(
    "path, detail",
    [
        ("/api/datasets/9", "Dataset not found"),
        ("/api/models/9", "Model not found"),
        ("/api/jobs/9", "Job not found"),
        ("/api/analyses/9", "Analysis not found"),
        ("/api/comparisons/9", "Comparison not found"),
        ("/api/comparisons/9/view", "Comparison not found"),
        ("/api/datasets/9/images/test/0.png", "Dataset not found"),
    ],
)
def test_unknown_ids_are_404_with_fixed_detail(client, path, detail):
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.json() == {"detail": detail}


def test_dataset_registration_and_errors(client, settings):
    resp = client.post("/api/datasets", json={"builtin": "digits"})
    assert resp.status_code == 201
    ds = resp.json()
    assert ds["num_classes"] == 10 and ds["input_shape"] == [1, 8, 8]
    assert ds["n_train"] + ds["n_test"] == 1797
    before = counts(settings)
    bad = [
        ({"builtin": "imagenet"}, 422, "unknown dataset 'imagenet'"),
        ({"builtin": "digits"}, 409, "a dataset named 'digits' already exists"),
        ({"builtin": "blobs", "params": {"num_classes": 1}}, 422, "num_classes=1"),
        ({"builtin": "blobs", "params": {"colour": "red"}}, 422, "bad dataset params"),
    ]
    for body, status, detail in bad:
        resp = client.post("/api/datasets", json=body)
        assert resp.status_code == status, resp.text
        assert detail in resp.json()["detail"]
    assert counts(settings) == before


def test_bad_job_specs_are_refused_and_write_nothing(client, settings):
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    train = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    model_id = client.post("/api/jobs", json={"kind": "train", "spec": train}).json()["result"][
        "model_id"
    ]
    before = counts(settings)
    cases = [
        (
            {"kind": "train", "spec": {**train, "architecture": "vgg99"}},
            "spec.architecture: unknown architecture 'vgg99'",
        ),
        (
            {"kind": "train", "spec": {**train, "dataset_id": 42}},
            "spec.dataset_id: dataset 42 does not exist",
        ),
        ({"kind": "train", "spec": {**train, "epochs": -1}}, "spec.epochs"),
        ({"kind": "train", "spec": {**train, "learning_rate": 1}}, "spec.learning_rate"),
        (
            {"kind": "prune", "spec": {"model_id": 999, "sparsity": 0.5}},
            "spec.model_id: model 999 does not exist",
        ),
        ({"kind": "prune", "spec": {"model_id": model_id, "sparsity": 1.0}}, "spec.sparsity"),
        ({"kind": "prune", "spec": {"model_id": model_id, "sparsity": -0.1}}, "spec.sparsity"),
        (
            {"kind": "prune", "spec": {"model_id": model_id, "sparsity": 0.5, "method": "magic"}},
            "unknown pruning method 'magic'",
        ),
        ({"kind": "analyze", "spec": {"model_id": 777}}, "model 777 does not exist"),
        ({"kind": "explode", "spec": {}}, None),
    ]
    for body, detail in cases:
        resp = client.post("/api/jobs", json=body)
        assert resp.status_code == 422, (body, resp.text)
        if detail:
            assert detail in str(resp.json()["detail"]), resp.json()
    assert counts(settings) == before


def test_failing_job_is_marked_failed_and_server_keeps_serving(client, settings, monkeypatch):
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    import backend.jobs.common as job_common

    def explode(*_a, **_k):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(job_common, "train", explode)
    resp = client.post(
        "/api/jobs",
        json={
            "kind": "train",
            "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1},
        },
    )
    assert resp.status_code == 201
    job = client.get(f"/api/jobs/{resp.json()['id']}").json()
    assert job["status"] == "failed"
    assert job["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert job["finished_at"] is not None
    with session_scope(settings.database_url) as s:
        assert "Traceback" in s.get(JobRow, job["id"]).traceback
    assert client.get("/api/models").json()["count"] == 0  # no half result
    assert client.get("/api/health").status_code == 200


def test_pipeline_results(client, pipeline):
    models = {m["id"]: m for m in client.get("/api/models").json()["data"]}
    original = models[pipeline.original_id]
    assert original["parent_id"] is None and original["sparsity"] == 0.0
    for mid, target in zip(pipeline.pruned_ids, (0.5, 0.9), strict=True):
        m = models[mid]
        assert m["parent_id"] == pipeline.original_id
        assert m["pruning_method"] == "global_magnitude"
        assert m["sparsity"] == pytest.approx(target, abs=1e-3)
        assert m["compression_ratio"] == pytest.approx(m["n_params"] / m["n_nonzero"])
    assert (
        client.get("/api/models", params={"parent_id": pipeline.original_id}).json()["count"] == 2
    )
    analyses = client.get("/api/analyses").json()["data"]
    assert {a["model_id"] for a in analyses} == {pipeline.original_id, *pipeline.pruned_ids}


def test_comparison_view_is_consistent_with_samples(client, pipeline):
    b = pipeline.pruned_ids[1]
    view = client.get(f"/api/comparisons/{pipeline.comparison_id}/view", params={"b": b}).json()
    assert view["model_b"]["id"] == b
    ca, cb = np.array(view["analysis_a"]["confusion"]), np.array(view["analysis_b"]["confusion"])
    np.testing.assert_array_equal(np.array(view["confusion_shift"]), cb - ca)

    def samples(analysis_id):
        return client.get(f"/api/analyses/{analysis_id}/samples", params={"limit": 1000}).json()

    sa, sb = samples(view["analysis_a"]["id"]), samples(view["analysis_b"]["id"])
    assert sa["count"] == 450 and len(sa["data"]) == 450
    # the confusion matrix stored in the summary equals a recount from the per-sample records
    recount = np.zeros_like(ca)
    for r in sa["data"]:
        recount[r["label"], r["pred"]] += 1
        assert r["pred"] == int(np.argmax(r["probs"]))
        assert sum(r["probs"]) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(recount, ca)
    # flips: counts and the paged list agree with a recount from the samples
    flips = client.get(
        f"/api/comparisons/{pipeline.comparison_id}/flips", params={"b": b, "limit": 1000}
    ).json()
    want = [
        (ra["index"], ra["label"], ra["pred"], rb["pred"])
        for ra, rb in zip(sa["data"], sb["data"], strict=True)
        # any change of prediction is a flip: two different predictions cannot both be right
        if ra["pred"] != rb["pred"]
    ]
    got = [(f["index"], f["label"], f["pred_a"], f["pred_b"]) for f in flips["data"]]
    assert got == want and flips["count"] == len(want)
    fc = view["flip_counts"]
    assert sum(fc.values()) == len(want)
    # class filter and category filter
    label = want[0][1] if want else 0
    by_label = client.get(
        f"/api/comparisons/{pipeline.comparison_id}/flips", params={"b": b, "label": label}
    ).json()
    assert by_label["count"] == sum(1 for w in want if w[1] == label)
    c2w = client.get(
        f"/api/comparisons/{pipeline.comparison_id}/flips",
        params={"b": b, "category": "correct_to_wrong"},
    ).json()
    assert c2w["count"] == fc["correct_to_wrong"]
    if flips["data"]:
        img = client.get(flips["data"][0]["image_url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        assert img.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_errors(client, pipeline, settings):
    cid = pipeline.comparison_id
    resp = client.get(f"/api/comparisons/{cid}/view", params={"b": pipeline.original_id})
    assert resp.status_code == 422
    assert resp.json()["detail"] == (
        f"model {pipeline.original_id} is not one of this comparison's pruned models"
    )
    resp = client.get(f"/api/comparisons/{cid}/flips", params={"category": "sideways"})
    assert resp.status_code == 422
    before = counts(settings)
    for body, detail in [
        ({"model_a_id": 1, "model_b_ids": [1]}, "model ids must be distinct"),
        ({"model_a_id": 1, "model_b_ids": [55]}, "model 55 does not exist"),
        ({"model_a_id": 1, "model_b_ids": []}, None),
    ]:
        resp = client.post("/api/comparisons", json=body)
        assert resp.status_code == 422
        if detail:
            assert resp.json()["detail"] == detail
    assert counts(settings) == before


def test_images_out_of_range_and_non_image_dataset(client):
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    assert client.get(f"/api/datasets/{ds['id']}/images/test/450.png").status_code == 404
    assert client.get(f"/api/datasets/{ds['id']}/images/test/449.png").status_code == 200
    assert client.get(f"/api/datasets/{ds['id']}/images/valid/0.png").status_code == 422
    blobs = client.post("/api/datasets", json={"builtin": "blobs"}).json()
    resp = client.get(f"/api/datasets/{blobs['id']}/images/test/0.png")
    assert resp.status_code == 422 and resp.json()["detail"] == "Dataset samples are not images"


def test_cancel_rules(client, settings):
    with session_scope(settings.database_url) as s:
        job = JobRow(kind="train", spec={}, status="queued", progress=0.0, stage="queued")
        s.add(job)
        s.flush()
        jid = job.id
    resp = client.post(f"/api/jobs/{jid}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    resp = client.post(f"/api/jobs/{jid}/cancel")
    assert resp.status_code == 409 and resp.json()["detail"] == "Job already finished"
