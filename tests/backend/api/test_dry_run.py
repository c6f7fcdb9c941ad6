"""Dry runs (``?dry_run=true``) of POST /api/jobs and /api/comparisons: exactly the server's
validation, every problem at its field, nothing written, nothing queued; and the one-line
details of real submissions, unchanged."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import func, select

from backend.db.session import session_scope
from backend.db.tables import AuditEventRow, ComparisonRow, DatasetRow, JobRow, ModelRow
from backend.jobs.executor import ExecutorUnavailable
from backend.jobs.specs import SPEC_TYPES, UPLOAD_FIELDS, PruneSpec, TrainSpec

DRY = {"dry_run": "true"}


def counts(settings) -> dict[str, int]:
    with session_scope(settings.database_url) as s:
        return {
            t.__tablename__: s.scalar(select(func.count()).select_from(t))
            for t in (DatasetRow, JobRow, ModelRow, ComparisonRow, AuditEventRow)
        }


@pytest.fixture
def queue_down(client, monkeypatch):
    """An executor that refuses everything and records each id it was handed."""
    handed: list[int] = []

    def refuse(job_id, queue=None):
        handed.append(job_id)
        raise ExecutorUnavailable("the broker is down (test)")

    monkeypatch.setattr(client.app.state.executor, "submit", refuse)
    return handed


@pytest.fixture
def world(client):
    """digits, a digits_cnn trained for one epoch, a pruned child of it, and blobs (other
    inputs, other classes)."""
    torch.set_num_threads(1)
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    train = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    job = client.post("/api/jobs", json={"kind": "train", "spec": train}).json()
    assert job["status"] == "succeeded", job
    original = job["result"]["model_id"]
    prune = {"model_id": original, "sparsity": 0.5, "finetune": {"epochs": 0}}
    job = client.post("/api/jobs", json={"kind": "prune", "spec": prune}).json()
    assert job["status"] == "succeeded", job
    blobs = client.post("/api/datasets", json={"builtin": "blobs"}).json()
    return {"digits": ds, "original": original, "pruned": job["result"]["model_id"], "blobs": blobs}


def dry(client, kind, spec):
    return client.post("/api/jobs", params=DRY, json={"kind": kind, "spec": spec})


def issues(resp) -> list[tuple[tuple, str]]:
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list), detail
    for issue in detail:
        assert set(issue) == {"loc", "msg", "type"} and issue["msg"] and issue["type"]
    return [(tuple(i["loc"]), i["type"]) for i in detail]


def test_dry_run_of_a_valid_spec_fills_defaults_and_writes_nothing(
    client, settings, world, queue_down
):
    before = counts(settings)
    resp = dry(client, "prune", {"model_id": world["original"], "sparsity": 0.5})
    assert resp.status_code == 200, resp.text
    expected = PruneSpec(model_id=world["original"], sparsity=0.5).model_dump(mode="json")
    assert resp.json() == {"kind": "prune", "spec": expected, "jobs": 1}
    assert resp.json()["spec"]["method"] == "global_magnitude"  # a default, filled in
    train = {"dataset_id": world["digits"]["id"], "architecture": "mlp"}
    resp = dry(client, "train", train)
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"] == TrainSpec(**train).model_dump(mode="json")
    sweep = {"model_id": world["original"], "methods": ["random", "global_magnitude"]}
    resp = dry(client, "sweep", {**sweep, "sparsities": [0.3, 0.6, 0.9], "seeds": [0, 1]})
    assert resp.status_code == 200 and resp.json()["jobs"] == 12
    assert resp.json()["spec"]["analyze"] is True
    # no job row, no audit event; the executor (refusing everything) was never asked
    assert counts(settings) == before
    assert queue_down == []
    # while the same submission for real is refused by the queue, and leaves nothing either
    resp = client.post("/api/jobs", json={"kind": "train", "spec": train})
    assert resp.status_code == 503 and len(queue_down) == 1
    after = counts(settings)
    assert after["jobs"] == before["jobs"]
    assert after["audit_events"] == before["audit_events"] + 1  # a real POST is audited


def test_every_bad_field_is_reported_at_its_loc(client, settings):
    before = counts(settings)
    spec = {"model_id": 1, "sparsity": 1.5, "finetune": {"epochs": -1}, "colour": "red"}
    assert issues(dry(client, "prune", spec)) == [
        (("spec", "sparsity"), "less_than"),
        (("spec", "finetune", "epochs"), "greater_than_equal"),
        (("spec", "colour"), "extra_forbidden"),
    ]  # and not model 1, which does not exist: the checks against the database wait
    assert issues(dry(client, "analyze", {})) == [(("spec", "model_id"), "missing")]
    # a body that is not {kind, spec} is FastAPI's own answer, in the same shape
    resp = client.post("/api/jobs", params=DRY, json={"kind": "explode", "spec": {}})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "kind"]
    assert counts(settings) == before


def test_semantic_errors_name_their_field(client, settings, world):
    before = counts(settings)
    original, digits, blobs = world["original"], world["digits"], world["blobs"]
    prune = {"model_id": original, "sparsity": 0.5}
    cases = [
        ("prune", {**prune, "model_id": 999}, ("spec", "model_id"), "not_found"),
        ("prune", {**prune, "method": "magic"}, ("spec", "method"), "not_found"),
        ("prune", {**prune, "params": {"gamma": 1}}, ("spec", "params", "gamma"), "value_error"),
        (
            "prune",
            {**prune, "method": "lottery_ticket", "params": {"prune_fraction": 2}},
            ("spec", "params", "prune_fraction"),
            "value_error",
        ),
        ("prune", {**prune, "include": [" "]}, ("spec", "include"), "value_error"),
        ("train", {"dataset_id": 42, "architecture": "mlp"}, ("spec", "dataset_id"), "not_found"),
        (
            "train",
            {"dataset_id": digits["id"], "architecture": "vgg99"},
            ("spec", "architecture"),
            "not_found",
        ),
        (
            "analyze",
            {"model_id": original, "dataset_id": blobs["id"]},
            ("spec", "dataset_id"),
            "mismatch",
        ),
        (
            "analyze",
            {"model_id": original, "corruptions": ["sunburn"]},
            ("spec", "corruptions"),
            "value_error",
        ),
        ("compare", {"comparison_id": 77}, ("spec", "comparison_id"), "not_found"),
        (
            "sweep",
            {"model_id": original, "methods": ["random"] * 50, "sparsities": [0.1] * 11},
            ("spec",),
            "value_error",
        ),
    ]
    for kind, spec, loc, type_ in cases:
        assert issues(dry(client, kind, spec)) == [(loc, type_)], (kind, spec)
    # a sweep's child is reported at the sweep field it comes from
    sweep = {
        "model_id": original,
        "methods": ["random", "nope", {"method": "global_magnitude", "params": {"gamma": 1}}],
        "sparsities": [0.3, 0.6],
    }
    assert issues(dry(client, "sweep", sweep)) == [
        (("spec", "methods", 1), "not_found"),
        (("spec", "methods", 2, "params", "gamma"), "value_error"),
    ]
    # the message of a semantic problem is the real one
    detail = dry(client, "analyze", {"model_id": original, "dataset_id": blobs["id"]}).json()
    assert "accepts inputs of shape (1, 8, 8)" in detail["detail"][0]["msg"]
    assert counts(settings) == before


def test_real_submissions_keep_their_one_line_details(client, settings, world):
    """The first problem, as one line, exactly as before dry runs existed."""
    original, blobs = world["original"], world["blobs"]
    before = counts(settings)
    cases = [
        (
            "prune",
            {"model_id": original, "sparsity": 1.5, "finetune": {"epochs": -1}},
            "spec.sparsity: Input should be less than 1",
        ),
        ("prune", {"model_id": 999, "sparsity": 0.5}, "spec.model_id: model 999 does not exist"),
        (
            "prune",
            {"model_id": original, "sparsity": 0.5, "include": [""], "exclude": [""]},
            "spec.include: layer patterns should not be empty",
        ),
        (
            "prune",
            {"model_id": original, "sparsity": 0.5, "method": "magic"},
            "spec.method: unknown pruning method 'magic'; known: ",
        ),
        (
            "analyze",
            {"model_id": original, "dataset_id": blobs["id"]},
            f"model {original} (digits_cnn) accepts inputs of shape (1, 8, 8) but dataset "
            f"{blobs['id']} ('blobs') has inputs of shape ",
        ),
        (
            "sweep",
            {"model_id": original, "methods": ["nope"], "sparsities": [0.5]},
            "spec.method: unknown pruning method 'nope'",
        ),
        (
            "sweep",
            {"model_id": original, "methods": ["random"] * 50, "sparsities": [0.1] * 11},
            "spec: the sweep expands to 550 jobs; at most 500",
        ),
    ]
    for kind, spec, detail in cases:
        resp = client.post("/api/jobs", json={"kind": kind, "spec": spec})
        assert resp.status_code == 422, resp.text
        assert isinstance(resp.json()["detail"], str)
        assert resp.json()["detail"].startswith(detail), (resp.json(), detail)
    resp = client.post("/api/jobs", json={"kind": "import_model", "spec": {}})
    assert resp.status_code == 422 and resp.json()["detail"].startswith(
        "import jobs start from an upload"
    )
    after = counts(settings)
    assert {**after, "audit_events": 0} == {**before, "audit_events": 0}


def test_comparison_dry_run(client, settings, world, queue_down):
    original, pruned, digits, blobs = (world[k] for k in ("original", "pruned", "digits", "blobs"))
    before = counts(settings)
    resp = client.post(
        "/api/comparisons", params=DRY, json={"model_a_id": original, "model_b_ids": [pruned]}
    )
    assert resp.status_code == 200, resp.text
    name = client.get(f"/api/models/{original}").json()["name"]
    assert resp.json() == {
        "model_a_id": original,
        "model_b_ids": [pruned],
        "dataset_id": digits["id"],  # model A's, filled in
        "name": f"{name} vs 1 pruned",
        "corruptions": None,
        "severities": [1, 2, 3, 4, 5],
        "embedding": "auto",
        "neighbours_k": 20,
    }

    def refused(body):
        return issues(client.post("/api/comparisons", params=DRY, json=body))

    assert refused({"model_a_id": original, "model_b_ids": [original]}) == [
        (("body", "model_b_ids"), "value_error")
    ]
    assert refused({"model_a_id": 55, "model_b_ids": [pruned, 56]}) == [
        (("body", "model_a_id"), "not_found"),
        (("body", "model_b_ids", 1), "not_found"),
    ]
    body = {"model_a_id": original, "model_b_ids": [pruned], "corruptions": ["fog"]}
    assert refused({**body, "dataset_id": blobs["id"]}) == [
        (("body", "model_a_id"), "mismatch"),
        (("body", "model_b_ids", 0), "mismatch"),
        (("body", "corruptions"), "value_error"),
    ]
    assert refused({**body, "dataset_id": 99}) == [(("body", "dataset_id"), "not_found")]
    # the body's own schema: FastAPI's answer, every field
    resp = client.post(
        "/api/comparisons", params=DRY, json={"model_a_id": 0, "model_b_ids": [], "x": 1}
    )
    assert [tuple(i["loc"]) for i in resp.json()["detail"]] == [
        ("body", "model_a_id"),
        ("body", "model_b_ids"),
        ("body", "x"),
    ]
    assert counts(settings) == before and queue_down == []
    # for real: the same first problem, as the one line it always was
    resp = client.post("/api/comparisons", json={"model_a_id": 55, "model_b_ids": [pruned, 56]})
    assert resp.status_code == 422 and resp.json()["detail"] == "model 55 does not exist"


def test_upload_metadata_dry_run(client, settings, world):
    before = counts(settings)
    form = {"architecture": "mlp", "arch_kwargs": '{"hidden": [16]}', "name": "", "seed": "x"}
    assert issues(dry(client, "import_model", form)) == [(("spec", "seed"), "extra_forbidden")]
    del form["seed"]
    resp = dry(client, "import_model", form)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "kind": "import_model",
        "spec": {
            "architecture": "mlp",
            "arch_kwargs": {"hidden": [16]},  # the form's JSON text, decoded
            "name": None,  # an empty field is left out
            "parent_id": None,
            "dataset_id": None,
        },
        "jobs": 1,
    }
    refs = {"parent_id": "99", "dataset_id": "98"}
    assert issues(dry(client, "import_model", {**form, **refs})) == [
        (("spec", "parent_id"), "not_found"),
        (("spec", "dataset_id"), "not_found"),
    ]
    refs = {"parent_id": world["original"], "dataset_id": world["digits"]["id"]}
    assert dry(client, "import_model", {**form, **refs}).status_code == 200
    bad_json = {**form, "arch_kwargs": "{hidden: 16"}
    assert issues(dry(client, "import_model", bad_json)) == [
        (("spec", "arch_kwargs"), "json_invalid")
    ]
    resp = dry(client, "import_dataset", {"test_fraction": "0.25", "format": "npz"})
    assert resp.status_code == 200 and resp.json()["spec"]["test_fraction"] == 0.25
    bad = {"test_fraction": "1.5", "severity": 9, "upload_sha": "0" * 64}
    assert issues(dry(client, "import_dataset", bad)) == [
        (("spec", "test_fraction"), "less_than"),
        (("spec", "severity"), "less_than_equal"),
        (("spec", "upload_sha"), "extra_forbidden"),  # the file's: not a form field
    ]
    assert counts(settings) == before


def test_the_dashboard_client_reads_the_dry_run(client):
    """frontend.client.ApiClient.validate_job against the real endpoint."""
    from frontend.client import ApiClient, ApiError

    api = ApiClient("http://testserver")
    api._http.close()
    api._http = client  # the TestClient is an httpx.Client bound to the app
    ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
    answer = api.validate_job("train", {"dataset_id": ds["id"], "architecture": "mlp"})
    assert answer["kind"] == "train" and answer["spec"]["epochs"] == 15
    with pytest.raises(ApiError) as refused:
        api.validate_job("train", {"dataset_id": ds["id"], "architecture": "mlp", "lr": 0})
    assert refused.value.status == 422
    assert set(refused.value.field_errors) == {"lr"}
    with pytest.raises(ApiError) as refused:
        api.validate_job("prune", {"model_id": 5, "sparsity": 2, "finetune": {"epochs": -1}})
    assert set(refused.value.field_errors) == {"sparsity", "finetune.epochs"}


@pytest.mark.parametrize("kind", sorted(SPEC_TYPES))
def test_every_kind_answers_a_dry_run(client, settings, kind):
    """An empty spec: the required fields of the kind's schema, each at its loc (for an
    import kind, of its upload form); a kind that needs none is accepted with its defaults."""
    schema = UPLOAD_FIELDS.get(kind, SPEC_TYPES[kind])
    required = [name for name, field in schema.model_fields.items() if field.is_required()]
    before = counts(settings)
    resp = dry(client, kind, {})
    if required:
        assert issues(resp) == [(("spec", name), "missing") for name in required]
    else:
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"kind": kind, "spec": schema().model_dump(mode="json"), "jobs": 1}
    assert counts(settings) == before


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_seeds_out_of_range_are_refused_at_their_field(client, settings, seed):
    """Found when the forms' own checks moved to the server: a negative seed passed the dry run
    (and the submission), then failed inside the job (numpy's default_rng, TrainConfig)."""
    before = counts(settings)
    cases = [
        ("train", {"dataset_id": 1, "architecture": "mlp", "seed": seed}, ("spec", "seed")),
        ("prune", {"model_id": 1, "sparsity": 0.5, "seed": seed}, ("spec", "seed")),
        (
            "prune",
            {"model_id": 1, "sparsity": 0.5, "finetune": {"seed": seed}},
            ("spec", "finetune", "seed"),
        ),
        (
            "sweep",
            {"model_id": 1, "methods": ["l1_filter"], "sparsities": [0.5], "seeds": [seed]},
            ("spec", "seeds", 0),
        ),
        ("import_dataset", {"seed": seed}, ("spec", "seed")),
    ]
    for kind, spec, loc in cases:
        found = issues(dry(client, kind, spec))
        assert found[0][0] == loc and found[0][1].startswith(("greater", "less")), (kind, found)
    assert counts(settings) == before
