"""The aligned-embeddings view: its figures (pure) and its callbacks against a fake API.

The fake API of conftest.py answers the comparison, dataset and model routes; the comparison
table and results are answered here, so each test says which columns the table has.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import plotly.graph_objects as go
import pytest
from dash import html

from frontend import client as client_module
from frontend.figures.embedding import (
    DIVERGING_SCALE,
    SEQUENTIAL_SCALE,
    UNSELECTED_OPACITY,
    category_colors,
    draw_order,
    embedding_figure,
    embedding_scatter,
    selected_positions,
    typed_array,
)
from frontend.views import embedding as view
from frontend.views import merge_settings, selection
from frontend.views.parts import signature

N = 12
CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]


def table(n: int = N, embedding: bool = True, fragile: bool = False) -> dict[str, list[Any]]:
    """A comparison table in the API's column format (dataset indices are not 0..n-1)."""
    rng = np.random.default_rng(0)
    label = [i % 5 for i in range(n)]
    pred_a = list(label)
    pred_b = [(v + 1) % 5 if i % 4 == 0 else v for i, v in enumerate(label)]
    pred_a[3] = (label[3] + 2) % 5  # wrong in A, right in B
    cats = []
    for y, a, b in zip(label, pred_a, pred_b, strict=True):
        if a == y and b != y:
            cats.append("correct_to_wrong")
        elif a != y and b == y:
            cats.append("wrong_to_correct")
        elif a != y and b != y and a != b:
            cats.append("wrong_to_other_wrong")
        else:
            cats.append("")
    cols: dict[str, list[Any]] = {
        "index": [100 + 2 * i for i in range(n)],
        "label": label,
        "pred_a": pred_a,
        "pred_b": pred_b,
        "category": cats,
        "pie": [i % 6 == 0 for i in range(n)],
        "margin_a": rng.normal(1, 1, n).tolist(),
        "margin_b": rng.normal(0.5, 1, n).tolist(),
        "d_margin": rng.normal(-0.5, 1, n).tolist(),
        "d_angle": rng.normal(2, 3, n).tolist(),
        "d_length_z": rng.normal(0, 1, n).tolist(),
    }
    cols["d_margin"][1] = None  # the API sends NaN as null
    if fragile:
        cols["fragile_a"] = [i % 3 for i in range(n)]
        cols["fragile_b"] = [i % 4 for i in range(n)]
    if embedding:
        for name in ("ax", "ay", "bx", "by"):
            cols[name] = rng.normal(0, 3, n).astype(np.float32).tolist()
    return cols


class TableApi:
    """Answers /comparisons/{id}/table and /results over the conftest fake API."""

    def __init__(self, fake: Any, columns: dict[str, list[Any]], status: int = 200) -> None:
        self.fake = fake
        self.columns = columns
        self.status = status

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if re.fullmatch(r"/api/comparisons/\d+/table", path):
            self.fake.requests.append(request)
            if self.status != 200:
                return httpx.Response(self.status, json={"detail": "not ready"})
            names = params.get_list("columns") or list(self.columns)
            unknown = [c for c in names if c not in self.columns]
            if unknown:
                return httpx.Response(422, json={"detail": f"unknown column {unknown[0]!r}"})
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 1000))
            assert params.get("format") == "columns"
            return httpx.Response(
                200,
                json={
                    "count": len(self.columns["index"]),
                    "offset": offset,
                    "limit": limit,
                    "column_names": names,
                    "data": None,
                    "columns": {c: self.columns[c][offset : offset + limit] for c in names},
                },
            )
        if re.fullmatch(r"/api/comparisons/\d+/results", path):
            self.fake.requests.append(request)
            return httpx.Response(200, json={"embedding": {"method": "aligned_umap"}})
        return self.fake.handle(request)


def install(fake: Any, columns: dict[str, list[Any]], status: int = 200) -> TableApi:
    api = TableApi(fake, columns, status)
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    return api


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    view.clear_cache()
    yield
    view.clear_cache()


