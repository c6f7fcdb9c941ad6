"""Recall distortion and feature geometry of A (original) against B (pruned), as figures.

- :func:`balance_scatter`: recall balance per class before (Bn^c) and after (Bn^c_t) pruning
  with the y = x line and the alpha_t line (Good et al., NeurIPS 2022; SCIENCE.md section 2).
- :func:`local_geometry_scatter`: one class's samples, angle to the true class direction
  against z-scored feature length, A and B overlaid or as arrows from A to B (Li et al.,
  IEEE TVCG 2024; SCIENCE.md section 1).
- :func:`parallel_geometry`: parallel coordinates of the angles and the three metrics.

Plain ``go.Scatter`` throughout: the page allows few WebGL figures and the embeddings own them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Sequence
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    LEGEND_BELOW,
    RAW_LAYOUT,
    base_layout,
    colorbar,
    empty_figure,
    finite,
    plot_text,
    plot_texts,
    stepped_scale,
)
from frontend.figures.embedding import category_palette

GeometryMode = Literal["overlay", "diff"]
GEOMETRY_MODES: tuple[GeometryMode, ...] = ("overlay", "diff")

MAX_LOCAL_POINTS = 2000  # per class; more are subsampled (fixed seed)
MAX_PARALLEL_LINES = 1500  # more lines block the browser for seconds; fixed subset beyond
MAX_PARALLEL_CLASSES = 10  # past this, one axis per class is unreadable (Li et al. 2024)
TOP_K = 5
SUBSAMPLE_SEED = 0
SELECTED_OPACITY = 1.0
UNSELECTED_OPACITY = 0.12
POINT_OPACITY = 0.75
ARROW_SIZE = 9
INTENSIFIED_COLOR = "#cf222e"  # the class moved further from the average than before
RELAXED_COLOR = "#59636e"
IDENTITY_COLOR = "#8c959f"
ALPHA_COLOR = "#8250df"
FADED_COLOR = "#c8ced6"
ZERO_LINE = {"zeroline": True, "zerolinecolor": "#d0d7de"}
# class labels of the recall-distortion scatter: placed (in estimated screen pixels) where they
# hit no other label and no other point; plotly.js never moves a text label by itself
LABEL_POSITIONS = (  # in order of preference
    "top center",
    "bottom center",
    "middle right",
    "middle left",
    "top right",
    "top left",
    "bottom right",
    "bottom left",
)
LABEL_FONT_PX = 11
LABEL_CHAR_PX = 0.62 * LABEL_FONT_PX  # mean glyph width of the sans-serif UI fonts
LABEL_LINE_PX = 1.3 * LABEL_FONT_PX
LABEL_GAP_PX = 2.0
# the plot area the figure gets on the compare page (half the width, a 460 px tall graph less
# the margins), on the small side: a label kept apart there is kept apart on a larger screen
PLOT_AREA_PX = (440.0, 320.0)

BN_HOVER = (
    "Bn = (class recall − accuracy) / accuracy: how far the class sits above (+) or below (−) "
    "the model's average"
)
ANGLE_HOVER = "to the true class direction; smaller is closer to the class"
LENGTH_HOVER = "feature norm ‖f‖ in std. dev. from the model's mean norm"
MARGIN_HOVER = "signed distance to the nearest decision boundary; < 0: misclassified"
ANGLE_AXIS = "angle to the true class direction θ<sub>y</sub> (degrees)"
LENGTH_AXIS = "feature length ‖f‖, z-scored within each model (σ)"
PARALLEL_NOTE_TOP_K = (
    "{n} classes: showing each sample's {k} nearest class directions (smallest angles, in "
    "order) instead of one axis per class; parallel coordinates do not scale past ~{m} classes."
)


def _ordinal(n: int) -> str:
    """1 -> "1st", 12 -> "12th"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _as_array(values: Sequence[Any] | np.ndarray, what: str, n: int | None = None) -> np.ndarray:
    if isinstance(values, np.ndarray):
        arr = values.astype(np.float64)
    else:
        arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} should be one value per sample, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} values but there are {n} samples")
    return arr


def alpha_reading(alpha: float | None) -> str:
    """The annotation of alpha_t: ``"α_t = 1.23 (> 1: intensification)"``."""
    value = finite(alpha)
    if value is None:
        return "α_t undefined (no class is off the average before pruning)"
    if value > 1:
        meaning = "> 1: intensification"
    elif value < 0:
        meaning = "< 0: classes swapped sides of the average"
    elif value < 1:
        meaning = "< 1: de-intensification"
    else:
        meaning = "= 1: unchanged"
    return f"α_t = {value:.2f} ({meaning})"


