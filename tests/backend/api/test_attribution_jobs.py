"""Sample detail and geometric attribution through the REST API, on SQLite and PostgreSQL.

The corrupted versions the attribution job renders are checked against the corruption records
the analyze job stored (read straight from the artifact store), and against an independent
recomputation of the analyze job's batch-and-seed scheme; the heatmaps against a direct call of
the analysis function on the stored checkpoints; the base metrics against the analysis table.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from backend.analysis.attribution import occlusion_attribution
from backend.data import ArrayDataset
from backend.data.corruptions import corrupt
from backend.data.images import sample_png
from backend.data.stored import float_inputs
from backend.db.session import session_scope
from backend.db.tables import (
    AnalysisRow,
    AttributionResultRow,
    ComparisonMemberRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    ModelRow,
)
from backend.jobs import runner
from backend.jobs.kinds import analyze
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint

CORRUPTIONS = ["gaussian_noise", "brightness"]
SEVERITIES = [1, 3]
# small corruption batches, so that the 450 digits test samples span five batches and the
# sample's batch and seed (index // batch) are really exercised
BATCH = 100
NO_ATTRIBUTION = "no attribution for this sample yet: submit a job of kind 'attribution'"


def ok(resp):
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


@pytest.fixture
def corrupted_comparison(client, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(analyze, "CORRUPTION_BATCH", BATCH)
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    job = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "train",
                "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 3},
            },
        )
    )
    assert job["status"] == "succeeded", job["error"]
    a = job["result"]["model_id"]
    job = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "prune",
                "spec": {"model_id": a, "sparsity": 0.9, "finetune": {"epochs": 1}},
            },
        )
    )
    assert job["status"] == "succeeded", job["error"]
    b = job["result"]["model_id"]
    comp = ok(
        client.post(
            "/api/comparisons",
            json={
                "model_a_id": a,
                "model_b_ids": [b],
                "corruptions": CORRUPTIONS,
                "severities": SEVERITIES,
                "embedding": "pca",
            },
        )
    )
    job = ok(client.get(f"/api/jobs/{comp['job_id']}"))
    assert job["status"] == "succeeded", job["error"]
    return comp, a, b


def stored(settings, model_id):
    """The model's analysis row, its tables and its checkpoint, read without the API."""
    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        an = s.scalars(select(AnalysisRow).where(AnalysisRow.model_id == model_id)).one()
        model_row = s.get(ModelRow, model_id)
        samples_sha, records_sha, ckpt = (
            an.samples_sha,
            an.corruptions_sha,
            model_row.checkpoint_sha,
        )
        analysis_id = an.id
    table = pd.read_parquet(io.BytesIO(store.get_bytes(samples_sha)))
    records = pd.read_parquet(io.BytesIO(store.get_bytes(records_sha)))
    with store.local_path(ckpt) as path:
        model, _ = load_checkpoint(path)
    return analysis_id, table, records, model


