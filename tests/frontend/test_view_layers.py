"""Layers view: its callbacks (empty state, job submission and following, results, the chosen
layer in the URL) against the fake API of conftest.py."""

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
from frontend.views import QUERY
from frontend.views import layers as view

FakeApi = Any  # the fake_api fixture of conftest.py
EDGES = [-5 + 0.1 * i for i in range(41)]


def layer(name: str, sparsity: float) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "conv",
        "shape_a": [8, 3, 3, 3],
        "shape_b": [8, 3, 3, 3],
        "channels": 8,
        "params": 216,
        "sparsity_a": 0.0,
        "sparsity_b": sparsity,
        "kept_channels_a": 8,
        "kept_channels_b": 8,
        "relative_weight_change": sparsity / 2,
        "cka": 1 - sparsity / 3,
        "dead_relu_a": 0.1,
        "dead_relu_b": 0.2,
        "hist": {
            "log10_edges": EDGES,
            "a": [5] * 40,
            "b": [2] * 40,
            "zeros_a": 16,
            "zeros_b": 136,
        },
    }


def result(b: int) -> dict[str, Any]:
    return {
        "model_b_id": b,
        "job_id": 7,
        "n_samples": 300,
        "layers": [layer("conv1", 0.5), layer("conv2", 0.9), layer("fc", 0.7)],
    }


class LayersApi:
    """The conftest fake plus layer results and a layers job that advances one step per poll."""

    def __init__(self, base: FakeApi) -> None:
        self.base = base
        self.results: list[dict[str, Any]] = []
        self.submitted: list[dict[str, Any]] = []
        self.steps = [("queued", 0.0, ""), ("running", 0.5, "model 2"), ("succeeded", 1.0, "")]

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/jobs" and request.method == "POST":
            payload = json.loads(request.content)
            self.submitted.append(payload)
            job = {
                "id": 100 + len(self.submitted),
                "kind": payload["kind"],
                "spec": payload["spec"],
                "status": "queued",
                "progress": 0.0,
                "stage": "",
                "error": None,
                "result": None,
                "created_at": "2024-05-01T12:00:00Z",
                "started_at": None,
                "finished_at": None,
                "heartbeat_at": None,
                "_step": 0,
            }
            self.base.jobs.append(job)
            return httpx.Response(201, json={k: v for k, v in job.items() if k != "_step"})
        if m := re.fullmatch(r"/api/jobs/(\d+)", path):
            job = next((j for j in self.base.jobs if j["id"] == int(m[1]) and "_step" in j), None)
            if job is not None:
                step = min(job["_step"], len(self.steps) - 1)
                job["status"], job["progress"], job["stage"] = self.steps[step]
                job["_step"] += 1
                if job["status"] == "succeeded":
                    self.results = [result(2), result(3)]
                return httpx.Response(200, json={k: v for k, v in job.items() if k != "_step"})
        if path == "/api/comparisons/1/layers":
            self.base.requests.append(request)
            if not self.results:
                detail = "no layer results yet: submit a job of kind 'layers'"
                return httpx.Response(404, json={"detail": detail})
            return httpx.Response(200, json={"comparison_id": 1, "results": self.results})
        return self.base.handle(request)


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[LayersApi]:
    fake = LayersApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    yield fake


def context(b: int = 2, **query: str) -> dict[str, Any]:
    return {"id": 1, "b": b, "cls": None, "query": {"id": "1", "b": str(b), **query}}


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


def load(ctx: Any, done: Any = None) -> dict[str, Any]:
    return dict(zip(view.LOADED.spec, view.load_layers(ctx, done), strict=True))


def test_section_starts_hidden_with_the_button_and_the_poll_off() -> None:
    section = view.section()
    ids = {getattr(c, "id", None): c for c in walk(section) if isinstance(c, Component)}
    assert ids[view.ID_INTRO].style == view.HIDDEN and ids[view.ID_BODY].style == view.HIDDEN
    assert ids[view.ID_POLL].disabled is True
    assert ids[view.ID_COMPUTE].children == view.BUTTON
    assert "needs-write" in ids[view.ID_COMPUTE].className  # hidden on read-only pages
    assert all(str(i).startswith("compare-layers") for i in ids if i)


