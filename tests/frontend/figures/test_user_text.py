"""Names users type reach every figure as text: escaped for plotly.js's markup and templates.

plotly.js draws a subset of HTML in every string of a figure (``<b>``, ``<br>``, ``<a href>``) and
reads ``%{...}`` in hover and text templates as a placeholder. A model, dataset, class or layer
name must show exactly what was typed: each figure function that takes one escapes ``&``, ``<``
and ``>`` as entities (plotly.js decodes them back) and the ``%`` of ``%{`` as ``&#37;``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from frontend.figures import (
    confusion_heatmap,
    confusion_shift_heatmap,
    empty_figure,
    recall_bars,
)
from frontend.figures._common import plot_text, plot_texts
from frontend.figures.embedding import embedding_scatter
from frontend.figures.geometry import balance_scatter, local_geometry_scatter, parallel_geometry
from frontend.figures.overview import EvaluationRow, accuracy_vs_sparsity
from frontend.figures.regions import (
    decision_interval_figure,
    distance_boxes,
    region_count_boxes,
    region_map_figure,
)
from frontend.figures.robustness import (
    accuracy_diff_heatmap,
    accuracy_heatmap,
    robustness_grid,
    severity_lines,
)
from frontend.figures.samples import attribution_heatmaps, top5_bars
from frontend.figures.similarity import MapPoint, similarity_figure
from frontend.figures.upload import class_balance_bars, layer_sparsity_bars

NAME = "<script>alert(1)</script> & <b>x</b> %{y}"
# what the figure JSON holds: html.escape without quotes (plotly.js decodes &lt; &gt; &amp; and
# numeric entities, not &quot;) and the placeholder's % as a numeric entity
ESC = html.escape(NAME, quote=False).replace("%{", "&#37;{")
OTHER = "cat"
# plotly.js's placeholder pattern (src/lib/index.js TEMPLATE_STRING_REGEX)
PLACEHOLDER = re.compile(r"%{([^\s%{}:]*)([:|\|][^}]*)?}")


def strings(node: Any) -> Iterator[str]:
    """Every string in a figure's JSON, keys excluded."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from strings(v)
    elif isinstance(node, np.ndarray) and node.dtype == object:
        yield from strings(node.tolist())


def as_json(fig: go.Figure) -> dict[str, Any]:
    return fig.to_plotly_json()


def assert_no_raw_markup(fig: go.Figure) -> None:
    """The typed name never reaches the figure unescaped, in whole or in part."""
    for s in strings(as_json(fig)):
        # the last one: markup escaped but the placeholder left for plotly.js to fill
        for raw in (NAME, "<script", "</script>", "<b>x</b>", " & <b>", "&lt;/b&gt; %{y}"):
            assert raw not in s, s


# the helper ---------------------------------------------------------------------------------


def test_the_escaped_name_is_the_html_escape_of_what_was_typed() -> None:
    assert ESC == "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;x&lt;/b&gt; &#37;{y}"
    assert plot_text(NAME) == ESC
    # plotly.js turns the entities back into the characters: the user sees the name as typed
    assert html.unescape(ESC) == NAME
    assert PLACEHOLDER.search(ESC) is None


@pytest.mark.parametrize(
    "name", ["cat", "A: resnet8", "global_magnitude 90%", "B: pruned (50%)", "∠ deer", ""]
)
def test_ordinary_names_are_unchanged(name: str) -> None:
    assert plot_text(name) == name


def test_every_character_survives_the_round_trip() -> None:
    for name in ["&amp;", "&lt;b&gt;", "100%{", "a<b>c", "%{x|%Y}", "x &#37; y", "'\""]:
        assert html.unescape(plot_text(name)) == name
        assert PLACEHOLDER.search(plot_text(name)) is None


def test_plot_texts_escapes_each_value_once() -> None:
    assert plot_texts([NAME, OTHER, NAME, 3]) == [ESC, OTHER, ESC, "3"]


# each figure function ------------------------------------------------------------------------


def _confusion() -> go.Figure:
    return confusion_heatmap([[3, 1], [0, 4]], [NAME, OTHER], NAME)


def test_confusion_heatmap_escapes_class_names_and_title() -> None:
    fig = _confusion()
    assert list(fig.data[0].x) == [ESC, OTHER] and list(fig.data[0].y) == [ESC, OTHER]
    assert fig.layout.title.text == ESC
    assert_no_raw_markup(fig)


