"""Fourier view: its callbacks (empty state, job submission and following, results, a B the
results miss, a dataset that is not images) against the fake API of conftest.py."""

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
from frontend.views import fourier as view

FakeApi = Any  # the fake_api fixture of conftest.py


def grid(value: float) -> list[list[float]]:
    return [[value] * 4 for _ in range(4)]


def result(bs: list[int]) -> dict[str, Any]:
    models = [{"model_id": 1, "role": "a", "clean_error": 0.1, "error": grid(0.2)}]
    models += [{"model_id": b, "role": "b", "clean_error": 0.2, "error": grid(0.3)} for b in bs]
    return {
        "comparison_id": 1,
        "job_id": 9,
        "dataset_id": 1,
        "n_samples": 200,
        "v": 4.0,
        "v_default": True,
        "seed": 0,
        "clipped": True,
        "channels": 3,
        "height": 4,
        "width": 4,
        "frequencies": 10,
        "models": models,
    }


class FourierApi:
    """The conftest fake plus Fourier results and a job that advances one step per poll."""

    def __init__(self, base: FakeApi) -> None:
        self.base = base
        self.result: dict[str, Any] | None = None
        self.submitted: list[dict[str, Any]] = []
        self.shape = [3, 32, 32]
        self.steps = [
            ("queued", 0.0, ""),
            ("running", 0.5, "frequency 3/10"),
            ("succeeded", 1.0, ""),
        ]

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
                    self.result = result([2, 3])
                return httpx.Response(200, json={k: v for k, v in job.items() if k != "_step"})
        if path == "/api/comparisons/1/fourier":
            if self.result is None:
                detail = "no Fourier sensitivity yet: submit a job of kind 'fourier'"
                return httpx.Response(404, json={"detail": detail})
            return httpx.Response(200, json=self.result)
        response = self.base.handle(request)
        if re.fullmatch(r"/api/datasets/\d+", path) and response.status_code == 200:
            return httpx.Response(200, json={**response.json(), "input_shape": self.shape})
        return response


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[FourierApi]:
    fake = FourierApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    yield fake


def context(b: int = 2) -> dict[str, Any]:
    return {"id": 1, "b": b, "cls": None, "query": {"id": "1", "b": str(b)}}


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
    return dict(zip(view.LOADED.spec, view.load_fourier(ctx, done), strict=True))


def test_section_starts_hidden_with_the_button_for_writers_only() -> None:
    ids = {getattr(c, "id", None): c for c in walk(view.section()) if isinstance(c, Component)}
    assert ids[view.ID_INTRO].style == view.HIDDEN and ids[view.ID_BODY].style == view.HIDDEN
    assert ids[view.ID_POLL].disabled is True
    assert ids[view.ID_COMPUTE].children == "Compute Fourier sensitivity"
    assert "needs-write" in ids[view.ID_COMPUTE].className  # hidden on read-only pages
    assert all(str(i).startswith("compare-fourier") for i in ids if i)


def test_button_submits_the_job_and_polling_follows_it_to_the_maps(api: FourierApi) -> None:
    out = load(context())
    assert out["intro"] == view.SHOWN and out["body"] == view.HIDDEN and out["job"] is None
    job, line = view.start_fourier_job(1, context())
    assert api.submitted == [{"kind": "fourier", "spec": {"comparison_id": 1}}]
    assert job == {"id": 101, "comparison_id": 1} and "Job #101" in text(line)
    view.poll_fourier_job(1, job)
    view.poll_fourier_job(2, job)
    _, poll_disabled, _, done = view.poll_fourier_job(3, job)
    assert poll_disabled and done == job
    out = load(context(), done)
    assert out["intro"] == view.HIDDEN and out["body"] == view.SHOWN
    assert "v = 4" in out["note"] and "n = 200" in out["note"] and "clipped" in out["note"]
    fig = out["figure"]
    assert len(fig.data) == 3 and fig.data[2].z[0][0] == pytest.approx(0.1)


def test_a_b_missing_from_the_results_says_so(api: FourierApi) -> None:
    api.result = result([3])
    out = load(context(b=2))
    assert out["intro"] == view.SHOWN
    assert "do not cover this B" in text(out["message"]) and "#3" in text(out["message"])
    assert load(context(b=3))["body"] == view.SHOWN


def test_a_dataset_that_is_not_images_says_the_view_does_not_apply(api: FourierApi) -> None:
    api.shape = [64]
    out = load(context())
    assert out["intro"] == view.HIDDEN and out["body"] == view.HIDDEN
    assert "applies to image datasets" in text(out["message"]) and "64" in text(out["message"])
    assert view.is_image_shape([1, 8, 8]) and not view.is_image_shape([3, 1, 8])


def test_callbacks_are_registered_and_the_page_lists_the_view() -> None:
    from frontend.pages import compare

    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    view.register(app)
    inputs = [
        i["id"] for cb in app.callback_map.values() for i in cb["inputs"] if isinstance(i, dict)
    ]
    assert view.CTX == "compare-fourier-context" and view.CTX in inputs
    assert view.ID_COMPUTE in inputs
    assert "fourier" in compare.VIEW_ORDER and "fourier" in compare.LAZY_HEIGHTS
