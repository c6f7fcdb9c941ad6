"""Geometry and recall-distortion view: its figures, and its callbacks against a fake API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import plotly.graph_objects as go
import pytest
from dash import dcc, html
from dash.development.base_component import Component

from frontend import client as client_module
from frontend.figures._common import COLOR_A, COLOR_B
from frontend.figures.geometry import (
    MAX_LOCAL_POINTS,
    UNSELECTED_OPACITY,
    alpha_reading,
    balance_scatter,
    local_geometry_scatter,
    nearest_class_angles,
    parallel_geometry,
    subsample,
)
from frontend.views import CONTEXT, QUERY, SELECTION, selection
from frontend.views import geometry as view

FakeApi = Any  # the fake_api fixture of conftest.py
NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
N_SAMPLES = 60


# figures: recall distortion -------------------------------------------------------------------


def _alpha(bn_a: list[float], bn_b: list[float]) -> float:
    """alpha_t of SCIENCE.md section 2: least-squares slope through the origin."""
    a, b = np.asarray(bn_a), np.asarray(bn_b)
    return float((a * b).sum() / (a * a).sum())


def _slope(trace: Any) -> float:
    (x0, x1), (y0, y1) = trace.x, trace.y
    return (y1 - y0) / (x1 - x0)


def test_balance_scatter_draws_classes_identity_and_alpha_line() -> None:
    bn_a = [0.1, -0.2, 0.05, -0.02, 0.07]
    bn_b = [0.16, -0.25, 0.09, -0.01, 0.06]
    alpha = _alpha(bn_a, bn_b)
    fig = balance_scatter(NAMES, bn_a, bn_b, alpha, t=10.0, sparsity=0.9)
    assert [t.type for t in fig.data] == ["scatter"] * 3
    classes, identity, line = fig.data
    assert list(classes.x) == bn_a and list(classes.y) == bn_b
    assert list(classes.text) == NAMES
    assert [c[0] for c in classes.customdata] == list(range(5))
    assert classes.customdata[0][1] == pytest.approx(1.6)  # I = Bn_t / Bn
    assert "Bn = (class recall − accuracy) / accuracy" in classes.hovertemplate
    assert _slope(identity) == pytest.approx(1.0)
    assert identity.x[0] == identity.y[0]
    assert _slope(line) == pytest.approx(alpha)
    assert line.y[0] == pytest.approx(alpha * line.x[0])  # through the origin
    assert fig.layout.xaxis.title.text.startswith("Bn<sup>c</sup> before pruning")
    assert "after pruning" in fig.layout.yaxis.title.text
    title, ratios = fig.layout.title.text.split("<br>")
    assert title == "Recall distortion"
    assert ratios == "<sup>t = 10× of prunable weights (90% sparse)</sup>"  # t_all not given
    both = balance_scatter(NAMES, bn_a, bn_b, alpha, t=10.0, sparsity=0.9, t_all=8.25)
    assert both.layout.title.text.endswith(
        "<sup>t = 10× of prunable weights (90% sparse) · 8.25× of all parameters</sup>"
    )
    (note,) = fig.layout.annotations
    assert note.text == f"α_t = {alpha:.2f} (> 1: intensification)"


@pytest.mark.parametrize(
    ("alpha", "text"),
    [
        (1.234, "α_t = 1.23 (> 1: intensification)"),
        (0.53, "α_t = 0.53 (< 1: de-intensification)"),
        (-0.4, "α_t = -0.40 (< 0: classes swapped sides of the average)"),
        (None, "α_t undefined (no class is off the average before pruning)"),
    ],
)
def test_alpha_reading(alpha: float | None, text: str) -> None:
    assert alpha_reading(alpha) == text


def test_steep_alpha_line_stays_in_the_plot_and_keeps_its_slope() -> None:
    fig = balance_scatter(NAMES[:3], [0.1, -0.1, 0.01], [0.5, -0.45, 0.0], 4.6)
    line = fig.data[2]
    lo, hi = fig.layout.xaxis.range
    assert _slope(line) == pytest.approx(4.6)
    assert all(lo - 1e-9 <= y <= hi + 1e-9 for y in line.y)


def test_balance_scatter_skips_undefined_classes_and_alpha() -> None:
    fig = balance_scatter(NAMES[:3], [0.1, None, 0.2], [0.2, 0.1, None], None)
    assert len(fig.data) == 2  # no alpha line
    assert list(fig.data[0].text) == ["airplane"]
    assert "undefined" in fig.layout.annotations[0].text


def test_balance_scatter_rejects_ragged_input() -> None:
    with pytest.raises(ValueError, match="one value per class"):
        balance_scatter(NAMES, [0.1], [0.2], 1.0)


# figures: local geometry ------------------------------------------------------------------------


def _local(n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "index": np.arange(1000, 1000 + n),
        "angle_a": rng.uniform(40, 90, n),
        "length_a": rng.normal(0, 1, n),
        "angle_b": rng.uniform(40, 90, n),
        "length_b": rng.normal(0, 1, n),
    }


def _scatter(d: dict[str, np.ndarray], **kwargs: Any) -> Any:
    return local_geometry_scatter(
        d["index"],
        d["angle_a"],
        d["length_a"],
        d["angle_b"],
        d["length_b"],
        class_name="cat",
        label_a="A: orig",
        label_b="B: gm 90%",
        **kwargs,
    )


def test_overlay_draws_a_and_b_in_their_colours() -> None:
    d = _local()
    fig = _scatter(d)
    go.Figure(fig.to_dict())  # built unvalidated: it must still be a valid figure
    go.Figure(_scatter(d, mode="diff", selected=d["index"][:3].tolist()).to_dict())
    assert fig.layout.template.layout.plot_bgcolor == "white"  # the template itself, not a name
    assert [t.type for t in fig.data] == ["scatter", "scatter"]  # no WebGL
    a, b = fig.data
    assert (a.name, b.name) == ("A: orig", "B: gm 90%")
    assert (a.marker.color, b.marker.color) == (COLOR_A, COLOR_B)
    np.testing.assert_allclose(a.x, d["angle_a"], atol=1e-3)
    np.testing.assert_allclose(b.y, d["length_b"], atol=1e-4)
    assert [c[0] for c in b.customdata] == d["index"].tolist()
    assert a.selectedpoints is None
    assert "degrees" in fig.layout.xaxis.title.text
    assert "z-scored" in fig.layout.yaxis.title.text and "σ" in fig.layout.yaxis.title.text
    assert "angle" in a.hovertemplate and "margin" in a.hovertemplate
    assert fig.layout.dragmode == "select"


def test_difference_mode_draws_an_arrow_from_a_to_b_per_sample() -> None:
    d = _local(n=5)
    fig = _scatter(d, mode="diff")
    assert len(fig.data) == 2
    points, arrows = fig.data
    assert points.marker.color == COLOR_A and arrows.marker.color == COLOR_B
    assert arrows.mode == "lines+markers" and arrows.marker.symbol == "arrow"
    assert arrows.marker.angleref == "previous"  # arrowheads point from A to B
    xs = list(arrows.x)
    assert len(xs) == 3 * 5
    for k in range(5):
        assert xs[3 * k] == pytest.approx(d["angle_a"][k], abs=1e-3)
        assert xs[3 * k + 1] == pytest.approx(d["angle_b"][k], abs=1e-3)
        assert xs[3 * k + 2] is None
        assert arrows.y[3 * k + 1] == pytest.approx(d["length_b"][k], abs=1e-4)
    assert list(arrows.marker.size[:3]) == [0, 9, 0]


def test_selection_highlights_samples_and_dims_the_others() -> None:
    d = _local()
    chosen = [1003, 1010, 5555]  # 5555 is not in this class
    fig = _scatter(d, selected=chosen)
    for trace in fig.data:
        assert list(trace.selectedpoints) == [3, 10]
        assert trace.unselected.marker.opacity == UNSELECTED_OPACITY
        assert trace.selected.marker.opacity > UNSELECTED_OPACITY
    assert "2 selected samples in this class" in fig.layout.title.text
    diff = _scatter(d, mode="diff", selected=chosen)
    assert [t.name for t in diff.data] == ["A: orig", "A → B: gm 90%", "not selected"]
    assert len(diff.data[1].x) == 3 * 2 and len(diff.data[2].x) == 3 * 38


def test_large_classes_are_subsampled_deterministically_keeping_the_selection() -> None:
    d = _local(n=5000)
    chosen = [1000 + 4999, 1000 + 7]
    fig = _scatter(d, selected=chosen)
    again = _scatter(d, selected=chosen)
    assert len(fig.data[0].x) == MAX_LOCAL_POINTS
    assert list(fig.data[0].x) == list(again.data[0].x)
    shown = [c[0] for c in fig.data[0].customdata]
    assert set(chosen) <= set(shown)
    assert "2,000 of 5,000 samples shown" in fig.layout.title.text
    rows = subsample(10, 4, keep_first=[9])
    assert rows.tolist() == sorted(rows.tolist()) and 9 in rows and len(rows) == 4


def test_local_scatter_empty_class_and_bad_mode() -> None:
    empty = local_geometry_scatter([], [], [], [], [], class_name="cat")
    assert not empty.data and "No test samples of class cat" in empty.layout.annotations[0].text
    with pytest.raises(ValueError, match="mode"):
        _scatter(_local(), mode="sideways")


# figures: global geometry -----------------------------------------------------------------------


def _parallel_input(n: int, c: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    angles = rng.uniform(30, 120, (n, c))
    return {
        "angles": angles,
        "angle_true": angles[np.arange(n), labels],
        "length_z": rng.normal(0, 1, n),
        "margin": rng.normal(1, 2, n),
        "labels": labels,
        "index": np.arange(500, 500 + n),
    }


def _parallel(d: dict[str, np.ndarray], names: list[str], **kwargs: Any) -> Any:
    return parallel_geometry(
        d["angles"],
        d["angle_true"],
        d["length_z"],
        d["margin"],
        d["labels"],
        names,
        model_label="B: pruned",
        index=d["index"],
        **kwargs,
    )


def test_parallel_coordinates_one_axis_per_class_up_to_ten() -> None:
    d = _parallel_input(30, 5)
    fig = _parallel(d, NAMES)
    go.Figure(fig.to_dict())  # built unvalidated: it must still be a valid figure
    assert fig.layout.template.layout.plot_bgcolor == "white"
    (trace,) = fig.data
    assert trace.type == "parcoords"
    labels = [dim.label for dim in trace.dimensions]
    assert labels == [f"∠ {n} (°)" for n in NAMES] + [
        "∠ true class (°)",
        "length (z, σ)",
        "margin",
    ]
    np.testing.assert_allclose(trace.dimensions[2].values, d["angles"][:, 2], atol=1e-3)
    assert list(trace.line.color) == d["labels"].tolist()
    assert list(trace.line.colorbar.ticktext) == NAMES
    assert fig.layout.meta["note"] == ""
    assert "B: pruned" in fig.layout.title.text


def test_parallel_coordinates_past_ten_classes_show_the_top_k_nearest() -> None:
    c, n, k = 12, 40, 5
    d = _parallel_input(n, c)
    names = [f"class{i}" for i in range(c)]
    fig = _parallel(d, names)
    (trace,) = fig.data
    labels = [dim.label for dim in trace.dimensions]
    assert labels[:k] == [
        "1st nearest class angle (°)",
        "2nd nearest class angle (°)",
        "3rd nearest class angle (°)",
        "4th nearest class angle (°)",
        "5th nearest class angle (°)",
    ]
    assert labels[k:] == ["∠ true class (°)", "length (z, σ)", "margin"]
    order = np.argsort(d["angles"], axis=1)[:, :k]  # independent of the figure's code
    for j in range(k):
        expected = [d["angles"][i, order[i, j]] for i in range(n)]
        np.testing.assert_allclose(trace.dimensions[j].values, expected, atol=1e-3)
    assert "do not scale past ~10 classes" in fig.layout.meta["note"]
    values, classes = nearest_class_angles(d["angles"], k)
    np.testing.assert_array_equal(classes, order)
    np.testing.assert_allclose(values, np.sort(d["angles"], axis=1)[:, :k])


def test_parallel_coordinates_show_only_the_selection() -> None:
    d = _parallel_input(30, 5)
    fig = _parallel(d, NAMES, selected=[503, 507, 9999])
    (trace,) = fig.data
    assert list(trace.line.color) == [int(d["labels"][3]), int(d["labels"][7])]
    assert "only the 2 selected samples" in fig.layout.meta["note"]
    none = _parallel(d, NAMES, selected=[9999])
    assert not none.data and "None of the selected samples" in none.layout.annotations[0].text


# the fake API: analysis tables and comparison results -----------------------------------------


def _table(analysis_id: int) -> dict[str, list[Any]]:
    """A deterministic analysis table of N_SAMPLES samples, 5 classes, for one analysis."""
    rng = np.random.default_rng(analysis_id)
    labels = np.arange(N_SAMPLES) % 5
    angles = rng.uniform(40, 110, (N_SAMPLES, 5))
    out: dict[str, list[Any]] = {
        "index": list(range(100, 100 + N_SAMPLES)),
        "label": labels.tolist(),
        "pred": ((labels + (rng.random(N_SAMPLES) < 0.2)) % 5).tolist(),
        "correct": [True] * N_SAMPLES,
        "confidence": rng.uniform(0.3, 1, N_SAMPLES).round(3).tolist(),
        "angle_true": angles[np.arange(N_SAMPLES), labels].tolist(),
        "length": rng.uniform(5, 20, N_SAMPLES).tolist(),
        "length_z": rng.normal(0, 1, N_SAMPLES).tolist(),
        "margin": rng.normal(1, 1, N_SAMPLES).tolist(),
    }
    for c in range(5):
        out[f"a{c}"] = angles[:, c].tolist()
    return out


def _bn(analysis: dict[str, Any]) -> list[float]:
    acc = analysis["accuracy"]
    return [(r - acc) / acc for r in analysis["recall"]]


def dims(base: float) -> dict[str, Any]:
    """A TwoNN result: overall ``base``, class c ``base - c`` (class 4 too small: None)."""

    def est(d: float | None) -> dict[str, Any]:
        if d is None:
            return {"d": None, "low": None, "high": None, "n": 2, "duplicates": 0}
        return {"d": d, "low": d - 0.5, "high": d + 1.0, "n": 90, "duplicates": 0}

    return {"overall": est(base), "classes": [est(base - c) for c in range(4)] + [est(None)]}


class GeometryApi:
    """Serves ``/analyses/{id}/table`` and ``/comparisons/{id}/results`` next to FakeApi."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.results_ready = True
        self.tables_ready = True
        self.angles: dict[str, Any] | None = {
            "degrees": ANGLES,
            "norm_a": [1.0, 2.0, 3.0, 4.0, 5.0],
            "norm_b": [0.9, 1.8, 2.7, 3.6, 4.5],
            "reason": None,
        }
        self.dims: dict[str, Any] | None = {"a": dims(10.0), "b": dims(7.0)}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if m := re.fullmatch(r"/api/analyses/(\d+)/table", path):
            self.api.requests.append(request)
            if not self.tables_ready:
                return httpx.Response(404, json={"detail": "Analysis not found"})
            table = _table(int(m[1]))
            rows = list(range(N_SAMPLES))
            if "label" in params:
                rows = [i for i in rows if table["label"][i] == int(params["label"])]
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 1000))
            page = rows[offset : offset + limit]
            names = params.get_list("columns") or list(table)
            return httpx.Response(
                200,
                json={
                    "count": len(rows),
                    "offset": offset,
                    "limit": limit,
                    "column_names": names,
                    "columns": {c: [table[c][i] for i in page] for c in names},
                },
            )
        if m := re.fullmatch(r"/api/comparisons/(\d+)/results", path):
            self.api.requests.append(request)
            if not self.results_ready:
                return httpx.Response(409, json={"detail": "comparison results are not ready"})
            b = int(params.get("b", 2))
            a_an = self.api._analysis_of(1)
            b_an = self.api._analysis_of(b)
            bn_a, bn_b = _bn(a_an), _bn(b_an)
            rd = {
                "bn_a": bn_a,
                "bn_b": bn_b,
                "ratios": [y / x if x else None for x, y in zip(bn_a, bn_b, strict=True)],
                "alpha": _alpha(bn_a, bn_b),
                "t": 2.0,
                "sparsity": 0.5,
                "t_all": 1.9,
            }
            body = {"comparison_id": int(m[1]), "model_b_id": b, "recall_distortion": rd}
            if self.angles is not None:
                body["direction_angles"] = self.angles
            if self.dims is not None:
                body["intrinsic_dimension"] = self.dims
            return httpx.Response(200, json=body)
        return self.api.handle(request)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    view.clear_cache()
    yield
    view.clear_cache()


