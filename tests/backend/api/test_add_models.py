"""Adding models B to an existing comparison (issue 18): ``POST /api/comparisons/{id}/models``
validates each id at its field (also as a dry run), appends the members and submits a compare
job that computes only what the new Bs need; what it reuses gives the numbers a comparison
created with every B at once gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from backend.db.session import session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonResultRow, JobRow
from backend.jobs.executor import ExecutorUnavailable

DRY = {"dry_run": "true"}


def ok(resp: Any) -> Any:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def train(client: Any, dataset_id: int, architecture: str = "digits_cnn", epochs: int = 1) -> int:
    spec = {"dataset_id": dataset_id, "architecture": architecture, "epochs": epochs}
    job = ok(client.post("/api/jobs", json={"kind": "train", "spec": spec}))
    assert job["status"] == "succeeded", job["error"]
    return int(job["result"]["model_id"])


def prune(client: Any, model_id: int, sparsity: float, method: str = "global_magnitude") -> int:
    spec = {"model_id": model_id, "method": method, "sparsity": sparsity, "finetune": None}
    job = ok(client.post("/api/jobs", json={"kind": "prune", "spec": spec}))
    assert job["status"] == "succeeded", job["error"]
    return int(job["result"]["model_id"])


def issues(resp: Any) -> list[tuple[tuple[Any, ...], str]]:
    assert resp.status_code == 422, resp.text
    return [(tuple(i["loc"]), i["type"]) for i in resp.json()["detail"]]


def counts(settings: Any) -> dict[str, int]:
    with session_scope(settings.database_url) as s:
        return {
            t.__tablename__: s.scalar(select(func.count()).select_from(t))
            for t in (JobRow, ComparisonMemberRow, ComparisonResultRow)
        }


def result_rows(settings: Any, comparison_id: int) -> dict[int, tuple[int, str, int | None]]:
    """B -> (result row id, per-sample table sha256, the job that wrote it)."""
    with session_scope(settings.database_url) as s:
        rows = s.scalars(
            select(ComparisonResultRow).where(ComparisonResultRow.comparison_id == comparison_id)
        ).all()
        return {r.model_b_id: (r.id, r.samples_sha, r.job_id) for r in rows}


@pytest.fixture
def world(client: Any) -> dict[str, Any]:
    """digits: an original and three pruned children, a comparison of the original with the
    first (global magnitude; the others are layer magnitude); blobs: a model of another
    dataset."""
    torch.set_num_threads(1)
    digits = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    original = train(client, digits["id"])
    pruned = [prune(client, original, 0.5)]  # then two of another method: not its siblings
    pruned += [prune(client, original, s, "layer_magnitude") for s in (0.5, 0.9)]
    blobs = ok(client.post("/api/datasets", json={"builtin": "blobs"}))
    other = train(client, blobs["id"], "mlp")
    comp = ok(
        client.post(
            "/api/comparisons",
            json={"model_a_id": original, "model_b_ids": pruned[:1], "embedding": "pca"},
        )
    )
    return {"original": original, "pruned": pruned, "other": other, "comparison": comp}


def test_add_models_validates_each_id_at_its_field(client, settings, world):
    cid, original, (p1, p2, p3) = world["comparison"]["id"], world["original"], world["pruned"]
    url = f"/api/comparisons/{cid}/models"
    before = counts(settings)
    # a dry run: the body, nothing written
    answer = client.post(url, params=DRY, json={"model_b_ids": [p2, p3]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model_b_ids": [p2, p3]}
    body = {"model_b_ids": [p1, original, 999, world["other"], p2, p2]}
    assert issues(client.post(url, params=DRY, json=body)) == [
        (("body", "model_b_ids", 0), "mismatch"),  # already in it
        (("body", "model_b_ids", 1), "mismatch"),  # model A
        (("body", "model_b_ids", 2), "not_found"),
        (("body", "model_b_ids", 3), "mismatch"),  # another dataset's model
        (("body", "model_b_ids", 5), "value_error"),  # listed twice
    ]
    # the body's own schema, as FastAPI answers it
    resp = client.post(url, params=DRY, json={"model_b_ids": [], "x": 1})
    assert [tuple(i["loc"]) for i in resp.json()["detail"]] == [
        ("body", "model_b_ids"),
        ("body", "x"),
    ]
    assert client.post("/api/comparisons/999/models", json={"model_b_ids": [p2]}).status_code == 404
    # a compare job submitted by hand may name only the comparison's own Bs as added
    spec = {"comparison_id": cid, "added_model_b_ids": [p1, p2]}
    job = {"kind": "compare", "spec": spec}
    assert issues(client.post("/api/jobs", params=DRY, json=job)) == [
        (("spec", "added_model_b_ids", 1), "mismatch")
    ]
    assert counts(settings) == before
    # for real: the first problem as one line, nothing written
    resp = client.post(url, json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"] == f"model {p1} is already in comparison {cid}"
    resp = client.post(url, json={"model_b_ids": [world["other"]]})
    assert resp.json()["detail"].startswith(f"model {world['other']} belongs to dataset ")
    assert counts(settings) == before


def test_add_models_appends_members_and_computes_only_the_new_ones(client, settings, world):
    comp, (p1, p2, p3) = world["comparison"], world["pruned"]
    first = result_rows(settings, comp["id"])
    added = ok(client.post(f"/api/comparisons/{comp['id']}/models", json={"model_b_ids": [p2]}))
    assert added["model_b_ids"] == [p1, p2] and added["job_id"] != comp["job_id"]
    job = ok(client.get(f"/api/jobs/{added['job_id']}"))
    assert job["status"] == "succeeded", job["error"]
    # the comparison's settings, and which Bs are new
    assert job["spec"]["embedding"] == "pca" and job["spec"]["added_model_b_ids"] == [p2]
    assert job["result"]["reused_b_ids"] == [p1]
    rows = result_rows(settings, comp["id"])
    assert rows[p1] == first[p1]  # untouched: same row, same table, written by the first job
    assert rows[p2][2] == added["job_id"]
    assert ok(client.get(f"/api/comparisons/{comp['id']}"))["model_b_ids"] == [p1, p2]
    similarity = ok(client.get(f"/api/comparisons/{comp['id']}/similarity"))
    assert {p["model_id"] for p in similarity["points"]} == {world["original"], p1, p2}
    # positions continue after the existing members
    ok(client.post(f"/api/comparisons/{comp['id']}/models", json={"model_b_ids": [p3]}))
    assert ok(client.get(f"/api/comparisons/{comp['id']}"))["model_b_ids"] == [p1, p2, p3]


def test_add_models_waits_for_a_running_compare_job_and_the_queue(
    client, settings, world, monkeypatch
):
    cid, p2 = world["comparison"]["id"], world["pruned"][1]
    url = f"/api/comparisons/{cid}/models"
    with session_scope(settings.database_url) as s:
        s.add(JobRow(kind="compare", spec={"comparison_id": cid}, status="running", progress=0.1))
    before = counts(settings)
    for params in (DRY, {}):
        resp = client.post(url, params=params, json={"model_b_ids": [p2]})
        assert resp.status_code == 409, resp.text
        assert "is still running" in resp.json()["detail"]
    with session_scope(settings.database_url) as s:
        for job in s.scalars(select(JobRow).where(JobRow.status == "running")).all():
            job.status = "cancelled"

    def refuse(job_id: int, queue: str | None = None) -> None:
        raise ExecutorUnavailable("the broker is down (test)")

    monkeypatch.setattr(client.app.state.executor, "submit", refuse)
    resp = client.post(url, json={"model_b_ids": [p2]})
    assert resp.status_code == 503, resp.text
    assert counts(settings) == before  # no member left without a job computing it
    assert ok(client.get(f"/api/comparisons/{cid}"))["model_b_ids"] == [world["pruned"][0]]


# incremental = full ----------------------------------------------------------------------------


def _close(x: Any, y: Any, path: str = "") -> None:
    """Equal JSON, numbers within 1e-7."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), (path, sorted(x), sorted(y))
        for k in x:
            _close(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), path
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(x, float) and not isinstance(x, bool):
        assert y is not None and abs(x - y) <= 1e-7, (path, x, y)
    else:
        assert x == y, (path, x, y)