def _symmetric_limits(values: Sequence[float]) -> tuple[float, float]:
    lo = min([0.0, *values])
    hi = max([0.0, *values])
    pad = 0.12 * (hi - lo) or 0.1
    return lo - pad, hi + pad


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in plot pixels, y upwards


def _to_pixels(
    xs: Sequence[float], ys: Sequence[float], x_range: Sequence[float], y_range: Sequence[float]
) -> list[tuple[float, float]]:
    (x0, x1), (y0, y1) = x_range, y_range
    width, height = PLOT_AREA_PX
    sx, sy = width / ((x1 - x0) or 1.0), height / ((y1 - y0) or 1.0)
    return [((x - x0) * sx, (y - y0) * sy) for x, y in zip(xs, ys, strict=True)]


def _label_box(x: float, y: float, text: str, position: str, marker_px: float) -> Box:
    """Where plotly.js draws ``text`` at ``position`` of a marker ``marker_px`` wide at (x, y)."""
    w, h = LABEL_CHAR_PX * max(len(text), 1), LABEL_LINE_PX
    r = marker_px / 2 + LABEL_GAP_PX
    vertical, horizontal = position.split()
    if horizontal == "center":
        left = x - w / 2
    else:  # a corner or side: the text starts (ends) just past the marker
        reach = r if vertical == "middle" else 0.7 * r
        left = x + reach if horizontal == "right" else x - reach - w
    if vertical == "middle":
        bottom = y - h / 2
    else:
        reach = r if horizontal == "center" else 0.7 * r
        bottom = y + reach if vertical == "top" else y - reach - h
    return left, bottom, left + w, bottom + h


def label_boxes(
    xs: Sequence[float],
    ys: Sequence[float],
    texts: Sequence[str],
    positions: Sequence[str],
    x_range: Sequence[float],
    y_range: Sequence[float],
    marker_px: Sequence[float],
) -> list[Box]:
    """Estimated boxes ``(x0, y0, x1, y1)`` (plot pixels of a ``PLOT_AREA_PX`` plot, y upwards)
    of the labels ``texts`` drawn at ``positions`` next to the points ``(xs, ys)`` (data
    coordinates on axes spanning ``x_range`` and ``y_range``) with markers ``marker_px`` wide."""
    points = _to_pixels(xs, ys, x_range, y_range)
    return [
        _label_box(x, y, html.unescape(t), p, m)
        for (x, y), t, p, m in zip(points, texts, positions, marker_px, strict=True)
    ]