@pytest.fixture
def api(fake_api: Any) -> TableApi:
    return install(fake_api, table())


CONTEXT = {"id": 1, "b": 2, "cls": None, "query": {"id": "1"}}


def table_requests(api: TableApi) -> list[httpx.Request]:
    return [r for r in api.fake.requests if r.url.path.endswith("/table")]


def ops(patch: Any) -> dict[tuple[Any, ...], Any]:
    """A dash.Patch's assignments as location -> value."""
    out = {}
    for op in patch.to_plotly_json()["operations"]:
        assert op["operation"] == "Assign"
        out[tuple(op["location"])] = op["params"]["value"]
    return out


def decoded(array: Any) -> np.ndarray:
    """A trace's per-point array as numbers; typed-array specs (what is sent) decoded."""
    if isinstance(array, dict):
        dtype = {"f4": "<f4", "i1": "i1", "i2": "<i2"}[array["dtype"]]
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=dtype)
    return np.asarray(array)


def validated(figure: dict[str, Any]) -> go.Figure:
    """A callback's figure dict through plotly.py's validation (a bad key raises)."""
    return go.Figure(figure)


# figures -------------------------------------------------------------------------------------


def scatter(kind: str = "categorical", **kwargs: Any) -> go.Figure:
    cols = table()
    values = {
        "categorical": [CLASSES[v] for v in cols["label"]],
        "diverging": cols["d_margin"],
        "sequential": cols["margin_a"],
    }[kind]
    return embedding_scatter(
        np.asarray(cols["ax"], dtype=np.float32),
        np.asarray(cols["ay"], dtype=np.float32),
        cols["index"],
        values,
        kind,  # type: ignore[arg-type]
        "A: original",
        **kwargs,
    )


def test_one_webgl_trace_carries_every_sample_and_its_index() -> None:
    fig = scatter(categories=CLASSES)
    go.Figure(fig.to_dict())  # the unvalidated trace is a valid plotly figure
    points = fig.data[0]
    assert points.type == "scattergl"
    assert sorted(points.customdata) == table()["index"]
    assert len(decoded(points.x)) == len(decoded(points.y)) == N
    assert all(t.type == "scatter" and t.x == (None,) for t in fig.data[1:])  # legend only
    assert points.selectedpoints is None
    assert fig.layout.dragmode == "select"


def test_coordinates_are_sent_as_float32_typed_arrays() -> None:
    cols = table()
    fig = scatter()
    points = fig.data[0]
    assert points.x["dtype"] == points.y["dtype"] == "f4"
    # class colouring keeps table order
    assert decoded(points.x).tolist() == np.asarray(cols["ax"], dtype=np.float32).tolist()
    assert decoded(points.y).tolist() == np.asarray(cols["ay"], dtype=np.float32).tolist()
    # a missing coordinate stays NaN, which plotly.js leaves out
    xs = np.asarray(cols["ax"], dtype=np.float64)
    xs[2] = np.nan
    sent = embedding_figure(xs, cols["ay"], cols["index"], [0.0] * N, "sequential", "A")
    assert math.isnan(decoded(sent["data"][0]["x"])[2])


def test_typed_arrays_survive_dashs_json_and_customdata_stays_a_list() -> None:
    cols = table()
    figure = embedding_figure(
        cols["ax"], cols["ay"], cols["index"], cols["label"], "categorical", "A"
    )
    sent = json.loads(dash._utils.to_json(figure))["data"][0]
    assert sent["x"]["dtype"] == "f4" and isinstance(sent["x"]["bdata"], str)
    assert sent["marker"]["color"]["dtype"] == "i1"  # category codes
    # dcc.Graph copies a selected point's customdata from this list
    assert sent["customdata"] == cols["index"]
    assert typed_array([1.5, -2.0], "float32") == {
        "dtype": "f4",
        "bdata": base64.b64encode(np.asarray([1.5, -2.0], "<f4").tobytes()).decode(),
    }
    assert typed_array(range(300), "int16")["dtype"] == "i2"
    many = [f"c{i}" for i in range(200)]  # more codes than int8 holds
    wide = embedding_figure(range(200), range(200), range(200), many, "categorical", "A")
    codes = wide["data"][0]["marker"]["color"]
    assert codes["dtype"] == "i2"
    assert decoded(codes).tolist() == [sorted(many).index(c) for c in many]