@pytest.fixture
def geo_api(fake_api: FakeApi) -> Iterator[GeometryApi]:
    api = GeometryApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    yield api


def _context(**query: str) -> dict[str, Any]:
    return {"id": 1, "b": 2, "cls": None, "query": {"id": "1", "b": "2", **query}}


def _table_requests(api: GeometryApi) -> list[httpx.Request]:
    return [r for r in api.api.requests if r.url.path.endswith("/table")]


# view: layout -------------------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from _walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from _walk(getattr(node, "children", None))


def test_section_holds_the_three_panels_with_prefixed_ids() -> None:
    section = view.section()
    assert isinstance(section, html.Section) and section.id == "compare-geometry"
    ids = {getattr(c, "id", None) for c in _walk(section) if isinstance(c, Component)}
    for wanted in (
        view.ID_BALANCE,
        view.ID_LOCAL,
        view.ID_PARALLEL,
        view.ID_CLASS,
        view.ID_MODE,
        view.ID_PAR_MODEL,
    ):
        assert wanted in ids
    assert all(i.startswith("compare-geometry") for i in ids if isinstance(i, str))
    graphs = [c for c in _walk(section) if isinstance(c, dcc.Graph)]
    assert len(graphs) == 5 and {view.ID_DIRECTIONS, view.ID_INTRINSIC} <= ids
    text = " ".join(str(c) for c in _walk(section) if isinstance(c, str))
    for heading in ("Recall distortion", "Local geometry", "Class directions", "Global geometry"):
        assert heading in text