def test_sample_detail_and_attribution(client, settings, corrupted_comparison):
    comp, a, b = corrupted_comparison
    cid = comp["id"]
    an_a, table_a, records_a, model_a = stored(settings, a)
    an_b, table_b, records_b, model_b = stored(settings, b)
    # a sample past the first corruption batch whose prediction some corruption changes
    outcomes = records_a.groupby("index")["pred"].nunique()
    moved = [int(i) for i in outcomes[outcomes > 1].index if i >= BATCH]
    index = moved[0] if moved else 2 * BATCH + 50

    # before any job: 409 with the fixed detail, and status "none"
    resp = client.get(f"/api/comparisons/{cid}/samples/{index}/attribution")
    assert resp.status_code == 409 and resp.json()["detail"] == NO_ATTRIBUTION
    detail = ok(client.get(f"/api/comparisons/{cid}/samples/{index}"))
    assert detail["attribution"] == {
        "status": "none",
        "job_id": None,
        "progress": None,
        "message": None,
        "error": None,
    }

    # the sample detail against the analyses' own records
    assert detail["model_b_id"] == b and detail["index"] == index
    assert detail["label"] == int(table_a["label"][index])
    assert detail["image_url"] == f"/api/datasets/{comp['dataset_id']}/images/test/{index}.png"
    for side, model_id, table, an_id in (("a", a, table_a, an_a), ("b", b, table_b, an_b)):
        got = detail[side]
        assert got["model_id"] == model_id
        assert got["pred"] == int(table["pred"][index])
        assert got["correct"] == bool(table["correct"][index])
        assert got["confidence"] == pytest.approx(float(table["confidence"][index]), rel=1e-5)
        for key, column in (("angle", "angle_true"), ("length", "length"), ("margin", "margin")):
            assert got[key] == pytest.approx(float(table[column][index]), rel=1e-5, abs=1e-6)
        probs = ok(client.get(f"/api/analyses/{an_id}/samples", params={"offset": index}))
        record = probs["data"][0]
        assert record["index"] == index
        want = sorted(enumerate(record["probs"]), key=lambda lp: (-lp[1], lp[0]))[:5]
        assert [t["label"] for t in got["top5"]] == [lab for lab, _ in want]
        assert [t["prob"] for t in got["top5"]] == pytest.approx([p for _, p in want], rel=1e-5)
    flags = ok(
        client.get(
            f"/api/comparisons/{cid}/table",
            params={"range": f"index:{index}:{index}", "format": "records"},
        )
    )["data"][0]
    assert detail["category"] == flags["category"] and detail["pie"] == flags["pie"]
    assert detail["made_fragile"] == flags["made_fragile"]
    cor = detail["corruptions"]
    assert cor["names"] == CORRUPTIONS and cor["severities"] == SEVERITIES
    for side, records in (("a", records_a), ("b", records_b)):
        mine = records[records["index"] == index].set_index(["corruption", "severity"])
        for i, name in enumerate(CORRUPTIONS):
            for j, sev in enumerate(SEVERITIES):
                assert cor[f"pred_{side}"][i][j] == int(mine.loc[(name, sev), "pred"])
                assert cor[f"correct_{side}"][i][j] == bool(mine.loc[(name, sev), "correct"])

    # a queued job with the default parameters shows up as the sample's attribution state
    with session_scope(settings.database_url) as s:
        queued = JobRow(
            kind="attribution", spec={"comparison_id": cid, "index": index}, status="queued"
        )
        other = JobRow(  # another sample: ignored
            kind="attribution", spec={"comparison_id": cid, "index": index + 1}, status="queued"
        )
        s.add_all([queued, other])
        s.flush()
        queued_id = queued.id
    state = ok(client.get(f"/api/comparisons/{cid}/samples/{index}"))["attribution"]
    assert state["status"] == "queued" and state["job_id"] == queued_id

    job = ok(
        client.post(
            "/api/jobs",
            json={"kind": "attribution", "spec": {"comparison_id": cid, "index": index}},
        )
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["params_key"] == "patch=auto,stride=auto,fill=mean,severity=all"
    state = ok(client.get(f"/api/comparisons/{cid}/samples/{index}"))["attribution"]
    assert state["status"] == "succeeded" and state["job_id"] == job["id"]

    att = ok(client.get(f"/api/comparisons/{cid}/samples/{index}/attribution"))
    assert att["job_id"] == job["id"] and att["model_b_id"] == b and att["index"] == index
    # the default patch gives an 8 x 8 grid: 1 px patches on 8 x 8 digits
    assert (att["patch"], att["stride"], att["fill"]) == (1, 1, "mean")
    assert att["grid"] == [8, 8] and att["rows"] == list(range(8)) == att["cols"]
    assert att["metrics"] == ["angle", "length", "margin"]
    # base metrics are the analysis' geometry of the sample
    for side, table in (("a", table_a), ("b", table_b)):
        for key, column in (("angle", "angle_true"), ("length", "length"), ("margin", "margin")):
            assert att["base"][side][key] == pytest.approx(
                float(table[column][index]), rel=1e-4, abs=1e-5
            )
    # heatmaps: the analysis function on the stored checkpoints
    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        ds_sha = s.get(DatasetRow, comp["dataset_id"]).artifact_sha
    x_test, y_test = ArrayDataset.from_npz_bytes(store.get_bytes(ds_sha)).split("test")
    x = torch.from_numpy(float_inputs(x_test))
    device = settings.torch_device()
    for side, model in (("a", model_a), ("b", model_b)):
        want = occlusion_attribution(model, x[index], int(y_test[index]), patch=1, device=device)
        for m in ("angle", "length", "margin"):
            np.testing.assert_allclose(att[side][m], want.deltas[m], rtol=1e-4, atol=1e-4)
    # corrupted versions: names x severities in the analyses' order, predicted exactly as the
    # analyze job recorded, and the image the analyze job's batch-and-seed scheme produces
    assert [(c["corruption"], c["severity"]) for c in att["corrupted"]] == [
        (n, s) for n in CORRUPTIONS for s in SEVERITIES
    ]
    batch, row = divmod(index, BATCH)
    for version in att["corrupted"]:
        key = (version["corruption"], version["severity"])
        for side, records in (("a", records_a), ("b", records_b)):
            mine = records[records["index"] == index].set_index(["corruption", "severity"])
            assert version[f"pred_{side}"] == int(mine.loc[key, "pred"]), (side, key)
            assert version[f"correct_{side}"] == bool(mine.loc[key, "correct"]), (side, key)
        # on the job's device: random draws come from a generator on that device
        xb = corrupt(x[batch * BATCH : (batch + 1) * BATCH].to(device), *key, seed=batch)
        png = base64.b64decode(version["image"].removeprefix("data:image/png;base64,"))
        assert png == sample_png(xb[row].cpu().numpy())
        assert Image.open(io.BytesIO(png)).size == (64, 64)
        # not the clean sample
        assert png != sample_png(x[index].numpy())

    # a second identical job replaces the result: still one row, now pointing at it
    again = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "attribution",
                "spec": {"comparison_id": cid, "index": index, "model_b_id": b},
            },
        )
    )
    assert again["status"] == "succeeded", again["error"]
    with session_scope(settings.database_url) as s:
        rows = s.scalars(select(AttributionResultRow)).all()
        assert [(r.sample_index, r.job_id) for r in rows] == [(index, again["id"])]
    assert (
        ok(client.get(f"/api/comparisons/{cid}/samples/{index}/attribution"))["job_id"]
        == (again["id"])
    )
    # other parameters are another result; one severity renders only that severity
    one = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "attribution",
                "spec": {
                    "comparison_id": cid,
                    "index": index,
                    "patch": 3,
                    "fill": "zero",
                    "severity": 3,
                },
            },
        )
    )
    assert one["status"] == "succeeded", one["error"]
    small = ok(
        client.get(
            f"/api/comparisons/{cid}/samples/{index}/attribution",
            params={"patch": 3, "fill": "zero", "severity": 3},
        )
    )
    assert small["grid"] == [3, 3] and small["rows"] == [0, 3, 5]
    assert [(c["corruption"], c["severity"]) for c in small["corrupted"]] == [
        (n, 3) for n in CORRUPTIONS
    ]
    with session_scope(settings.database_url) as s:
        assert len(s.scalars(select(AttributionResultRow)).all()) == 2

    # samples outside the test split
    for bad in (450, 10**6):
        for path in (f"samples/{bad}", f"samples/{bad}/attribution"):
            resp = client.get(f"/api/comparisons/{cid}/{path}")
            assert resp.status_code == 404 and resp.json()["detail"] == "Sample not found"
    resp = client.get(f"/api/comparisons/{cid + 1}/samples/0")
    assert resp.status_code == 404 and resp.json()["detail"] == "Comparison not found"