def test_confusion_shift_heatmap_escapes_class_names_and_title() -> None:
    fig = confusion_shift_heatmap([[0, 1], [-1, 0]], [NAME, OTHER], NAME)
    assert list(fig.data[0].x) == [ESC, OTHER] and list(fig.data[0].y) == [ESC, OTHER]
    assert fig.layout.title.text == ESC
    assert_no_raw_markup(fig)


def test_recall_bars_escape_class_names_and_legend_names_in_the_template() -> None:
    fig = recall_bars([NAME, OTHER], [0.5, 0.6], [0.4, 0.6], f"A: {NAME}", f"B: {NAME}")
    a, b = fig.data
    assert list(a.x) == [ESC, OTHER] and list(b.x) == [ESC, OTHER]
    assert (a.name, b.name) == (f"A: {ESC}", f"B: {ESC}")
    assert a.hovertemplate == f"%{{x}}<br>A: {ESC}: %{{y:.1%}}<extra></extra>"
    assert f"<br>B: {ESC}: %{{y:.1%}}" in b.hovertemplate
    assert_no_raw_markup(fig)


def _row(model_id: int, role: str, name: str, method: str, sparsity: float) -> EvaluationRow:
    return EvaluationRow(model_id, role, name, method, sparsity, 0.9, {"fog": 0.5})


def test_accuracy_vs_sparsity_escapes_model_names_in_the_hover() -> None:
    rows = [_row(1, "A", NAME, "original", 0.0), _row(2, "B", NAME, "global_magnitude", 0.5)]
    fig = accuracy_vs_sparsity(rows, title=NAME)
    assert fig.layout.title.text == ESC
    assert fig.data[0].customdata[0].startswith(f"<b>{ESC}</b> · original · 0% sparse")
    assert_no_raw_markup(fig)


def test_similarity_map_escapes_model_names_in_the_hover() -> None:
    points = [
        MapPoint(0.0, 0.0, 1, NAME, "original", 0.0, "clean", 0, 0.9),
        MapPoint(1.0, 1.0, 2, NAME, "global_magnitude", 0.5, "fog", 3, 0.5),
    ]
    fig = similarity_figure(points, [(0, 1)], title=NAME)
    assert fig.layout.title.text == ESC
    hovers = [c[2] for t in fig.data[1:3] for c in t.customdata]
    assert all(h.startswith(f"<b>{ESC}</b> · ") for h in hovers), hovers
    # the click callback reads the model id and corruption, unescaped
    assert [list(c[:2]) for t in fig.data[1:3] for c in t.customdata] == [[1, "clean"], [2, "fog"]]
    assert_no_raw_markup(fig)


def test_upload_figures_escape_layer_and_class_names() -> None:
    layers = layer_sparsity_bars([{"name": NAME, "sparsity": 0.5}, {"name": "fc", "sparsity": 0}])
    assert list(layers.data[0].y) == [ESC, "fc"]
    balance = class_balance_bars([NAME, OTHER], {"train": [3, 4], "test": [1, 1]})
    assert [list(t.x) for t in balance.data] == [[ESC, OTHER], [ESC, OTHER]]
    assert_no_raw_markup(layers)
    assert_no_raw_markup(balance)


def test_top5_bars_escape_class_names_ticks_and_legend() -> None:
    top = [{"label": 0, "prob": 0.7}, {"label": 1, "prob": 0.2}]
    fig = top5_bars(top, top, [NAME, OTHER], label_a=f"A: {NAME}", label_b="B", true_label=0)
    assert [list(t.y) for t in fig.data] == [[ESC, OTHER], [ESC, OTHER]]
    assert fig.data[0].name == f"A: {ESC}"
    assert list(fig.layout.yaxis.tickvals) == [ESC, OTHER]
    assert list(fig.layout.yaxis.ticktext) == [f"<b>{ESC}</b> (true)", OTHER]
    assert_no_raw_markup(fig)


def test_attribution_heatmaps_escape_the_column_titles() -> None:
    maps = {"angle": [[0.1, -0.2], [0.0, 0.3]]}
    fig = attribution_heatmaps(maps, maps, label_a=f"A: {NAME}", label_b=NAME, metrics=["angle"])
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"A: {ESC}", ESC, "B − A"]
    assert [t.name for t in fig.data] == [f"angle: A: {ESC}", f"angle: {ESC}", "angle: B − A"]
    assert_no_raw_markup(fig)


