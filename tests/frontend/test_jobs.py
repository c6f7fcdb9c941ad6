"""frontend/jobs.py: the job vocabulary, submitting, and the followed-job component every job
form uses, against a small in-memory API (httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import pytest
from dash.development.base_component import Component

from frontend import client as client_module
from frontend import forms, jobs

CREATED = "2024-05-01T12:00:00Z"


class JobsApi:
    """``GET /api/jobs/{id}``, ``POST /api/jobs[?dry_run=true]`` and ``/cancel``; ``answer``
    overrides every route with ``(status, body)``, ``down`` makes the API unreachable."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, Any]] = {}
        self.answer: tuple[int, Any] | None = None
        self.down = False
        self.posted: list[Any] = []

    def add(self, status: str, **values: Any) -> dict[str, Any]:
        job = {
            "id": len(self.jobs) + 1,
            "kind": "prune",
            "spec": {"method": "rigl", "sparsity": 0.9},
            "status": status,
            "progress": 0.3,
            "stage": "epoch 3/10",
            "error": None,
            "result": None,
            "created_at": CREATED,
        }
        job.update(values)
        self.jobs[job["id"]] = job
        return job

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.answer is not None:
            status, body = self.answer
            return httpx.Response(status, json={"detail": body})
        path = request.url.path
        if m := re.fullmatch(r"/api/jobs/(\d+)", path):
            job = self.jobs.get(int(m[1]))
            return httpx.Response(200, json=job) if job else self._not_found()
        if m := re.fullmatch(r"/api/jobs/(\d+)/cancel", path):
            job = self.jobs.get(int(m[1]))
            if job is None:
                return self._not_found()
            if job["status"] in jobs.FINAL_STATUSES:
                return httpx.Response(409, json={"detail": "Job already finished"})
            job["status"] = "cancelled" if job["status"] == "queued" else "cancelling"
            return httpx.Response(200, json=job)
        if path == "/api/jobs" and request.method == "POST":
            body = json.loads(request.content)
            if request.url.params.get("dry_run") == "true":
                return httpx.Response(200, json={**body, "jobs": 1})
            self.posted.append(body)
            return httpx.Response(201, json=self.add("queued", kind=body["kind"]))
        return self._not_found()

    @staticmethod
    def _not_found() -> httpx.Response:
        return httpx.Response(404, json={"detail": "Job not found"})


@pytest.fixture
def api() -> Iterator[JobsApi]:
    fake = JobsApi()
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    try:
        yield fake
    finally:
        client_module.reset()


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def ids(node: Any) -> list[Any]:
    return [getattr(c, "id", None) for c in walk(node) if getattr(c, "id", None) is not None]


def by_id(node: Any, component_id: str) -> Any:
    (found,) = [c for c in walk(node) if getattr(c, "id", None) == component_id]
    return found


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


RESULTS: list[Any] = []


def show_result(client: Any, job: Any) -> Any:
    RESULTS.append(job["id"])
    return [dash.html.Div(f"made model {job['result']['model_id']}", id="demo-made")]


FOLLOW = jobs.JobFollower("demo", render_result=show_result, cancel_title="Stop it")
IDS = FOLLOW.ids


# vocabulary ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "active", "cancellable"),
    [
        ("queued", True, True),
        ("running", True, True),
        ("cancelling", True, False),
        ("succeeded", False, False),
        ("failed", False, False),
        ("cancelled", False, False),
    ],
)
def test_status_vocabulary(status: str, active: bool, cancellable: bool) -> None:
    assert jobs.is_active({"status": status}) is active
    assert jobs.can_cancel({"status": status}) is cancellable
    assert (status in jobs.ACTIVE_STATUSES) is active
    assert jobs.is_active(None) is False and jobs.can_cancel(None) is False


@pytest.mark.parametrize(
    ("job", "title"),
    [
        ({"kind": "prune", "spec": {"method": "rigl", "sparsity": 0.9}}, "rigl at 90%"),
        (
            {
                "kind": "sweep",
                "spec": {"methods": ["random"], "sparsities": [0.5], "seeds": [1, 2]},
            },
            "sweep of random: 1 sparsity × 2 seeds",
        ),
        (
            {"kind": "train", "spec": {"architecture": "mlp", "dataset_id": 1, "epochs": 1}},
            "mlp on dataset #1, 1 epoch",
        ),
        (
            {
                "kind": "analyze",
                "spec": {"model_id": 3, "split": "train", "corruptions": ["fog"]},
            },
            "model #3 on the train split, 1 corruption × 5 severities",
        ),
        ({"kind": "compare", "spec": {}}, "compare"),
    ],
)
def test_job_title_names_what_runs(job: dict[str, Any], title: str) -> None:
    assert jobs.job_title(job) == title