def test_categorical_colours_are_consistent_and_have_a_legend() -> None:
    fig = scatter(categories=CLASSES, color_label="class")
    points = fig.data[0]
    legend = {t.name: t.marker.color for t in fig.data[1:]}
    assert list(legend) == CLASSES
    assert legend == category_colors(CLASSES)
    assert len(set(legend.values())) == len(CLASSES)
    # each point's code maps through the stepped scale to its class's colour
    scale = points.marker.colorscale
    labels = table()["label"]
    for code, label in zip(decoded(points.marker.color), labels, strict=True):
        assert code == label
        lo = scale[2 * code]
        assert lo[1] == legend[CLASSES[label]]
    assert points.marker.showscale is False
    # B coloured with the same categories gets the same colours, whatever its values
    other = embedding_scatter(
        [0, 1], [0, 1], [1, 2], ["deer", "bird"], "categorical", "B", categories=CLASSES
    )
    assert {t.name: t.marker.color for t in other.data[1:]} == legend


def test_background_categories_are_drawn_first() -> None:
    cats = ["unchanged", "correct → wrong"]
    values = ["correct → wrong", "unchanged", "unchanged", "correct → wrong", "unchanged"]
    fig = embedding_scatter(
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4],
        [10, 11, 12, 13, 14],
        values,
        "categorical",
        "A",
        categories=cats,
        fixed_colors={"unchanged": "#cccccc"},
        background=["unchanged"],
    )
    assert list(fig.data[0].customdata) == [11, 12, 14, 10, 13]
    assert {t.name: t.marker.color for t in fig.data[1:]}["unchanged"] == "#cccccc"
    assert list(draw_order(values, "categorical", ["unchanged"])) == [1, 2, 4, 0, 3]


def test_diverging_scale_is_centred_on_zero_and_draws_big_changes_on_top() -> None:
    fig = scatter("diverging", color_label="Δmargin")
    marker = fig.data[0].marker
    assert [list(step) for step in marker.colorscale] == DIVERGING_SCALE
    assert DIVERGING_SCALE[0][1] == "rgb(5,48,97)" and DIVERGING_SCALE[-1][1] == "rgb(103,0,31)"
    assert marker.cmid == 0
    assert marker.cmin == -marker.cmax
    finite = [abs(v) for v in table()["d_margin"] if v is not None]
    assert marker.cmax == pytest.approx(max(finite))
    colors = decoded(marker.color)
    assert marker.color["dtype"] == "f4"
    drawn = [abs(v) for v in colors if not math.isnan(v)]
    assert drawn == sorted(drawn)  # missing first, then by |change|
    assert math.isnan(colors[0])
    assert "Δmargin: %{marker.color" in fig.data[0].hovertemplate


def test_sequential_scale_uses_the_shared_range() -> None:
    fig = scatter("sequential", color_label="margin A", color_range=(-5.0, 7.0))
    marker = fig.data[0].marker
    assert marker.cmin == -5.0 and marker.cmax == 7.0
    assert marker.colorbar.title.text == "margin A"
    assert [list(step) for step in marker.colorscale] == SEQUENTIAL_SCALE


def test_selection_highlights_the_same_samples_and_dims_the_rest() -> None:
    ids = [102, 110, 999]  # 999 is not in the table
    fig = scatter("diverging", selected=ids)
    points = fig.data[0]
    chosen = [points.customdata[p] for p in points.selectedpoints]
    assert sorted(chosen) == [102, 110]
    assert points.unselected.marker.opacity == UNSELECTED_OPACITY
    assert selected_positions(points.customdata, ids) == sorted(points.selectedpoints)
    assert selected_positions(points.customdata, []) == []


