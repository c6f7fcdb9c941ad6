"""Figures of one flagged sample: top-5 probabilities of A and B, and geometric attribution.

Geometric attribution (Li et al. 2024, SCIENCE.md section 1): the image is occluded one patch
at a time and the change (occluded − clean) of the sample's angle to its true class direction,
its feature length ‖f‖ and its signed margin is recorded per patch, for each model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    DIVERGING_SCALE,
    base_layout,
    centred,
    colorbar,
    empty_figure,
    finite,
    plot_text,
    plot_texts,
)

ATTRIBUTION_METRICS: tuple[str, ...] = ("angle", "length", "margin")
# colour-bar titles: what a cell's value is, with its unit
METRIC_UNITS = {"angle": "Δ angle (°)", "length": "Δ length ‖f‖", "margin": "Δ margin"}
METRIC_HOVER = {
    "angle": "change of the angle to the true class direction when this patch is occluded",
    "length": "change of the feature length ‖f‖ when this patch is occluded",
    "margin": "change of the signed margin when this patch is occluded; < 0: nearer a boundary",
}
DIFF_TITLE = "B − A"
PROB_AXIS = "probability"
TOP5_HOVER = "%{y}: %{x:.1%}<extra>%{fullData.name}</extra>"
ROW_HEIGHT_PX = 190
TITLE_HEIGHT_PX = 70


def attribution_height(n_metrics: int = len(ATTRIBUTION_METRICS)) -> int:
    """Pixel height of :func:`attribution_heatmaps` with ``n_metrics`` rows (for its Graph)."""
    return TITLE_HEIGHT_PX + ROW_HEIGHT_PX * n_metrics


def _class_name(value: Any, class_names: Sequence[str]) -> str:
    """A top-5 entry's label as a class name (labels may be indices or names)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        i = int(value)
        return str(class_names[i]) if 0 <= i < len(class_names) else f"class {i}"
    return str(value)


