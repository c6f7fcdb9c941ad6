"""Corruption-robustness view: its figures, and its callbacks against a fake API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import pytest
from dash import html
from dash.development.base_component import Component

from frontend import client as client_module
from frontend.figures._common import COLOR_A, COLOR_B
from frontend.figures.robustness import (
    ACCURACY_SCALE,
    DIFF_SCALE,
    accuracy_diff_heatmap,
    accuracy_heatmap,
    corruption_errors,
    largest_drop,
    mean_by_severity,
    relative_corruption_errors,
    robustness_grid,
    severity_lines,
)
from frontend.views import QUERY, SELECTION, merge_settings
from frontend.views import robustness as view

FakeApi = Any  # the fake_api fixture of conftest.py
CORRUPTIONS = ["gaussian_noise", "fog", "contrast"]
SEVERITIES = [1, 2, 3, 4, 5]
ACC_A = [
    [0.80, 0.75, 0.70, 0.60, 0.50],
    [0.85, 0.80, 0.78, 0.70, 0.65],
    [0.88, 0.86, 0.80, 0.75, 0.70],
]
ACC_B = [
    [0.78, 0.70, 0.60, 0.45, 0.30],
    [0.86, 0.80, 0.75, 0.66, 0.60],
    [0.85, 0.84, 0.80, 0.70, 0.66],
]
ROB_A = {"corruptions": CORRUPTIONS, "severities": SEVERITIES, "accuracy": ACC_A}
ROB_B = {"corruptions": CORRUPTIONS, "severities": SEVERITIES, "accuracy": ACC_B}


# component-tree helpers ------------------------------------------------------------------------


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


def ids(node: Any) -> set[str]:
    found = (getattr(c, "id", None) for c in walk(node) if isinstance(c, Component))
    return {i for i in found if isinstance(i, str)}


# figures ---------------------------------------------------------------------------------------


def grid() -> Any:
    return robustness_grid(ROB_A, ROB_B)


def test_grid_aligns_common_settings_in_a_order() -> None:
    b = {
        "corruptions": ["contrast", "fog", "snow"],
        "severities": [1, 3, 5],
        "accuracy": [[0.9, 0.8, 0.7], [0.6, 0.5, 0.4], [0.3, 0.2, 0.1]],
    }
    g = robustness_grid(ROB_A, b)
    assert g.corruptions == ["fog", "contrast"] and g.severities == [1, 3, 5]
    np.testing.assert_allclose(g.acc_a, [[0.85, 0.78, 0.65], [0.88, 0.80, 0.70]])
    np.testing.assert_allclose(g.acc_b, [[0.6, 0.5, 0.4], [0.9, 0.8, 0.7]])
    assert g.cell("fog", 3) == pytest.approx((0.78, 0.5))
    assert g.cell("fog", 2) is None and g.cell("snow", 1) is None
    assert robustness_grid(ROB_A, None).empty


def test_grid_rejects_a_ragged_table() -> None:
    bad = {"corruptions": ["fog"], "severities": [1, 2], "accuracy": [[0.5]]}
    with pytest.raises(ValueError, match=r"row 0 \(fog\) has 1 values but there are 2"):
        robustness_grid(bad, ROB_B)


def test_accuracy_heatmaps_share_one_fixed_scale() -> None:
    g = grid()
    fa, fb = accuracy_heatmap(g, "a", "A"), accuracy_heatmap(g, "b", "B")
    (ta,), (tb,) = fa.data, fb.data
    assert ta.type == tb.type == "heatmap"
    assert (ta.zmin, ta.zmax) == (tb.zmin, tb.zmax) == (0, 100)
    assert ta.colorscale == tb.colorscale
    assert fa.layout.title.text == "A"
    np.testing.assert_allclose(np.array(ta.z, dtype=float), 100 * np.array(ACC_A))
    np.testing.assert_allclose(np.array(tb.z, dtype=float), 100 * np.array(ACC_B))
    assert list(ta.y) == CORRUPTIONS and list(ta.x) == [str(s) for s in SEVERITIES]
    assert ta.text[0][0] == "80"
    assert fa.layout.xaxis.title.text.startswith("severity")
    assert fa.layout.yaxis.autorange == "reversed"  # the first corruption on top
    assert "accuracy %{z:.1f}%" in ta.hovertemplate and "classified correctly" in ta.hovertemplate
    assert ta.colorbar.title.text == "accuracy (%)"
    # the scale name is expanded by plotly; its ends are Viridis's
    assert ACCURACY_SCALE == "Viridis" and ta.colorscale[0][1] == "#440154"
    with pytest.raises(ValueError, match="side='c'"):
        accuracy_heatmap(g, "c", "C")


def test_diff_heatmap_is_centred_on_zero_in_percentage_points() -> None:
    fig = accuracy_diff_heatmap(grid(), "B − A")
    (trace,) = fig.data
    diff = 100 * (np.array(ACC_B) - np.array(ACC_A))
    np.testing.assert_allclose(np.array(trace.z, dtype=float), diff, atol=1e-9)
    assert trace.zmid == 0
    m = np.abs(diff).max()
    assert trace.zmin == pytest.approx(-m) and trace.zmax == pytest.approx(m)
    assert trace.text[0][4] == "-20.0" and trace.text[1][0] == "+1.0"
    assert "pp" in trace.colorbar.title.text
    assert DIFF_SCALE == "RdBu"  # low (losses) red
    assert "percentage points" in trace.hovertemplate


def test_diff_heatmap_of_identical_models_keeps_a_symmetric_range() -> None:
    (trace,) = accuracy_diff_heatmap(robustness_grid(ROB_A, ROB_A), "B − A").data
    assert (trace.zmin, trace.zmid, trace.zmax) == (-1.0, 0, 1.0)


def test_selected_cell_is_outlined_on_every_heatmap() -> None:
    g = grid()
    for fig in (
        accuracy_heatmap(g, "a", "A", selected=("fog", 4)),
        accuracy_heatmap(g, "b", "B", selected=("fog", 4)),
        accuracy_diff_heatmap(g, "B − A", selected=("fog", 4)),
    ):
        (shape,) = fig.layout.shapes
        assert (shape.x0, shape.x1, shape.y0, shape.y1) == (2.5, 3.5, 0.5, 1.5)
    assert len(accuracy_heatmap(g, "a", "A", selected=("snow", 1)).layout.shapes) == 0


def test_empty_grid_explains_itself() -> None:
    empty = robustness_grid(None, None)
    for fig in (
        accuracy_heatmap(empty, "a", "A"),
        accuracy_diff_heatmap(empty, "d"),
        severity_lines(empty, "A", "B"),
    ):
        assert len(fig.data) == 0
        assert "No corruption results" in fig.layout.annotations[0].text


def test_severity_lines_mean_over_corruptions_with_clean_point() -> None:
    fig = severity_lines(grid(), "A: net", "B: pruned", clean_a=0.9, clean_b=0.88)
    assert len(fig.data) == 2
    a, b = fig.data
    assert list(a.x) == [0, 1, 2, 3, 4, 5]
    expected_a = [90.0, *(100 * np.array(ACC_A).mean(axis=0))]
    np.testing.assert_allclose(np.array(a.y, dtype=float), expected_a)
    assert a.line.color == COLOR_A and b.line.color == COLOR_B
    assert a.name.startswith("A: net") and "mean of 3 corruptions" in a.name
    assert list(fig.layout.xaxis.ticktext) == ["clean", "1", "2", "3", "4", "5"]
    assert fig.layout.yaxis.title.text == "accuracy (%)"
    # without clean accuracies the x axis is the severities only
    assert list(severity_lines(grid(), "A", "B").data[0].x) == SEVERITIES


def test_severity_lines_follow_a_highlighted_corruption() -> None:
    fig = severity_lines(grid(), "A", "B", clean_a=0.9, clean_b=0.88, highlight="fog")
    assert len(fig.data) == 4
    fog_a, fog_b = fig.data[2], fig.data[3]
    assert fog_a.line.dash == fog_b.line.dash == "dot"
    np.testing.assert_allclose(np.array(fog_b.y[1:], dtype=float), 100 * np.array(ACC_B[1]))
    assert len(severity_lines(grid(), "A", "B", highlight="snow").data) == 2


def test_corruption_errors_follow_hendrycks() -> None:
    a, b = np.array(ACC_A), np.array(ACC_B)
    ce = corruption_errors(a, b)
    expected = (1 - b).sum(axis=1) / (1 - a).sum(axis=1)
    np.testing.assert_allclose(ce, expected)
    # no error of A under a corruption: undefined
    assert corruption_errors(np.ones((1, 2)), np.full((1, 2), 0.5)) == [None]
    rel = relative_corruption_errors(a, b, 0.9, 0.88)
    expected_rel = ((1 - b) - (1 - 0.88)).sum(axis=1) / ((1 - a) - (1 - 0.9)).sum(axis=1)
    np.testing.assert_allclose(rel, expected_rel)
    assert relative_corruption_errors(np.full((1, 2), 0.95), b[:1, :2], 0.9, 0.9) == [None]
    # A lost under 1 pp per severity: the ratio would divide by noise
    assert relative_corruption_errors(np.full((1, 2), 0.895), b[:1, :2], 0.9, 0.9) == [None]
    assert relative_corruption_errors(np.full((1, 2), 0.89), np.full((1, 2), 0.8), 0.9, 0.9) == [
        pytest.approx(10.0)
    ]
    np.testing.assert_allclose(mean_by_severity(a), a.mean(axis=0))
    corruption, severity, delta = largest_drop(grid())
    assert (corruption, severity) == ("gaussian_noise", 5) and delta == pytest.approx(-0.2)
    assert largest_drop(robustness_grid(ROB_B, ROB_B)) is None


# fake API --------------------------------------------------------------------------------------


class RobustnessApi:
    """The conftest fake plus robustness tables (by analysis id) and comparison results."""

    def __init__(self, base: FakeApi) -> None:
        self.base = base
        self.robustness: dict[int, dict[str, Any]] = {1: ROB_A, 2: ROB_B, 3: ROB_B}
        self.results: dict[int, dict[str, Any]] = {
            2: {
                "mce": {"corruptions": CORRUPTIONS, "ce": [1.1, 1.0, 1.05], "mce": 1.05},
                "fragility": {"fragile_a": 30, "fragile_b": 41, "made_fragile_by_pruning": 17},
            }
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if m := re.fullmatch(r"/api/analyses/(\d+)/robustness", path):
            self.base.requests.append(request)
            table = self.robustness.get(int(m[1]))
            if table is None:
                return httpx.Response(404, json={"detail": "Analysis has no corruption results"})
            return httpx.Response(200, json=table)
        if m := re.fullmatch(r"/api/comparisons/(\d+)/results", path):
            self.base.requests.append(request)
            b = int(request.url.params.get("b", 2))
            if b not in self.results:
                return httpx.Response(409, json={"detail": "comparison results are not ready"})
            return httpx.Response(200, json={"comparison_id": int(m[1]), **self.results[b]})
        return self.base.handle(request)


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[RobustnessApi]:
    fake = RobustnessApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    yield fake


def context(b: int = 2, **query: str) -> dict[str, Any]:
    return {"id": 1, "b": b, "cls": None, "query": {"id": "1", "b": str(b), **query}}


# layout and callbacks ----------------------------------------------------------------------


def test_section_has_the_graphs_and_stores() -> None:
    section = view.section()
    assert section.id == view.ID_SECTION
    expected = {
        view.ID_HEAT_A,
        view.ID_HEAT_B,
        view.ID_HEAT_DIFF,
        view.ID_LINES,
        view.ID_DETAIL,
        view.ID_DATA,
        view.ID_CELL,
        view.ID_CARDS,
        view.ID_MESSAGE,
    }
    assert expected <= ids(section)
    assert all(i.startswith("compare-robustness") for i in ids(section))


def test_load_fetches_both_tables_and_the_results(api: RobustnessApi) -> None:
    data, message, style, cards = view.load_robustness(context())
    assert message is None and style == view.SHOWN
    assert data["robustness_a"] == ROB_A and data["robustness_b"] == ROB_B
    assert data["mce"] == 1.05 and data["fragility"]["made_fragile_by_pruning"] == 17
    assert data["clean_a"] == api.base.analyses[0]["accuracy"]
    paths = api.base.paths()
    assert "/api/analyses/1/robustness" in paths and "/api/analyses/2/robustness" in paths
    words = text(cards)
    assert "mCE of B (A = 100%)" in words and "105.0%" in words
    assert "Relative mCE" in words and "Made fragile by pruning" in words and "17 samples" in words
    assert "gaussian_noise at severity 5" in words and "-20.0 pp" in words


def test_mce_is_computed_from_the_tables_when_results_are_not_ready(api: RobustnessApi) -> None:
    data, message, _style, cards = view.load_robustness(context(b=3))
    assert message is None and data["mce"] is None and data["fragility"] is None
    expected = np.mean(corruption_errors(np.array(ACC_A), np.array(ACC_B)))
    assert f"{100 * expected:.1f}%" in text(cards)
    assert "Made fragile" not in text(cards)


def test_no_corruptions_is_an_empty_state_that_says_how(api: RobustnessApi) -> None:
    api.robustness = {}
    data, message, style, cards = view.load_robustness(context())
    assert data is None and style == view.HIDDEN and cards == []
    words = text(message)
    assert view.EMPTY_TEXT in words
    assert "POST /api/comparisons" in words and "corruptions" in words
    (pre,) = [c for c in walk(message) if isinstance(c, html.Pre)]
    assert '"model_a_id": 1' in pre.children and '"jpeg_compression"' in pre.children
    assert view.render_robustness(None, None) == (dash.no_update,) * 5


def test_only_b_without_corruptions_names_it(api: RobustnessApi) -> None:
    api.robustness = {1: ROB_A}
    data, message, _style, _cards = view.load_robustness(context())
    assert data is None and "B's analysis ran without corruptions" in text(message)


def test_unreachable_api_is_said_in_words(api: RobustnessApi) -> None:
    api.base.down = True
    data, message, style, _ = view.load_robustness(context())
    assert data is None and style == view.HIDDEN
    assert "Cannot reach the PruneScope API" in text(message)


def test_render_draws_heatmaps_lines_and_the_selected_cell(api: RobustnessApi) -> None:
    data, *_ = view.load_robustness(context())
    fig_a, fig_b, fig_diff, lines, detail = view.render_robustness(data, ["fog", 3])
    assert fig_a.data[0].zmin == fig_b.data[0].zmin == 0
    assert fig_a.data[0].zmax == fig_b.data[0].zmax == 100
    assert fig_diff.data[0].zmid == 0
    assert all(len(f.layout.shapes) == 1 for f in (fig_a, fig_b, fig_diff))
    assert len(lines.data) == 4  # A, B and the selected corruption's two curves
    words = text(detail)
    assert "fog, severity 3" in words and "78.0%" in words and "75.0%" in words
    assert "-3.0 pp" in words and "CE of fog" in words
    *_, nothing = view.render_robustness(data, None)
    assert view.CLICK_HINT in text(nothing)


def test_click_writes_the_setting_into_the_query_and_again_clears_it() -> None:
    click = {"points": [{"x": "3", "y": "fog", "z": 78.0}]}
    query = {"id": "1", "emb_color": "label"}
    new = view.select_cell(click, query)
    assert new == {"id": "1", "emb_color": "label", "rob_c": "fog", "rob_s": "3"}
    assert view.select_cell(click, new) == {"id": "1", "emb_color": "label"}
    assert view.select_cell(None, query) is dash.no_update
    assert view.select_cell({"points": []}, query) is dash.no_update


def test_cell_follows_the_query_and_ignores_other_settings() -> None:
    assert view.track_cell({"rob_c": "fog", "rob_s": "2"}, None) == ["fog", 2]
    assert view.track_cell({"rob_c": "fog", "rob_s": "2", "x": "1"}, ["fog", 2]) is dash.no_update
    assert view.track_cell({}, ["fog", 2]) is None
    assert view.track_cell({"rob_c": "fog", "rob_s": "nope"}, None) is dash.no_update
    assert view.parse_cell(merge_settings({}, rob_c="fog", rob_s=5)) == ("fog", 5)


def test_callbacks_are_registered_with_the_contract_stores() -> None:
    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    view.register(app)
    outputs = " ".join(str(k) for k in app.callback_map)
    assert f"{QUERY}.data" in outputs
    inputs = [
        i["id"] for cb in app.callback_map.values() for i in cb["inputs"] if isinstance(i, dict)
    ]
    assert view.CTX == "compare-robustness-context" and view.CTX in inputs
    # each heatmap's click writes the setting (QUERY) and selects what it broke (SELECTION)
    assert sum(1 for i in inputs if i in view.HEATMAP_IDS) == 6
    assert f"{SELECTION}.data" in outputs
