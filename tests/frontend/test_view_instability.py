"""Instability view and figure (Frankle et al., ICML 2020; SCIENCE.md sect. 4): the figure's
path, endpoints' line and barrier, the view's three states (no rewind point, empty with its
button, results) for the current B, the job it submits (a stub client), and the Experiments
column."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
import pytest

from frontend.client import ApiError
from frontend.figures.instability import instability_figure, instability_summary
from frontend.pages import experiments as experiments_page
from frontend.views import instability as view

ALPHAS = [float(a) for a in np.linspace(0, 1, 30)]
ERRORS = [0.05 + 0.2 * a * (1 - a) * 4 if 0.2 < a < 0.8 else 0.05 + 0.02 * a for a in ALPHAS]
RESULT: dict[str, Any] = {
    "job_id": 7,
    "spec": {"model_id": 4, "points": 30},
    "model_id": 4,
    "alphas": ALPHAS,
    "errors": ERRORS,
    "barrier": max(ERRORS) - (ERRORS[0] + ERRORS[-1]) / 2,
    "endpoint_errors": [ERRORS[0], ERRORS[-1]],
    "stable_below": 0.02,
    "seeds": [1, 2],
    "epochs": 3,
    "rewind_step": 0,
    "start": {
        "weights": "pruning_params.learning.start_sha",
        "rest": "a fresh initialisation with the training seed 0",
    },
}
PEAK = int(np.argmax(ERRORS))


def test_figure_draws_the_path_the_endpoints_line_their_mean_and_the_barrier() -> None:
    fig = instability_figure(RESULT, "B")
    by_name = {t.name: t for t in fig.data}
    path = by_name["test error along the path"]
    assert list(path.x) == ALPHAS and list(path.y) == ERRORS
    line = by_name["endpoints' line"]
    assert list(line.x) == [0.0, 1.0] and list(line.y) == [ERRORS[0], ERRORS[-1]]
    mean = (ERRORS[0] + ERRORS[-1]) / 2
    assert list(by_name["mean of the endpoints' errors"].y) == [mean, mean]
    copies = by_name["the two trained copies"]
    assert list(copies.text) == ["seed 1", "seed 2"]
    barrier = next(t for t in fig.data if t.name.startswith("error barrier"))
    assert list(barrier.x) == [ALPHAS[PEAK]] * 2
    assert list(barrier.y) == pytest.approx([mean, ERRORS[PEAK]])
    assert barrier.y[1] - barrier.y[0] == pytest.approx(RESULT["barrier"])
    assert fig.layout.yaxis.tickformat == ".0%"
    assert not instability_figure({}).data  # a message figure
    assert not instability_figure({"alphas": [0, 1], "errors": [0.1]}).data


def test_summary_recomputes_what_the_result_leaves_out() -> None:
    summary = instability_summary(RESULT)
    assert summary["barrier"] == pytest.approx(RESULT["barrier"])
    assert summary["max_alpha"] == ALPHAS[PEAK] and summary["stable"] is False
    bare = instability_summary({"alphas": [0, 0.5, 1], "errors": [0.1, 0.11, 0.1]})
    assert bare["barrier"] == pytest.approx(0.01) and bare["stable"] is True
    assert bare["endpoint_errors"] == [0.1, 0.1]


B_WITH: dict[str, Any] = {
    "id": 4,
    "pruning_params": {"learning": {"distance": 1.0, "start_sha": "ab" * 32}},
}
B_WITHOUT: dict[str, Any] = {"id": 5, "pruning_params": None}


class Stub:
    def __init__(self) -> None:
        self.result: dict[str, Any] | None = None
        self.submitted: list[dict[str, Any]] = []

    def get_comparison(self, comparison_id: int) -> dict[str, Any]:
        return {"id": comparison_id, "model_a_id": 3, "model_b_ids": [4, 5]}

    def get_model(self, model_id: int) -> dict[str, Any]:
        return {4: B_WITH, 5: B_WITHOUT}[model_id]

    def get_instability(self, model_id: int) -> dict[str, Any]:
        if self.result is None:
            raise ApiError(404, "no instability yet: submit a job of kind 'instability'")
        return self.result

    def create_job(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append({"kind": kind, "spec": spec})
        return {"id": 101, "kind": kind, "status": "queued", "progress": 0.0, "spec": spec}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Stub:
    found = Stub()
    monkeypatch.setattr(view, "get_client", lambda: found)
    monkeypatch.setattr("frontend.jobs.get_client", lambda: found)
    return found


def load(context: Any) -> dict[str, Any]:
    return dict(zip(view.LOADED.spec, view.load_instability(context), strict=True))


def test_a_b_without_a_rewind_point_says_why_the_view_does_not_apply(stub: Stub) -> None:
    out = load({"id": 1, "b": "5", "query": {}})
    assert out["na"] == view.SHOWN
    assert out["intro"] == view.HIDDEN and out["body"] == view.HIDDEN and out["model"] is None
    assert view.has_rewind_point(B_WITH) and not view.has_rewind_point(B_WITHOUT)
    assert not view.has_rewind_point({"pruning_params": {"learning": {"distance": 1.0}}})


def test_empty_state_offers_the_button_and_submits_the_job_on_b(stub: Stub) -> None:
    out = load({"id": 1, "b": None, "query": {}})  # the first B
    assert out["intro"] == view.SHOWN and out["na"] == view.HIDDEN and out["model"] == 4
    assert load(None)["intro"] == view.HIDDEN
    section = view.section()
    intro = next(c for c in section.children if getattr(c, "id", None) == view.ID_INTRO)
    assert "needs-write" in intro.children[2].children[0].className  # hidden for share links
    assert view.start_instability_job(0, 4) == (dash.no_update, dash.no_update)
    job, _line = view.start_instability_job(1, 4)
    assert stub.submitted == [{"kind": "instability", "spec": {"model_id": 4}}]
    assert job == {"id": 101, "model_id": 4}


def test_results_show_cards_note_and_figure(stub: Stub) -> None:
    stub.result = RESULT
    out = load({"id": 1, "b": "4", "query": {}})
    assert out["body"] == view.SHOWN and out["intro"] == view.HIDDEN and out["na"] == view.HIDDEN
    assert len(out["cards"]) == 4 and "Job #7" in out["note"] and "seeds 1 and 2" in out["note"]
    assert out["figure"].data[2].name == "test error along the path"


def test_a_refused_job_shows_the_apis_reason(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        raise ApiError(422, "model 5 has no rewind point: instability trains two copies")

    monkeypatch.setattr(stub, "create_job", refuse)
    job, line = view.start_instability_job(1, 5)
    assert job is dash.no_update and "no rewind point" in str(line)


def test_the_experiments_table_has_an_instability_column() -> None:
    column = next(c for c in experiments_page.COLUMNS if c.id == "instability")
    assert column.numeric and not column.default and column.sort is None
    assert experiments_page._barrier(None) == experiments_page.MISSING
    assert experiments_page._barrier(0.0123) == "1.2 pp"