def test_register_attaches_the_callbacks() -> None:
    app = dash.Dash(__name__)
    view.register(app)
    outputs = " ".join(app.callback_map)
    assert view.ID_LOCAL in outputs and view.ID_PARALLEL in outputs and QUERY in outputs
    assert SELECTION in outputs and CONTEXT not in outputs


# view: callbacks ----------------------------------------------------------------------------------


def test_init_defaults_to_the_largest_recall_drop(geo_api: GeometryApi) -> None:
    options, cls, mode, par, defaults, message = view.init_geometry(_context())
    assert [o["value"] for o in options] == list(range(5))
    assert options[3]["label"] == "3: cat"
    assert cls == 3  # recall of cat fell from 75% to 65% under model 2
    assert (mode, par, defaults, message) == ("overlay", "a", {"cls": 3}, None)


def test_init_prefers_the_page_class_then_the_url(geo_api: GeometryApi) -> None:
    assert view.init_geometry({**_context(), "cls": 1})[1] == 1
    out = view.init_geometry(_context(geo_cls="2", geo_mode="diff", geo_par="b"))
    assert out[1:5] == (2, "diff", "b", {"cls": 3})
    assert view.init_geometry(_context(geo_cls="99", geo_mode="bogus"))[1:3] == (3, "overlay")


