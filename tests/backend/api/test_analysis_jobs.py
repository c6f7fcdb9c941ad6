"""Analyze and compare jobs through the REST API: geometry, corruptions, recall distortion,
flags, populations, embeddings and the similarity map, checked against recomputation from the
per-sample records the API itself serves."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sqlalchemy import select

from backend.db.session import session_scope
from backend.db.tables import AnalysisRow
from backend.storage import ArtifactStore

CORRUPTIONS = ["gaussian_noise", "brightness"]


@pytest.fixture
def trained(client):
    torch.set_num_threads(1)
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    job = client.post(
        "/api/jobs",
        json={
            "kind": "train",
            "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 3},
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    return job["result"]["model_id"], ds


def prune(client, model_id, sparsity, seed=0, method="global_magnitude"):
    job = client.post(
        "/api/jobs",
        json={
            "kind": "prune",
            "spec": {
                "model_id": model_id,
                "method": method,
                "sparsity": sparsity,
                "seed": seed,
                "finetune": {"epochs": 1},
                "analyze": True,
            },
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    return job["result"]["model_id"]


def columns(client, path, **params):
    resp = client.get(path, params={"format": "columns", "limit": 10000, **params})
    assert resp.status_code == 200, resp.text
    return {k: np.array(v) for k, v in resp.json()["columns"].items()}


def test_analysis_table_has_consistent_geometry(client, trained):
    model_id, _ = trained
    job = client.post("/api/jobs", json={"kind": "analyze", "spec": {"model_id": model_id}}).json()
    assert job["status"] == "succeeded", job["error"]
    aid = job["result"]["analysis_id"]
    t = columns(client, f"/api/analyses/{aid}/table")
    assert len(t["index"]) == 450
    # SCIENCE.md sect. 1: the signed margin is negative exactly for misclassified samples
    assert np.array_equal(t["margin"] < 0, ~t["correct"].astype(bool))
    np.testing.assert_allclose(t["angular_margin"], t["margin"] / t["length"], rtol=1e-4)
    assert abs(t["length_z"].mean()) < 1e-3 and abs(t["length_z"].std() - 1) < 1e-2
    angles = np.stack([t[f"a{c}"] for c in range(10)], axis=1)
    np.testing.assert_allclose(angles[np.arange(450), t["label"]], t["angle_true"], atol=1e-4)
    np.testing.assert_allclose(angles[np.arange(450), t["pred"]], t["angle_pred"], atol=1e-4)
    classes = client.get(f"/api/analyses/{aid}/classes").json()
    assert classes["feature_dim"] == 64 and len(classes["classes"]) == 10
    # filters, sorting, column selection and records format
    wrong = client.get(
        f"/api/analyses/{aid}/table",
        params={"correct": False, "format": "records", "columns": ["index", "margin"]},
    ).json()
    assert wrong["count"] == int((~t["correct"].astype(bool)).sum())
    assert all(r["margin"] < 0 and set(r) == {"index", "margin"} for r in wrong["data"])
    ranged = columns(client, f"/api/analyses/{aid}/table", range="margin:0:1", sort="-margin")
    assert np.all((ranged["margin"] >= 0) & (ranged["margin"] <= 1))
    assert np.all(np.diff(ranged["margin"]) <= 0)
    for params, detail in [
        ({"sort": "nope"}, "no column 'nope'"),
        ({"range": "margin:a:b"}, "bounds must be numbers"),
        ({"columns": ["zzz"]}, "unknown column 'zzz'"),
    ]:
        resp = client.get(f"/api/analyses/{aid}/table", params=params)
        assert resp.status_code == 422 and detail in resp.json()["detail"]


def _stored_features(settings, model_id):
    """The (N, D) penultimate features the analysis of ``model_id`` stored."""
    with session_scope(settings.database_url) as session:
        sha = session.scalars(
            select(AnalysisRow.features_sha).where(AnalysisRow.model_id == model_id)
        ).one()
    return np.load(io.BytesIO(ArtifactStore(settings.artifact_location).get_bytes(sha)))


def _twonn(x):
    """TwoNN as Facco et al. 2017 write it: mu = r2 / r1 by brute force, the empirical CDF,
    the largest 10% of mu dropped, a least-squares slope through the origin."""
    dist = cdist(x.astype(np.float64), x.astype(np.float64))
    np.fill_diagonal(dist, np.inf)
    r = np.sort(dist, axis=1)
    mu = np.sort(r[r[:, 0] > 0, 1] / r[r[:, 0] > 0, 0])
    n = len(mu)
    keep = int(np.floor(0.9 * n))
    xs = np.log(mu[:keep])[:, None]
    ys = -np.log(1 - np.arange(1, keep + 1) / n)
    return float(np.linalg.lstsq(xs, ys, rcond=None)[0][0])


def test_comparison_results_with_corruptions(client, trained, settings):
    model_id, _ = trained
    b = prune(client, model_id, 0.8)
    comp = client.post(
        "/api/comparisons",
        json={
            "model_a_id": model_id,
            "model_b_ids": [b],
            "corruptions": CORRUPTIONS,
            "severities": [1, 3],
        },
    ).json()
    job = client.get(f"/api/jobs/{comp['job_id']}").json()
    assert job["status"] == "succeeded", job["error"]
    res = client.get(f"/api/comparisons/{comp['id']}/results").json()
    # recall distortion recomputed from the two analyses (SCIENCE.md sect. 2)
    an = {a["model_id"]: a for a in client.get("/api/analyses").json()["data"]}
    ra, rb = np.array(an[model_id]["recall"]), np.array(an[b]["recall"])
    acc_a, acc_b = an[model_id]["accuracy"], an[b]["accuracy"]
    bn_a, bn_b = (ra - acc_a) / acc_a, (rb - acc_b) / acc_b
    rd = res["recall_distortion"]
    assert rd["alpha"] == pytest.approx((bn_a * bn_b).sum() / (bn_a**2).sum())
    model_a, model_b = (client.get(f"/api/models/{m}").json() for m in (model_id, b))
    assert rd["t"] == pytest.approx(1 / (1 - model_b["sparsity"]))
    # SCIENCE.md sect. 7: t over all parameters as well (ShrinkBench's compression ratio)
    assert rd["t_all"] == pytest.approx(model_a["n_params"] / model_b["n_nonzero"])
    assert rd["t_all"] < rd["t"]  # biases and unpruned layers count in the total
    # class-direction angles A vs B (sect. 1), recomputed from the downloaded weights
    heads = []
    for m in (model_id, b):
        state = torch.load(
            io.BytesIO(client.get(f"/api/models/{m}/download?format=pt").content),
            weights_only=True,
        )
        heads.append(next(v for k, v in state.items() if tuple(v.shape) == (10, 64)).double())
    cos = torch.nn.functional.cosine_similarity(heads[0], heads[1], dim=1)
    expected = torch.rad2deg(torch.acos(cos.clamp(-1, 1))).numpy()
    angles = res["direction_angles"]
    assert angles["reason"] is None
    np.testing.assert_allclose(angles["degrees"], expected, atol=1e-6)
    np.testing.assert_allclose(angles["norm_b"], heads[1].norm(dim=1).numpy(), rtol=1e-9)
    assert 0 < max(angles["degrees"]) < 90  # pruned and fine-tuned: moved, not turned around
    # per-sample records agree with the summary
    t = columns(client, f"/api/comparisons/{comp['id']}/table")
    # TwoNN intrinsic dimension (sect. 7), recomputed by brute force from the stored features
    for side, m in (("a", model_id), ("b", b)):
        features, labels = _stored_features(settings, m), t["label"]
        served = res["intrinsic_dimension"][side]
        assert served["overall"]["d"] == pytest.approx(_twonn(features), rel=1e-9)
        for c in (0, 7):
            assert served["classes"][c]["d"] == pytest.approx(
                _twonn(features[labels == c]), rel=1e-9
            )
    assert sum(res["flip_counts"].values()) == int((t["pred_a"] != t["pred_b"]).sum())
    assert res["pie"] == {"count": int(t["pie"].sum()), "dense_models": 1, "sparse_models": 1}
    assert np.array_equal(t["pie"], t["pred_a"] != t["pred_b"])  # one model a side: flips
    assert res["fragility"]["made_fragile_by_pruning"] == int(t["made_fragile"].sum())
    assert np.array_equal(t["made_fragile"], (t["fragile_b"] > 0) & (t["fragile_a"] == 0))
    # robustness: accuracy per corruption x severity, recomputed mCE
    rob_a = client.get(f"/api/analyses/{an[model_id]['id']}/robustness").json()
    rob_b = client.get(f"/api/analyses/{an[b]['id']}/robustness").json()
    assert rob_a["corruptions"] == CORRUPTIONS and rob_a["severities"] == [1, 3]
    err_a = (1 - np.array(rob_a["accuracy"])).sum(1)
    err_b = (1 - np.array(rob_b["accuracy"])).sum(1)
    assert res["mce"]["mce"] == pytest.approx(np.mean(err_b / err_a))
    # embedding coordinates for every sample, and the largest shifts really are the largest
    assert np.isfinite(t["ax"]).all() and np.isfinite(t["by"]).all()
    top = res["largest_shifts"]["d_margin"][:5]
    assert set(np.abs(t["d_margin"][top])) <= set(np.sort(np.abs(t["d_margin"]))[-5:])
    # similarity map: (1 clean + 2 corruptions) x 2 models, joined by a spanning tree
    sim = client.get(f"/api/comparisons/{comp['id']}/similarity").json()
    assert len(sim["points"]) == 6 and len(sim["mst_edges"]) == 5
    # filtered pages
    flips = client.get(
        f"/api/comparisons/{comp['id']}/table",
        params={"category": "correct_to_wrong", "format": "records"},
    ).json()
    assert flips["count"] == res["flip_counts"]["correct_to_wrong"]


def test_populations_give_pie_and_alpha_statistics(client, trained):
    model_id, _ = trained
    pruned = {(s, seed): prune(client, model_id, s, seed) for s in (0.5, 0.8) for seed in (0, 1, 2)}
    comp = client.post(
        "/api/comparisons", json={"model_a_id": model_id, "model_b_ids": [pruned[(0.8, 0)]]}
    ).json()
    assert client.get(f"/api/jobs/{comp['job_id']}").json()["status"] == "succeeded"
    res = client.get(f"/api/comparisons/{comp['id']}/results").json()
    assert res["pie"]["sparse_models"] == 3 and res["pie"]["dense_models"] == 1
    # PIE by hand: the modal prediction of the three seeds differs from A's prediction
    preds = []
    for seed in (0, 1, 2):
        aid = next(
            a["id"]
            for a in client.get("/api/analyses", params={"model_id": pruned[(0.8, seed)]}).json()[
                "data"
            ]
        )
        preds.append(columns(client, f"/api/analyses/{aid}/table")["pred"])
    aid_a = next(
        a["id"] for a in client.get("/api/analyses", params={"model_id": model_id}).json()["data"]
    )
    pred_a = columns(client, f"/api/analyses/{aid_a}/table")["pred"]
    stacked = np.stack(preds)
    modal = np.array([np.bincount(stacked[:, i], minlength=10).argmax() for i in range(450)])
    t = columns(client, f"/api/comparisons/{comp['id']}/table")
    assert np.array_equal(t["pie"], modal != pred_a)
    pop = res["population"]
    assert [round(r["sparsity"], 3) for r in pop["by_ratio"]] == [0.5, 0.8]
    assert all(r["n"] == 3 for r in pop["by_ratio"])
    assert len(pop["tests"]) == 1 and 0.0 <= pop["tests"][0]["p_value"] <= 1.0


def test_bad_analysis_requests(client, trained):
    model_id, _ = trained
    blobs = client.post(
        "/api/datasets", json={"builtin": "blobs", "params": {"num_classes": 5}}
    ).json()
    resp = client.post(
        "/api/jobs",
        json={"kind": "analyze", "spec": {"model_id": model_id, "dataset_id": blobs["id"]}},
    )
    assert resp.status_code == 422
    # the digits CNN was proven on (1, 8, 8) digits when it was trained: blobs are vectors
    detail = resp.json()["detail"]
    assert "accepts inputs of shape (1, 8, 8) but dataset" in detail and "(32,)" in detail
    resp = client.post(
        "/api/jobs",
        json={"kind": "analyze", "spec": {"model_id": model_id, "corruptions": ["sunburn"]}},
    )
    assert resp.status_code == 422 and "unknown corruption 'sunburn'" in resp.json()["detail"]
    resp = client.post(
        "/api/jobs", json={"kind": "analyze", "spec": {"model_id": model_id, "severities": [0]}}
    )
    assert resp.status_code == 422
    b = prune(client, model_id, 0.5)
    resp = client.post(
        "/api/comparisons",
        json={"model_a_id": model_id, "model_b_ids": [b], "corruptions": ["sunburn"]},
    )
    assert resp.status_code == 422
    assert client.get("/api/comparisons").json()["count"] == 0