def test_attribution_refuses_bad_specs(client, settings, corrupted_comparison):
    comp, a, b = corrupted_comparison
    cid = comp["id"]
    for spec, detail in [
        ({"index": 450}, "index=450 is not in the test split"),
        ({"index": -1}, "index=-1 should be >= 0"),
        ({"index": 0, "model_b_id": a}, f"model {a} is not one of comparison {cid}'s pruned"),
        ({"index": 0, "severity": 5}, "severity=5 was not used by the comparison's analyses"),
        ({"index": 0, "patch": 0}, "spec.patch"),
        ({"index": 0, "comparison_id": cid + 7}, f"comparison {cid + 7} does not exist"),
    ]:
        resp = client.post(
            "/api/jobs", json={"kind": "attribution", "spec": {"comparison_id": cid, **spec}}
        )
        assert resp.status_code == 422 and detail in resp.json()["detail"], (spec, resp.text)
    # a job row that skipped the submission checks fails with the value named
    with session_scope(settings.database_url) as s:
        job = JobRow(kind="attribution", spec={"comparison_id": cid, "index": 9999})
        s.add(job)
        s.flush()
        job_id = job.id
    assert runner.run_job(job_id, settings) == "failed"
    failed = ok(client.get(f"/api/jobs/{job_id}"))
    assert "index=9999 is not in the test split" in failed["error"]
    # and the sample detail reports it
    with session_scope(settings.database_url) as s:
        s.get(JobRow, job_id).spec = {"comparison_id": cid, "index": 7}
    state = ok(client.get(f"/api/comparisons/{cid}/samples/7"))["attribution"]
    assert state["status"] == "failed" and "index=9999" in state["error"]