def _covered(box: Box, boxes: np.ndarray) -> float:
    """The area of ``box`` that the ``[K, 4]`` ``boxes`` cover, summed over them."""
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return float((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())


def place_labels(
    xs: Sequence[float],
    ys: Sequence[float],
    texts: Sequence[str],
    x_range: Sequence[float],
    y_range: Sequence[float],
    marker_px: Sequence[float],
    first: int | None = None,
) -> tuple[list[str], list[bool]]:
    """A ``textposition`` for each point's label and whether to draw it at all.

    Greedy, point by point (``first``, e.g. the selected class, before the rest): the first of
    ``LABEL_POSITIONS`` where the label covers no label placed before it, no other point and
    stays in the plot; failing that the one covering the least. A label that would still cover
    another label is not drawn (the point's hover still names it): two names on top of each
    other read as neither.
    """
    n = len(xs)
    points = _to_pixels(xs, ys, x_range, y_range)
    plot = np.asarray([[0.0, 0.0, *PLOT_AREA_PX]])
    half = np.asarray(marker_px, dtype=np.float64).reshape(n, 1) / 2
    centres = np.asarray(points, dtype=np.float64).reshape(n, 2)
    markers = np.hstack([centres - half, centres + half])
    order = list(range(n))
    if first is not None and 0 <= first < n:
        order.remove(first)
        order.insert(0, first)
    placed = np.zeros((n, 4))
    k = 0  # labels placed so far: placed[:k]
    positions, shown = ["top center"] * n, [False] * n
    for i in order:
        text = html.unescape(texts[i])
        others = np.delete(markers, i, axis=0)
        best: tuple[float, float, int] | None = None
        for rank, position in enumerate(LABEL_POSITIONS):
            box = _label_box(*points[i], text, position, marker_px[i])
            on_labels = _covered(box, placed[:k])
            outside = (box[2] - box[0]) * (box[3] - box[1]) - _covered(box, plot)
            cost = (on_labels + _covered(box, others) + outside, on_labels, rank)
            if best is None or cost < best:
                best = cost
                positions[i] = position
            if cost[0] == 0:
                break
        assert best is not None
        if best[1] == 0 or i == first:
            shown[i] = True
            placed[k] = _label_box(*points[i], text, positions[i], marker_px[i])
            k += 1
    return positions, shown


def ratio_label(t: Any, sparsity: Any = None, t_all: Any = None) -> str:
    """``t = 10× of prunable weights (90% sparse) · 8.2× of all parameters``: both pruning
    ratios of SCIENCE.md sect. 7, each saying what it counts; empty without ``t``."""
    ratio = finite(t)
    if ratio is None:
        return ""
    text = f"t = {ratio:.3g}× of prunable weights"
    if finite(sparsity) is not None:
        text += f" ({100 * float(sparsity or 0):.3g}% sparse)"
    overall = finite(t_all)
    if overall is not None:
        text += f" · {overall:.3g}× of all parameters"
    return text


def direction_angle_bars(
    class_names: Sequence[str],
    degrees: Sequence[float | None] | None,
    norm_a: Sequence[float | None] | None = None,
    norm_b: Sequence[float | None] | None = None,
    *,
    selected_class: int | None = None,
    reason: str | None = None,
) -> go.Figure:
    """How far pruning turned each class direction: angle(W_A[c], W_B[c]) per class.

    SCIENCE.md sect. 1 and 7 (class-direction angle between the original and the pruned
    model, only when the feature widths match).

    Args:
        class_names: ``[C]`` class names in class-index order.
        degrees: ``[C]`` angles in degrees (None for a class whose direction is zero in a
            model), or None when they are not defined (``reason`` says why).
        norm_a, norm_b: ``[C]`` ||W_A[c]|| and ||W_B[c]||, shown on hover.
        selected_class: the class drawn in B's colour and outlined, or None.
        reason: why there are no angles (shown instead of bars).

    Returns:
        One bar trace ``"angles"``: x the class names, y the degrees (None left empty),
        ``customdata`` ``[class index, ||W_A||, ||W_B||]``.
    """
    title = "Class directions: angle A → B"
    if degrees is None:
        return empty_figure(reason or "The compare job did not compute class directions.", title)
    n = len(class_names)
    if len(degrees) != n:
        raise ValueError(
            f"direction_angle_bars needs one angle per class: {n} class names, "
            f"{len(degrees)} angles"
        )
    norms_a = list(norm_a) if norm_a is not None and len(norm_a) == n else [None] * n
    norms_b = list(norm_b) if norm_b is not None and len(norm_b) == n else [None] * n
    values = [finite(v) for v in degrees]
    colors = [COLOR_B if i == selected_class else FADED_COLOR for i in range(n)]
    fig = go.Figure()
    fig.add_bar(
        name="angles",
        x=plot_texts(class_names),
        y=values,
        customdata=[
            [i, finite(a), finite(b)] for i, (a, b) in enumerate(zip(norms_a, norms_b, strict=True))
        ],
        marker={
            "color": colors,
            "line": {
                "color": "#1f2328",
                "width": [2 if i == selected_class else 0 for i in range(n)],
            },
        },
        hovertemplate=(
            "<b>%{x}</b><br>angle between A's and B's class direction: %{y:.2f}°<br>"
            "‖W_A‖ = %{customdata[1]:.3g} · ‖W_B‖ = %{customdata[2]:.3g}<extra></extra>"
        ),
        showlegend=False,
    )
    top = max([v for v in values if v is not None], default=0.0)
    fig.update_layout(
        base_layout(
            title,
            (60, 20, 50, 60),
            yaxis={"title": "degrees", "rangemode": "tozero", "range": [0, max(1.0, 1.15 * top)]},
            xaxis={"title": "class", "type": "category"},
            bargap=0.25,
        )
    )
    return fig


def intrinsic_dimension_figure(
    class_names: Sequence[str],
    dim_a: dict[str, Any] | None,
    dim_b: dict[str, Any] | None,
    *,
    selected_class: int | None = None,
) -> go.Figure:
    """TwoNN intrinsic dimension of the penultimate features, overall and per class, A next
    to B with bootstrap intervals (SCIENCE.md sect. 7; Facco et al. 2017, Ansuini et al. 2019).

    Args:
        class_names: ``[C]`` class names in class-index order.
        dim_a, dim_b: ``{"overall": est, "classes": [C ests]}`` with ``est`` =
            ``{"d", "low", "high", "n", "duplicates"}`` (``d`` None: too few samples).
        selected_class: its column is shaded, or None.

    Returns:
        Trace 0 model A, trace 1 model B: ``x`` positions 0 ("all") and 1..C (the classes,
        A left of B), ``y`` the estimates, ``error_y`` the intervals; ``customdata``
        ``[low, high, n]``.
    """
    title = "Intrinsic dimension (TwoNN)"
    if not dim_a or not dim_b:
        return empty_figure("The compare job did not estimate intrinsic dimensions.", title)
    n = len(class_names)
    labels = ["all", *plot_texts(class_names)]
    fig = go.Figure()
    for offset, (name, dims, color) in zip(
        (-0.15, 0.15), (("A", dim_a, COLOR_A), ("B", dim_b, COLOR_B)), strict=True
    ):
        ests = [dims.get("overall") or {}, *(list(dims.get("classes") or [])[:n])]
        ests += [{}] * (n + 1 - len(ests))
        ys = [finite(e.get("d")) for e in ests]
        ups = [
            (finite(e.get("high")) or y) - y if y is not None else None
            for e, y in zip(ests, ys, strict=True)
        ]
        downs = [
            y - (finite(e.get("low")) or y) if y is not None else None
            for e, y in zip(ests, ys, strict=True)
        ]
        fig.add_scatter(
            name=f"model {name}",
            x=[i + offset for i in range(n + 1)],
            y=ys,
            mode="markers",
            marker={"color": color, "size": 8},
            error_y={
                "type": "data",
                "array": ups,
                "arrayminus": downs,
                "color": color,
                "thickness": 1.2,
                "width": 3,
            },
            text=labels,
            customdata=[[e.get("low"), e.get("high"), e.get("n")] for e in ests],
            hovertemplate=(
                f"<b>%{{text}}</b> · model {name}<br>d = %{{y:.2f}} "
                "(95% bootstrap interval %{customdata[0]:.2f} to %{customdata[1]:.2f})"
                "<br>from %{customdata[2]} samples<extra></extra>"
            ),
        )
    if selected_class is not None and 0 <= selected_class < n:
        x = selected_class + 1
        fig.add_vrect(x0=x - 0.45, x1=x + 0.45, fillcolor="#eaeef2", line_width=0, layer="below")
    fig.add_vline(x=0.5, line={"color": "#d0d7de", "width": 1})
    fig.update_layout(
        base_layout(
            title,
            (60, 20, 50, 60),
            xaxis={
                "tickmode": "array",
                "tickvals": list(range(n + 1)),
                "ticktext": labels,
                "range": [-0.6, n + 0.6],
            },
            yaxis={"title": "dimension", "rangemode": "tozero"},
            legend=LEGEND_BELOW,
        )
    )
    return fig


def balance_scatter(
    class_names: Sequence[str],
    bn_a: Sequence[float | None],
    bn_b: Sequence[float | None],
    alpha: float | None,
    *,
    t: float | None = None,
    sparsity: float | None = None,
    selected_class: int | None = None,
    t_all: float | None = None,
) -> go.Figure:
    """Normalised recall balance per class, before (x) against after (y) pruning.

    Args:
        class_names: ``[C]`` class names in class-index order.
        bn_a: ``[C]`` Bn^c = (R^c - A) / A of the original; None where undefined.
        bn_b: ``[C]`` Bn^c_t = (R^c_t - A_t) / A_t of the pruned model.
        alpha: model intensification alpha_t, the least-squares slope through the origin of
            Bn^c_t on Bn^c (None when undefined).
        t, sparsity: pruning ratio over the prunable weights, 1 / (1 - s), and sparsity of B,
            for the title.
        selected_class: a class drawn larger and outlined, or None.
        t_all: pruning ratio over all parameters (A's parameters / B's nonzero ones), also in
            the title (SCIENCE.md sect. 7: labels say which t).

    Returns:
        Trace 0 ("classes"): a point per class with both values (``text`` its name,
        ``customdata`` ``[class index, I^c_t]``, ``textposition`` and ``texttemplate`` per
        point from :func:`place_labels`: labels never drawn over each other, a name without
        room left to the hover); trace 1 the y = x line; trace 2, when alpha is defined, the
        alpha_t line; the annotation reads :func:`alpha_reading`.

    Raises:
        ValueError: when ``bn_a`` or ``bn_b`` is not one value per class.
    """
    n = len(class_names)
    if len(bn_a) != n or len(bn_b) != n:
        raise ValueError(
            f"balance_scatter needs one value per class: {n} class names, bn_a has "
            f"{len(bn_a)} values, bn_b has {len(bn_b)}"
        )
    title = "Recall distortion"
    subtitle = ratio_label(t, sparsity, t_all)  # on a second, smaller line: it is long
    heading = plot_text(title) + (f"<br><sup>{plot_text(subtitle)}</sup>" if subtitle else "")
    points = [
        (i, xa, yb)
        for i, (a, b) in enumerate(zip(bn_a, bn_b, strict=True))
        if (xa := finite(a)) is not None and (yb := finite(b)) is not None
    ]
    if not points:
        return empty_figure("No class has a recall balance before and after pruning.", title)
    index, xs, ys = (list(column) for column in zip(*points, strict=True))
    lo, hi = _symmetric_limits(xs + ys)
    ratios = [(y / x if x != 0 else None) for x, y in zip(xs, ys, strict=True)]
    # further from the average, on the same side, than before: intensified
    colors = [INTENSIFIED_COLOR if r is not None and r > 1 else RELAXED_COLOR for r in ratios]
    chosen = [i == selected_class for i in index]
    sizes = [14 if c else 9 for c in chosen]
    names = plot_texts(class_names[i] for i in index)
    first = chosen.index(True) if any(chosen) else None
    positions, shown = place_labels(xs, ys, names, (lo, hi), (lo, hi), sizes, first)
    fig = go.Figure()
    fig.add_scatter(
        name="classes",
        x=xs,
        y=ys,
        mode="markers+text",
        text=names,
        texttemplate=["%{text}" if s else "" for s in shown],
        textposition=positions,
        textfont={"size": LABEL_FONT_PX, "color": "#1f2328"},
        customdata=[[i, r] for i, r in zip(index, ratios, strict=True)],
        marker={
            "color": colors,
            "size": sizes,
            "line": {"color": "#1f2328", "width": [2 if c else 0 for c in chosen]},
        },
        hovertemplate=(
            "<b>%{text}</b><br>Bn before (A): %{x:+.1%} · after (B): %{y:+.1%}<br>"
            "I = after / before: %{customdata[1]:.2f} (> 1: further from the average)<br>"
            + BN_HOVER
            + "<extra></extra>"
        ),
        showlegend=False,
    )
    straight = {"mode": "lines", "hoverinfo": "skip"}  # the reference lines
    identity = {"color": IDENTITY_COLOR, "dash": "dash", "width": 1.5}
    fig.add_scatter(name="y = x: unchanged", x=[lo, hi], y=[lo, hi], line=identity, **straight)
    value = finite(alpha)
    if value is not None:
        # clip the line to the plotted square so a steep alpha does not stretch the axes
        bounds = [lo, hi] if value == 0 else sorted([lo / value, hi / value])
        x0, x1 = max(lo, bounds[0]), min(hi, bounds[1])
        name, line = f"α_t line: slope {value:.2f}", {"color": ALPHA_COLOR, "width": 2}
        fig.add_scatter(name=name, x=[x0, x1], y=[value * x0, value * x1], line=line, **straight)
    fig.add_annotation(
        text=alpha_reading(alpha),
        xref="paper",
        yref="paper",
        x=0.02,
        y=0.98,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        align="left",
        font={"size": 13, "color": ALPHA_COLOR},
        bgcolor="rgba(255,255,255,0.85)",
    )
    fig.update_layout(**base_layout(None, (70, 20, 60, 90), legend=LEGEND_BELOW), title=heading)
    for update, text in (
        (fig.update_xaxes, "Bn<sup>c</sup> before pruning (A), relative to accuracy"),
        (fig.update_yaxes, "Bn<sup>c</sup><sub>t</sub> after pruning (B)"),
    ):
        update(title_text=text, range=[lo, hi], tickformat="+.0%", **ZERO_LINE)
    return fig


def subsample(
    n: int, max_points: int, keep_first: Collection[int] = (), seed: int = SUBSAMPLE_SEED
) -> np.ndarray:
    """``[min(n, max_points)]`` sorted int64 positions of ``n`` rows, the same on every call:
    ``keep_first`` (e.g. the selected samples) first, then a random choice seeded by ``seed``."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    forced = np.unique(np.asarray([p for p in keep_first if 0 <= p < n], dtype=np.int64))
    forced = forced[:max_points]
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), forced)
    rng = np.random.default_rng(seed)
    extra = rng.choice(rest, size=max_points - forced.size, replace=False)
    return np.sort(np.concatenate([forced, extra]).astype(np.int64))


def _triples(start: np.ndarray, end: np.ndarray, digits: int) -> list[float | None]:
    """``[start[0], end[0], None, start[1], ...]`` rounded: one line segment per sample."""
    pairs = zip(start.tolist(), end.tolist(), strict=True)
    return [v for a, b in pairs for v in (round(a, digits), round(b, digits), None)]


def local_geometry_scatter(
    index: Sequence[int] | np.ndarray,
    angle_a: Sequence[float] | np.ndarray,
    length_a: Sequence[float] | np.ndarray,
    angle_b: Sequence[float] | np.ndarray,
    length_b: Sequence[float] | np.ndarray,
    *,
    class_name: str,
    label_a: str = "A: original",
    label_b: str = "B: pruned",
    mode: GeometryMode = "overlay",
    margin_a: Sequence[float] | np.ndarray | None = None,
    margin_b: Sequence[float] | np.ndarray | None = None,
    pred_a: Sequence[str] | None = None,
    pred_b: Sequence[str] | None = None,
    selected: Collection[int] | None = None,
    max_points: int = MAX_LOCAL_POINTS,
) -> go.Figure:
    """One class's samples: angle to the true class (x) against z-scored length (y), A and B.

    Args:
        index: ``[N]`` dataset indices of the class's test samples, as every other argument.
        angle_a, angle_b: ``[N]`` angle to the true class direction under A (B), degrees.
        length_a, length_b: ``[N]`` feature length under A (B), z-scored within that model.
        class_name: the class, for the title.
        label_a, label_b: legend names of A and B.
        mode: "overlay" (A's and B's points) or "diff" (an arrow from A's point to B's).
        margin_a, margin_b: ``[N]`` signed margins under A and B, shown on hover.
        pred_a, pred_b: ``[N]`` class names A and B predict, shown on hover.
        selected: dataset indices to highlight (the others are dimmed); None or empty: none.
        max_points: at most this many samples (selected first, then a fixed random subset).

    Returns:
        "overlay": trace 0 A's points (``COLOR_A``), trace 1 B's (``COLOR_B``). "diff": trace 0
        A's points, trace 1 the arrows A → B (``[x_A, x_B, None]`` per sample) and with a
        selection trace 2 the unselected samples' arrows, faded. Point traces carry
        ``customdata[:, 0]`` = dataset index and ``selectedpoints`` for the selection.

    Raises:
        ValueError: when the arrays differ in length or ``mode`` is unknown.
    """
    if mode not in GEOMETRY_MODES:
        raise ValueError(f"mode={mode!r} should be one of {GEOMETRY_MODES}")
    idx = np.asarray(index, dtype=np.int64)
    n = idx.shape[0]
    xa, ya = _as_array(angle_a, "angle_a", n), _as_array(length_a, "length_a", n)
    xb, yb = _as_array(angle_b, "angle_b", n), _as_array(length_b, "length_b", n)
    ma = None if margin_a is None else _as_array(margin_a, "margin_a", n)
    mb = None if margin_b is None else _as_array(margin_b, "margin_b", n)
    what = "A and B" if mode == "overlay" else "shift from A to B"
    title = f"Local geometry of class {class_name}: {what}"
    if n == 0:
        return empty_figure(f"No test samples of class {class_name}.", title)
    title = plot_text(title)  # from here on plotly markup, the class name escaped
    wanted = set(int(i) for i in (selected or ()))
    is_selected = np.isin(idx, np.asarray(sorted(wanted), dtype=np.int64))
    rows = subsample(n, max_points, keep_first=np.flatnonzero(is_selected).tolist())
    shown_selected = is_selected[rows]
    sel_positions = np.flatnonzero(shown_selected).tolist() if wanted else None
    dim = {"marker": {"opacity": UNSELECTED_OPACITY}}
    bright = {"marker": {"opacity": SELECTED_OPACITY}}

    def points(
        x: np.ndarray, y: np.ndarray, margin: Any, preds: Any, name: str, color: str, symbol: str
    ) -> dict:
        """One model's samples as a marker trace (dataset index, margin, prediction on hover)."""
        margins = [math.nan] * rows.size if margin is None else margin[rows].tolist()
        m = [finite(round(v, 3)) for v in margins]
        pred = ["—"] * rows.size if preds is None else [plot_text(preds[r]) for r in rows]
        name = plot_text(name)
        trace: dict[str, Any] = {
            "type": "scatter",
            "name": name,
            "x": np.round(x[rows], 3).tolist(),
            "y": np.round(y[rows], 4).tolist(),
            "mode": "markers",
            "marker": {
                "color": color,
                "size": 6 if mode == "overlay" else 5,
                "symbol": symbol,
                "opacity": POINT_OPACITY,
                "line": {"width": 0},
            },
            "customdata": [list(c) for c in zip(idx[rows].tolist(), m, pred, strict=True)],
            "hovertemplate": (
                f"<b>{name}</b> · sample %{{customdata[0]}} · predicted %{{customdata[2]}}<br>"
                f"angle %{{x:.1f}}°: {ANGLE_HOVER}<br>length %{{y:+.2f}} σ: {LENGTH_HOVER}<br>"
                f"margin %{{customdata[1]:.2f}}: {MARGIN_HOVER}<extra></extra>"
            ),
            "selectedpoints": sel_positions,
        }
        if wanted:
            trace |= {"selected": bright, "unselected": dim}
        return trace

    def arrows(which: np.ndarray, name: str, color: str, opacity: float) -> dict[str, Any]:
        """Arrows from A's point to B's of the samples ``which`` (a mask over ``rows``)."""
        shown = rows[which]
        k = shown.size
        return {
            "type": "scatter",
            "name": name,
            "x": _triples(xa[shown], xb[shown], 3),
            "y": _triples(ya[shown], yb[shown], 4),
            "mode": "lines+markers",
            "line": {"color": color, "width": 1},
            "marker": {
                "symbol": "arrow",
                "angleref": "previous",
                "size": [0, ARROW_SIZE, 0] * k,
                "color": color,
            },
            "opacity": opacity,
            "customdata": [c for i in idx[shown].tolist() for c in ([i], [i], None)],
            "hoverinfo": "skip",
            "connectgaps": False,
        }

    # traces built unvalidated: plotly.py's per-element validation of 10^3-point arrays cost
    # more than the rest of the callback (the unit tests validate the result)
    traces = [points(xa, ya, ma, pred_a, label_a, COLOR_A, "circle")]
    if mode == "overlay":
        traces.append(points(xb, yb, mb, pred_b, label_b, COLOR_B, "diamond"))
    else:
        chosen = shown_selected if wanted else np.ones(rows.size, dtype=bool)
        traces.append(arrows(chosen, plot_text(f"A → {label_b}"), COLOR_B, 0.8))
        if wanted:
            traces.append(arrows(~chosen, "not selected", FADED_COLOR, 0.5))
    notes = []
    if rows.size < n:
        notes.append(f"{rows.size:,} of {n:,} samples shown (fixed random subset)")
    if wanted:
        k = int(shown_selected.sum())
        notes.append(
            f"{k:,} selected sample{'s' if k != 1 else ''} in this class"
            if k
            else "none of the selected samples is in this class"
        )
    if notes:
        title += f"<br><sup>{' · '.join(notes)}</sup>"
    layout = {
        **RAW_LAYOUT,
        "title": {"text": title},
        "dragmode": "select",
        "hovermode": "closest",
        "legend": LEGEND_BELOW,
        "margin": {"l": 70, "r": 20, "t": 60 if notes else 50, "b": 90},
        "xaxis": {"title": {"text": ANGLE_AXIS}, "ticksuffix": "°"},
        "yaxis": {"title": {"text": LENGTH_AXIS}, **ZERO_LINE},
    }
    return go.Figure(data=traces, layout=layout, _validate=False)


def nearest_class_angles(angles: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` (clipped to C) smallest of each sample's ``[N, C]`` angles to the class
    directions (NaN last), increasing, ``[N, k]``, and the ``[N, k]`` classes they belong to."""
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"angles should be [N, C], got shape {arr.shape}")
    k = max(0, min(int(k), arr.shape[1]))
    order = np.argsort(np.where(np.isnan(arr), np.inf, arr), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(arr, order, axis=1), order


def _range(values: np.ndarray) -> list[float]:
    """Axis range covering ``values``, rounded outwards (whole units past a span of 10)."""
    ok = values[np.isfinite(values)]
    if ok.size == 0:
        return [0.0, 1.0]
    lo, hi = float(ok.min()), float(ok.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    step = 1.0 if hi - lo > 10 else 0.1
    return [round(math.floor(lo / step) * step, 1), round(math.ceil(hi / step) * step, 1)]


def _values(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else round(v, 3) for v in values.tolist()]


def parallel_geometry(
    angles: Sequence[Sequence[float]] | np.ndarray,
    angle_true: Sequence[float] | np.ndarray,
    length_z: Sequence[float] | np.ndarray,
    margin: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    *,
    model_label: str,
    index: Sequence[int] | np.ndarray | None = None,
    selected: Collection[int] | None = None,
    top_k: int = TOP_K,
    max_classes: int = MAX_PARALLEL_CLASSES,
    max_lines: int = MAX_PARALLEL_LINES,
) -> go.Figure:
    """Parallel coordinates of one model's geometry: one line per test sample, coloured by its
    true class. Axes: the angle to every class direction (past ``max_classes`` classes the
    ``top_k`` nearest ones, "1st nearest class angle", ...), the angle to the true class, the
    z-scored length and the signed margin.

    Args:
        angles: ``[N, C]`` angle to each class direction, degrees.
        angle_true, length_z, margin: ``[N]`` angle to the true class (degrees), feature
            length z-scored within the model, signed margin (bias included).
        labels, class_names: ``[N]`` true class indices, ``[C]`` class names.
        model_label: which model, for the title ("A: resnet8").
        index: ``[N]`` dataset indices, needed with ``selected`` (only these are drawn).
        max_lines: at most this many lines (a fixed random subset beyond).

    Returns:
        A figure with one ``go.Parcoords`` trace; ``layout.meta`` holds ``{"note": ...}`` when
        the view is reduced (top-k, selection, subsample), for the page to show.
    """
    names = [str(c) for c in class_names]
    c = len(names)
    arr = np.asarray(angles, dtype=np.float64).reshape(-1, c) if c else np.zeros((0, 0))
    n = arr.shape[0]
    at = _as_array(angle_true, "angle_true", n)
    lz = _as_array(length_z, "length_z", n)
    mg = _as_array(margin, "margin", n)
    lab = np.asarray(labels, dtype=np.int64)
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} values but there are {n} samples")
    title = f"Global geometry of {model_label}"
    notes: list[str] = []
    keep = np.arange(n, dtype=np.int64)
    if selected:
        if index is None:
            raise ValueError("selected needs index: the dataset index of every row")
        idx = np.asarray(index, dtype=np.int64)
        keep = np.flatnonzero(np.isin(idx, np.asarray(sorted(set(selected)), dtype=np.int64)))
        notes.append(f"only the {keep.size:,} selected sample{'s' if keep.size != 1 else ''}")
    if keep.size == 0:
        message = "None of the selected samples." if selected else "No samples to draw."
        return empty_figure(message, title)
    if keep.size > max_lines:
        keep = keep[subsample(keep.size, max_lines)]
        notes.append(f"{max_lines:,} of {n:,} samples (fixed random subset)")
    arr, at, lz, mg, lab = arr[keep], at[keep], lz[keep], mg[keep], lab[keep]

    def dim(label: str, values: np.ndarray, span: list[float], fmt: str = ".0f") -> dict:
        return {"label": label, "values": _values(values), "range": span, "tickformat": fmt}

    if c > max_classes:
        values, _classes = nearest_class_angles(arr, top_k)
        axes = [f"{_ordinal(j + 1)} nearest class angle (°)" for j in range(values.shape[1])]
        notes.insert(0, PARALLEL_NOTE_TOP_K.format(n=c, k=values.shape[1], m=max_classes))
    else:
        values, axes = arr, [f"∠ {plot_text(name)} (°)" for name in names]
    angle_range = _range(np.concatenate([values.ravel(), at]))
    dims = [dim(label, values[:, j], angle_range) for j, label in enumerate(axes)]
    dims += [
        dim("∠ true class (°)", at, angle_range),
        dim("length (z, σ)", lz, _range(lz), ".1f"),
        dim("margin", mg, _range(mg), ".1f"),
    ]
    every = max(1, math.ceil(c / 20))
    trace = {
        "type": "parcoords",
        "dimensions": dims,
        "line": {
            "color": lab.tolist(),
            "colorscale": stepped_scale(category_palette(max(c, 1))),
            "cmin": -0.5,
            "cmax": max(c, 1) - 0.5,
            "showscale": True,
            "colorbar": colorbar(
                "true class",
                14,
                tickvals=list(range(0, c, every)),
                ticktext=plot_texts(names[::every]),
            ),
        },
        "labelangle": -20 if len(dims) > 10 else 0,
        "labelside": "top",
        "labelfont": {"size": 11},
        "tickfont": {"size": 10},
        "unselected": {"line": {"opacity": 0.05}},
    }
    layout = {
        **RAW_LAYOUT,
        "title": {"text": plot_text(title)},
        "meta": {"note": " · ".join(notes)},
        "margin": {"l": 60, "r": 40, "t": 110, "b": 30},
    }
    # unvalidated, as the local scatter: 10^3 lines x (classes + 3) axes of values
    return go.Figure(data=[trace], layout=layout, _validate=False)
