"""Deleting models, comparisons, datasets and jobs (issue 18, "Delete and archive"), on SQLite and
PostgreSQL: each rule of backend/deletion.py through the REST API, the audit event written with
the rows, share links that die with their comparison, and artifact files reference-counted by
sha256 (the same bytes backing two rows stay until both are gone; nothing is left that no row
names).

Most tests build their rows directly (a dataset, an original, two pruned children, analyses, a
comparison with results and a share link; every artifact a few distinct bytes), so that which
files are shared is chosen here; one runs the real pipeline (train, prune, compare, download)
and deletes it all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend import deletion
from backend.api import security
from backend.api.app import create_app
from backend.api.routes import models as models_route
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import (
    AnalysisRow,
    AuditEventRow,
    ComparisonMemberRow,
    ComparisonResultRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    ModelRow,
    RegionResultRow,
    ShareLinkRow,
)
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore
from tests.conftest import build_pipeline


@dataclass
class World:
    dataset: int
    other_dataset: int
    original: int
    pruned: list[int]
    comparison: int
    analyses: list[int]
    share_token: str
    share_id: int
    sha: dict[str, str]  # what -> the sha256 of its artifact


def _store(client: TestClient) -> ArtifactStore:
    return client.app.state.store  # type: ignore[attr-defined,no-any-return]


def build_world(client: TestClient, settings: Settings) -> World:
    """Rows written directly; every artifact is a few bytes of its own, except that both pruned
    models share one checkpoint (the same bytes) and the regions map is named only in JSON."""
    store = _store(client)
    put = {name: store.put_bytes(name.encode()) for name in (
        "dataset", "other-dataset", "ckpt-original", "ckpt-pruned", "samples-original",
        "samples-pruned-1", "features", "result-1", "segments", "region-samples",
        "region-map",
    )}  # fmt: skip
    with session_scope(settings.database_url) as s:

        def dataset(name: str, sha: str) -> DatasetRow:
            return DatasetRow(
                name=name, source="test", params={}, num_classes=2, class_names=["a", "b"],
                input_shape=[4], n_train=1, n_test=1, artifact_sha=sha,
            )  # fmt: skip

        ds, other = dataset("ds", put["dataset"]), dataset("other", put["other-dataset"])
        s.add_all([ds, other])
        s.flush()

        def model(name: str, sha: str, parent: int | None = None, on: int = ds.id) -> ModelRow:
            return ModelRow(
                name=name, architecture="mlp", arch_kwargs={}, dataset_id=on, parent_id=parent,
                n_params=10, n_nonzero=5, checkpoint_sha=sha,
            )  # fmt: skip

        a = model("original", put["ckpt-original"])
        s.add(a)
        s.flush()
        b1 = model("pruned one", put["ckpt-pruned"], a.id)
        b2 = model("pruned two", put["ckpt-pruned"], a.id, on=other.id)  # same bytes as b1
        s.add_all([b1, b2])
        s.flush()

        def analysis(model_id: int, sha: str, features: str | None = None) -> AnalysisRow:
            return AnalysisRow(
                model_id=model_id, dataset_id=ds.id, split="test", accuracy=0.5, n_samples=1,
                summary={}, samples_sha=sha, features_sha=features,
            )  # fmt: skip

        an = [
            analysis(a.id, put["samples-original"], put["features"]),
            analysis(b1.id, put["samples-pruned-1"], put["features"]),  # features shared
        ]
        s.add_all(an)
        comp = ComparisonRow(name="a vs b1", dataset_id=ds.id, model_a_id=a.id)
        comp.members = [ComparisonMemberRow(model_id=b1.id, position=0)]
        s.add(comp)
        s.flush()
        s.add_all(
            [
                ComparisonResultRow(
                    comparison_id=comp.id, model_b_id=b1.id, summary={}, samples_sha=put["result-1"]
                ),
                RegionResultRow(
                    comparison_id=comp.id, model_id=a.id, summary={"slice": {"artifact_sha":
                    put["region-map"]}}, segments_sha=put["segments"],
                    samples_sha=put["region-samples"],
                ),
            ]
        )  # fmt: skip
        ids = World(ds.id, other.id, a.id, [b1.id, b2.id], comp.id, [r.id for r in an], "", 0, put)
    share = client.post(f"/api/comparisons/{ids.comparison}/shares", json={"label": "x"})
    assert share.status_code == 201, share.text
    ids.share_token, ids.share_id = share.json()["token"], share.json()["id"]
    return ids


@pytest.fixture
def world(client: TestClient, settings: Settings) -> World:
    return build_world(client, settings)


def count(settings: Settings, table: type) -> int:
    with session_scope(settings.database_url) as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def audit(settings: Settings) -> list[AuditEventRow]:
    with session_scope(settings.database_url) as s:
        rows = list(s.scalars(select(AuditEventRow).where(AuditEventRow.action.like("delete.%"))))
        s.expunge_all()
        return rows


def orphans(client: TestClient, settings: Settings) -> set[str]:
    """Artifact files in the store that no row names (nor a download's conversion cache)."""
    store = _store(client)
    with session_scope(settings.database_url) as s:
        referenced = deletion.referenced_shas(s)
    return deletion.stored_shas(store) - referenced - deletion.derived_shas(store)


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    return resp.json()


# models -----------------------------------------------------------------------------------------
def test_a_model_in_use_is_refused_with_a_sentence_naming_its_users(client, settings, world):
    before = {t: count(settings, t) for t in (ModelRow, ComparisonRow, AnalysisRow)}
    resp = client.delete(f"/api/models/{world.original}")
    assert resp.status_code == 409
    detail = resp.json()["detail"]
    assert detail.startswith("Model 1 ('original') is used by comparison")
    assert f"comparison {world.comparison} ('a vs b1')" in detail
    assert f"models {world.pruned[0]} ('pruned one') and {world.pruned[1]} ('pruned two')" in detail
    assert "cascade=true" in detail
    assert {t: count(settings, t) for t in before} == before
    assert audit(settings) == []  # refused: nothing deleted, nothing recorded as deleted
    # a pruned model used by the comparison is refused too, naming it
    resp = client.delete(f"/api/models/{world.pruned[0]}")
    assert resp.status_code == 409 and "comparison 1 ('a vs b1')" in resp.json()["detail"]


def test_cascade_deletes_the_comparisons_and_share_links_and_keeps_children(
    client, settings, world
):
    body = ok(client.delete(f"/api/models/{world.original}?cascade=true"))
    assert body["kind"] == "model" and body["cascade"] is True and body["dry_run"] is False
    assert body["deleted"] == {
        "share_links": 1,
        "region_results": 1,
        "comparison_results": 1,
        "comparisons": 1,
        "analyses": 1,
        "models": 1,
    }
    assert body["detached_models"] == world.pruned
    assert "stay, as originals" in body["message"]
    with session_scope(settings.database_url) as s:
        assert s.get(ModelRow, world.original) is None
        assert s.get(ComparisonRow, world.comparison) is None
        assert s.scalars(select(ShareLinkRow)).all() == []
        assert s.scalars(select(ComparisonMemberRow)).all() == []
        kept = [s.get(ModelRow, i) for i in world.pruned]
        assert all(m is not None and m.parent_id is None for m in kept)
        # the pruned model's analysis stays: only the deleted model's went
        assert [a.model_id for a in s.scalars(select(AnalysisRow))] == [world.pruned[0]]
    assert ok(client.get(f"/api/models/{world.pruned[0]}"))["parent_id"] is None
    # the dashboard's lists no longer show them
    assert ok(client.get("/api/comparisons"))["count"] == 0


def test_the_audit_log_records_each_deletion_in_its_transaction(client, settings, world):
    ok(client.delete(f"/api/models/{world.original}?cascade=true"))
    (event,) = audit(settings)
    assert event.action == "delete.model" and event.status == 200
    assert event.actor == "local"
    assert event.target.startswith(f"model {world.original} cascade=true: Deleted model")
    assert "1 comparison" in event.target
    ok(client.delete(f"/api/jobs/{_finished_job(settings)}"))
    assert [e.action for e in audit(settings)] == ["delete.model", "delete.job"]


def test_a_dry_run_answers_the_same_and_changes_nothing(client, settings, world):
    before = {t: count(settings, t) for t in (ModelRow, ComparisonRow, ShareLinkRow, AnalysisRow)}
    files = deletion.stored_shas(_store(client))
    dry = ok(client.delete(f"/api/models/{world.original}?cascade=true&dry_run=true"))
    assert dry["dry_run"] is True and dry["message"].startswith("Would delete model 1")
    assert dry["artifacts_removed"] > 0
    assert {t: count(settings, t) for t in before} == before
    assert deletion.stored_shas(_store(client)) == files
    assert audit(settings) == []
    refused = client.delete(f"/api/models/{world.original}?dry_run=true")
    assert refused.status_code == 409  # the same refusal as the real request
    real = ok(client.delete(f"/api/models/{world.original}?cascade=true"))
    assert {k: v for k, v in real.items() if k not in ("dry_run", "message")} == {
        k: v for k, v in dry.items() if k not in ("dry_run", "message")
    }


def test_a_body_is_refused_so_a_delete_never_means_something_else(client, settings, world):
    resp = client.request("DELETE", f"/api/comparisons/{world.comparison}", json={"x": 1})
    assert resp.status_code == 422 and "DELETE takes no body" in resp.json()["detail"]
    assert count(settings, ComparisonRow) == 1


def test_unknown_ids_are_404_with_the_fixed_detail(client):
    for path, detail in [
        ("/api/models/99", "Model not found"),
        ("/api/comparisons/99", "Comparison not found"),
        ("/api/datasets/99", "Dataset not found"),
        ("/api/jobs/99", "Job not found"),
    ]:
        resp = client.delete(path)
        assert (resp.status_code, resp.json()) == (404, {"detail": detail}), path


def test_only_models_and_datasets_have_a_cascade(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path, cascades in [
        ("/api/models/{model_id}", True),
        ("/api/datasets/{dataset_id}", True),
        ("/api/comparisons/{comparison_id}", False),
        ("/api/jobs/{job_id}", False),
    ]:
        op = paths[path]["delete"]
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert names == ({"cascade", "dry_run"} if cascades else {"dry_run"}), path
        assert {"200", "404", "409", "422"} <= set(op["responses"]), path
        assert op["x-access"] == "write" and "x-share" not in op, path


# comparisons ------------------------------------------------------------------------------------
def test_deleting_a_comparison_kills_its_share_links_and_keeps_its_models(client, settings, world):
    assert client.get(f"/s/{world.share_token}", follow_redirects=False).status_code == 303
    body = ok(client.delete(f"/api/comparisons/{world.comparison}"))
    assert body["deleted"] == {
        "share_links": 1,
        "region_results": 1,
        "comparison_results": 1,
        "comparisons": 1,
    }
    assert count(settings, ModelRow) == 3 and count(settings, AnalysisRow) == 2
    # the link is dead, as a revoked one is: the dead-link page, not the comparison
    dead = client.get(f"/s/{world.share_token}", follow_redirects=False)
    assert dead.status_code == 404 and "share link" in dead.text
    assert client.get(f"/api/comparisons/{world.comparison}").status_code == 404
    # now the models are free to go
    ok(client.delete(f"/api/models/{world.pruned[0]}"))


def test_a_share_link_of_a_deleted_comparison_is_refused_like_a_revoked_one(settings, world):
    guarded = settings.model_copy(update={"auth": "on"})
    app = create_app(guarded, executor=InlineExecutor(guarded), dashboard=False)
    with session_scope(guarded.database_url) as s:
        _row, write = security.create_token(s, "writer")
        _row, read = security.create_token(s, "reader", read_only=True)
    with TestClient(app) as on:
        share = {"Authorization": f"Bearer {world.share_token}"}
        assert on.get(f"/api/comparisons/{world.comparison}", headers=share).status_code == 200
        # neither the link itself nor a read-only token may delete
        for headers in (share, {"Authorization": f"Bearer {read}"}):
            resp = on.delete(f"/api/comparisons/{world.comparison}", headers=headers)
            assert resp.status_code == 403, resp.text
        assert count(settings, ComparisonRow) == 1
        body = on.delete(
            f"/api/comparisons/{world.comparison}", headers={"Authorization": f"Bearer {write}"}
        )
        assert body.status_code == 200, body.text
        after = on.get(f"/api/comparisons/{world.comparison}", headers=share)
        assert after.status_code == 401
        assert after.json()["detail"] == "This share link is not valid."
    (event,) = audit(settings)
    assert event.actor == "token 1 (writer)" and event.token_id == 1
    assert event.target.startswith(f"comparison {world.comparison}: Deleted comparison")


# datasets ---------------------------------------------------------------------------------------
def test_a_dataset_in_use_is_refused_then_cascades(client, settings, world):
    resp = client.delete(f"/api/datasets/{world.dataset}")
    assert resp.status_code == 409
    detail = resp.json()["detail"]
    assert detail.startswith("Dataset 1 ('ds') is used by models 1 ('original') and 2 ('pruned")
    assert "2 analyses" in detail and "comparison 1 ('a vs b1')" in detail
    body = ok(client.delete(f"/api/datasets/{world.dataset}?cascade=true"))
    assert body["deleted"]["datasets"] == 1 and body["deleted"]["models"] == 2
    assert body["deleted"]["comparisons"] == 1 and body["deleted"]["share_links"] == 1
    # the model pruned from one of them but registered on the other dataset stays
    assert body["detached_models"] == [world.pruned[1]]
    with session_scope(settings.database_url) as s:
        assert [m.id for m in s.scalars(select(ModelRow))] == [world.pruned[1]]
        assert [d.id for d in s.scalars(select(DatasetRow))] == [world.other_dataset]
    assert orphans(client, settings) == set()
    # an unused dataset goes without a cascade
    ok(client.delete(f"/api/datasets/{world.other_dataset}?cascade=true"))  # its model too
    assert count(settings, DatasetRow) == 0 and count(settings, ModelRow) == 0


# jobs -------------------------------------------------------------------------------------------
def _job(settings: Settings, status: str, kind: str = "prune", **spec: object) -> int:
    with session_scope(settings.database_url) as s:
        job = JobRow(kind=kind, spec=dict(spec), status=status, stage=status)
        s.add(job)
        s.flush()
        return job.id


def _finished_job(settings: Settings) -> int:
    return _job(settings, "succeeded", model_id=1)


@pytest.mark.parametrize("status", ["queued", "running", "cancelling"])
def test_a_job_at_work_must_be_cancelled_first(client, settings, world, status):
    job = _job(settings, status, model_id=world.pruned[1])
    resp = client.delete(f"/api/jobs/{job}")
    assert resp.status_code == 409
    if status == "cancelling":
        assert resp.json()["detail"] == f"Job {job} (prune) is stopping: wait until it has " \
            "stopped, then delete it."  # fmt: skip
    else:
        assert resp.json()["detail"] == (
            f"Job {job} (prune) is {status}: cancel it first (POST /api/jobs/{job}/cancel, or "
            f"prunescope jobs --cancel {job}), then delete it."
        )
    # ... and what it works on cannot go either, cascade or not
    for query in ("", "?cascade=true"):
        resp = client.delete(f"/api/models/{world.pruned[1]}{query}")
        assert resp.status_code == 409, query
        assert f"while job {job} (prune, {status}) works on" in resp.json()["detail"]
    resp = client.delete(f"/api/datasets/{world.other_dataset}?cascade=true")
    assert resp.status_code == 409 and f"job {job}" in resp.json()["detail"]
    if status != "cancelling":
        ok(client.post(f"/api/jobs/{job}/cancel"))
    with session_scope(settings.database_url) as s:
        row = s.get(JobRow, job)
        assert row is not None
        row.status = "cancelled"
    ok(client.delete(f"/api/jobs/{job}"))
    ok(client.delete(f"/api/models/{world.pruned[1]}"))


def test_a_running_compare_job_keeps_its_comparison(client, settings, world):
    job = _job(settings, "running", "compare", comparison_id=world.comparison)
    resp = client.delete(f"/api/comparisons/{world.comparison}")
    assert resp.status_code == 409 and f"job {job} (compare, running)" in resp.json()["detail"]
    assert count(settings, ComparisonRow) == 1


def test_a_finished_job_goes_and_what_it_made_stays(client, settings, world):
    job = _finished_job(settings)
    child = _job(settings, "succeeded", model_id=1)
    with session_scope(settings.database_url) as s:
        s.get(ModelRow, world.pruned[1]).job_id = job  # type: ignore[union-attr]
        s.get(JobRow, child).parent_job_id = job  # type: ignore[union-attr]
    body = ok(client.delete(f"/api/jobs/{job}"))
    assert body["deleted"] == {"jobs": 2}  # a sweep goes with its child jobs' rows
    assert body["message"] == f"Deleted job {job} (prune) and 1 other job row; what it made stays."
    with session_scope(settings.database_url) as s:
        model = s.get(ModelRow, world.pruned[1])
        assert model is not None and model.job_id is None
    assert count(settings, JobRow) == 0


# artifacts --------------------------------------------------------------------------------------
def test_shared_bytes_stay_until_the_last_row_naming_them_is_gone(client, settings, world):
    store, shared = _store(client), world.sha["ckpt-pruned"]
    ok(client.delete(f"/api/comparisons/{world.comparison}"))
    first = ok(client.delete(f"/api/models/{world.pruned[0]}"))
    # its own analysis file went; the checkpoint and features other rows share stayed
    assert first["artifacts_kept"] == 2 and first["artifacts_removed"] == 1
    assert store.exists(shared) and store.exists(world.sha["features"])
    assert not store.exists(world.sha["samples-pruned-1"])
    second = ok(client.delete(f"/api/models/{world.pruned[1]}"))
    assert second["artifacts_removed"] == 1 and not store.exists(shared)
    assert orphans(client, settings) == set()


def test_no_file_is_left_that_no_row_names(client, settings, world):
    store = _store(client)
    result = ok(client.delete(f"/api/comparisons/{world.comparison}"))
    # the region map, named only inside the region result's JSON, went with it
    assert result["artifacts_removed"] == 4 and not store.exists(world.sha["region-map"])
    ok(client.delete(f"/api/datasets/{world.dataset}?cascade=true"))
    ok(client.delete(f"/api/datasets/{world.other_dataset}?cascade=true"))
    assert deletion.stored_shas(store) == set()
    with session_scope(settings.database_url) as s:
        assert deletion.referenced_shas(s) == set()


def test_a_file_that_cannot_be_removed_is_logged_and_the_rows_still_go(
    client, settings, world, monkeypatch, caplog
):
    def refuse(sha: str) -> None:
        raise PermissionError(f"read-only volume: {sha}")

    monkeypatch.setattr(_store(client), "delete", refuse)
    with caplog.at_level(logging.ERROR, logger="backend.deletion"):
        body = ok(client.delete(f"/api/comparisons/{world.comparison}"))
    assert body["artifacts_failed"] == 4 and body["artifacts_removed"] == 0
    assert count(settings, ComparisonRow) == 0
    assert "is left behind" in caplog.text
    # the files are strays now, and no row points at a missing file
    with session_scope(settings.database_url) as s:
        referenced = deletion.referenced_shas(s)
    assert referenced <= deletion.stored_shas(_store(client))


def test_an_upload_is_kept_while_its_import_job_waits(client, settings, world):
    upload = _store(client).put_bytes(b"an uploaded checkpoint")
    with session_scope(settings.database_url) as s:
        s.get(ModelRow, world.pruned[1]).upload_sha = upload  # type: ignore[union-attr]
        s.add(JobRow(kind="import_model", spec={"upload_sha": upload}, status="queued"))
    ok(client.delete(f"/api/models/{world.pruned[1]}"))
    assert _store(client).exists(upload)  # the queued import still needs it


def test_the_derived_folder_name_is_the_download_routes(client):
    assert deletion.DERIVED_DIR == models_route.DERIVED_DIR


def test_a_remote_store_forgets_unreferenced_files(client, settings):
    store = ArtifactStore("memory://prunescope-delete-test")
    kept, gone = store.put_bytes(b"kept"), store.put_bytes(b"gone")
    with session_scope(settings.database_url) as s:
        s.add(
            DatasetRow(
                name="d", source="t", params={}, num_classes=1, class_names=["a"],
                input_shape=[1], n_train=1, n_test=1, artifact_sha=kept,
            )
        )  # fmt: skip
    with session_scope(settings.database_url) as s:
        removed, failed = deletion.remove_unreferenced(s, store, {kept, gone})
    assert (removed, failed) == (1, [])
    assert deletion.stored_shas(store) == {kept}


# the real pipeline -----------------------------------------------------------------------------
@pytest.fixture
def pipeline_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        yield c


def test_deleting_a_whole_pipeline_leaves_no_orphaned_file(pipeline_client, settings):
    c = pipeline_client
    p = build_pipeline(c, epochs=1, sparsities=(0.5,))
    store = _store(c)
    assert orphans(c, settings) == set()
    download = c.get(f"/api/models/{p.pruned_ids[0]}/download?format=pt")
    assert download.status_code == 200
    converted = download.headers["x-content-sha256"]
    assert store.exists(converted) and deletion.derived_shas(store) == {converted}
    share = c.post(f"/api/comparisons/{p.comparison_id}/shares", json={}).json()
    refused = c.delete(f"/api/models/{p.original_id}")
    assert refused.status_code == 409
    assert f"comparison {p.comparison_id}" in refused.json()["detail"]
    ok(c.delete(f"/api/comparisons/{p.comparison_id}"))
    assert c.get(f"/s/{share['token']}", follow_redirects=False).status_code == 404
    assert orphans(c, settings) == set()
    body = ok(c.delete(f"/api/models/{p.original_id}?cascade=true"))
    assert body["detached_models"] == p.pruned_ids
    ok(c.delete(f"/api/models/{p.pruned_ids[0]}"))
    # the conversion built for the download went with its checkpoint
    assert not store.exists(converted)
    assert not any(Path(store.root, deletion.DERIVED_DIR).rglob("*.json"))
    ok(c.delete(f"/api/datasets/{p.dataset_id}"))
    for job in c.get("/api/jobs").json()["data"]:
        ok(c.delete(f"/api/jobs/{job['id']}"))
    assert deletion.stored_shas(store) == set()
    for what in ("models", "comparisons", "datasets", "jobs", "analyses"):
        assert c.get(f"/api/{what}").json()["count"] == 0, what