def test_init_without_analyses_says_so(geo_api: GeometryApi) -> None:
    geo_api.api.analyses = geo_api.api.analyses[:1]  # B has not been analysed yet
    options, cls, *_rest, message = view.init_geometry(_context())
    assert options == [] and cls is None
    assert view.NOT_READY in str(message)


def test_balance_callback_draws_the_results(geo_api: GeometryApi) -> None:
    fig, note = view.render_balance(_context())
    bn_a = _bn(geo_api.api.analyses[0])
    bn_b = _bn(geo_api.api.analyses[1])
    np.testing.assert_allclose(fig.data[0].x, bn_a)
    np.testing.assert_allclose(fig.data[0].y, bn_b)
    assert _slope(fig.data[2]) == pytest.approx(_alpha(bn_a, bn_b))
    assert fig.layout.annotations[0].text.startswith("α_t = ")
    assert note == view.BALANCE_NOTE
    results = [r for r in geo_api.api.requests if r.url.path.endswith("/results")]
    assert [dict(r.url.params) for r in results] == [{"b": "2"}]


def test_balance_before_the_results_are_ready(geo_api: GeometryApi) -> None:
    geo_api.results_ready = False
    fig, _note = view.render_balance(_context())
    assert not fig.data and view.RESULTS_NOT_READY in fig.layout.annotations[0].text
    geo_api.results_ready = True  # a 409 is not cached: the next load draws
    fig, _note = view.render_balance(_context())
    assert len(fig.data) == 3


