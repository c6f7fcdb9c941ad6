"""Linear regions of A and B (SCIENCE.md section 5): count and distance distributions, each
test sample's certified interval for its distance to the decision boundary, and the exact 2-D
region map of a plane through three test samples.

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
        "certified lower end of the L2 distance to the decision boundary: none is closer "
        "(exact inside the sample's own activation region)",
    ),
    "decision_upper": (
        "to the nearest decision crossing found",
        "upper end: L2 distance to the nearest decision crossing found along a few directions, "
        "an exact point on the decision boundary",
    ),
}
# the two ends of the decision interval in words (the view's note and the figure's hover)
LOWER_END = (
    "lower end: certified, no decision boundary is closer (exact inside the sample's own "
    "activation region)"
)
UPPER_END = (
    "upper end: the nearest decision crossing found along {n} directions, with its exact "
    "crossing point"
)
DIRECTION_WORDS: dict[str, str] = {
    "margin_gradient": "down the margin gradient",
    "towards_sample": "towards test sample #{target}",
}
EXACT_WORDS = "the decision boundary lies inside the sample's own activation region"
INTERVAL_TITLE = "Distance to the decision boundary, per test sample"
INTERVAL_AXIS = "L2 distance to the decision boundary (log scale)"
INTERVAL_OFFSET = 0.18  # A left of each sample's tick, B right of it
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
    ``decision_distance`` (the certified lower end) and ``decision_exact``, on the same
    samples, and, in results that have it, ``decision_upper`` (the nearest decision crossing
    found: a third group of each box trace)."""
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


# decision intervals -------------------------------------------------------------------------


def interval_directions(*tables: Columns) -> int | None:
    """Most rays walked for one sample in any of ``tables`` (``decision_rays``); None when no
    table has the column (results stored before the interval existed)."""
    rays = [int(v) for t in tables for v in (t.get("decision_rays") or []) if v is not None]
    return max(rays) if rays else None


def interval_sentence(n: int | None) -> str:
    """What each end of the decision interval is, in words; ``n`` directions walked."""
    if n is None:
        return f"{LOWER_END}; the upper end was not computed for these results."
    return f"{LOWER_END}; {UPPER_END.format(n=n)}."


def _interval_rows(table: Columns, n_dirs: int | None, class_names: Sequence[str]) -> list[dict]:
    """One dict per sample: index, lower, upper (NaN if none), exact, and the upper end's
    direction in words."""
    index = list(table.get("index") or [])
    lower = _numbers(table.get("decision_lower") or table.get("decision_distance"))
    has_upper = "decision_upper" in table
    upper = _numbers(table.get("decision_upper")) if has_upper else np.full(len(lower), np.nan)
    exact = list(table.get("decision_exact") or [])
    kind = list(table.get("decision_upper_direction") or [])
    target = list(table.get("decision_upper_target") or [])
    klass = list(table.get("decision_upper_class") or [])
    rows = []
    for i, lo in enumerate(lower):
        hi = float(upper[i]) if i < len(upper) else math.nan
        if math.isfinite(hi):
            k = str(kind[i]) if i < len(kind) and kind[i] else ""
            how = DIRECTION_WORDS.get(k, k).format(target=target[i] if i < len(target) else "?")
            c = klass[i] if i < len(klass) and klass[i] is not None else -1
            into = class_names[int(c)] if 0 <= int(c) < len(class_names) else f"class {c}"
            words = f"reached {how}, into {plot_text(into)}" if how else "reached"
        elif has_upper:
            words = f"no decision crossing found along the {n_dirs or 'few'} directions walked"
        else:
            words = "upper end not computed (results from before it existed)"
        rows.append(
            {
                "index": index[i] if i < len(index) else i,
                "lower": float(lo),
                "upper": hi,
                "exact": bool(exact[i]) if i < len(exact) and exact[i] is not None else False,
                "words": words,
            }
        )
    return rows


def _drawable(v: float) -> bool:
    return math.isfinite(v) and v > 0  # a log axis cannot show 0


Marks = tuple[list[float], list[float], list[list[Any]]]  # x, y, customdata [sample, words]