def test_without_results_the_empty_state_explains_and_offers_the_button(api: LayersApi) -> None:
    out = load(context())
    assert out["intro"] == view.SHOWN and out["body"] == view.HIDDEN
    assert out["message"] is None and out["job"] is None and out["data"] is None
    assert not api.submitted
    assert load(None)["intro"] == view.HIDDEN


def test_button_submits_the_job_and_polling_follows_it_to_the_results(api: LayersApi) -> None:
    job, line = view.start_layers_job(1, context())
    assert api.submitted == [{"kind": "layers", "spec": {"comparison_id": 1}}]
    assert job == {"id": 101, "comparison_id": 1} and "Job #101" in text(line)
    assert view.follow_job(job)[:2] == (False, True)
    assert view.poll_layers_job(1, job)[3] is dash.no_update
    assert view.poll_layers_job(2, job)[3] is dash.no_update
    progress, poll_disabled, _, done = view.poll_layers_job(3, job)
    assert poll_disabled and done == job
    out = load(context(), done)
    assert out["intro"] == view.HIDDEN and out["body"] == view.SHOWN
    data = out["data"]
    assert [x["name"] for x in data["layers"]] == ["conv1", "conv2", "fc"]
    assert data["n_samples"] == 300
    assert data["label_a"].startswith("A: ") and data["label_b"] == "B: global_magnitude 50%"
    assert "3 prunable layers" in out["note"]
    assert out["layer"] is None  # nothing chosen in the URL


def test_a_b_missing_from_the_results_says_so(api: LayersApi) -> None:
    api.results = [result(3)]
    out = load(context(b=2))
    assert out["intro"] == view.SHOWN
    assert "do not cover this B" in text(out["message"]) and "#3" in text(out["message"])
    assert load(context(b=3))["body"] == view.SHOWN


def test_a_running_job_is_picked_up(api: LayersApi) -> None:
    api.base.jobs.append(
        {
            "id": 50,
            "kind": "layers",
            "spec": {"comparison_id": 1},
            "status": "running",
            "progress": 0.5,
            "stage": "",
            "error": None,
            "result": None,
            "created_at": "2024-05-01T12:00:00Z",
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
        }
    )
    assert load(context())["job"] == {"id": 50, "comparison_id": 1}


def test_the_chosen_layer_comes_from_the_url_and_a_click(api: LayersApi) -> None:
    api.results = [result(2)]
    out = load(context(lay_layer="conv2"))
    assert out["layer"] == "conv2"
    assert load(context(lay_layer="gone"))["layer"] is None
    data = out["data"]
    fig, style, hist, note = view.render_layers(data, "conv2")
    assert style["height"] == f"{fig.layout.height}px"
    assert len(fig.layout.shapes) == 1  # the chosen row
    assert list(hist.data[0].y) == [5] * 40 and list(hist.data[1].y) == [2] * 40
    assert "conv2" in note
    _, _, hist, note = view.render_layers(data, None)
    assert len(hist.data) == 0 and note == view.CLICK_HINT
    click = {"points": [{"customdata": 2, "y": "fc"}]}
    assert view.choose_layer(click, data, "conv2") == "fc"
    assert view.choose_layer(click, data, "fc") is dash.no_update
    assert view.choose_layer({"points": []}, data, None) is dash.no_update
    assert view.store_layer("fc", {"id": "1"}) == {"id": "1", "lay_layer": "fc"}
    assert view.store_layer("fc", {"id": "1", "lay_layer": "fc"}) is dash.no_update


def test_callbacks_are_registered_with_the_contract_stores() -> None:
    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    view.register(app)
    outputs = " ".join(str(k) for k in app.callback_map)
    assert f"{QUERY}.data" in outputs and f"{view.ID_HIST}.figure" in outputs
    inputs = [
        i["id"] for cb in app.callback_map.values() for i in cb["inputs"] if isinstance(i, dict)
    ]
    assert view.CTX == "compare-layers-context" and view.CTX in inputs
    assert view.ID_FIGURE in inputs and view.ID_COMPUTE in inputs
