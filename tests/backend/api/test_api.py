"""REST API against a temporary SQLite database, including every error case of issue 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from backend.api.errors import DATASET_NAME_TAKEN
from backend.api.schemas import ErrorPublic
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
        ({"builtin": "digits"}, 409, DATASET_NAME_TAKEN),
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


# Below the first id; past PostgreSQL's INTEGER; past SQLite's INTEGER. The last two made the
# database raise, a 500, before ids were declared with their range.
OUT_OF_RANGE = (0, 2**31, 2**63)
RANGE_MESSAGES = {
    "Input should be greater than or equal to 1",
    "Input should be less than or equal to 2147483647",
}


def test_ids_outside_the_database_range_are_422_naming_the_limit(client, settings):
    reads = [
        "/api/datasets/{}",
        "/api/datasets/{}/images/test/0.png",
        "/api/models/{}",
        "/api/models/{}/report",
        "/api/models?parent_id={}",
        "/api/jobs/{}",
        "/api/analyses/{}",
        "/api/analyses/{}/table",
        "/api/analyses?model_id={}",
        "/api/comparisons/{}",
        "/api/comparisons/{}/results",
        "/api/comparisons/1/view?b={}",
        "/api/comparisons/1/regions/{}/slice",
        "/api/comparisons/{}/samples/0",
        "/api/comparisons/{}/shares",
    ]
    for template in reads:
        for ident in OUT_OF_RANGE:
            resp = client.get(template.format(ident))
            assert resp.status_code == 422, (template, ident, resp.text)
            [issue] = resp.json()["detail"]
            assert issue["msg"] in RANGE_MESSAGES
    before = counts(settings)
    for ident in OUT_OF_RANGE:
        for resp in (
            client.post(f"/api/jobs/{ident}/cancel"),
            client.delete(f"/api/comparisons/1/shares/{ident}"),
            client.post("/api/comparisons", json={"model_a_id": ident, "model_b_ids": [1]}),
        ):
            assert resp.status_code == 422, resp.text
            assert resp.json()["detail"][0]["msg"] in RANGE_MESSAGES
        for kind, spec in [
            ("train", {"dataset_id": ident, "architecture": "digits_cnn"}),
            ("analyze", {"model_id": ident}),
            ("compare", {"comparison_id": ident}),
        ]:
            resp = client.post("/api/jobs", json={"kind": kind, "spec": spec})
            assert resp.status_code == 422, resp.text
            field = next(iter(spec))
            assert any(resp.json()["detail"] == f"spec.{field}: {m}" for m in RANGE_MESSAGES)
    # sample indices start at 0 and share the limit
    for path in ("/api/comparisons/1/samples/{}", "/api/datasets/1/images/test/{}.png"):
        for index in (-1, 2**31):
            resp = client.get(path.format(index))
            assert resp.status_code == 422, resp.text
    assert counts(settings) == before


def test_every_error_answer_is_declared_with_its_body(client):
    """Routes declare the errors they answer (a client reading the schema sees 404, 409, 503),
    and the body of each is ``ErrorPublic``, which fixed messages and validation lists fit;
    before, a fixed-message 422 contradicted FastAPI's list-only schema."""
    paths = client.get("/api/openapi.json").json()["paths"]
    error_body = {"$ref": "#/components/schemas/ErrorPublic"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "{" in path:
                assert {"404", "422"} <= set(responses), (method, path)
            for code, answer in responses.items():
                if code.startswith("4") and "{" in path:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == error_body, (method, path, code)
    for path, codes in [
        # 200: the answer of a dry run (?dry_run=true)
        ("/api/jobs", {"200", "201", "400", "422", "503"}),
        ("/api/comparisons", {"200", "201", "400", "422", "503"}),
        ("/api/datasets", {"201", "400", "409", "422"}),
        ("/api/models/upload", {"200", "201", "413", "422", "503"}),
        ("/api/datasets/upload", {"200", "201", "409", "413", "422", "503"}),
    ]:
        # and what the access layer may answer first (backend/api/app.py, document_access)
        access = {"401", "403", "413"} | ({"429"} if path != "/api/datasets" else set())
        assert set(paths[path]["post"]["responses"]) == codes | access, path
    assert {"404", "409", "422"} <= set(paths["/api/jobs/{job_id}/cancel"]["post"]["responses"])
    # both shapes of detail fit the declared body
    resp = client.post("/api/comparisons", json={"model_a_id": 1, "model_b_ids": [1]})
    assert ErrorPublic.model_validate(resp.json()).detail == "model ids must be distinct"
    resp = client.post("/api/comparisons", json={"model_a_id": "one", "model_b_ids": [1]})
    assert resp.status_code == 422
    assert ErrorPublic.model_validate(resp.json()).detail[0].loc == ["body", "model_a_id"]
    # a body that is not UTF-8 is FastAPI's 400, declared above
    resp = client.post(
        "/api/jobs", content=b'{"kind": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    assert ErrorPublic.model_validate(resp.json()).detail == "There was an error parsing the body"


def test_text_with_nul_is_422_not_a_database_error(client, settings):
    """PostgreSQL text cannot hold NUL: such names and filters raised in the database (500)."""
    before = counts(settings)
    for resp in (
        client.post("/api/datasets", json={"builtin": "blobs", "name": "a\x00b"}),
        client.post("/api/datasets", json={"builtin": "blo\x00bs"}),
        client.post("/api/comparisons", json={"model_a_id": 1, "model_b_ids": [2], "name": "\x00"}),
        client.get("/api/jobs", params={"status": "queued\x00"}),
    ):
        assert resp.status_code == 422, resp.text
        [issue] = resp.json()["detail"]
        assert issue["loc"][-1] in ("name", "builtin", "status")
    resp = client.post("/api/jobs", json={"kind": "ping", "spec": {}})
    assert resp.status_code == 201
    assert client.get("/api/jobs", params={"status": "succeeded"}).json()["count"] == 1
    resp = client.post(
        "/api/jobs",
        json={"kind": "train", "spec": {"dataset_id": 1, "architecture": "mlp", "name": "n\x00"}},
    )
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("spec.name: String should match pattern")
    assert counts(settings) == {**before, "jobs": before["jobs"] + 1}


def test_app_start_imports_the_parquet_reader_ahead_of_the_first_page(tmp_path: Path) -> None:
    """pandas loads ``pyarrow.dataset`` on the first parquet read (~0.1 s); the app's start-up
    imports it in a thread, so the first comparison someone opens does not pay for it."""
    import subprocess
    import sys

    script = f"""
import sys, time
from fastapi.testclient import TestClient
from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor
settings = Settings(data_dir={str(tmp_path)!r})
app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
assert "pyarrow.dataset" not in sys.modules, "already imported: the test proves nothing"
with TestClient(app):
    deadline = time.monotonic() + 30
    while "pyarrow.dataset" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.05)
assert "pyarrow.dataset" in sys.modules
"""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_failing_warm_up_is_logged_and_the_others_still_run(caplog) -> None:
    from backend.api.app import warm_up

    ran = []

    def broken() -> None:
        raise RuntimeError("no plotly today")

    with caplog.at_level("WARNING", logger="backend.api.app"):
        warm_up([broken, lambda: ran.append("second")])
    assert ran == ["second"]
    assert "warm-up" in caplog.text and "no plotly today" in caplog.text
