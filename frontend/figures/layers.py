"""Per-layer comparison of A and B (SCIENCE.md section 7, "layer similarity").

One figure a researcher reads at a glance: the prunable layers down (network order, top to
bottom), the metrics across as small multiples sharing the layer axis: B's sparsity, the
channels B keeps, the relative weight change ||W_B - W_A||_F / ||W_A||_F, linear CKA between
A's and B's layer outputs (Kornblith et al., ICML 2019) and the dead-ReLU rate of A and B. A
value the server could not measure is a gap marked "n/a", its hover says why. A second figure
shows one layer's weight magnitudes (log10 |w|) in A and B, with the exact zeros counted apart
(a log axis has no place for them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    base_layout,
    empty_figure,
    finite,
    plot_text,
)

NA = "n/a"
NA_COLOR = "#999"
HIGHLIGHT = "rgba(255, 215, 0, 0.25)"  # the chosen layer's row
ROW_PX = 26  # height of one layer's row
HEAD_PX = 110  # titles and axis labels around the rows
MIN_HEIGHT_PX = 280

# the columns: key, title, hover label; each value is a fraction except the weight change
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("sparsity", "Sparsity", "weights that are zero"),
    ("kept", "Kept channels", "output channels kept"),
    ("change", "Weight change", "‖W_B − W_A‖ / ‖W_A‖"),
    ("cka", "CKA, A vs B", "linear CKA of the layer outputs (1 = same representation)"),
    ("dead", "Dead ReLU", "activations after the layer that are zero on every sample"),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)


def _int(value: Any) -> int | None:
    number = finite(value)
    return None if number is None else int(number)


def _percent(value: float | None) -> str:
    return NA if value is None else f"{100 * value:.1f}%"


def _shape(value: Any) -> str:
    return "×".join(str(int(d)) for d in value) if value else "—"


def kept_fraction(layer: Mapping[str, Any], side: str = "b") -> float | None:
    """The share of the layer's output channels that ``side`` ("a" or "b") keeps."""
    kept, total = _int(layer.get(f"kept_channels_{side}")), _int(layer.get("channels"))
    if kept is None or not total:
        return None
    return kept / total


def missing_reason(layer: Mapping[str, Any], key: str) -> str:
    """Why column ``key`` (one of :data:`COLUMN_KEYS`) has no value for ``layer``."""
    shape_a, shape_b = layer.get("shape_a"), layer.get("shape_b")
    if shape_a is None or shape_b is None:
        return f"the layer is missing in {'A' if shape_a is None else 'B'}"
    if key == "kept":
        return "no output channels to count for this layer"
    if key == "change":
        if list(shape_a) != list(shape_b):
            return (
                f"A's and B's weights differ in shape ({_shape(shape_a)} vs {_shape(shape_b)}): "
                "channels were removed, see kept channels"
            )
        return "A's weights are all zero"
    if key == "cka":
        return "the layer's outputs could not be compared (constant on the samples)"
    if key == "dead":
        return "no ReLU follows this layer"
    return "not measured for this layer"


def _value(layer: Mapping[str, Any], key: str, side: str = "b") -> float | None:
    if key == "sparsity":
        return finite(layer.get(f"sparsity_{side}"))
    if key == "kept":
        return kept_fraction(layer, side)
    if key == "change":
        return finite(layer.get("relative_weight_change")) if side == "b" else None
    if key == "cka":
        return finite(layer.get("cka")) if side == "b" else None
    if key == "dead":
        return finite(layer.get(f"dead_relu_{side}"))
    raise ValueError(f"key={key!r} should be one of {COLUMN_KEYS}")


def column_values(layers: Sequence[Mapping[str, Any]], key: str, side: str = "b") -> list:
    """Column ``key`` of every layer for ``side`` ("a" or "b"), None where not measured."""
    return [_value(layer, key, side) for layer in layers]


def _hover(layer: Mapping[str, Any], key: str, side: str, label: str) -> str:
    """One point's hover: the layer, what is measured, its number(s)."""
    name = f"<b>{plot_text(layer.get('name'))}</b> ({plot_text(layer.get('kind') or '')})"
    value = _value(layer, key, side)
    if key == "sparsity":
        params = _int(layer.get("params"))
        of = "" if params is None else f" of {params:,} weights"
        line = f"{plot_text(label)}: {_percent(value)}{of} zero"
    elif key == "kept":
        kept, total = _int(layer.get(f"kept_channels_{side}")), _int(layer.get("channels"))
        line = f"{plot_text(label)} keeps {kept} of {total} channels ({_percent(value)})"
    elif key == "change":
        line = f"‖W_B − W_A‖ / ‖W_A‖ = {value:.3g}" if value is not None else ""
    elif key == "cka":
        n = _int(layer.get("n_samples"))
        on = "" if n is None else f" on {n:,} test samples"
        line = f"linear CKA(A, B) = {value:.3f}{on}" if value is not None else ""
    else:
        line = f"{plot_text(label)}: {_percent(value)} of the ReLU outputs dead"
    if value is None:
        line = f"{NA}: {plot_text(missing_reason(layer, key))}"
    return f"{name}<br>{line}"