def test_follow_ids_derive_from_the_prefix() -> None:
    ids_ = jobs.follow_ids("prune")
    assert (ids_.job, ids_.poll, ids_.progress, ids_.status) == (
        "prune-job",
        "prune-poll",
        "prune-progress",
        "prune-status",
    )
    assert (ids_.cancel, ids_.cancel_notice, ids_.stopping) == (
        "prune-job-cancel",
        "prune-job-cancel-notice",
        "prune-job-stopping",
    )
    assert len(set(ids_)) == len(ids_)


# the followed-job section ------------------------------------------------------------------


def test_layout_has_the_store_poll_panel_and_a_hidden_cancel_button() -> None:
    section = FOLLOW.layout()
    assert section.id == IDS.panel
    assert by_id(section, IDS.job).data is None
    assert by_id(section, IDS.poll).disabled is True
    button = by_id(section, IDS.cancel)
    assert button.hidden is True and button.title == "Stop it"
    assert IDS.cancel not in ids(by_id(section, IDS.progress))  # outside the polled panel
    followed = FOLLOW.layout(7)
    assert by_id(followed, IDS.job).data == {"id": 7}
    assert by_id(followed, IDS.poll).disabled is False


def test_poll_a_running_job(api: JobsApi) -> None:
    job = api.add("running")
    panel, stop, hidden = FOLLOW.poll(1, {"id": job["id"]})
    assert (stop, hidden) == (False, False)
    assert text(by_id(panel, IDS.status)) == "running"
    assert text(by_id(panel, IDS.stage)) == "epoch 3/10"
    assert by_id(panel, IDS.progress_bar).value == "0.300"
    assert "rigl at 90%" in text(panel)


def test_poll_a_succeeded_job_renders_what_it_made(api: JobsApi) -> None:
    job = api.add("succeeded", result={"model_id": 5})
    panel, stop, hidden = FOLLOW.poll(1, {"id": job["id"]})
    assert (stop, hidden) == (True, True)
    assert text(by_id(panel, "demo-made")) == "made model 5"
    assert by_id(panel, IDS.progress_bar).value == "1.000"  # full once it succeeded
    assert RESULTS[-1] == job["id"]


def test_poll_a_failed_job_shows_its_error(api: JobsApi) -> None:
    job = api.add("failed", error="CUDA out of memory")
    panel, stop, hidden = FOLLOW.poll(1, {"id": job["id"]})
    assert (stop, hidden) == (True, True)
    assert "CUDA out of memory" in text(by_id(panel, IDS.job_error))
    assert "demo-made" not in ids(panel)


def test_poll_a_cancelling_job_says_stopping_and_keeps_polling(api: JobsApi) -> None:
    job = api.add("cancelling")
    panel, stop, hidden = FOLLOW.poll(1, {"id": job["id"]})
    assert (stop, hidden) == (False, True)
    assert "Stopping…" in text(by_id(panel, IDS.stopping))
    sweep = FOLLOW.panel({**job, "kind": "sweep"})
    assert "prune jobs stop" in text(by_id(sweep, IDS.stopping))
    api.jobs[job["id"]]["status"] = "cancelled"
    panel, stop, _ = FOLLOW.poll(2, {"id": job["id"]})
    assert stop is True
    assert "The job was cancelled" in text(by_id(panel, IDS.job_error))


def test_poll_an_unknown_job_stops_and_an_unreachable_api_does_not(api: JobsApi) -> None:
    assert FOLLOW.poll(0, None) == ([], True, True)
    panel, stop, hidden = FOLLOW.poll(1, {"id": 99})
    assert (stop, hidden) == (True, True) and "Job 99 not found" in text(panel)
    api.down = True
    panel, stop, _ = FOLLOW.poll(1, {"id": 1})
    assert stop is False and "Cannot reach the PruneScope API" in text(panel)


def test_cancel_a_running_job(api: JobsApi) -> None:
    job = api.add("running")
    out = FOLLOW.cancel(1, {"id": job["id"]})
    assert api.jobs[job["id"]]["status"] == "cancelling"
    assert out["hidden"] is True and out["notice"] is None
    assert "Stopping…" in text(out["panel"])
    queued = api.add("queued")
    assert text(by_id(FOLLOW.cancel(1, {"id": queued["id"]})["panel"], IDS.status)) == "cancelled"