def test_hover_names_the_sample_its_classes_and_the_value() -> None:
    fig = scatter(
        "sequential",
        color_label="margin A",
        hover={"true": ["cat"] * N, "A": ["cat"] * N, "B": ["dog"] * N},
    )
    points = fig.data[0]
    template = "<b>sample %{customdata}</b><br>true, A, B: %{text}"
    assert points.hovertemplate.startswith(template)
    assert "margin A: %{marker.color:.4g}" in points.hovertemplate
    assert points.text[0] == "cat, cat, dog"  # values only: the names are in the template
    assert points.hovertext is None


def test_hover_says_a_value_all_columns_agree_on_once() -> None:
    fig = scatter(
        "sequential",
        hover={"true": ["cat"] * N, "A": ["cat"] * (N - 1) + ["dog"], "B": ["cat"] * N},
    )
    text = fig.data[0].text  # sequential colouring keeps table order
    assert list(text[:-1]) == ["cat"] * (N - 1)  # "true, A, B: cat"
    assert text[-1] == "cat, dog, cat"


def test_hover_shows_a_categorical_value_on_a_line_of_its_own() -> None:
    values = ["flipped" if i % 2 else "unchanged" for i in range(N)]
    cols = table()
    fig = embedding_scatter(
        cols["ax"],
        cols["ay"],
        cols["index"],
        values,
        "categorical",
        "A: original",
        color_label="flip",
        hover={"true": ["cat"] * N, "A": ["dog"] * N},
    )
    points = fig.data[0]
    assert "<br>true, A: %{text}<br>flip: %{hovertext}<extra>" in points.hovertemplate
    # drawn in draw order; every point's hover text holds its own value
    assert list(points.text) == ["cat, dog"] * N
    assert sorted(points.hovertext) == sorted(values)


def test_axes_are_labelled_without_ticks_and_equal_aspect() -> None:
    fig = scatter(axis_name="aligned UMAP")
    assert fig.layout.xaxis.title.text == "aligned UMAP 1"
    assert fig.layout.yaxis.title.text == "aligned UMAP 2"
    assert fig.layout.xaxis.showticklabels is False and fig.layout.yaxis.showticklabels is False
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"index has 3, x has 2"):
        embedding_scatter([0, 1], [0, 1, 2], [1, 2, 3], ["a"] * 3, "categorical", "A")
    with pytest.raises(ValueError, match="color_kind='rainbow'"):
        embedding_scatter([0], [0], [1], ["a"], "rainbow", "A")  # type: ignore[arg-type]
    empty = embedding_scatter([], [], [], [], "sequential", "A")
    assert not empty.data and "No samples" in empty.layout.annotations[0].text


# section and registration --------------------------------------------------------------------


def _ids(component: Any) -> set[str]:
    found = set()
    if getattr(component, "id", None):
        found.add(component.id)
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found |= _ids(child)
    return found


def test_section_has_title_colour_by_two_graphs_and_the_explanation() -> None:
    section = view.section()
    assert isinstance(section, html.Section)
    ids = _ids(section)
    assert {view.ID_COLOR, view.ID_GRAPH_A, view.ID_GRAPH_B, view.ID_STATUS} <= ids
    assert all(i.startswith("compare-embedding") for i in ids)
    text = str(section)
    assert "Aligned embeddings" in text
    assert "aligned UMAP" in text and "lasso or box-select" in text


def test_register_attaches_the_callbacks() -> None:
    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    view.register(app)
    outputs = " ".join(app.callback_map)
    for wanted in (
        "compare-embedding-status.children",
        "compare-embedding-a.figure",
        "compare-embedding-b.figure",
        "compare-selection.data",
        "compare-query.data",
    ):
        assert wanted in outputs


# callbacks ------------------------------------------------------------------------------------


