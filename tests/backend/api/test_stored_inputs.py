"""uint8 uploads stay uint8 and every job converts one batch at a time (issue 19).

The independent reference is the same images uploaded as float32 ``x / 255`` (what every
uint8 upload became before): training, pruning with fine-tuning, analysis under corruptions
and the linear-region job must give bit-identical results on both, and the stored artifact of
the uint8 upload must be uint8 (a quarter of the float32 size).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits

from backend.db.session import session_scope
from backend.db.tables import DatasetRow, ModelRow
from backend.storage import ArtifactStore


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def _digits_npz(as_float: bool) -> bytes:
    digits = load_digits()
    x = np.round(digits.images / 16.0 * 255).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    y = digits.target
    if as_float:
        x = x.astype(np.float32) / np.float32(255)
    buf = io.BytesIO()
    np.savez(buf, x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    return buf.getvalue()


def _run(c, kind: str, spec: dict) -> dict:  # type: ignore[no-untyped-def]
    job = ok(c.post("/api/jobs", json={"kind": kind, "spec": spec}))
    job = ok(c.get(f"/api/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    return job


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # the engine plays no part
def test_uint8_upload_is_stored_as_uint8_and_every_job_matches_float32(client, settings):
    c = client
    store = ArtifactStore(settings.artifacts)
    results = {}
    for kind, as_float in (("u8", False), ("f32", True)):
        answer = ok(
            c.post(
                "/api/datasets/upload",
                files={"file": (f"digits-{kind}.npz", _digits_npz(as_float))},
            )
        )
        job = ok(c.get(f"/api/jobs/{answer['job_id']}"))
        assert job["status"] == "succeeded", job
        dataset_id = job["result"]["dataset_id"]
        with session_scope(settings.database_url) as s:
            sha = s.get(DatasetRow, dataset_id).artifact_sha  # type: ignore[union-attr]
        with store.local_path(sha) as path, zipfile.ZipFile(path) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
            with np.load(path) as npz:
                assert npz["x_train"].dtype == (np.float32 if as_float else np.uint8)
        train = _run(
            c,
            "train",
            {"dataset_id": dataset_id, "architecture": "digits_cnn", "epochs": 2, "seed": 3},
        )
        model = train["result"]["model_id"]
        prune = _run(
            c,
            "prune",
            {"model_id": model, "sparsity": 0.6, "finetune": {"epochs": 1}},
        )
        pruned = prune["result"]["model_id"]
        analyses = [
            _run(
                c,
                "analyze",
                {"model_id": m, "corruptions": ["gaussian_noise", "contrast"], "severities": [2]},
            )["result"]
            for m in (model, pruned)
        ]
        with session_scope(settings.database_url) as s:
            shas = [s.get(ModelRow, m).checkpoint_sha for m in (model, pruned)]  # type: ignore[union-attr]
        summaries = []
        for a in analyses:
            base = f"/api/analyses/{a['analysis_id']}"
            one = ok(c.get(base))
            for key in ("id", "model_id", "dataset_id", "created_at"):
                one.pop(key)
            # accuracy under each corruption, per-class geometry, every sample's record
            one["robustness"] = ok(c.get(f"{base}/robustness"))
            one["classes"] = ok(c.get(f"{base}/classes"))
            one["samples"] = ok(c.get(f"{base}/samples", params={"limit": 500}))
            summaries.append(one)
        results[kind] = (shas, summaries, train["result"], prune["result"])
    # bit-identical weights (same checkpoint bytes) and the same analysis numbers
    assert results["u8"][0] == results["f32"][0]
    assert results["u8"][1] == results["f32"][1]
    assert results["u8"][2]["accuracy"] == results["f32"][2]["accuracy"]