def layer_height(n_layers: int) -> int:
    """The metrics figure's height in pixels for ``n_layers`` rows."""
    return max(MIN_HEIGHT_PX, HEAD_PX + ROW_PX * int(n_layers))


def cka_axis_start(values: Sequence[float | None]) -> float:
    """Where the CKA axis starts: 0, or a multiple of 0.05 below the smallest CKA when every
    CKA is above 0.5 (the usual case, where the differences that matter are in the last few
    hundredths and a 0-1 axis hides them). The tick labels say where it starts."""
    known = [v for v in values if v is not None]
    if not known or min(known) <= 0.5:
        return 0.0
    return max(0.0, math.floor((min(known) - 0.01) * 20) / 20)


def layer_metrics_figure(
    layers: Sequence[Mapping[str, Any]],
    label_a: str = "A",
    label_b: str = "B",
    selected: str | None = None,
    n_samples: int | None = None,
) -> go.Figure:
    """The layers of A and B, down in network order, against the per-layer metrics.

    Args:
        layers: the ``layers`` of one B's entry of ``GET /api/comparisons/{id}/layers``, in
            network order (drawn top to bottom).
        label_a, label_b: the models' names, plain text.
        selected: the name of the layer whose row is highlighted (its histograms are shown).
        n_samples: the number of test samples CKA and dead ReLUs were measured on.

    Returns:
        Five subplots sharing the layer axis; every point carries its layer's position in
        ``layers`` as ``customdata`` (what a click reads), and a gap's "n/a" marker says why.
    """
    if not layers:
        return empty_figure("No prunable layers were found in A.", "Layers")
    names = [str(layer.get("name")) for layer in layers]
    rows = [{**layer, "n_samples": n_samples} for layer in layers]
    y = [plot_text(n) for n in names]
    index = list(range(len(layers)))
    titles = [title for _, title, _ in COLUMNS]
    fig = make_subplots(
        rows=1,
        cols=len(COLUMNS),
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=titles,
    )
    legend_shown: set[str] = set()
    for col, (key, _title, _what) in enumerate(COLUMNS, start=1):
        sides = ("a", "b") if key in ("sparsity", "kept", "dead") else ("b",)
        for side in sides:
            label = label_a if side == "a" else label_b
            values = column_values(rows, key, side)
            hover = [_hover(layer, key, side, label) for layer in rows]
            color = COLOR_A if side == "a" else COLOR_B
            legend = "A" if side == "a" else "B"
            common: dict[str, Any] = {
                "y": y,
                "x": values,
                "orientation": "h",
                "customdata": index,
                "hovertext": hover,
                "hovertemplate": "%{hovertext}<extra></extra>",
                "legendgroup": legend,
                "showlegend": legend not in legend_shown and key != "change" and key != "cka",
            }
            if common["showlegend"]:
                legend_shown.add(legend)
            name = plot_text(label)
            if side == "b" and key != "dead":
                trace: Any = go.Bar(name=name, marker={"color": color}, **common)
            else:  # A next to B's bar, or the paired dead-ReLU rates: markers
                common.pop("orientation")
                symbol = "circle" if side == "a" else "diamond"
                trace = go.Scatter(
                    name=name,
                    mode="markers",
                    marker={"color": color, "symbol": symbol, "size": 9},
                    **common,
                )
            trace.meta = {"column": key, "side": side}
            fig.add_trace(trace, row=1, col=col)
        missing = [i for i, v in enumerate(column_values(rows, key, "b")) if v is None]
        if missing:  # gaps: a grey "n/a" at the start of the row, hover says why
            fig.add_trace(
                go.Scatter(
                    x=[0] * len(missing),
                    y=[y[i] for i in missing],
                    mode="text",
                    text=[NA] * len(missing),
                    textposition="middle right",
                    textfont={"color": NA_COLOR, "size": 11},
                    customdata=missing,
                    hovertext=[_hover(rows[i], key, "b", label_b) for i in missing],
                    hovertemplate="%{hovertext}<extra></extra>",
                    showlegend=False,
                    name=NA,
                    meta={"column": key, "side": NA},
                ),
                row=1,
                col=col,
            )
    height = layer_height(len(layers))
    left = min(260, 24 + 7 * max(len(n) for n in names))
    fig.update_layout(
        **base_layout(None, (left, 20, 80, 30)),
        height=height,
        barmode="overlay",
        hovermode="y",
        bargap=0.3,
        # top left, above the subplot titles
        legend={
            "orientation": "h",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
        },
        clickmode="event",
    )
    # the title sits above the subplot titles; the legend on its right
    fig.update_annotations(font={"size": 12})
    fig.update_yaxes(
        type="category",
        categoryorder="array",
        categoryarray=y,
        autorange="reversed",
        showgrid=False,
    )
    for col, (key, _, _) in enumerate(COLUMNS, start=1):
        xaxis: dict[str, Any] = {"zeroline": True, "zerolinecolor": "#bbb", "fixedrange": True}
        if key == "change":
            top = max([v for v in column_values(rows, key) if v is not None] or [1.0])
            xaxis |= {"range": [0, max(0.05, 1.05 * top)], "tickformat": ".2g", "nticks": 4}
        elif key == "cka" and (start := cka_axis_start(column_values(rows, key))) > 0:
            # CKA of a pruned layer is usually 0.9-1: from 0 the bars would all look equal
            ticks = [start, (start + 1) / 2, 1.0]
            xaxis |= {"range": [start, 1.005], "tickformat": ".2f", "tickvals": ticks}
        else:
            xaxis |= {"range": [0, 1.05], "tickformat": ".0%", "tickvals": [0, 0.5, 1]}
        fig.update_xaxes(row=1, col=col, **xaxis)
    fig.update_yaxes(fixedrange=True)
    if selected in names:
        i = names.index(selected)
        fig.add_shape(
            type="rect",
            xref="paper",
            yref="y",
            x0=0,
            x1=1,
            y0=i - 0.5,
            y1=i + 0.5,
            fillcolor=HIGHLIGHT,
            line={"width": 0},
            layer="below",
        )
    return fig