def test_load_fetches_the_needed_columns_once_and_draws_both_sides(api: TableApi) -> None:
    options, value, fig_a, fig_b, message, style, shown, text = view.load_embedding(CONTEXT, None)
    assert message is None and style is None
    fig_a, fig_b = validated(fig_a), validated(fig_b)
    method = fig_a.layout.xaxis.title.text.removesuffix(" 1")
    assert f"jointly ({method})" in text
    assert value == "class"
    keys = [o["value"] for o in options]
    assert keys == [
        "class",
        "flip",
        "pie",
        "margin_a",
        "margin_b",
        "d_margin",
        "d_angle",
        "d_length_z",
    ]  # no fragile: the compare job ran without corruptions
    cols = table()
    assert list(decoded(fig_a.data[0].x)) == pytest.approx(cols["ax"], abs=1e-6)
    assert list(decoded(fig_b.data[0].x)) == pytest.approx(cols["bx"], abs=1e-6)
    assert list(decoded(fig_b.data[0].y)) == pytest.approx(cols["by"], abs=1e-6)
    assert fig_a.layout.title.text.startswith("A: ") and fig_b.layout.title.text.startswith("B: ")
    assert "true, A, B: %{text}" in fig_a.data[0].hovertemplate
    assert fig_a.data[0].text[0].startswith("airplane, ")
    assert shown == {"key": None, "source": None}
    requests = table_requests(api)
    assert len(requests) == 2  # a one-row probe for the column names, then the columns
    full = requests[1].url.params
    assert full["format"] == "columns" and full["b"] == "2"
    assert set(full.get_list("columns")) == set(cols)
    # the next callbacks of the page read the cache
    view.load_embedding(CONTEXT, None)
    view.highlight_selection(selection([100], "url"), CONTEXT, "class", None)
    assert len(table_requests(api)) == 2


def test_load_restores_the_colour_and_selection_of_the_url(api: TableApi) -> None:
    context = {**CONTEXT, "query": {"id": "1", "emb_color": "d_angle"}}
    current = selection([104, 106], "url")
    options, value, fig_a, fig_b, *_rest, shown, _text = view.load_embedding(context, current)
    assert value == "d_angle"
    fig_a, fig_b = validated(fig_a), validated(fig_b)
    assert fig_a.data[0].marker.cmid == 0
    for fig in (fig_a, fig_b):
        points = fig.data[0]
        assert sorted(points.customdata[p] for p in points.selectedpoints) == [104, 106]
    assert shown == {"key": signature([104, 106]), "source": "url"}
    # a colour this table cannot show falls back to the class
    context = {**CONTEXT, "query": {"emb_color": "fragile"}}
    assert view.load_embedding(context, None)[1] == "class"


def test_fragility_is_offered_when_the_table_has_it(fake_api: Any) -> None:
    install(fake_api, table(fragile=True))
    context = {**CONTEXT, "query": {"emb_color": "fragile"}}
    options, value, fig_a, fig_b, *_ = view.load_embedding(context, None)
    assert "fragile" in [o["value"] for o in options] and value == "fragile"
    fig_a, fig_b = validated(fig_a), validated(fig_b)
    # A coloured by fragile_a, B by fragile_b, on one scale
    assert sorted(decoded(fig_a.data[0].marker.color)) == sorted(table(fragile=True)["fragile_a"])
    assert sorted(decoded(fig_b.data[0].marker.color)) == sorted(table(fragile=True)["fragile_b"])
    assert fig_a.data[0].marker.cmax == fig_b.data[0].marker.cmax == 3


def test_no_embedding_columns_is_an_empty_state(fake_api: Any) -> None:
    install(fake_api, table(embedding=False))
    options, value, fig_a, fig_b, message, style, shown, _ = view.load_embedding(CONTEXT, None)
    assert view.NO_EMBEDDING == "No embedding: the compare job ran without one"
    assert view.NO_EMBEDDING in str(message)
    assert style == {"display": "none"}
    assert not validated(fig_a).data and not validated(fig_b).data
    # the other callbacks leave the (empty) figures alone
    patch_a, patch_b, _shown = view.highlight_selection(
        selection([100], "geometry"), CONTEXT, None, None
    )
    assert patch_a is dash.no_update and patch_b is dash.no_update
    assert view.change_color("d_margin", CONTEXT, None, {}) == (dash.no_update,) * 4