def test_local_callback_fetches_only_the_needed_columns_once(geo_api: GeometryApi) -> None:
    fig, note = view.render_local(3, "overlay", None, _context())
    table = _table(1)
    rows = [i for i in range(N_SAMPLES) if table["label"][i] == 3]
    assert [c[0] for c in fig.data[0].customdata] == [table["index"][i] for i in rows]
    np.testing.assert_allclose(fig.data[0].x, [table["angle_true"][i] for i in rows], atol=1e-3)
    np.testing.assert_allclose(fig.data[1].y, [_table(2)["length_z"][i] for i in rows], atol=1e-4)
    assert "cat" in fig.layout.title.text and note == view.SELECT_HINT
    requests = _table_requests(geo_api)
    assert sorted(r.url.path for r in requests) == [
        "/api/analyses/1/table",
        "/api/analyses/2/table",
    ]
    wanted = ["index", "label", "pred", "angle_true", "length_z", "margin"]
    wanted += [f"a{c}" for c in range(5)]
    for r in requests:
        assert r.url.params.get_list("columns") == wanted  # no probabilities, no raw length
    view.render_local(1, "diff", None, _context())
    view.render_parallel("b", None, _context())
    assert len(_table_requests(geo_api)) == 2  # cached per (comparison, b)


def test_local_callback_highlights_the_selection(geo_api: GeometryApi) -> None:
    current = selection([103, 108, 104], "embedding-a")  # 103 and 108 are cats
    fig, note = view.render_local(3, "overlay", current, _context())
    for trace in fig.data:
        assert list(trace.selectedpoints) == [0, 1]
        assert trace.unselected.marker.opacity == UNSELECTED_OPACITY
    assert "3 samples selected in embedding A: showing class cat, where 2 of the 3" in note
    diff, _ = view.render_local(3, "diff", current, _context())
    assert len(diff.data) == 3 and diff.data[2].name == "not selected"


