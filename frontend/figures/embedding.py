"""Aligned embeddings of A's and B's penultimate features, as WebGL scatter plots.

A and B are laid out jointly (aligned UMAP, or PCA for tiny sets) so one place in the plane
means the same thing in both figures. Each figure is one ``Scattergl`` trace whose
``customdata`` holds the dataset index of every point: a selection made in either figure
maps back to samples, and a selection made anywhere is shown by ``selectedpoints``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from frontend.figures._common import RAW_LAYOUT, empty_figure, plot_text, plot_texts

ColorKind = Literal["categorical", "diverging", "sequential"]
COLOR_KINDS: tuple[ColorKind, ...] = ("categorical", "diverging", "sequential")

COORD_DECIMALS = 4
MARKER_SIZE = 5
SELECTED_OPACITY = 1.0
UNSELECTED_OPACITY = 0.07
POINT_OPACITY = 0.85
DIVERGING_SCALE_NAME = "RdBu_r"  # B − A: gains red, losses blue, like the confusion shift
SEQUENTIAL_SCALE_NAME = "Viridis"
MISSING_COLOR = "#c8ced6"
MAX_LEGEND_ENTRIES = 24  # more categories than this: hover names them, the legend would not fit
DEFAULT_AXIS_NAME = "aligned UMAP"


def _resolved_scale(name: str) -> list[list[Any]]:
    # the traces skip plotly.py's validation, which is what resolves names like "RdBu_r"
    return [list(step) for step in go.scattergl.Marker(colorscale=name).colorscale]


DIVERGING_SCALE = _resolved_scale(DIVERGING_SCALE_NAME)
SEQUENTIAL_SCALE = _resolved_scale(SEQUENTIAL_SCALE_NAME)


def category_palette(n: int) -> list[str]:
    """``n`` distinct qualitative colours (Tableau 10 up to 10, then Dark 24, then cycled)."""
    base = plotly.colors.qualitative.T10 if n <= 10 else plotly.colors.qualitative.Dark24
    return [base[i % len(base)] for i in range(n)]


def category_colors(
    categories: Sequence[str], fixed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One colour per category: ``fixed`` where given, else the palette, in category order.

    Both figures call this with the same ``categories`` so a class has one colour in A and B.
    """
    palette = category_palette(len(categories))
    fixed = fixed or {}
    return {c: fixed.get(c, palette[i]) for i, c in enumerate(categories)}


