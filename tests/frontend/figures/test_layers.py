"""The layers figures: layers in network order down, each metric's values where they belong,
gaps marked "n/a" with a reason, and a layer's histogram counts as given."""

from __future__ import annotations

from typing import Any

import pytest

from frontend.figures.layers import (
    COLUMN_KEYS,
    NA,
    clicked_layer,
    column_values,
    kept_fraction,
    layer_height,
    layer_histogram_figure,
    layer_metrics_figure,
    missing_reason,
)

EDGES = [-6 + 0.15 * i for i in range(41)]


def hist(seed: int) -> dict[str, Any]:
    return {
        "log10_edges": EDGES,
        "a": [(seed * 7 + 3 * i) % 50 for i in range(40)],
        "b": [(seed * 5 + 2 * i) % 30 for i in range(40)],
        "zeros_a": 0,
        "zeros_b": 123 + seed,
    }


def layer(name: str, seed: int, **over: Any) -> dict[str, Any]:
    out = {
        "name": name,
        "kind": "conv",
        "shape_a": [16, 8, 3, 3],
        "shape_b": [16, 8, 3, 3],
        "channels": 16,
        "params": 1152,
        "sparsity_a": 0.0,
        "sparsity_b": 0.1 * seed,
        "kept_channels_a": 16,
        "kept_channels_b": 16 - seed,
        "relative_weight_change": 0.05 * seed,
        "cka": 1 - 0.1 * seed,
        "dead_relu_a": 0.01 * seed,
        "dead_relu_b": 0.02 * seed,
        "hist": hist(seed),
    }
    return out | over


# network order deliberately not alphabetical; "<b>" checks escaping
LAYERS = [
    layer("features.conv2", 1),
    layer("features.<b>conv1", 2),
    layer("classifier", 3, kind="linear", dead_relu_a=None, dead_relu_b=None, cka=None),
    layer(
        "head.fc",
        4,
        kind="linear",
        shape_b=[12, 8],
        shape_a=[16, 8],
        relative_weight_change=None,
        channels=None,
        kept_channels_a=None,
        kept_channels_b=None,
    ),
]
Y = ["features.conv2", "features.&lt;b&gt;conv1", "classifier", "head.fc"]


def traces(fig, column: str, side: str) -> list:
    return [
        t for t in fig.data if (t.meta or {}).get("column") == column and t.meta["side"] == side
    ]


def test_layers_run_down_in_network_order() -> None:
    fig = layer_metrics_figure(LAYERS, "orig", "pruned")
    for axis in ("yaxis", "yaxis2", "yaxis3", "yaxis4", "yaxis5"):
        y = fig.layout[axis]
        assert list(y.categoryarray) == Y
        assert y.autorange == "reversed"  # first layer on top
    for t in fig.data:
        if (t.meta or {}).get("side") != NA:
            assert list(t.y) == Y
            assert list(t.customdata) == [0, 1, 2, 3]


def test_each_column_holds_its_values() -> None:
    fig = layer_metrics_figure(LAYERS, "orig", "pruned")
    (sparsity_b,) = traces(fig, "sparsity", "b")
    assert sparsity_b.type == "bar" and sparsity_b.orientation == "h"
    assert list(sparsity_b.x) == pytest.approx([0.1, 0.2, 0.3, 0.4])
    (sparsity_a,) = traces(fig, "sparsity", "a")
    assert list(sparsity_a.x) == [0.0] * 4
    (kept,) = traces(fig, "kept", "b")
    assert list(kept.x)[:3] == pytest.approx([15 / 16, 14 / 16, 13 / 16])
    assert kept.x[3] is None
    (change,) = traces(fig, "change", "b")
    assert list(change.x) == pytest.approx([0.05, 0.1, 0.15, None])
    (cka,) = traces(fig, "cka", "b")
    assert list(cka.x) == pytest.approx([0.9, 0.8, None, 0.6])
    dead_a, dead_b = traces(fig, "dead", "a")[0], traces(fig, "dead", "b")[0]
    assert dead_a.type == dead_b.type == "scatter"  # paired markers
    assert list(dead_a.x) == pytest.approx([0.01, 0.02, None, 0.04])
    assert list(dead_b.x) == pytest.approx([0.02, 0.04, None, 0.08])
    assert dead_a.marker.color != dead_b.marker.color
    # each column in its own subplot, all on one shared layer axis
    assert sparsity_b.xaxis == "x" and dead_b.xaxis == "x5"
    assert [fig.layout[f"yaxis{i}"].matches for i in range(2, 6)] == ["y"] * 4