def clicked_layer(click_data: Mapping[str, Any] | None, n_layers: int) -> int | None:
    """The position of the layer a click on :func:`layer_metrics_figure` hit, or None."""
    for point in (click_data or {}).get("points") or []:
        custom = point.get("customdata")
        value = custom[0] if isinstance(custom, list | tuple) and custom else custom
        i = _int(value)
        if i is not None and 0 <= i < n_layers:
            return i
    return None


def layer_histogram_figure(
    layer: Mapping[str, Any], label_a: str = "A", label_b: str = "B"
) -> go.Figure:
    """One layer's weight magnitudes in A and B: counts of log10 |w| per bin, overlaid, and the
    exact zeros (which a log axis cannot place) in the title.

    Args:
        layer: one entry of a B's ``layers``; its ``hist`` holds ``log10_edges`` (K + 1),
            ``a`` and ``b`` (K counts each), ``zeros_a`` and ``zeros_b``.
    """
    name = str(layer.get("name"))
    hist = layer.get("hist") or {}
    edges = [float(e) for e in hist.get("log10_edges") or []]
    counts_a = [int(c) for c in hist.get("a") or []]
    counts_b = [int(c) for c in hist.get("b") or []]
    k = len(edges) - 1
    if k < 1 or len(counts_a) != k or len(counts_b) != k:
        return empty_figure(f"No weight histogram for layer {name}.", name)
    centres = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    widths = [hi - lo for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    zeros_a, zeros_b = int(hist.get("zeros_a") or 0), int(hist.get("zeros_b") or 0)
    fig = go.Figure()
    pairs = list(zip(edges[:-1], edges[1:], strict=True))
    ranges = [f"|w| in [{10**lo:.2g}, {10**hi:.2g})" for lo, hi in pairs]
    for label, counts, color in ((label_a, counts_a, COLOR_A), (label_b, counts_b, COLOR_B)):
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=widths,
                name=plot_text(label),
                marker={"color": color, "line": {"width": 0}},
                opacity=0.55,
                hovertext=[
                    f"{plot_text(label)}<br>{r}: {c:,} weights"
                    for r, c in zip(ranges, counts, strict=True)
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    total_a = sum(counts_a) + zeros_a
    total_b = sum(counts_b) + zeros_b
    title = (
        f"{plot_text(name)}: weight magnitudes<br><sup>exact zeros (not drawn): "
        f"A {zeros_a:,} of {total_a:,}, B {zeros_b:,} of {total_b:,}</sup>"
    )
    lo, hi = int(edges[0]), int(edges[-1]) + 1
    ticks = list(range(lo, hi + 1))
    fig.update_layout(
        **base_layout(None, (60, 20, 70, 50)),
        title={"text": title},
        barmode="overlay",
        bargap=0,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        xaxis={
            "title": {"text": "|w| (log scale)"},
            "tickvals": ticks,
            "ticktext": [f"1e{t}" for t in ticks],
            "range": [edges[0], edges[-1]],
        },
        yaxis={"title": {"text": "weights"}, "rangemode": "tozero"},
    )
    fig.layout.meta = {"zeros_a": zeros_a, "zeros_b": zeros_b}
    return fig