def test_unfinished_compare_job_says_so(fake_api: Any) -> None:
    install(fake_api, table(), status=409)
    *_figs, message, style, _shown, _text = view.load_embedding(CONTEXT, None)
    assert "not ready" in str(message) and style == {"display": "none"}


def test_selected_points_become_the_linked_selection() -> None:
    selected = {
        "points": [
            {"curveNumber": 0, "pointNumber": 4, "pointIndex": 4, "customdata": 108},
            {"curveNumber": 0, "pointNumber": 1, "pointIndex": 1, "customdata": 102},
            {"curveNumber": 0, "pointNumber": 2, "customdata": [104, "extra"]},
            {"curveNumber": 3, "pointNumber": 0},  # a legend trace
        ],
        "range": {"x": [0, 1], "y": [0, 1]},
    }
    assert view.select_in_a(selected) == {"ids": [102, 104, 108], "source": "embedding-a"}
    assert view.select_in_b(selected) == {"ids": [102, 104, 108], "source": "embedding-b"}
    # double-click clears; an empty box (or plotly re-running a removed one) changes nothing
    assert view.select_in_a(None) is None
    assert view.select_in_b({"points": []}) is dash.no_update


def test_highlight_patches_only_the_selected_points(api: TableApi) -> None:
    view.load_embedding(CONTEXT, None)
    value = selection([110, 100, 104], "embedding-a")
    patch_a, patch_b, shown = view.highlight_selection(
        value, CONTEXT, "class", {"key": None, "source": None}
    )
    cols = table()
    for patch in (patch_a, patch_b):
        assert isinstance(patch, dash.Patch)
        assigned = ops(patch)
        assert set(assigned) <= {("data", 0, "selectedpoints"), ("layout", "selections")}
        positions = assigned[("data", 0, "selectedpoints")]
        assert sorted(cols["index"][p] for p in positions) == [100, 104, 110]
    assert shown == {"key": signature([100, 104, 110]), "source": "embedding-a"}
    # the same selection again: nothing to patch
    again = view.highlight_selection(value, CONTEXT, "class", shown)
    assert again[0] is dash.no_update and again[1] is dash.no_update


def test_highlight_follows_the_drawing_order_of_the_colouring(api: TableApi) -> None:
    context = {**CONTEXT, "query": {"emb_color": "flip"}}
    _o, _v, fig_a, fig_b, *_ = view.load_embedding(context, None)
    patch_a, patch_b, *_ = view.highlight_selection(
        selection([102, 106], "geometry"), context, "flip", None
    )
    for fig, patch in ((fig_a, patch_a), (fig_b, patch_b)):
        positions = ops(patch)[("data", 0, "selectedpoints")]
        assert sorted(fig["data"][0]["customdata"][p] for p in positions) == [102, 106]


def test_a_selection_removes_the_boxes_that_made_it(api: TableApi) -> None:
    view.load_embedding(CONTEXT, None)
    before = {"key": signature([100]), "source": "embedding-a"}
    patch_a, patch_b, *_ = view.highlight_selection(
        selection([102], "embedding-b"), CONTEXT, "class", before
    )
    assert ops(patch_a)[("layout", "selections")] == []
    assert ops(patch_b)[("layout", "selections")] == []  # the points show the box now
    # a plot that holds no box is left alone
    patch_a, patch_b, *_ = view.highlight_selection(
        selection([104], "geometry"), CONTEXT, "class", {"key": "x", "source": "url"}
    )
    assert list(ops(patch_a)) == list(ops(patch_b)) == [("data", 0, "selectedpoints")]
    # clearing lifts the dimming everywhere
    cleared = view.highlight_selection(None, CONTEXT, "class", before)
    assert ops(cleared[0])[("data", 0, "selectedpoints")] is None
    assert ops(cleared[1])[("data", 0, "selectedpoints")] is None
    assert cleared[2] == {"key": None, "source": None}