def test_non_image_samples_before_and_after_the_comparison(client, settings):
    """Feature vectors: no image, no corruptions, a 1 x D attribution strip; 409 before the
    compare job has finished."""
    torch.set_num_threads(1)
    ds = ok(client.post("/api/datasets", json={"builtin": "blobs", "params": {"dim": 10}}))
    job = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "train",
                "spec": {
                    "dataset_id": ds["id"],
                    "architecture": "mlp",
                    "arch_kwargs": {"hidden": [16]},
                    "epochs": 2,
                },
            },
        )
    )
    assert job["status"] == "succeeded", job["error"]
    a = job["result"]["model_id"]
    job = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "prune",
                "spec": {"model_id": a, "sparsity": 0.5, "finetune": {"epochs": 1}},
            },
        )
    )
    b = job["result"]["model_id"]
    # a comparison whose compare job has not run yet: 409, as /results
    with session_scope(settings.database_url) as s:
        row = ComparisonRow(name="pending", dataset_id=ds["id"], model_a_id=a)
        row.members = [ComparisonMemberRow(model_id=b, position=0)]
        s.add(row)
        s.flush()
        pending = row.id
    resp = client.get(f"/api/comparisons/{pending}/samples/0")
    assert resp.status_code == 409 and "compare job has not finished" in resp.json()["detail"]

    comp = ok(
        client.post(
            "/api/comparisons", json={"model_a_id": a, "model_b_ids": [b], "embedding": "pca"}
        )
    )
    detail = ok(client.get(f"/api/comparisons/{comp['id']}/samples/3"))
    assert detail["image_url"] is None and detail["corruptions"] is None
    assert detail["made_fragile"] is None
    job = ok(
        client.post(
            "/api/jobs",
            json={
                "kind": "attribution",
                "spec": {"comparison_id": comp["id"], "index": 3, "patch": 4, "stride": 3},
            },
        )
    )
    assert job["status"] == "succeeded", job["error"]
    att = ok(
        client.get(
            f"/api/comparisons/{comp['id']}/samples/3/attribution", params={"patch": 4, "stride": 3}
        )
    )
    assert att["grid"] == [1, 3] and att["cols"] == [0, 3, 6] and att["corrupted"] == []
    assert len(att["a"]["margin"]) == 1 and len(att["b"]["margin"][0]) == 3