def test_embedding_scatter_escapes_title_categories_and_hover_columns() -> None:
    labels = [NAME, OTHER, NAME]
    fig = embedding_scatter(
        [0.0, 1.0, 2.0],
        [0.0, 1.0, 0.5],
        [10, 11, 12],
        labels,
        "categorical",
        f"A: {NAME}",
        color_label="true class",
        categories=[NAME, OTHER],
        hover={"true": labels, "A": labels},
    )
    points = fig.data[0]
    assert fig.layout.title.text == f"A: {ESC}" and points.name == f"A: {ESC}"
    assert [t.name for t in fig.data[1:]] == [ESC, OTHER]
    # true and A agree on every point: said once; the coloured value on a line of its own
    assert list(points.text) == [ESC, "cat", ESC]
    assert list(points.hovertext) == [ESC, "cat", ESC]
    assert "<br>true class: %{hovertext}" in points.hovertemplate
    disagree = embedding_scatter(
        [0.0, 1.0],
        [0.0, 1.0],
        [10, 11],
        labels[:2],
        "categorical",
        "A",
        hover={"true": labels[:2], "A": labels[1::-1]},
    )
    assert list(disagree.data[0].text) == [f"{ESC}, cat", f"cat, {ESC}"]
    assert_no_raw_markup(fig)
    assert_no_raw_markup(disagree)


def test_robustness_figures_escape_titles_and_model_names() -> None:
    table = {"corruptions": ["fog"], "severities": [1, 2], "accuracy": [[0.8, 0.7]]}
    grid = robustness_grid(table, table)
    heat = accuracy_heatmap(grid, "a", f"A: {NAME}")
    diff = accuracy_diff_heatmap(grid, NAME)
    lines = severity_lines(grid, f"A: {NAME}", NAME, clean_a=0.9, clean_b=0.9)
    assert heat.layout.title.text == f"A: {ESC}" and diff.layout.title.text == ESC
    a, b = lines.data
    assert a.name == f"A: {ESC} (mean of 1 corruption)"
    assert a.hovertemplate.startswith(f"A: {ESC} (mean of 1 corruption)<br>%{{text}}")
    assert b.name == f"{ESC} (mean of 1 corruption)"
    for fig in (heat, diff, lines):
        assert_no_raw_markup(fig)


def test_balance_scatter_escapes_class_names() -> None:
    fig = balance_scatter([NAME, OTHER], [0.1, -0.1], [0.2, -0.1], 1.5)
    assert list(fig.data[0].text) == [ESC, OTHER]
    assert_no_raw_markup(fig)


def test_local_geometry_escapes_class_model_and_predicted_names() -> None:
    fig = local_geometry_scatter(
        [0, 1],
        [10.0, 20.0],
        [0.1, -0.1],
        [12.0, 25.0],
        [0.0, 0.2],
        class_name=NAME,
        label_a=f"A: {NAME}",
        label_b=f"B: {NAME}",
        pred_a=[NAME, OTHER],
        pred_b=[OTHER, NAME],
    )
    assert fig.layout.title.text == f"Local geometry of class {ESC}: A and B"
    a, b = fig.data
    assert (a.name, b.name) == (f"A: {ESC}", f"B: {ESC}")
    assert a.hovertemplate.startswith(f"<b>A: {ESC}</b> · sample %{{customdata[0]}}")
    assert [c[2] for c in a.customdata] == [ESC, OTHER]
    diff = local_geometry_scatter(
        [0], [10.0], [0.1], [12.0], [0.0], class_name=NAME, label_b=NAME, mode="diff"
    )
    assert diff.data[1].name == f"A → {ESC}"
    assert_no_raw_markup(fig)
    assert_no_raw_markup(diff)


def test_parallel_geometry_escapes_axis_labels_colour_bar_and_title() -> None:
    fig = parallel_geometry(
        [[10.0, 80.0], [70.0, 20.0]],
        [10.0, 20.0],
        [0.1, -0.2],
        [1.0, 0.5],
        [0, 1],
        [NAME, OTHER],
        model_label=f"A: {NAME}",
    )
    trace = fig.data[0]
    assert [d.label for d in trace.dimensions][:2] == [f"∠ {ESC} (°)", "∠ cat (°)"]
    assert list(trace.line.colorbar.ticktext) == [ESC, OTHER]
    assert fig.layout.title.text == f"Global geometry of A: {ESC}"
    assert_no_raw_markup(fig)