def test_colour_change_redraws_and_merges_into_the_query(api: TableApi) -> None:
    query = {"id": "1", "b": "2", "geo_mode": "diff"}
    fig_a, fig_b, new_query, shown = view.change_color(
        "d_margin", CONTEXT, selection([100], "url"), query
    )
    assert new_query == merge_settings(query, emb_color="d_margin")
    assert new_query["geo_mode"] == "diff" and new_query["emb_color"] == "d_margin"
    fig_a, fig_b = validated(fig_a), validated(fig_b)
    assert fig_a.data[0].marker.cmid == 0 and fig_b.data[0].marker.cmid == 0
    assert [fig_a.data[0].customdata[p] for p in fig_a.data[0].selectedpoints] == [100]
    assert shown["key"] == signature([100])
    # back to the default: the key leaves the URL
    *_figs, newer, _shown = view.change_color("class", CONTEXT, None, new_query)
    assert "emb_color" not in newer and newer["geo_mode"] == "diff"
    # the value the plots already show (the load setting the dropdown): nothing to do
    assert view.change_color("class", CONTEXT, None, query) == (dash.no_update,) * 4
    assert view.change_color("d_margin", CONTEXT, None, new_query) == (dash.no_update,) * 4


def test_highlight_of_ten_thousand_points_is_fast(fake_api: Any) -> None:
    n = 10_000
    install(fake_api, table(n))
    view.load_embedding(CONTEXT, None)
    rng = np.random.default_rng(1)
    times = []
    shown = None
    for i in range(10):
        ids = (100 + 2 * rng.choice(n, size=500 + i, replace=False)).tolist()
        t0 = time.perf_counter()
        patch_a, patch_b, shown = view.highlight_selection(
            selection(ids, "embedding-a"), CONTEXT, "d_margin", shown
        )
        times.append(time.perf_counter() - t0)
        assert len(ops(patch_b)[("data", 0, "selectedpoints")]) == len(ids)
    assert sorted(times)[len(times) // 2] < 0.3, times


def test_figures_are_built_once_per_colouring_and_shared_unchanged(
    api: TableApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        built.append(args[5])  # the title: which side
        return embedding_figure(*args, **kwargs)

    monkeypatch.setattr(view, "embedding_figure", counting)
    view.load_embedding(CONTEXT, None)
    assert len(built) == 2  # A and B in the default colouring (load_data warms them)
    data = view.load_data(CONTEXT)
    cached = data.figures[("class", "a")]
    sent_before = dash._utils.to_json(cached)
    _o, _v, fig_a, fig_b, *_ = view.load_embedding(CONTEXT, selection([104, 100], "url"))
    assert len(built) == 2  # from the cache
    points = fig_a["data"][0]
    assert sorted(points["customdata"][p] for p in points["selectedpoints"]) == [100, 104]
    # a shallow copy down to the trace: the cached figure shows no selection
    assert points is not cached["data"][0] and points["x"] is cached["data"][0]["x"]
    assert fig_a["layout"] is cached["layout"]
    assert dash._utils.to_json(cached) == sent_before
    # another colouring is built once, then cached too
    view.change_color("d_margin", CONTEXT, None, {})
    view.change_color("d_margin", CONTEXT, None, {})
    assert len(built) == 4
    assert {("d_margin", "a"), ("d_margin", "b")} <= set(data.figures)


def test_load_of_ten_thousand_points_is_fast_and_compact(fake_api: Any) -> None:
    n = 10_000
    install(fake_api, table(n))
    data = view.load_data(CONTEXT)
    times = []
    for _ in range(3):
        data.figures.clear()
        t0 = time.perf_counter()
        result = view.load_embedding(CONTEXT, None)
        times.append(time.perf_counter() - t0)
    # plotly.py's figure classes took ~150 ms here; plain dicts take a few
    assert sorted(times)[1] < 0.1, times
    sent = dash._utils.to_json(list(result))
    # per point: x, y and the colour code in base64 (~12 bytes), the index as a list (~7) and
    # the hover text (~13 here, where a quarter of B's predictions differ from the class)
    assert len(sent) < 2 * 35 * n, len(sent)


def test_status_line_says_how_many_and_where_from() -> None:
    assert view.status_text(None).startswith("No samples selected")
    assert view.status_text(selection([1], "embedding-b")).startswith(
        "1 sample selected in embedding B"
    )
    assert "12,000 samples selected from the link" in view.status_text(
        selection(range(12_000), "url")
    )
    assert "in the geometry view" in view.status_text(selection([1, 2], "geometry"))


def test_table_pages_are_fetched_until_every_row_is_there(fake_api: Any) -> None:
    n = 23_456
    api = install(fake_api, {"index": list(range(n)), "label": [i % 5 for i in range(n)]})
    got = client_module.get_comparison_table_columns(
        client_module.get_client(), 1, b=2, columns=["index"]
    )
    assert got["count"] == n and got["columns"]["index"] == list(range(n))
    offsets = [int(r.url.params["offset"]) for r in table_requests(api)]
    assert offsets == [0, 10_000, 20_000]
    with pytest.raises(ValueError, match="limit=0"):
        client_module.get_comparison_table_page(client_module.get_client(), 1, limit=0)


def test_the_compare_page_prefetches_the_table_for_this_view(
    fake_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from frontend.pages import compare

    api = install(fake_api, table())
    monkeypatch.setattr(compare, "PREFETCH", True)
    threads = compare.prefetch_eager_views(dict(CONTEXT))
    assert len(threads) == 1  # the embedding is the one eager view
    for t in threads:
        t.join(10)
    fetched = len(table_requests(api))
    assert fetched == 2  # the probe and the columns
    data = view.load_data(CONTEXT)
    assert set(data.figures) == {("class", "a"), ("class", "b")}  # built by the prefetch
    options, value, fig_a, *_ = view.load_embedding(CONTEXT, None)  # the callback: cached
    assert len(table_requests(api)) == fetched and len(decoded(fig_a["data"][0]["x"])) == N
    assert fig_a["data"][0]["x"] is data.figures[("class", "a")]["data"][0]["x"]
    monkeypatch.setattr(compare, "PREFETCH", False)
    assert compare.prefetch_eager_views(dict(CONTEXT)) == []


# neighbourhood change (SCIENCE.md sect. 7) ------------------------------------------------------


def test_neighbourhood_change_colouring_is_offered_only_with_its_column() -> None:
    n = 6
    columns = {
        "index": np.arange(n),
        "label": np.zeros(n, dtype=np.int64),
        "pred_a": np.zeros(n, dtype=np.int64),
        "pred_b": np.zeros(n, dtype=np.int64),
        **{c: np.zeros(n, dtype=np.float32) for c in ("ax", "ay", "bx", "by")},
    }
    older = view.EmbeddingData(1, 2, dict(columns), ["a"])
    assert "nbr_jaccard" not in [c.key for c in older.options()]
    assert view.color_choice("nbr_jaccard", older).key == view.DEFAULT_COLOR
    jaccard = np.array([0.0, 0.1, 0.5, 0.9, 1.0, 0.3], dtype=np.float32)
    data = view.EmbeddingData(1, 2, {**columns, "nbr_jaccard": jaccard}, ["a"])
    choice = view.color_choice("nbr_jaccard", data)
    assert choice.key == "nbr_jaccard" and choice.kind == "sequential"
    assert "Neighbourhood change" in choice.label and "low = torn" in choice.label
    for side in ("a", "b"):  # one value per sample, the same on both sides
        c = view.coloring(data, choice, side)
        np.testing.assert_array_equal(c.values, jaccard)
        assert c.kwargs["color_range"] == (0.0, 1.0)  # fixed: 0 torn .. 1 kept
    fig = view.base_figure(data, choice, "a")
    marker = fig["data"][0]["marker"]
    assert (marker["cmin"], marker["cmax"]) == (0.0, 1.0)
    assert "low = torn" in marker["colorbar"]["title"]["text"]