def _interval_marks(
    rows: Sequence[Mapping[str, Any]], position: Mapping[int, int], offset: float
) -> tuple[list[float | None], list[float | None], dict[str, Marks]]:
    """One model's interval segments (x, y with None between) and its ``lower``, ``upper``
    and ``exact`` markers; an exact sample gets its diamond only."""
    seg_x: list[float | None] = []
    seg_y: list[float | None] = []
    ends: dict[str, Marks] = {"lower": ([], [], []), "upper": ([], [], []), "exact": ([], [], [])}
    for r in rows:
        sample = int(r["index"])
        x, lo, hi = position[sample] + offset, r["lower"], r["upper"]
        found: list[tuple[str, float, str]] = []
        if r["exact"] and _drawable(lo):
            found.append(("exact", lo, r["words"] if math.isfinite(hi) else EXACT_WORDS))
        else:
            if _drawable(lo):
                up = f"the interval reaches up to {hi:.3g}" if math.isfinite(hi) else r["words"]
                found.append(("lower", lo, up))
            if _drawable(hi):
                found.append(("upper", hi, r["words"]))
            if _drawable(lo) and _drawable(hi):
                seg_x += [x, x, None]
                seg_y += [lo, hi, None]
        for end, y, words in found:
            ends[end][0].append(x)
            ends[end][1].append(y)
            ends[end][2].append([sample, words])
    return seg_x, seg_y, ends


def decision_interval_figure(
    samples_a: Columns,
    samples_b: Columns,
    label_a: str,
    label_b: str,
    class_names: Sequence[str] = (),
    title: str = INTERVAL_TITLE,
) -> go.Figure:
    """Each test sample's certified interval for its distance to the decision boundary, A
    left of the sample's tick and B right of it, on a log axis (SCIENCE.md section 5).

    Per model four traces (those with points): a vertical segment from the lower to the upper
    end (``"<label>: interval"``), the lower ends (triangle up, ``"<label>: certified lower
    end"``), the upper ends (triangle down, ``"<label>: nearest crossing found (upper
    end)"``) and the samples whose distance is exact (diamond, ``"<label>: exact"``, where
    both ends agree). Non-positive or missing ends are left out.

    Args:
        samples_a: A's samples table: ``index``, ``decision_lower`` (or, in results stored
            before the interval existed, only ``decision_distance``), ``decision_upper``,
            ``decision_exact``, ``decision_upper_direction``, ``decision_upper_target``,
            ``decision_upper_class``, ``decision_rays``.
        samples_b: B's, on the same samples.
        label_a: A's name.
        label_b: B's name.
        class_names: ``[C]`` names of the classes crossed into (hover).
        title: The figure's title.
    """
    n_dirs = interval_directions(samples_a, samples_b)
    tables = [
        (_interval_rows(table, n_dirs, class_names), label, color, offset)
        for table, label, color, offset in (
            (samples_a, label_a, COLOR_A, -INTERVAL_OFFSET),
            (samples_b, label_b, COLOR_B, INTERVAL_OFFSET),
        )
    ]
    order = sorted({int(r["index"]) for rows, *_ in tables for r in rows})
    position = {idx: k for k, idx in enumerate(order)}
    fig = go.Figure()
    lower_words = LOWER_END.split(": ", 1)[1]
    for rows, label, color, offset in tables:
        name = plot_text(label)
        seg_x, seg_y, ends = _interval_marks(rows, position, offset)
        common = {"legendgroup": name}
        if seg_x:
            fig.add_scatter(
                x=seg_x,
                y=seg_y,
                mode="lines",
                name=f"{name}: interval",
                line={"color": color, "width": 2},
                hoverinfo="skip",
                **common,
            )
        marks = (
            (
                "lower",
                f"{name}: certified lower end",
                "triangle-up",
                f"test sample #%{{customdata[0]}}: lower end %{{y:.3g}}<br><i>{lower_words}</i>",
            ),
            (
                "upper",
                f"{name}: nearest crossing found (upper end)",
                "triangle-down",
                "test sample #%{customdata[0]}: upper end %{y:.3g}<br><i>the nearest decision "
                "crossing found, an exact point on the decision boundary</i>",
            ),
            (
                "exact",
                f"{name}: exact",
                "diamond",
                "test sample #%{customdata[0]}: exact distance %{y:.3g}<br><i>both ends "
                "agree: no decision boundary is closer, and one is this far</i>",
            ),
        )
        for key, trace_name, symbol, hover in marks:
            xs, ys, cd = ends[key]
            if not xs:
                continue
            fig.add_scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=trace_name,
                customdata=cd,
                marker={"color": color, "symbol": symbol, "size": 9 if key == "exact" else 8},
                hovertemplate=f"{name}<br>{hover}<br>%{{customdata[1]}}<extra></extra>",
                **common,
            )
    if not fig.data:
        return empty_figure("No distances to the decision boundary were measured.", title)
    legend = {"orientation": "h", "y": -0.22, "x": 0, "font": {"size": 11}}
    fig.update_layout(**base_layout(title, (60, 20, 50, 110), legend=legend, hovermode="closest"))
    fig.update_xaxes(
        title_text="test sample",
        tickvals=list(range(len(order))),
        ticktext=[f"#{i}" for i in order],
        range=[-0.5, len(order) - 0.5],
        showgrid=False,
    )
    fig.update_yaxes(title_text=INTERVAL_AXIS, type="log", dtick=1, exponentformat="e")
    return fig


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