def _region_map() -> dict[str, Any]:
    square = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
    other = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
    return {
        "polygons": [square, other],
        "predicted": [0, 1],
        "decision_boundary": [[[0.5, 0.0], [0.5, 1.0]]],
        "domain": [0.0, 1.0, 0.0, 1.0],
        # p0 and p1 inside the map (markers), p2 outside (an arrow at the edge)
        "points": {"p0": [0.0, 0.0], "p1": [1.0, 0.0], "p2": [0.0, 3.0]},
    }


def test_region_figures_escape_model_class_and_sample_names() -> None:
    fig = region_map_figure(_region_map(), [NAME, OTHER], f"A: {NAME}", [NAME, "p1", NAME])
    assert fig.layout.title.text == f"A: {ESC}"
    assert [t.name for t in fig.data[:2]] == [f"predicted {ESC}", "predicted cat"]
    assert fig.data[0].text.startswith(f"predicted {ESC}: 1 polygons<br>")
    assert list(fig.data[-1].text) == [ESC, "p1"]
    assert [a.text for a in fig.layout.annotations] == [f"↑ {ESC}"]
    segs = {"kind": ["local", "local"], "linear_pieces": [3, 4]}
    counts = region_count_boxes(segs, segs, f"A: {NAME}", NAME, title=NAME)
    samples = {"index": [0], "region_distance": [0.1], "decision_distance": [0.2]}
    distances = distance_boxes(samples, samples, f"A: {NAME}", NAME, title=NAME)
    for boxes in (counts, distances):
        assert boxes.layout.title.text == ESC
        assert [t.name for t in boxes.data] == [f"A: {ESC}", ESC]
        assert boxes.data[0].hovertemplate.startswith(f"A: {ESC}<br>")
        assert_no_raw_markup(boxes)
    assert_no_raw_markup(fig)
    interval = {
        "index": [0, 1],
        "decision_lower": [0.1, 0.2],
        "decision_upper": [0.3, 0.2],
        "decision_exact": [False, True],
        "decision_upper_direction": ["towards_sample", "margin_gradient"],
        "decision_upper_target": [4, -1],
        "decision_upper_class": [0, 1],
        "decision_rays": [4, 4],
    }
    intervals = decision_interval_figure(interval, interval, f"A: {NAME}", NAME, [NAME, OTHER])
    assert intervals.layout.title.text == "Distance to the decision boundary, per test sample"
    assert {t.name.rsplit(": ", 1)[0] for t in intervals.data} == {f"A: {ESC}", ESC}
    upper = next(
        t for t in intervals.data if t.name == f"A: {ESC}: nearest crossing found (upper end)"
    )
    assert upper.hovertemplate.startswith(f"A: {ESC}<br>")
    assert upper.customdata[0][1] == f"reached towards test sample #4, into {ESC}"
    assert_no_raw_markup(intervals)


def test_empty_figure_escapes_its_message_and_title() -> None:
    fig = empty_figure(f"No test samples of class {NAME}.", NAME)
    assert fig.layout.title.text == ESC
    assert fig.layout.annotations[0].text == f"No test samples of class {ESC}."
    assert_no_raw_markup(fig)


BUILDERS: dict[str, Callable[[], go.Figure]] = {
    "confusion": _confusion,
    "empty": lambda: empty_figure(NAME, NAME),
    "local geometry, no samples": lambda: local_geometry_scatter(
        [], [], [], [], [], class_name=NAME
    ),
    "parallel, none selected": lambda: parallel_geometry(
        [[1.0]], [1.0], [0.0], [0.0], [0], [NAME], model_label=NAME, index=[0], selected=[5]
    ),
    "region map, over budget": lambda: region_map_figure({"error": NAME}, [NAME], NAME),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=list(BUILDERS))
def test_placeholders_quote_the_name_escaped(build: Callable[[], go.Figure]) -> None:
    fig = build()
    assert any(ESC in s for s in strings(as_json(fig)))
    assert_no_raw_markup(fig)
