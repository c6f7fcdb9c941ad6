"""top5_bars and attribution_heatmaps: data in, the same data out in the right places."""

from __future__ import annotations

import numpy as np
import pytest

from frontend.figures._common import COLOR_A, COLOR_B
from frontend.figures.embedding import DIVERGING_SCALE
from frontend.figures.samples import (
    ATTRIBUTION_METRICS,
    METRIC_UNITS,
    attribution_heatmaps,
    top5_bars,
)

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog"]


# top-5 probabilities --------------------------------------------------------------------------


def test_top5_bars_are_horizontal_a_and_b_in_their_colours() -> None:
    top_a = [{"label": 3, "prob": 0.7}, {"label": 5, "prob": 0.2}, {"label": 2, "prob": 0.05}]
    top_b = [{"label": 5, "prob": 0.6}, {"label": 3, "prob": 0.3}, {"label": 0, "prob": 0.04}]
    fig = top5_bars(top_a, top_b, NAMES, label_a="A: orig", label_b="B: gm 90%", true_label=3)
    assert [t.type for t in fig.data] == ["bar", "bar"]
    a, b = fig.data
    assert (a.orientation, b.orientation) == ("h", "h")
    assert (a.name, b.name) == ("A: orig", "B: gm 90%")
    assert (a.marker.color, b.marker.color) == (COLOR_A, COLOR_B)
    # classes ordered by the larger of the two probabilities, the likeliest on top
    assert list(a.y) == ["cat", "dog", "bird", "airplane"] and list(b.y) == list(a.y)
    assert list(a.x) == [0.7, 0.2, 0.05, None]
    assert list(b.x) == [0.3, 0.6, None, 0.04]
    assert fig.layout.yaxis.autorange == "reversed"
    assert list(fig.layout.yaxis.ticktext) == ["<b>cat</b> (true)", "dog", "bird", "airplane"]
    assert list(fig.layout.yaxis.tickvals) == list(a.y)
    assert fig.layout.xaxis.title.text == "probability"
    assert list(fig.layout.xaxis.range) == [0, 1] and fig.layout.xaxis.tickformat == ".0%"
    assert fig.layout.barmode == "group"


def test_top5_labels_may_be_names_and_out_of_range_indices_are_named() -> None:
    fig = top5_bars([{"label": "dog", "prob": 0.9}], [{"label": 9, "prob": 0.8}], NAMES)
    assert list(fig.data[0].y) == ["dog", "class 9"]
    assert "(true)" not in " ".join(fig.layout.yaxis.ticktext)


def test_top5_without_probabilities_says_so() -> None:
    fig = top5_bars([], [], NAMES)
    assert not fig.data
    assert "No probabilities" in fig.layout.annotations[0].text


# geometric attribution ------------------------------------------------------------------------


def _maps(rows: int, cols: int, scale: float, seed: int) -> dict[str, list[list[float]]]:
    rng = np.random.default_rng(seed)
    return {m: (scale * rng.normal(size=(rows, cols))).tolist() for m in ATTRIBUTION_METRICS}


def test_attribution_rows_are_metrics_columns_a_b_and_difference() -> None:
    a, b = _maps(3, 4, 1.0, 0), _maps(3, 4, 5.0, 1)
    fig = attribution_heatmaps(a, b, label_a="A: orig", label_b="B: pruned", patch=4, stride=2)
    assert len(fig.data) == 9
    assert all(t.type == "heatmap" for t in fig.data)  # no WebGL
    for r, metric in enumerate(ATTRIBUTION_METRICS):
        ta, tb, td = fig.data[3 * r : 3 * r + 3]
        np.testing.assert_allclose(np.asarray(ta.z, dtype=float), a[metric])
        np.testing.assert_allclose(np.asarray(tb.z, dtype=float), b[metric])
        np.testing.assert_allclose(
            np.asarray(td.z, dtype=float), np.asarray(b[metric]) - np.asarray(a[metric])
        )
        m = max(np.abs(np.asarray(t.z, dtype=float)).max() for t in (ta, tb, td))
        for t in (ta, tb, td):
            assert t.zmid == 0
            assert (t.zmin, t.zmax) == (pytest.approx(-m), pytest.approx(m))
            assert [list(s) for s in t.colorscale] == DIVERGING_SCALE
        # one colour bar per row, on the difference, titled with the metric's unit
        assert (ta.showscale, tb.showscale, td.showscale) == (False, False, True)
        assert td.colorbar.title.text == METRIC_UNITS[metric]
        lo, hi = fig.layout[f"yaxis{3 * r + 3}"].domain
        assert lo <= td.colorbar.y <= hi
        assert METRIC_UNITS[metric] in ta.hovertemplate
        assert fig.layout[f"yaxis{'' if r == 0 else 3 * r + 1}"].title.text == metric
    assert [a.text for a in fig.layout.annotations] == ["A: orig", "B: pruned", "B − A"]
    assert fig.layout.yaxis.autorange == "reversed"  # patch row 0 at the top, as in the image
    assert fig.layout.yaxis5.scaleanchor == "x5"  # square cells
    assert "4×4 px patches, stride 2" in fig.layout.title.text
    assert METRIC_UNITS["angle"].endswith("(°)")


def test_a_cell_lands_where_its_patch_is() -> None:
    zeros = {m: [[0.0] * 3 for _ in range(2)] for m in ATTRIBUTION_METRICS}
    b = {m: [row[:] for row in zeros[m]] for m in ATTRIBUTION_METRICS}
    b["margin"][1][2] = -0.8  # occluding the bottom-right patch lowers B's margin
    fig = attribution_heatmaps(zeros, b)
    margin_b, margin_diff = fig.data[7], fig.data[8]
    assert margin_b.z[1][2] == pytest.approx(-0.8) and margin_b.z[0][0] == 0
    assert margin_diff.z[1][2] == pytest.approx(-0.8)
    assert (margin_b.zmin, margin_b.zmax) == (pytest.approx(-0.8), pytest.approx(0.8))
    # an all-zero row still gets a usable symmetric range
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-1.0, 1.0)


def test_missing_cells_stay_empty_and_ragged_grids_are_refused() -> None:
    a = {"angle": [[1.0, None], [float("nan"), 2.0]]}
    b = {"angle": [[2.0, 1.0], [1.0, 1.0]]}
    fig = attribution_heatmaps(a, b, metrics=["angle"])
    assert len(fig.data) == 3
    assert list(fig.data[0].z[0]) == [1.0, None] and fig.data[0].z[1][0] is None
    assert list(fig.data[2].z[0]) == [1.0, None]
    with pytest.raises(ValueError, match="same grid"):
        attribution_heatmaps({"angle": [[1.0]]}, {"angle": [[1.0], [2.0]]}, metrics=["angle"])
    empty = attribution_heatmaps({}, {})
    assert not empty.data and "No attribution maps" in empty.layout.annotations[0].text


def test_patches_are_placed_at_their_pixels_when_given() -> None:
    maps = {m: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]] for m in ATTRIBUTION_METRICS}
    fig = attribution_heatmaps(maps, maps, rows=[0, 4], cols=[0, 4, 8], patch=4)
    for trace in fig.data:
        assert list(trace.y) == [0, 4] and list(trace.x) == [0, 4, 8]
        assert "pixel row %{y}, column %{x}" in trace.hovertemplate
    # positions that do not match the grid are ignored (cells by index)
    plain = attribution_heatmaps(maps, maps, rows=[0], cols=[0, 4, 8])
    assert plain.data[0].y is None and "patch row %{y}" in plain.data[0].hovertemplate
    assert "4×4 px patches)" in fig.layout.title.text