def top5_bars(
    top5_a: Sequence[Mapping[str, Any]],
    top5_b: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    *,
    label_a: str = "A",
    label_b: str = "B",
    true_label: Any = None,
    title: str | None = "Top-5 probabilities",
) -> go.Figure:
    """Horizontal bars of A's and B's five most probable classes, side by side per class.

    Args:
        top5_a, top5_b: ``[{"label", "prob"}]`` of A and B, most probable first; ``label`` a
            class index (into the ``[C]`` ``class_names``) or name.
        label_a, label_b: legend names of A and B (drawn in ``COLOR_A`` and ``COLOR_B``).
        true_label: the sample's true class (index or name); its tick is marked "(true)".
        title: figure title; None for none (a heading outside says what it is).

    Returns:
        Two ``bar`` traces (A, B), ``orientation="h"``; ``y`` = the union of both top-5s, the
        most probable (of either model) at the top, ``x`` = each model's probability (None
        where the class is not in that model's top 5).
    """
    prob_a = {_class_name(e.get("label"), class_names): e.get("prob") for e in top5_a}
    prob_b = {_class_name(e.get("label"), class_names): e.get("prob") for e in top5_b}
    if not prob_a and not prob_b:
        return empty_figure("No probabilities for this sample.", title or None)

    def best(name: str) -> float:
        values = [float(p) for p in (prob_a.get(name), prob_b.get(name)) if p is not None]
        return max(values, default=0.0)

    names = sorted(dict.fromkeys([*prob_a, *prob_b]), key=lambda n: -best(n))
    truth = None if true_label is None else _class_name(true_label, class_names)
    fig = go.Figure()
    shown = plot_texts(names)  # the category values: plotly.js draws them as its markup
    for probs, name, color in ((prob_a, label_a, COLOR_A), (prob_b, label_b, COLOR_B)):
        fig.add_bar(
            y=shown,
            x=[None if (p := probs.get(n)) is None else float(p) for n in names],
            name=plot_text(name),
            orientation="h",
            marker={"color": color},
            hovertemplate=TOP5_HOVER,
        )
    ticks = [f"<b>{s}</b> (true)" if n == truth else s for n, s in zip(names, shown, strict=True)]
    legend = {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"}
    margin = (110, 20, 50 if title else 30, 45)
    title = title and plot_text(title)
    fig.update_layout(
        **base_layout(None, margin, title=title, barmode="group", bargap=0.25, legend=legend)
    )
    fig.update_xaxes(title=PROB_AXIS, range=[0, 1], tickformat=".0%")
    fig.update_yaxes(
        autorange="reversed", tickmode="array", tickvals=shown, ticktext=ticks, type="category"
    )
    return fig


def _grid(values: Any) -> list[list[float | None]]:
    """A 2-D list of floats with None for missing or non-finite cells."""
    return [[finite(v) for v in row] for row in values or []]


def attribution_heatmaps(
    maps_a: Mapping[str, Any],
    maps_b: Mapping[str, Any],
    *,
    label_a: str = "A",
    label_b: str = "B",
    metrics: Sequence[str] = ATTRIBUTION_METRICS,
    base_a: Mapping[str, Any] | None = None,
    base_b: Mapping[str, Any] | None = None,
    patch: int | None = None,
    stride: int | None = None,
    rows: Sequence[int] | None = None,
    cols: Sequence[int] | None = None,
) -> go.Figure:
    """Occlusion maps of the change of each metric, for A, for B and B − A.

    Args:
        maps_a: metric name -> ``(rows, cols)`` grid of A: the metric of the image with that
            patch occluded minus the metric of the clean image.
        maps_b: the same for B, on the same grid.
        label_a, label_b: column titles of A and B.
        metrics: the rows, in order (a subset of ``ATTRIBUTION_METRICS``).
        base_a, base_b: metric -> A's (B's) value on the clean image (shown in the hover).
        patch, stride: occluding patch size and step between patches in pixels, for the title.
        rows, cols: top (left) pixel of each grid row's (column's) patches, for the hover.

    Returns:
        ``3 x len(metrics)`` heatmap traces, row-major (metric by metric: A, B, B − A), a row
        sharing the diverging scale with ``zmid`` 0 and the range ``[-m, m]``, ``m`` its largest
        absolute value; the row's B − A trace carries its colour bar (titled with the unit).
        Row 0 of a grid is drawn at the top. ValueError when A's and B's grids differ.
    """
    title = "Geometric attribution: change when a patch is occluded"
    shown = [m for m in metrics if m in maps_a and m in maps_b]
    if not shown:
        return empty_figure("No attribution maps.", title)
    fig = make_subplots(
        rows=len(shown),
        cols=3,
        column_titles=[plot_text(label_a), plot_text(label_b), DIFF_TITLE],
        horizontal_spacing=0.04,
        vertical_spacing=0.06,
    )
    for r, metric in enumerate(shown, start=1):
        za, zb = _grid(maps_a[metric]), _grid(maps_b[metric])
        if len(za) != len(zb) or any(len(a) != len(b) for a, b in zip(za, zb, strict=False)):
            raise ValueError(
                f"the maps of A ({len(za)} rows) and B ({len(zb)} rows) should have the same grid"
            )
        zd = [
            [None if x is None or y is None else y - x for x, y in zip(ra, rb, strict=True)]
            for ra, rb in zip(za, zb, strict=True)
        ]
        ys, xs = _pixels(rows, len(za)), _pixels(cols, len(za[0]) if za else 0)
        where = "patch at pixel row %{y}, column %{x}" if ys else "patch row %{y}, column %{x}"
        m = max(
            (abs(v) for g in (za, zb, zd) for row in g for v in row if v is not None), default=0
        )
        unit = METRIC_UNITS.get(metric, f"Δ {metric}")
        bases = [(base_a or {}).get(metric), (base_b or {}).get(metric), None]
        for c, (z, base) in enumerate(zip((za, zb, zd), bases, strict=True), start=1):
            clean = "" if base is None else f"<br>clean image: {float(base):.3g}"
            fig.add_heatmap(
                z=z,
                x=xs,
                y=ys,
                colorscale=DIVERGING_SCALE,
                **centred(m or 1.0),
                showscale=c == 3,
                colorbar=colorbar(unit),
                xgap=1,
                ygap=1,
                name=plot_text(f"{metric}: {(label_a, label_b, DIFF_TITLE)[c - 1]}"),
                hovertemplate=(
                    f"{where}<br>{unit}: %{{z:+.3g}}{clean}"
                    f"<br><i>{METRIC_HOVER.get(metric, '')}</i><extra></extra>"
                ),
                row=r,
                col=c,
            )
        fig.update_yaxes(title_text=metric, row=r, col=1)
        # each row's colour bar beside that row (the row's B − A trace holds it)
        lo, hi = fig.layout[f"yaxis{3 * r}"].domain
        fig.data[-1].colorbar.update(y=(lo + hi) / 2, len=hi - lo, yanchor="middle")
    for k in range(1, 3 * len(shown) + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].update(
            autorange="reversed", scaleanchor=f"x{suffix}", constrain="domain"
        )
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    plain = {"showticklabels": False, "showgrid": False, "zeroline": False}
    fig.update_xaxes(**plain)
    fig.update_yaxes(**plain)
    grid = ""
    if patch:
        grid = f" ({patch}×{patch} px patches" + (f", stride {stride})" if stride else ")")
    height = attribution_height(len(shown))
    fig.update_layout(**base_layout(title + grid, (50, 20, 70, 20), height=height))
    return fig


def _pixels(values: Sequence[int] | None, n: int) -> list[int] | None:
    """Pixel positions of a grid axis when they match its length, else None (cell indices)."""
    if values is None or len(values) != n or n == 0:
        return None
    return [int(v) for v in values]
