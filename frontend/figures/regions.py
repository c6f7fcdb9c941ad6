"""Linear regions of A and B (SCIENCE.md section 5): count and distance distributions, and the
exact 2-D region map of a plane through three test samples.

The region maps are drawn with plain SVG ``go.Scatter`` polygons (``fill="toself"``), never
WebGL: the compare page's WebGL budget belongs to the embeddings. A map holds thousands of
polygons, so they are merged into one trace per predicted class, polygons separated by None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from frontend.figures._common import COLOR_A, COLOR_B, base_layout, empty_figure, plot_text

KIND_LABELS: dict[str, str] = {
    "within_class": "within a class",
    "across_class": "across classes",
    "local": "short, around a sample",
}
KIND_HOVER: dict[str, str] = {
    "within_class": "segment between two test samples of the same class",
    "across_class": "segment between two test samples of different classes",
    "local": "short random-direction segment centred on a test sample",
}
# segment-table column -> (axis title, one-line explanation)
COUNT_METRICS: dict[str, tuple[str, str]] = {
    "linear_pieces": (
        "linear regions per segment (count)",
        "pieces along the segment on which the network's output is affine",
    ),
    "activation_pieces": (
        "activation regions per segment (count)",
        "pieces along the segment with one ReLU / max-pool activation pattern",
    ),
    "decision_crossings": (
        "decision-boundary crossings per segment (count)",
        "times the predicted class changes along the segment",
    ),
}
DISTANCE_METRICS: dict[str, tuple[str, str]] = {
    "region_distance": (
        "to its activation-region boundary",
        "L2 distance from the sample to the boundary of its own activation region (exact)",
    ),
    "decision_distance": (
        "to the decision boundary",
        "L2 distance to the decision boundary inside that region (a lower bound when it "
        "exceeds the region distance)",
    ),
}
Columns = Mapping[str, Sequence[Any]]  # a table as columns: name -> one value per row
DISTANCE_TITLE = "Distance to the nearest boundary"
DISTANCE_AXIS = "L2 distance in input space (log scale)"
BOUNDARY_COLOR = "#111"
REGION_EDGE_COLOR = "rgba(40, 40, 40, 0.3)"
FILL_ALPHA = 0.9
SAMPLE_COLOR = "#111"


def class_palette(n: int) -> list[str]:
    """``n`` light qualitative colours, one per class (cycled past the palette's length); not
    the A/B colours, which mean "model" on this page."""
    base = list(qualitative.Set3 if n <= len(qualitative.Set3) else qualitative.Alphabet)
    return [base[i % len(base)] for i in range(max(n, 0))]


def _rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` or ``rgb(r, g, b)`` with an alpha channel."""
    if color.startswith("#") and len(color) == 7:
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    elif color.startswith("rgb(") and color.endswith(")"):
        r, g, b = (int(float(p)) for p in color[4:-1].split(","))
    else:
        return color
    return f"rgba({r}, {g}, {b}, {alpha})"


# distributions ------------------------------------------------------------------------------


def _numbers(values: Sequence[Any] | None) -> np.ndarray:
    """A column as float64, None as NaN."""
    return np.asarray([np.nan if v is None else float(v) for v in (values or [])], dtype=np.float64)


def _boxes(
    title: str, traces: list[tuple[str, dict[str, Any]]], x_title: str, **yaxis: Any
) -> go.Figure:
    """Box plots with every point drawn, A next to B: ``traces`` are ``(colour, box)``, the
    box's ``name``, ``x``, ``y``, ``customdata`` and ``hovertemplate``."""
    fig = go.Figure()
    for color, t in traces:
        fig.add_box(
            **t,
            marker={"color": color, "size": 5},
            line={"color": color},
            boxpoints="all",
            jitter=0.35,
            pointpos=0,
        )
    legend = {"orientation": "h", "y": -0.2, "x": 0}
    fig.update_layout(**base_layout(title, (60, 20, 50, 80), boxmode="group", legend=legend))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(**yaxis)
    return fig


def region_count_boxes(
    segments_a: Columns,
    segments_b: Columns,
    label_a: str,
    label_b: str,
    metric: str = "linear_pieces",
    title: str = "Regions along segments",
) -> go.Figure:
    """Box plots (every segment a point) of a per-segment count, ``metric`` (a key of
    ``COUNT_METRICS``), of A and B on the same segments (tables with ``kind`` and ``metric``
    columns at least): two box traces in A's and B's colours, x = segment kind."""
    if metric not in COUNT_METRICS:
        raise ValueError(f"metric={metric!r} should be one of {', '.join(COUNT_METRICS)}")
    axis, explanation = COUNT_METRICS[metric]
    if not segments_a.get(metric) and not segments_b.get(metric):
        return empty_figure("No segments were measured.", title)
    traces = []
    for table, name, color in ((segments_a, label_a, COLOR_A), (segments_b, label_b, COLOR_B)):
        kinds = [str(k) for k in table.get("kind") or []]
        values = _numbers(table.get(metric))
        if len(kinds) != len(values):
            raise ValueError(f"{name}: {len(kinds)} kinds but {len(values)} values of {metric}")
        name = plot_text(name)  # a model's name, drawn in the legend and the hover template
        traces.append(
            (
                color,
                {
                    "name": name,
                    "x": [KIND_LABELS.get(k, k) for k in kinds],
                    "y": values.tolist(),
                    "customdata": [KIND_HOVER.get(k, k) for k in kinds],
                    "hovertemplate": f"{name}<br>%{{y:g}} {axis.split(' (')[0]}<br>"
                    f"<i>{explanation}</i><br>%{{customdata}}<extra></extra>",
                },
            )
        )
    return _boxes(title, traces, "segment kind", title_text=axis, rangemode="tozero")


def distance_boxes(
    samples_a: Columns, samples_b: Columns, label_a: str, label_b: str, title: str = DISTANCE_TITLE
) -> go.Figure:
    """Per-sample distances to the own activation region's boundary and to the decision
    boundary, A next to B, on a log axis: two box traces (non-positive or non-finite
    distances left out). The tables have columns ``index``, ``region_distance``,
    ``decision_distance`` and ``decision_exact``, on the same samples."""
    traces = []
    for table, name, color in ((samples_a, label_a, COLOR_A), (samples_b, label_b, COLOR_B)):
        xs: list[str] = []
        ys: list[float] = []
        custom: list[list[Any]] = []
        index = list(table.get("index") or [])
        exact = list(table.get("decision_exact") or [])
        for metric, (label, explanation) in DISTANCE_METRICS.items():
            for i, v in enumerate(_numbers(table.get(metric))):
                if not (math.isfinite(v) and v > 0):
                    continue
                lower = metric == "decision_distance" and i < len(exact) and not exact[i]
                xs.append(label)
                ys.append(float(v))
                sample = index[i] if i < len(index) else i
                custom.append([sample, explanation + (" — lower bound" if lower else "")])
        name = plot_text(name)  # a model's name, drawn in the legend and the hover template
        traces.append(
            (
                color,
                {
                    "name": name,
                    "x": xs,
                    "y": ys,
                    "customdata": custom,
                    "hovertemplate": f"{name}<br>test sample #%{{customdata[0]}}: %{{y:.3g}}<br>"
                    "<i>%{customdata[1]}</i><extra></extra>",
                },
            )
        )
    if not any(t["y"] for _, t in traces):
        return empty_figure("No per-sample distances were measured.", title)
    x_title = "distance of each test sample"
    return _boxes(
        title, traces, x_title, title_text=DISTANCE_AXIS, type="log", dtick=1, exponentformat="e"
    )


# region maps --------------------------------------------------------------------------------


def merge_polygons(
    polygons: Sequence[Sequence[Sequence[float]]], predicted: Sequence[int]
) -> dict[int, tuple[list[float | None], list[float | None]]]:
    """``[P]`` polygons (lists of ``[u, v]`` vertices) grouped by their ``[P]`` predicted
    classes as ``{class: (xs, ys)}`` of one ``fill="toself"`` trace each, ascending: each
    polygon closed (its first vertex repeated) and followed by a None, so ``k`` polygons leave
    ``k`` Nones; polygons under 3 vertices skipped. ValueError when the lengths differ."""
    if len(polygons) != len(predicted):
        raise ValueError(f"{len(polygons)} polygons but {len(predicted)} predicted classes")
    merged: dict[int, tuple[list[float | None], list[float | None]]] = {}
    for poly, cls in zip(polygons, predicted, strict=True):
        if len(poly) < 3:
            continue
        xs, ys = merged.setdefault(int(cls), ([], []))
        xs.extend([*(float(u) for u, _ in poly), float(poly[0][0]), None])
        ys.extend([*(float(v) for _, v in poly), float(poly[0][1]), None])
    return dict(sorted(merged.items()))


def boundary_lines(
    edges: Sequence[Sequence[Sequence[float]]],
) -> tuple[list[float | None], list[float | None]]:
    """Decision-boundary edges ``[[u1, v1], [u2, v2]]`` as one line trace's ``x``/``y``."""
    xs = [v for (u1, _), (u2, _) in edges for v in (float(u1), float(u2), None)]
    ys = [v for (_, v1), (_, v2) in edges for v in (float(v1), float(v2), None)]
    return xs, ys


def _sample_marks(
    fig: go.Figure, points: Mapping[str, Any], domain: Sequence[float], names: Sequence[str]
) -> None:
    """Mark p0, p1, p2: a marker when inside the map, else an arrow at the edge towards it."""
    u0, u1, v0, v1 = domain
    tol = 1e-9 * max(u1 - u0, v1 - v0, 1.0)
    inside: list[tuple[float, float, str]] = []
    for k, key in enumerate(("p0", "p1", "p2")):
        if key not in points:
            continue
        u, v = (float(c) for c in points[key])
        name = plot_text(names[k]) if k < len(names) else key
        if u0 - tol <= u <= u1 + tol and v0 - tol <= v <= v1 + tol:
            inside.append((u, v, name))
            continue
        # an arrow at the map's edge, pointing from the centre towards the sample
        cx, cy = min(max(u, u0), u1), min(max(v, v0), v1)
        dx, dy = cx - (u0 + u1) / 2, cy - (v0 + v1) / 2
        norm = math.hypot(dx, dy) or 1.0
        fig.add_annotation(
            x=cx,
            y=cy,
            xref="x",
            yref="y",
            text=f"{name} →" if dx >= abs(dy) else f"↑ {name}",
            showarrow=True,
            arrowhead=2,
            arrowsize=1.2,
            arrowwidth=1.5,
            arrowcolor=SAMPLE_COLOR,
            ax=-70 * dx / norm,
            ay=70 * dy / norm,  # screen y points down
            font={"size": 11, "color": SAMPLE_COLOR},
            bgcolor="rgba(255, 255, 255, 0.85)",
        )
    if inside:
        xs, ys, text = zip(*inside, strict=True)
        fig.add_scatter(
            x=list(xs),
            y=list(ys),
            mode="markers+text",
            name="test samples spanning the plane",
            cliponaxis=False,
            text=list(text),
            textposition="top right",
            textfont={"size": 11, "color": SAMPLE_COLOR},
            marker={
                "size": 12,
                "color": "white",
                "symbol": "star",
                "line": {"color": SAMPLE_COLOR, "width": 1.5},
            },
            hovertemplate="%{text}<br>(u, v) = (%{x:.3g}, %{y:.3g})<extra></extra>",
        )


def region_map_figure(
    region_map: Mapping[str, Any],
    class_names: Sequence[str],
    title: str,
    sample_names: Sequence[str] | None = None,
) -> go.Figure:
    """The exact 2-D region map of one model: polygons filled by predicted class, the
    decision boundary, and the three samples spanning the plane.

    Args:
        region_map: ``GET /api/comparisons/{id}/regions/{model_id}/slice``: ``polygons``,
            ``predicted``, ``decision_boundary``, ``domain`` (u_min, u_max, v_min, v_max) and
            ``points``; or ``error`` when the map was over its region budget.
        class_names: ``[C]`` class names; the palette is indexed by class, so A and B agree.
        sample_names: names of p0, p1, p2 (e.g. "p0: test #12").

    Returns:
        A filled ``go.Scatter`` per predicted class present, a decision boundary line trace
        when there is one, a marker trace for the samples inside the map (an arrow at the
        edge for those outside).
    """
    if region_map.get("error"):
        return empty_figure(f"No region map: {region_map['error']}", title)
    polygons = region_map.get("polygons") or []
    if not polygons:
        return empty_figure("No region map was stored for this model.", title)
    merged = merge_polygons(polygons, region_map.get("predicted") or [])
    palette = class_palette(max(len(class_names), max(merged, default=-1) + 1))
    counts = {k: xs.count(None) for k, (xs, _ys) in merged.items()}
    fig = go.Figure()
    for k, (xs, ys) in merged.items():
        name = plot_text(class_names[k]) if 0 <= k < len(class_names) else f"class {k}"
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            fillcolor=_rgba(palette[k], FILL_ALPHA),
            line={"color": REGION_EDGE_COLOR, "width": 0.6},
            name=f"predicted {name}",
            legendgroup="classes",
            legendgrouptitle={"text": "region filled by the class it predicts"},
            hoveron="fills",
            hoverinfo="text",
            text=(
                f"predicted {name}: {counts[k]:,} polygons<br>"
                "<i>each polygon: one activation pattern, the network is affine on it</i>"
            ),
        )
    bx, by = boundary_lines(region_map.get("decision_boundary") or [])
    if bx:
        line = {"color": BOUNDARY_COLOR, "width": 2.2}
        fig.add_scatter(
            x=bx, y=by, mode="lines", name="decision boundary", line=line, hoverinfo="skip"
        )
    extent = float(region_map.get("extent") or 1.0)
    domain = [float(d) for d in region_map.get("domain") or [0.0, extent, 0.0, extent]]
    points = region_map.get("points") or {"p0": [0, 0], "p1": [1, 0], "p2": [0, 1]}
    _sample_marks(fig, points, domain, list(sample_names or ["p0", "p1", "p2"]))
    legend = {"orientation": "h", "y": -0.16, "x": 0, "font": {"size": 11}}
    fig.update_layout(**base_layout(title, (60, 20, 50, 110), legend=legend, hovermode="closest"))
    plain = {"constrain": "domain", "showgrid": False, "zeroline": False}
    fig.update_xaxes(title_text="u: fraction of the way from p0 to p1", range=domain[:2], **plain)
    fig.update_yaxes(
        title_text="v: fraction of the way from p0 to p2",
        range=domain[2:],
        scaleanchor="x",
        scaleratio=1,
        **plain,
    )
    return fig