@pytest.mark.parametrize(
    ("setup", "words", "hidden"),
    [
        ("finished", "had already finished", True),
        ("unknown", "Job #99 not found", True),
        ("down", "Cannot reach the PruneScope API", False),
        ("broken", "Could not cancel job #1", False),
    ],
)
def test_cancel_that_fails_says_why(api: JobsApi, setup: str, words: str, hidden: bool) -> None:
    job = api.add("succeeded" if setup == "finished" else "running")
    api.down = setup == "down"
    if setup == "broken":
        api.answer = (500, "database is locked")
    out = FOLLOW.cancel(1, {"id": 99 if setup == "unknown" else job["id"]})
    assert words in text(out["notice"])
    assert out["hidden"] is hidden and out["panel"] is dash.no_update


def test_cancel_without_a_click_or_a_job_does_nothing(api: JobsApi) -> None:
    nothing = {"panel": dash.no_update, "hidden": dash.no_update, "notice": dash.no_update}
    assert FOLLOW.cancel(0, {"id": 1}) == nothing
    assert FOLLOW.cancel(1, None) == nothing


def test_register_wires_the_poll_and_the_cancel() -> None:
    app = dash.Dash(__name__)
    FOLLOW.register(app)
    outputs = " ".join(str(k) for k in app.callback_map)
    assert f"{IDS.progress}.children" in outputs and f"{IDS.cancel_notice}.children" in outputs
    inputs = [i for cb in app.callback_map.values() for i in cb["inputs"]]
    assert {"id": IDS.cancel, "property": "n_clicks"} in inputs
    assert {"id": IDS.poll, "property": "n_intervals"} in inputs


# submitting and checking ---------------------------------------------------------------------


def test_start_job_posts_and_returns_the_store_value(api: JobsApi) -> None:
    started = jobs.start_job("sweep", {"model_id": 1})
    assert api.posted == [{"kind": "sweep", "spec": {"model_id": 1}}]
    assert started.job == {"id": 1, "kind": "sweep"}
    assert started.notice is None and started.errors == {}


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ((422, "spec.sparsity: Input should be less than 1"), "The API refused the job"),
        ((503, "Job queue unavailable"), "The API answered 503"),
        (None, "Cannot reach the PruneScope API"),
    ],
)
def test_start_job_explains_a_refusal(api: JobsApi, answer: Any, title: str) -> None:
    api.answer, api.down = answer, answer is None
    started = jobs.start_job("prune", {"model_id": 1}, notice_id="demo-refused")
    assert started.job is None
    assert started.notice.id == "demo-refused"
    assert title in text(started.notice)
    if answer is not None:
        assert answer[1] in text(started.notice)  # the detail verbatim
        assert started.errors == {"": answer[1]}


def test_dry_run_maps_the_servers_errors_to_spec_paths(api: JobsApi) -> None:
    assert forms.dry_run("prune", {"model_id": 1}) == forms.DryRun({"model_id": 1}, {})
    detail = [
        {"loc": ["spec", "sparsity"], "msg": "Input should be less than 1"},
        {"loc": ["spec", "finetune", "epochs"], "msg": "Input should be >= 0"},
        {"loc": ["spec"], "msg": "too many jobs"},
    ]
    api.answer = (422, detail)
    check = forms.dry_run("prune", {})
    assert check.spec is None
    assert check.errors == {
        "sparsity": "Input should be less than 1",
        "finetune.epochs": "Input should be >= 0",
        "": "too many jobs",
    }
    api.answer, api.down = None, True
    assert "Cannot reach" in forms.dry_run("prune", {}).errors[""]


def test_read_job_and_ended_notice(api: JobsApi) -> None:
    job = api.add("failed", error="boom")
    assert jobs.read_job(job["id"])[0] == job
    assert jobs.read_job(99)[0] is None and jobs.read_job(99)[2] is True
    box = jobs.ended_notice(job, "regions")
    assert "The regions job failed" in text(box) and "boom" in text(box)
    assert "notice-warning" in jobs.ended_notice({"status": "cancelled"}, "x").className


# the compact follower of a view's job ----------------------------------------------------------

COMPACT = jobs.CompactFollower("view", "regions", announce=True)
CIDS = COMPACT.ids


def test_compact_ids_derive_from_the_prefix_and_start_idle() -> None:
    assert CIDS == ("view-compute", "view-job", "view-poll", "view-progress", "view-done")
    parts = [COMPACT.button("Compute", title="Run it"), *COMPACT.stores()]
    assert by_id(parts, CIDS.compute).children == "Compute"
    assert "needs-write" in by_id(parts, CIDS.compute).className
    assert by_id(parts, CIDS.poll).disabled is True
    assert {CIDS.job, CIDS.done} <= set(ids(parts))