def test_gaps_say_na_and_why() -> None:
    fig = layer_metrics_figure(LAYERS)
    (cka_na,) = traces(fig, "cka", NA)
    assert list(cka_na.y) == ["classifier"] and list(cka_na.customdata) == [2]
    assert list(cka_na.text) == [NA]
    assert "n/a" in cka_na.hovertext[0]
    (change_na,) = traces(fig, "change", NA)
    assert list(change_na.customdata) == [3]
    assert "differ in shape (16×8 vs 12×8)" in change_na.hovertext[0]
    (dead_na,) = traces(fig, "dead", NA)
    assert "no ReLU follows this layer" in dead_na.hovertext[0]
    (kept_na,) = traces(fig, "kept", NA)
    assert list(kept_na.customdata) == [3]
    assert traces(fig, "sparsity", NA) == []


def test_hover_names_the_layer_and_its_numbers() -> None:
    fig = layer_metrics_figure(LAYERS, "orig", "pruned", n_samples=500)
    (sparsity_b,) = traces(fig, "sparsity", "b")
    assert "<b>features.conv2</b>" in sparsity_b.hovertext[0]
    assert "pruned: 10.0% of 1,152 weights zero" in sparsity_b.hovertext[0]
    assert "&lt;b&gt;conv1" in sparsity_b.hovertext[1]  # a name's markup is text
    (kept,) = traces(fig, "kept", "b")
    assert "keeps 14 of 16 channels" in kept.hovertext[1]
    (cka,) = traces(fig, "cka", "b")
    assert "= 0.900 on 500 test samples" in cka.hovertext[0]


def test_selected_layer_is_highlighted_and_clicks_find_layers() -> None:
    fig = layer_metrics_figure(LAYERS, selected="classifier")
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1) == (1.5, 2.5)
    assert layer_metrics_figure(LAYERS, selected="nope").layout.shapes == ()
    assert clicked_layer({"points": [{"customdata": 2, "y": "classifier"}]}, 4) == 2
    assert clicked_layer({"points": [{"customdata": [3]}]}, 4) == 3
    assert clicked_layer({"points": [{"customdata": 9}]}, 4) is None
    assert clicked_layer(None, 4) is None


def test_height_grows_with_the_layers() -> None:
    assert layer_height(40) > layer_height(10) >= layer_height(1)
    assert layer_metrics_figure(LAYERS).layout.height == layer_height(4)


def test_no_layers_explains_itself() -> None:
    fig = layer_metrics_figure([])
    assert len(fig.data) == 0 and "No prunable layers" in fig.layout.annotations[0].text


def test_helpers() -> None:
    assert kept_fraction(LAYERS[0]) == pytest.approx(15 / 16)
    assert kept_fraction(LAYERS[3]) is None
    assert column_values(LAYERS, "change") == pytest.approx([0.05, 0.1, 0.15, None])
    assert "missing in B" in missing_reason({"shape_a": [1], "shape_b": None}, "cka")
    assert set(COLUMN_KEYS) == {"sparsity", "kept", "change", "cka", "dead"}
    with pytest.raises(ValueError, match="key='bogus'"):
        column_values(LAYERS, "bogus")


def test_histogram_counts_are_the_inputs() -> None:
    fig = layer_histogram_figure(LAYERS[1], "orig", "pruned")
    a, b = fig.data
    assert (a.name, b.name) == ("orig", "pruned")
    assert list(a.y) == hist(2)["a"] and list(b.y) == hist(2)["b"]
    centres = [(lo + hi) / 2 for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True)]
    assert list(a.x) == pytest.approx(centres) and list(b.x) == pytest.approx(centres)
    assert list(a.width) == pytest.approx([0.15] * 40)
    assert fig.layout.barmode == "overlay"
    title = fig.layout.title.text
    assert "features.&lt;b&gt;conv1" in title
    total_a = sum(hist(2)["a"])
    total_b = sum(hist(2)["b"]) + 125
    assert f"A 0 of {total_a:,}" in title and f"B 125 of {total_b:,}" in title
    assert fig.layout.meta == {"zeros_a": 0, "zeros_b": 125}


def test_histogram_without_data_explains_itself() -> None:
    fig = layer_histogram_figure({"name": "conv1", "hist": None})
    assert len(fig.data) == 0 and "No weight histogram" in fig.layout.annotations[0].text
    broken = {"name": "x", "hist": {"log10_edges": EDGES, "a": [1], "b": [1]}}
    assert len(layer_histogram_figure(broken).data) == 0


def test_cka_axis_zooms_in_only_when_every_cka_is_high() -> None:
    from frontend.figures.layers import cka_axis_start

    assert cka_axis_start([0.97, 0.991, None, 1.0]) == pytest.approx(0.95)
    assert cka_axis_start([0.951]) == pytest.approx(0.90)  # a margin below the smallest
    assert cka_axis_start([0.4, 0.99]) == 0.0 and cka_axis_start([None]) == 0.0