def _as_float(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    out = np.full(arr.shape, np.nan, dtype=np.float64)
    for i, v in enumerate(arr):
        if v is not None:
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                pass
    return out


def numeric_values(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``values`` as float64, None and non-numbers as NaN (the API sends NaN as null)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return _as_float(values)


def draw_order(
    color_values: Sequence[Any] | np.ndarray,
    color_kind: ColorKind,
    background: Sequence[str] = (),
) -> np.ndarray:
    """The order points are drawn in, so the informative ones are not buried.

    Categorical: the ``background`` categories (e.g. "unchanged") first, the rest after, each
    in table order. Diverging: by increasing ``|value|`` (NaN first), the largest changes on
    top. Sequential: table order.

    Returns:
        ``[N]`` int64 positions into the table's rows.
    """
    n = len(color_values)
    if color_kind == "categorical" and background:
        back = np.isin(np.asarray(color_values, dtype=object), list(background))
        return np.concatenate([np.flatnonzero(back), np.flatnonzero(~back)]).astype(np.int64)
    if color_kind == "diverging":
        mag = np.abs(numeric_values(color_values))
        return np.argsort(np.nan_to_num(mag, nan=-1.0), kind="stable").astype(np.int64)
    return np.arange(n, dtype=np.int64)


def selected_positions(drawn_index: Sequence[int] | np.ndarray, ids: Sequence[int]) -> list[int]:
    """Positions (in drawing order) of the points whose dataset index is in ``ids``."""
    drawn = np.asarray(drawn_index, dtype=np.int64)
    if len(ids) == 0 or drawn.size == 0:
        return []
    return np.flatnonzero(np.isin(drawn, np.asarray(list(ids), dtype=np.int64))).tolist()


def compact(values: np.ndarray, decimals: int = COORD_DECIMALS) -> list[float | None]:
    """Float array as a JSON-friendly list: rounded, NaN as None (float32 -> short floats)."""
    arr = np.round(np.asarray(values, dtype=np.float64), decimals)
    out: list[float | None] = arr.tolist()
    if np.isnan(arr).any():
        out = [None if math.isnan(v) else v for v in out]  # type: ignore[arg-type]
    return out


def _stepped_scale(colors: Sequence[str]) -> list[list[Any]]:
    """A colour scale mapping integer code k of ``len(colors)`` codes to ``colors[k]``."""
    k = len(colors)
    scale: list[list[Any]] = []
    for i, c in enumerate(colors):
        scale += [[i / k, c], [(i + 1) / k, c]]
    return scale


def embedding_scatter(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    index: Sequence[int] | np.ndarray,
    color_values: Sequence[Any] | np.ndarray,
    color_kind: ColorKind,
    title: str,
    selected: Sequence[int] | None = None,
    *,
    color_label: str = "",
    categories: Sequence[str] | None = None,
    fixed_colors: Mapping[str, str] | None = None,
    background: Sequence[str] = (),
    color_range: tuple[float, float] | None = None,
    hover: Mapping[str, Sequence[str]] | None = None,
    hover_value: bool = True,
    axis_name: str = DEFAULT_AXIS_NAME,
    uirevision: str | None = None,
) -> go.Figure:
    """One model's side of the aligned embedding: a WebGL scatter coloured by a metric.

    Args:
        x: ``[N]`` first embedding coordinate of each test sample (float32 is fine).
        y: ``[N]`` second coordinate.
        index: ``[N]`` dataset index of each sample; becomes the trace's ``customdata``.
        color_values: ``[N]`` category names (``categorical``) or numbers (None = missing).
        color_kind: "categorical" (qualitative palette, legend), "diverging" (a change B − A,
            centred on 0, symmetric range) or "sequential".
        title: figure title.
        selected: dataset indices to highlight (the others are dimmed); None: no selection.
        color_label: what the colour means, for the hover and the colour bar.
        categories: every category in legend order; pass the same to A and B so a category
            has one colour in both. Defaults to the sorted distinct values.
        fixed_colors: category -> colour overrides (flip categories keep the flips table's).
        background: categories drawn first, under the others (see :func:`draw_order`).
        color_range: ``(lo, hi)`` of a continuous scale; share it between A and B. Diverging
            scales are made symmetric around 0.
        hover: per-point text columns shown on hover under the sample index, e.g.
            ``{"true": [...], "A": [...]}``, in table order: "true, A: cat, dog"; a
            categorical coloured value is appended the same way, a numeric one on its own line.
        hover_value: show the coloured value on hover (off when ``hover`` already says it,
            e.g. the true class when colouring by class).
        axis_name: the axes read "<axis_name> 1" and "<axis_name> 2".
        uirevision: keeps zoom and pan across updates while unchanged.

    Returns:
        A figure whose first trace is the ``Scattergl`` of all N points in drawing order
        (:func:`draw_order`); categorical colourings add one empty legend trace per category.

    Raises:
        ValueError: on mismatched lengths or an unknown ``color_kind``.
    """
    if color_kind not in COLOR_KINDS:
        raise ValueError(f"color_kind={color_kind!r} should be one of {COLOR_KINDS}")
    n = len(index)
    lengths = {"x": len(x), "y": len(y), "color_values": len(color_values)}
    lengths |= {f"hover[{k!r}]": len(v) for k, v in (hover or {}).items()}
    bad = {k: v for k, v in lengths.items() if v != n}
    if bad:
        raise ValueError(
            f"embedding_scatter needs one value per sample: index has {n}, "
            + ", ".join(f"{k} has {v}" for k, v in bad.items())
        )
    if n == 0:
        return empty_figure("No samples to embed.", title)

    order = draw_order(color_values, color_kind, background)
    idx = np.asarray(index, dtype=np.int64)[order]
    xs = compact(np.asarray(x, dtype=np.float64)[order])
    ys = compact(np.asarray(y, dtype=np.float64)[order])

    legend: list[go.Scatter] = []
    marker: dict[str, Any] = {"size": MARKER_SIZE, "opacity": POINT_OPACITY}
    value_line = ""  # the coloured value on hover; categorical ones go into ``text``
    value_texts: list[str] | None = None
    if color_kind == "categorical":
        labels = np.asarray([str(v) for v in color_values], dtype=object)
        cats = [str(c) for c in categories] if categories is not None else sorted(set(labels))
        cats += sorted(set(labels) - set(cats))  # a value outside ``categories`` still shows
        colors = category_colors(cats, fixed_colors)
        code_of = {c: i for i, c in enumerate(cats)}
        codes = np.asarray([code_of[v] for v in labels], dtype=np.int16)[order]
        marker |= {
            "color": codes,
            "colorscale": _stepped_scale([colors[c] for c in cats]),
            "cmin": -0.5,
            "cmax": len(cats) - 0.5,
            "showscale": False,
        }
        value_texts = labels[order].tolist()
        present = set(labels)
        if len(cats) <= MAX_LEGEND_ENTRIES:
            legend = [
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    marker={"size": 9, "color": colors[c]},
                    name=plot_text(c),
                    showlegend=True,
                    hoverinfo="skip",
                    visible=True if c in present else "legendonly",
                )
                for c in cats
            ]
    else:
        values = numeric_values(color_values)
        finite = values[np.isfinite(values)]
        if color_range is not None:
            lo, hi = float(color_range[0]), float(color_range[1])
        elif finite.size:
            lo, hi = float(finite.min()), float(finite.max())
        else:
            lo, hi = 0.0, 1.0
        if color_kind == "diverging":
            m = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -m, m
        elif hi <= lo:
            hi = lo + 1.0
        marker |= {
            "color": values[order].astype(np.float32),
            "colorscale": DIVERGING_SCALE if color_kind == "diverging" else SEQUENTIAL_SCALE,
            "cmin": lo,
            "cmax": hi,
            "showscale": True,
            "colorbar": {
                "title": {"text": color_label, "side": "right"},
                "thickness": 12,
                "len": 0.85,
                "outlinewidth": 0,
            },
        }
        if color_kind == "diverging":
            marker["cmid"] = 0.0
        value_line = (
            "" if not hover_value else f"<br>{color_label or 'value'}: %{{marker.color:.4g}}"
        )

    # one string per point holding only the values ("cat, cat, dog"); their names go once
    # into the hover template. Names repeat per point otherwise: with 10^4 points they were
    # two thirds of the figure's bytes and of the browser's time to take it in. ASCII
    # separators: JSON escapes a "·" into six bytes.
    names = list(hover or {})
    # class names are typed by users: escaped (once per distinct value) for plotly's markup
    columns = [
        plot_texts(np.asarray(texts, dtype=object)[order].tolist())
        for texts in (hover or {}).values()
    ]
    if value_texts is not None and hover_value:
        names.append(color_label or "category")
        columns.append(plot_texts(value_texts))
    lines = [", ".join(map(str, row)) for row in zip(*columns, strict=True)] if columns else []
    text = np.asarray(lines, dtype=object)

    positions = None if selected is None else selected_positions(idx, selected)
    trace: dict[str, Any] = {
        "type": "scattergl",
        "x": xs,
        "y": ys,
        "mode": "markers",
        "marker": marker,
        # a list, not a typed array: dcc.Graph copies selected points' customdata from it
        "customdata": idx.tolist(),
        "hovertemplate": "<b>sample %{customdata}</b>"
        + (f"<br>{', '.join(plot_texts(names))}: %{{text}}" if lines else "")
        + value_line
        + "<extra></extra>",
        "selectedpoints": positions,
        "selected": {"marker": {"opacity": SELECTED_OPACITY}},
        "unselected": {"marker": {"opacity": UNSELECTED_OPACITY}},
        "showlegend": False,
        "name": plot_text(title),
    }
    if lines:
        trace["text"] = text
    # 10^4-point arrays: plotly's per-element validation would cost more than the rest of the
    # callback; the trace's keys are fixed here and the unit tests validate the result
    fig = go.Figure([trace, *legend], _validate=False)
    fig.update_layout(
        **{**RAW_LAYOUT, "margin": {"l": 40, "r": 20, "t": 50, "b": 30}},
        title={"text": plot_text(title), "x": 0.02, "xanchor": "left"},
        dragmode="select",
        hovermode="closest",
        uirevision=uirevision,
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.09,
            "xanchor": "left",
            "x": 0,
            "itemclick": False,
            "itemdoubleclick": False,
            "font": {"size": 11},
        },
        showlegend=bool(legend),
        plot_bgcolor="#fbfcfd",
    )
    axis = {
        "showticklabels": False,
        "ticks": "",
        "showgrid": False,
        "zeroline": False,
        "showline": True,
        "linecolor": "#d8dee4",
        "mirror": True,
    }
    fig.update_xaxes(title_text=f"{axis_name} 1", title_standoff=6, **axis)
    # equal aspect: distances in the plane mean the same along both axes
    fig.update_yaxes(
        title_text=f"{axis_name} 2", title_standoff=6, scaleanchor="x", scaleratio=1, **axis
    )
    return fig