def test_a_selection_made_elsewhere_redraws_one_made_here_does_not(geo_api: GeometryApi) -> None:
    plain, _ = view.render_local(3, "overlay", None, _context())
    other = selection([103, 108], "embedding-b")
    fig, note = view.highlight_local(other, 3, "overlay", _context())
    assert list(fig.data[0].selectedpoints) == [0, 1]
    assert "2 samples selected in embedding B;" in note
    # its own uirevision: a box drawn here before is not re-applied over the other selection
    assert fig.layout.uirevision != plain.layout.uirevision
    mine = selection([103, 108], "geometry")
    fig, note = view.highlight_local(mine, 3, "overlay", _context())
    assert fig is dash.no_update and "2 samples selected here" in note
    fig, note = view.highlight_local(None, 3, "overlay", _context())
    assert fig.data[0].selectedpoints is None and note == view.SELECT_HINT
    assert fig.layout.uirevision == plain.layout.uirevision


def test_local_callback_without_analyses_says_so(geo_api: GeometryApi) -> None:
    geo_api.tables_ready = False
    fig, _note = view.render_local(3, "overlay", None, _context())
    assert not fig.data and fig.layout.annotations[0].text == view.NOT_READY


def test_parallel_callback_reads_the_chosen_model_and_the_selection(geo_api: GeometryApi) -> None:
    fig, note = view.render_parallel("b", None, _context())
    (trace,) = fig.data
    assert trace.type == "parcoords" and "B: global_magnitude 50%" in fig.layout.title.text
    assert [r.url.path for r in _table_requests(geo_api)] == ["/api/analyses/2/table"]
    np.testing.assert_allclose(trace.dimensions[0].values, _table(2)["a0"], atol=1e-3)
    assert note == view.PARALLEL_NOTE
    fig, note = view.render_parallel("a", selection([100, 101], "geometry"), _context())
    assert len(fig.data[0].line.color) == 2 and "2 selected samples" in note
    assert "A: resnet8-cifar5" in fig.layout.title.text