def _results(client: Any, cid: int, b: int) -> dict[str, Any]:
    got = ok(client.get(f"/api/comparisons/{cid}/results", params={"b": b}))
    got.pop("comparison_id")
    got["embedding"].pop("seconds")  # how long it took, not what it found
    return dict(got)


def _table(client: Any, cid: int, b: int) -> dict[str, np.ndarray]:
    params = {"b": b, "format": "columns", "limit": 10000}
    got = ok(client.get(f"/api/comparisons/{cid}/table", params=params))
    return {k: np.asarray(v) for k, v in got["columns"].items()}


def test_adding_a_model_equals_creating_the_comparison_with_it(client, settings, monkeypatch):
    """A B of the same method (its alphas join B1's population) and one of another method;
    the added B is analysed and embedded, nothing else is, and every number equals that of a
    comparison created with all three Bs at once."""
    from backend.analysis import embeddings
    from backend.jobs.kinds import compare

    torch.set_num_threads(1)
    digits = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    a = train(client, digits["id"], epochs=2)
    b1, b2 = prune(client, a, 0.5), prune(client, a, 0.5, "layer_magnitude")
    b3 = prune(client, a, 0.9)  # not analysed yet: the compare job analyses it
    body = {"model_a_id": a, "model_b_ids": [b1, b2], "embedding": "pca"}
    comp = ok(client.post("/api/comparisons", json=body))
    first = result_rows(settings, comp["id"])
    alphas_before = _results(client, comp["id"], b1)["population"]["by_ratio"]

    analysed: list[int] = []
    embedded: list[int] = []
    analyze_model, aligned_embedding = compare.analyze_model, embeddings.aligned_embedding

    def spy_analyze(ctx, job, model_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        analysed.append(model_id)
        return analyze_model(ctx, job, model_id, *args, **kwargs)

    def spy_embedding(*args, **kwargs):  # type: ignore[no-untyped-def]
        embedded.append(len(embedded))
        return aligned_embedding(*args, **kwargs)

    monkeypatch.setattr(compare, "analyze_model", spy_analyze)
    monkeypatch.setattr(embeddings, "aligned_embedding", spy_embedding)
    added = ok(client.post(f"/api/comparisons/{comp['id']}/models", json={"model_b_ids": [b3]}))
    job = ok(client.get(f"/api/jobs/{added['job_id']}"))
    assert job["status"] == "succeeded", job["error"]
    assert analysed == [b3] and len(embedded) == 1  # only what the new B needs
    rows = result_rows(settings, comp["id"])
    assert rows[b2] == first[b2]  # another method: its result is kept as it was
    assert rows[b1][0] == first[b1][0]  # same row, its population summary brought up to date
    alphas_after = _results(client, comp["id"], b1)["population"]["by_ratio"]
    assert len(alphas_after) == len(alphas_before) + 1  # b3's ratio joined b1's population
    assert job["result"]["reused_b_ids"] == [b2]

    monkeypatch.setattr(compare, "analyze_model", analyze_model)
    monkeypatch.setattr(embeddings, "aligned_embedding", aligned_embedding)
    full = ok(client.post("/api/comparisons", json={**body, "model_b_ids": [b1, b2, b3]}))
    for b in (b1, b2, b3):
        _close(_results(client, comp["id"], b), _results(client, full["id"], b), f"B {b}")
        inc, ref = _table(client, comp["id"], b), _table(client, full["id"], b)
        assert set(inc) == set(ref)
        for column, values in ref.items():
            if values.dtype.kind == "f":
                np.testing.assert_allclose(inc[column], values, rtol=0, atol=1e-7)
            else:
                np.testing.assert_array_equal(inc[column], values)
    inc_map = ok(client.get(f"/api/comparisons/{comp['id']}/similarity"))
    full_map = ok(client.get(f"/api/comparisons/{full['id']}/similarity"))
    _close(inc_map, full_map, "similarity")
