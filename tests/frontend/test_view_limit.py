"""Pruning-limit view and figure (SCIENCE.md sect. 7): the figure's curves and crossing, the
view's empty state with its button, the results, and the job it submits (a stub client)."""

from __future__ import annotations

from typing import Any

import dash
import pytest

from frontend.client import ApiError
from frontend.figures.limit import limit_figure, limit_summary
from frontend.views import limit as view

S = [i / 10 for i in range(10)]
RESULT: dict[str, Any] = {
    "job_id": 7,
    "spec": {"model_id": 3, "iterations": 20, "vectors": 4},
    "model_id": 3,
    "eps": 0.02,
    "hessian_batches": 4,
    "sparsities": S,
    "predicted": [1 - 0.8 * s for s in S],
    "index": 6,
    "limit": 0.6,
    "interpolated": 0.5556,
    "density": {"near_zero_mass": 0.3},
    "observed": {
        "accuracy": [0.95] * 7 + [0.9, 0.5, 0.2],
        "dense_accuracy": 0.95,
        "threshold": 0.94,
        "limit": 0.6,
    },
    "sweep_models": [{"id": 9, "name": "gm 90", "sparsity": 0.9, "accuracy": 0.93}],
}


def test_figure_draws_theory_line_crossing_accuracy_and_the_dense_line() -> None:
    fig = limit_figure(RESULT, "A")
    names = [t.name for t in fig.data]
    assert names[:3] == ["theory w(R(s))", "sparsity s", "predicted limit s = 0.556"]
    assert list(fig.data[0].y) == RESULT["predicted"] and list(fig.data[1].y) == [0.0, 1.0]
    accuracy = next(t for t in fig.data if t.name.startswith("one-shot"))
    assert accuracy.yaxis == "y2" and list(accuracy.y) == RESULT["observed"]["accuracy"]
    dense = next(t for t in fig.data if t.name == "dense accuracy − 1 pp")
    assert list(dense.y) == [0.94, 0.94]
    assert any(t.name == "pruned from A, fine-tuned" for t in fig.data)
    assert fig.layout.yaxis2.overlaying == "y"
    assert not limit_figure({}).data  # a message figure
    assert limit_summary(RESULT) == {
        "predicted": 0.5556,
        "observed": 0.6,
        "dense_accuracy": 0.95,
        "eps": 0.02,
        "near_zero_mass": 0.3,
    }


class Stub:
    def __init__(self, result: dict[str, Any] | None) -> None:
        self.result, self.submitted = result, []  # type: ignore[var-annotated]

    def get_comparison(self, comparison_id: int) -> dict[str, Any]:
        return {"id": comparison_id, "model_a_id": 3, "model_b_ids": [4]}

    def get_pruning_limit(self, model_id: int) -> dict[str, Any]:
        if self.result is None:
            raise ApiError(404, "no pruning limit yet: submit a job of kind 'pruning_limit'")
        return self.result

    def create_job(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append({"kind": kind, "spec": spec})
        return {"id": 101, "kind": kind, "status": "queued", "progress": 0.0, "spec": spec}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    found = Stub(None)
    monkeypatch.setattr(view, "get_client", lambda: found)
    monkeypatch.setattr("frontend.jobs.get_client", lambda: found)
    return found


def load(context: Any) -> dict[str, Any]:
    return dict(zip(view.LOADED.spec, view.load_limit(context), strict=True))


def test_empty_state_offers_the_button_and_submits_the_job_on_a(stub: Stub) -> None:
    out = load({"id": 1, "b": None, "query": {}})
    assert out["intro"] == view.SHOWN and out["body"] == view.HIDDEN and out["model"] == 3
    assert load(None)["intro"] == view.HIDDEN
    section = view.section()
    assert "needs-write" in section.children[3].children[2].children[0].className
    assert view.start_limit_job(0, 3) == (dash.no_update, dash.no_update)
    job, _line = view.start_limit_job(1, 3)
    assert stub.submitted == [{"kind": "pruning_limit", "spec": {"model_id": 3}}]
    assert job == {"id": 101, "model_id": 3}


def test_results_show_cards_note_and_figure(stub: Stub) -> None:
    stub.result = RESULT
    out = load({"id": 1, "b": None, "query": {}})
    assert out["body"] == view.SHOWN and out["intro"] == view.HIDDEN
    assert len(out["cards"]) == 4 and "Job #7" in out["note"]
    assert out["figure"].data[0].name == "theory w(R(s))"