def test_settings_are_merged_into_the_query() -> None:
    query = {"id": "1", "b": "2", "emb_color": "flip"}
    defaults = {"cls": 3}
    assert view.write_geometry_query(3, "overlay", "a", query, defaults) is dash.no_update
    assert view.write_geometry_query(3, "diff", "a", query, defaults) == {
        **query,
        "geo_mode": "diff",
    }
    assert view.write_geometry_query(1, "overlay", "b", query, defaults) == {
        **query,
        "geo_cls": "1",
        "geo_par": "b",
    }
    back = {**query, "geo_mode": "diff", "geo_cls": "1"}
    assert view.write_geometry_query(3, "overlay", "a", back, defaults) == query


def test_box_selection_writes_the_linked_selection() -> None:
    data = {
        "points": [
            {"curveNumber": 0, "customdata": [105, 0.3, "cat"]},
            {"curveNumber": 1, "customdata": [101, -0.2, "dog"]},
            {"curveNumber": 1, "customdata": [105, 0.1, "cat"]},
            {"curveNumber": 2},
        ]
    }
    assert view.select_geometry(data, None) == {"ids": [101, 105], "source": "geometry"}
    mine = selection([1, 2], "geometry")
    assert view.select_geometry(None, mine) is None  # double-click clears this view's selection
    # plotly re-applying a box to redrawn data reports no points: not a new selection
    assert view.select_geometry({"points": []}, mine) is dash.no_update
    other = selection([1, 2], "embedding-a")
    assert view.select_geometry(None, other) is dash.no_update


# class directions: angle between A's and B's W_c ----------------------------------------------

ANGLES = [3.5, None, 12.25, 0.5, 7.0]


def test_directions_callback_draws_one_bar_per_class_and_outlines_the_chosen(
    geo_api: GeometryApi,
) -> None:
    fig = view.render_directions(_context(), 2)
    (bars,) = fig.data
    assert bars.type == "bar" and list(bars.x) == NAMES
    assert list(bars.y) == ANGLES  # a class with a zero direction stays empty, not 0
    assert [c[0] for c in bars.customdata] == list(range(5))
    assert [c[2] for c in bars.customdata] == [0.9, 1.8, 2.7, 3.6, 4.5]
    widths = list(bars.marker.line.width)
    assert widths[2] > 0 and widths.count(0) == 4
    assert fig.layout.yaxis.range[1] >= 12.25
    assert "angle A → B" in fig.layout.title.text


def test_directions_say_why_when_the_feature_spaces_differ(geo_api: GeometryApi) -> None:
    geo_api.angles = {
        "degrees": None,
        "norm_a": None,
        "norm_b": None,
        "reason": "feature widths differ: model A has D=64, model B has D=32; ...",
    }
    fig = view.render_directions(_context(), None)
    assert not fig.data
    assert "different widths" in fig.layout.annotations[0].text
    view.clear_cache()
    geo_api.angles = None  # results computed before the angles were
    fig = view.render_directions(_context(), None)
    assert not fig.data and "predate" in fig.layout.annotations[0].text
    view.clear_cache()
    geo_api.results_ready = False
    fig = view.render_directions(_context(), None)
    assert view.RESULTS_NOT_READY in fig.layout.annotations[0].text


def test_intrinsic_dimension_callback_draws_a_and_b_with_their_intervals(
    geo_api: GeometryApi,
) -> None:
    fig = view.render_intrinsic(_context(), 1)
    a, b = fig.data
    assert (a.name, b.name) == ("model A", "model B")
    assert list(a.y) == [10.0, 10.0, 9.0, 8.0, 7.0, None]  # "all", then classes 0..4
    assert list(b.y) == [7.0, 7.0, 6.0, 5.0, 4.0, None]
    assert list(a.error_y.array[:5]) == [1.0] * 5 and list(a.error_y.arrayminus[:5]) == [0.5] * 5
    assert all(xa < xb for xa, xb in zip(a.x, b.x, strict=True))  # A left of B in each column
    assert list(fig.layout.xaxis.ticktext) == ["all", *NAMES]
    (shade,) = fig.layout.shapes[:1]
    assert shade.x0 < 2 < shade.x1  # class 1 sits at x = 2
    view.clear_cache()
    geo_api.dims = None
    fig = view.render_intrinsic(_context(), None)
    assert not fig.data and "predate" in fig.layout.annotations[0].text