def test_compact_start_follows_the_new_job_and_follow_announces_it(api: JobsApi) -> None:
    followed, line = COMPACT.start({"comparison_id": 3}, comparison_id=3)
    assert api.posted == [{"kind": "regions", "spec": {"comparison_id": 3}}]
    assert followed == {"id": 1, "comparison_id": 3}
    assert "Job #1" in text(line) and "queued" in text(line)
    poll_off, button_off, said = COMPACT.follow(followed)
    assert (poll_off, button_off) == (False, True) and "Job #1 submitted" in text(said)
    assert COMPACT.follow(None) == (True, False, dash.no_update)
    quiet = jobs.CompactFollower("quiet", "attribution")
    assert quiet.follow({"id": 1}) == (False, True)


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ((422, "unsupported module: nn.GELU"), "The API refused the regions job (422)"),
        ((503, "the job queue is down"), "The API answered 503"),
    ],
)
def test_compact_start_refused_keeps_the_status(api: JobsApi, answer: Any, title: str) -> None:
    api.answer = answer
    followed, refused = COMPACT.start({"comparison_id": 3})
    assert followed is dash.no_update
    assert title in text(refused) and answer[1] in text(refused)


def test_compact_poll_a_running_job(api: JobsApi) -> None:
    job = api.add("running", kind="regions", stage="model 1: local")
    line, poll_off, button_off, done = COMPACT.poll(1, {"id": job["id"]})
    assert (poll_off, button_off, done) == (False, True, dash.no_update)
    assert "running" in text(line) and "30%" in text(line) and "model 1: local" in text(line)
    assert "Job #" in text(line)


def test_compact_poll_a_succeeded_job_sets_done_to_the_followed_job(api: JobsApi) -> None:
    job = api.add("succeeded", kind="regions")
    followed = {"id": job["id"], "index": 42}
    line, poll_off, button_off, done = COMPACT.poll(3, followed)
    assert (poll_off, button_off) == (True, True) and done == followed
    assert "100%" in text(line)


@pytest.mark.parametrize(
    ("status", "words"),
    [("failed", "The regions job failed"), ("cancelled", "The regions job was cancelled")],
)
def test_compact_poll_an_ended_job_frees_the_button(api: JobsApi, status: str, words: str) -> None:
    job = api.add(status, kind="regions", error="nn.GELU" if status == "failed" else None)
    line, poll_off, button_off, done = COMPACT.poll(2, {"id": job["id"]})
    assert (poll_off, button_off, done) == (True, False, dash.no_update)
    assert words in text(line)
    if status == "failed":
        assert "nn.GELU" in text(line)


def test_compact_poll_an_unknown_job_stops_and_an_unreachable_api_does_not(api: JobsApi) -> None:
    assert COMPACT.poll(0, None) == (dash.no_update, True, False, dash.no_update)
    notices, poll_off, button_off, done = COMPACT.poll(1, {"id": 99})
    assert "Job 99 not found" in text(notices)
    assert (poll_off, button_off, done) == (True, False, dash.no_update)
    api.down = True
    notices, poll_off, button_off, _ = COMPACT.poll(1, {"id": 1})
    assert "Cannot reach the PruneScope API" in text(notices)
    assert (poll_off, button_off) == (False, True)


def test_compact_register_wires_start_follow_and_poll() -> None:
    app = dash.Dash(__name__)

    def start(n_clicks: Any, spec: Any) -> Any:
        return dash.no_update, dash.no_update

    COMPACT.register(app, start, dash.State("view-spec", "data"))
    outputs = " ".join(str(k) for k in app.callback_map)
    assert f"{CIDS.done}.data" in outputs and f"{CIDS.job}.data" in outputs
    inputs = [i for cb in app.callback_map.values() for i in cb["inputs"]]
    for wired in ((CIDS.compute, "n_clicks"), (CIDS.job, "data"), (CIDS.poll, "n_intervals")):
        assert {"id": wired[0], "property": wired[1]} in inputs


def test_status_line_is_shared_by_both_followers() -> None:
    job = {"id": 5, "status": "running", "progress": 0.5, "stage": "epoch 1"}
    line = jobs.status_line(job, label="Job #5 ")
    assert text(line).split() == ["Job", "#5", "running", "50%", "epoch", "1"]
    assert ids(line) == []
    panel_line = jobs.status_line(job, ids=IDS)
    assert {IDS.status, IDS.progress_bar, IDS.stage} == set(ids(panel_line))
