"""The experiments scatter: accuracy (clean, or the mean under corruption) of every model
against its sparsity, its nonzero FLOPs or its measured latency, with the Pareto front drawn
as a step line and an edge from each model to the model it was pruned from."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import RAW_LAYOUT, empty_figure, finite, plot_text, plot_texts
from frontend.figures.embedding import typed_array
from frontend.figures.similarity import ORIGINAL, method_colors

# x axis: (name, axis title, which way is better, axis type, tick format)
X_AXES: dict[str, tuple[str, str, str, str, str]] = {
    "sparsity": ("Sparsity", "Sparsity", "higher", "linear", ".0%"),
    "flops_nonzero": (
        "Nonzero FLOPs",
        "Nonzero FLOPs (multiply-accumulates per example)",
        "lower",
        "log",
        "",
    ),
    "latency_ms": ("Latency", "Measured latency (ms per batch)", "lower", "linear", ""),
}
Y_AXES: dict[str, str] = {
    "accuracy": "Test accuracy",
    "corrupted_accuracy": "Mean accuracy under corruption",
}
EDGE_COLOR = "rgba(120, 120, 120, 0.18)"
FRONT_COLOR = "#111111"
POINTS_META = "points"  # meta of the marker traces (the page's selection highlight finds them)
# SVG up to this many points, WebGL beyond: in a browser without a GPU (software WebGL) 2,000
# SVG markers and one SVG path of lineage edges draw in about half the time WebGL takes
WEBGL_ABOVE = 5000


def pareto_front(x: Sequence[float], y: Sequence[float], x_better: str = "higher") -> list[int]:
    """Indices of the non-dominated points, in increasing x.

    A point dominates another when it is at least as good on both axes and better on one: a
    higher y always, a higher x when ``x_better`` is "higher" (sparsity), a lower one when it
    is "lower" (FLOPs, latency). Identical points do not dominate each other. O(n log n): a
    sweep from the best x down, keeping the best y seen.

    Args:
        x: (N,) finite x values.
        y: (N,) finite y values.
        x_better: "higher" or "lower".

    Raises:
        ValueError: for another ``x_better`` or lengths that differ.
    """
    if x_better not in ("higher", "lower"):
        raise ValueError(f"x_better={x_better!r} should be 'higher' or 'lower'")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values but y has {len(y)}")
    sign = -1.0 if x_better == "higher" else 1.0
    order = sorted(range(len(x)), key=lambda i: (sign * x[i], -y[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        last = front[-1] if front else None
        if y[i] > best or (
            last is not None and y[i] == best and x[i] == x[last] and y[last] == y[i]
        ):
            front.append(i)
            best = y[i]
    return sorted(front, key=lambda i: (x[i], y[i]))


def _hover(row: Mapping[str, Any], x_label: str, x_text: str, y_label: str, y: float) -> str:
    method = row.get("pruning_method") or ORIGINAL
    return (
        f"#{row.get('id')} {plot_text(row.get('name', ''))}<br>{plot_text(method)}"
        f"<br>{x_label}: {x_text}<br>{y_label}: {100 * y:.1f}%"
    )


def _x_text(axis: str, value: float) -> str:
    if axis == "sparsity":
        return f"{100 * value:.1f}%"
    if axis == "latency_ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f}"


def experiments_scatter(
    rows: Sequence[Mapping[str, Any]],
    x: str = "sparsity",
    y: str = "accuracy",
    selected: Collection[int] = (),
) -> go.Figure:
    """Accuracy (``y``: "accuracy" or "corrupted_accuracy") of each model against ``x``
    ("sparsity", "flops_nonzero" or "latency_ms"), one colour per method, with the Pareto
    front (higher accuracy, and higher sparsity or fewer FLOPs or less latency) as a step line
    and a grey edge from each model to its parent when both are drawn.

    Args:
        rows: experiments rows (``GET /api/experiments``): ``id``, ``name``, ``parent_id``,
            ``pruning_method`` and the two axes' fields; rows missing either value are left
            out (the title says how many).
        x: the x axis.
        y: the y axis.
        selected: model ids drawn as selected (the others dimmed); none: all drawn plainly.

    Raises:
        ValueError: for an unknown axis.
    """
    if x not in X_AXES:
        raise ValueError(f"x={x!r} should be one of {', '.join(X_AXES)}")
    if y not in Y_AXES:
        raise ValueError(f"y={y!r} should be one of {', '.join(Y_AXES)}")
    x_name, x_label, x_better, x_type, x_format = X_AXES[x]
    y_label = Y_AXES[y]
    drawn = []
    for row in rows:
        xv, yv = finite(row.get(x)), finite(row.get(y))
        if xv is None or yv is None or (x_type == "log" and xv <= 0):
            continue
        drawn.append((row, xv, yv))
    missing = len(rows) - len(drawn)
    if not drawn:
        why = "No model has both values" if rows else "No model matches the filters"
        return empty_figure(f"{why}: {y_label.lower()} against {x_name}.")

    xs = [d[1] for d in drawn]
    ys = [d[2] for d in drawn]
    front = pareto_front(xs, ys, x_better)
    where = {int(d[0]["id"]): (d[1], d[2]) for d in drawn}
    edge_x: list[float] = []
    edge_y: list[float] = []
    for row, xv, yv in drawn:
        parent = row.get("parent_id")
        if parent is not None and int(parent) in where:
            px, py = where[int(parent)]
            edge_x += [px, xv, math.nan]  # NaN: a gap between two edges
            edge_y += [py, yv, math.nan]

    kind = "scattergl" if len(drawn) > WEBGL_ABOVE else "scatter"
    traces: list[dict[str, Any]] = []
    if edge_x:
        traces.append(
            {
                "type": kind,
                "mode": "lines",
                "x": typed_array(edge_x, "float64"),
                "y": typed_array(edge_y, "float64"),
                "line": {"color": EDGE_COLOR, "width": 1},
                "hoverinfo": "skip",
                "name": "pruned from (lineage)",
            }
        )
    methods = [str(d[0].get("pruning_method") or ORIGINAL) for d in drawn]
    colors = method_colors(methods)
    chosen = {int(i) for i in selected}
    by_method: dict[str, list[int]] = {}
    for k, method in enumerate(methods):
        by_method.setdefault(method, []).append(k)
    names = plot_texts(methods)
    for method in sorted(by_method, key=lambda m: (m != ORIGINAL, m)):
        ks = by_method[method]
        ids = [int(drawn[k][0]["id"]) for k in ks]
        trace: dict[str, Any] = {
            "type": kind,
            "mode": "markers",
            "meta": POINTS_META,
            "name": names[ks[0]],
            "x": typed_array([xs[k] for k in ks], "float64"),
            "y": typed_array([ys[k] for k in ks], "float64"),
            "customdata": [[i] for i in ids],
            "text": [_hover(drawn[k][0], x_name, _x_text(x, xs[k]), y_label, ys[k]) for k in ks],
            "hovertemplate": "%{text}<extra></extra>",
            "marker": {
                "color": colors[method],
                "size": 9 if method == ORIGINAL else 7,
                "symbol": "diamond" if method == ORIGINAL else "circle",
            },
            "selected": {"marker": {"size": 12, "opacity": 1.0}},
            "unselected": {"marker": {"opacity": 0.25}},
        }
        if chosen:
            trace["selectedpoints"] = [j for j, i in enumerate(ids) if i in chosen]
        traces.append(trace)
    traces.append(
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": [xs[i] for i in front],
            "y": [ys[i] for i in front],
            "line": {
                "color": FRONT_COLOR,
                "width": 2,
                "shape": "vh" if x_better == "higher" else "hv",
            },
            "marker": {"size": 5, "color": FRONT_COLOR},
            "name": f"Pareto front ({len(front)})",
            "hoverinfo": "skip",
        }
    )
    title = f"{y_label} against {x_name}: {len(drawn)} models"
    if missing:
        title += f" ({missing} without both values not drawn)"
    layout = {
        **RAW_LAYOUT,
        "title": {"text": plot_text(title)},
        "xaxis": {
            "title": {"text": plot_text(x_label)},
            "type": x_type,
            "tickformat": x_format,
            "zeroline": False,
        },
        "yaxis": {"title": {"text": plot_text(y_label)}, "tickformat": ".0%", "zeroline": False},
        "legend": {"orientation": "v", "x": 1.02, "y": 1},
        "hovermode": "closest",
        "clickmode": "event",
        "dragmode": "select",
        "margin": {"l": 70, "r": 20, "t": 50, "b": 60},
        "height": 520,
        "uirevision": f"{x}-{y}",
    }
    return go.Figure(data=traces, layout=layout, _validate=False)
