"""Aligned embeddings of A's and B's penultimate features, as WebGL scatter plots.

A and B are laid out jointly (aligned UMAP, or PCA for tiny sets) so one place in the plane
means the same thing in both figures. Each figure is one ``Scattergl`` trace whose
``customdata`` holds the dataset index of every point: a selection made in either figure
maps back to samples, and a selection made anywhere is shown by ``selectedpoints``.

The dashboard sends :func:`embedding_figure`'s plain dict, its per-point numbers as base64
typed arrays (:func:`typed_array`); :func:`embedding_scatter` is that dict validated by
plotly.py, for the tests.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from frontend.figures._common import (
    DIVERGING_SCALE,
    LEGEND_BELOW,
    RAW_LAYOUT,
    SEQUENTIAL_SCALE,
    colorbar,
    empty_figure,
    plot_text,
    plot_texts,
    stepped_scale,
)

ColorKind = Literal["categorical", "diverging", "sequential"]
COLOR_KINDS: tuple[ColorKind, ...] = ("categorical", "diverging", "sequential")

# numpy dtype name -> plotly.js typed-array name ("f4", "i1", ...; plotly.js has no 64-bit ints)
TYPED_ARRAY_DTYPES = {
    t: f"{np.dtype(t).kind}{np.dtype(t).itemsize}"
    for t in ("float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32")
}
MARKER_SIZE = 5
SELECTED_OPACITY = 1.0
UNSELECTED_OPACITY = 0.07
POINT_OPACITY = 0.85
MAX_LEGEND_ENTRIES = 24  # more categories than this: hover names them, the legend would not fit
DEFAULT_AXIS_NAME = "aligned UMAP"


def category_palette(n: int) -> list[str]:
    """``n`` distinct qualitative colours (Tableau 10 up to 10, then Dark 24, then cycled)."""
    base = plotly.colors.qualitative.T10 if n <= 10 else plotly.colors.qualitative.Dark24
    return [base[i % len(base)] for i in range(n)]


def category_colors(
    categories: Sequence[str], fixed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One colour per category: ``fixed`` where given, else the palette, in category order
    (both figures pass the same ``categories``, so a class has one colour in A and B)."""
    palette = category_palette(len(categories))
    fixed = fixed or {}
    return {c: fixed.get(c, palette[i]) for i, c in enumerate(categories)}


def numeric_values(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``values`` as float64, None and non-numbers as NaN (the API sends NaN as null)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64)
    return np.asarray([_float_or_nan(v) for v in values], dtype=np.float64)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def draw_order(
    color_values: Sequence[Any] | np.ndarray, color_kind: ColorKind, background: Sequence[str] = ()
) -> np.ndarray:
    """``[N]`` int64 positions of the rows in the order they are drawn, so the informative
    points are not buried. Categorical: the ``background`` categories (e.g. "unchanged") first,
    each in table order. Diverging: by increasing ``|value|`` (NaN first). Sequential: table
    order."""
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


def typed_array(values: Sequence[Any] | np.ndarray, dtype: str) -> dict[str, str]:
    """``[N]`` numbers as a plotly.js typed-array spec, ``{"dtype": "f4", "bdata": <base64>}``
    of the values as ``dtype`` ("float32", "int8", ...), little-endian as plotly.js reads them.

    plotly.js (>= 2.28) decodes these into typed arrays (into ``gd._fullData``; ``gd.data``
    keeps the spec); Dash's JSON encoder would write a numpy array inside a plain dict as a
    list of numbers: more bytes (float32 is 5.3 a value in base64), and one Python float each
    to make and encode. NaN stays NaN, which plotly.js draws as a missing point.
    """
    arr = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    bdata = base64.b64encode(arr.tobytes()).decode("ascii")
    return {"dtype": TYPED_ARRAY_DTYPES[arr.dtype.name], "bdata": bdata}


def _code_dtype(n: int) -> str:
    """The smallest integer dtype holding codes ``0 .. n - 1``."""
    return "int8" if n <= 128 else "int16" if n <= 32768 else "int32"


def _legend_entry(name: str, color: str, present: bool) -> dict[str, Any]:
    """An empty trace that only puts ``name`` in the legend, in ``color``."""
    return {
        "type": "scatter",
        "x": [None],
        "y": [None],
        "mode": "markers",
        "marker": {"size": 9, "color": color},
        "name": plot_text(name),
        "showlegend": True,
        "hoverinfo": "skip",
        "visible": True if present else "legendonly",
    }


def hover_lines(columns: Sequence[Sequence[str]]) -> list[str]:
    """Per point, its values of the hover ``columns`` joined by ", "; once when all are equal.

    "true, A, B: cat" reads as all three being "cat", as "true, A, B: cat, dog, cat" reads
    each: most points are classified right by both models, and repeating their class three
    times was two thirds of the hover bytes.
    """
    joined: dict[tuple[str, ...], str] = {}
    lines = []
    for row in zip(*columns, strict=True):
        line = joined.get(row)
        if line is None:
            line = joined[row] = row[0] if len(set(row)) == 1 else ", ".join(row)
        lines.append(line)
    return lines


def embedding_figure(
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
) -> dict[str, Any]:
    """One model's side of the aligned embedding, as the plain figure dict the browser gets.

    Built without plotly.py, whose figure classes (copying every list, validating the layout
    on each update) took most of the embedding callback with 10^4 points.

    Args:
        x, y: ``[N]`` embedding coordinates of each test sample; sent as float32.
        index: ``[N]`` dataset index of each sample; becomes the trace's ``customdata``.
        color_values: ``[N]`` category names (``categorical``) or numbers (None = missing).
        color_kind: "categorical" (qualitative palette, legend), "diverging" (a change B − A,
            centred on 0, symmetric range) or "sequential".
        selected: dataset indices to highlight (the others are dimmed); None: no selection.
        color_label: what the colour means, for the hover and the colour bar.
        categories: every category in legend order; pass the same to A and B so a category
            has one colour in both. Defaults to the sorted distinct values.
        fixed_colors: category -> colour overrides (flip categories keep the flips table's).
        background: categories drawn first, under the others (see :func:`draw_order`).
        color_range: ``(lo, hi)`` of a continuous scale; share it between A and B. Diverging
            scales are made symmetric around 0.
        hover: per-point text columns shown on hover, e.g. ``{"true": [...], "A": [...]}``
            in table order, as "true, A: cat, dog" (:func:`hover_lines`).
        hover_value: show the coloured value on hover, on a line of its own (off when
            ``hover`` already says it, e.g. the true class when colouring by class).
        axis_name: the axes read "<axis_name> 1" and "<axis_name> 2".
        uirevision: keeps zoom and pan across updates while unchanged.

    Returns:
        ``{"data": [...], "layout": {...}}``: first the ``scattergl`` of all N points in
        :func:`draw_order`, x, y and colours as typed arrays, ``customdata`` a list; then,
        for categorical colours, an empty legend trace per category.

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
            f"embedding_figure needs one value per sample: index has {n}, "
            + ", ".join(f"{k} has {v}" for k, v in bad.items())
        )
    if n == 0:
        return empty_figure("No samples to embed.", title).to_dict()

    order = draw_order(color_values, color_kind, background)
    idx = np.asarray(index, dtype=np.int64)[order]

    legend: list[dict[str, Any]] = []
    marker: dict[str, Any] = {"size": MARKER_SIZE, "opacity": POINT_OPACITY}
    value_line = ""  # the coloured value on hover
    value_texts: list[str] | None = None  # categorical values, sent as ``hovertext``
    if color_kind == "categorical":
        labels = np.asarray([str(v) for v in color_values], dtype=object)
        cats = [str(c) for c in categories] if categories is not None else sorted(set(labels))
        cats += sorted(set(labels) - set(cats))  # a value outside ``categories`` still shows
        colors = category_colors(cats, fixed_colors)
        code_of = {c: i for i, c in enumerate(cats)}
        codes = np.asarray([code_of[v] for v in labels], dtype=np.int64)[order]
        marker |= {
            "color": typed_array(codes, _code_dtype(len(cats))),
            "colorscale": stepped_scale([colors[c] for c in cats]),
            "cmin": -0.5,
            "cmax": len(cats) - 0.5,
            "showscale": False,
        }
        if hover_value:
            value_texts = plot_texts(labels[order].tolist())
            value_line = f"<br>{plot_text(color_label or 'category')}: %{{hovertext}}"
        present = set(labels)
        if len(cats) <= MAX_LEGEND_ENTRIES:
            legend = [_legend_entry(c, colors[c], c in present) for c in cats]
    else:
        values = numeric_values(color_values)
        ok = values[np.isfinite(values)]
        if color_range is not None:
            lo, hi = float(color_range[0]), float(color_range[1])
        elif ok.size:
            lo, hi = float(ok.min()), float(ok.max())
        else:
            lo, hi = 0.0, 1.0
        if color_kind == "diverging":
            m = max(abs(lo), abs(hi)) or 1.0
            lo, hi = -m, m
        elif hi <= lo:
            hi = lo + 1.0
        marker |= {
            "color": typed_array(values[order], "float32"),
            "colorscale": DIVERGING_SCALE if color_kind == "diverging" else SEQUENTIAL_SCALE,
            "cmin": lo,
            "cmax": hi,
            "showscale": True,
            "colorbar": colorbar(plot_text(color_label), len=0.85, outlinewidth=0),
        }
        if color_kind == "diverging":
            marker["cmid"] = 0.0
        if hover_value:
            value_line = f"<br>{plot_text(color_label or 'value')}: %{{marker.color:.4g}}"

    # one string per point holding only the values ("cat, dog, cat"); their names go once
    # into the hover template. Names repeat per point otherwise: with 10^4 points they were
    # two thirds of the figure's bytes and of the browser's time to take it in. ASCII
    # separators: JSON escapes a "·" into six bytes.
    names = list(hover or {})
    # class names are typed by users: escaped (once per distinct value) for plotly's markup
    columns = [
        plot_texts(np.asarray(texts, dtype=object)[order].tolist())
        for texts in (hover or {}).values()
    ]
    lines = hover_lines(columns) if columns else []

    trace: dict[str, Any] = {
        "type": "scattergl",
        "x": typed_array(np.asarray(x, dtype=np.float32)[order], "float32"),
        "y": typed_array(np.asarray(y, dtype=np.float32)[order], "float32"),
        "mode": "markers",
        "marker": marker,
        # a list, not a typed array: dcc.Graph copies selected points' customdata from it
        "customdata": idx.tolist(),
        "hovertemplate": "<b>sample %{customdata}</b>"
        + (f"<br>{', '.join(plot_texts(names))}: %{{text}}" if lines else "")
        + value_line
        + "<extra></extra>",
        "selectedpoints": None if selected is None else selected_positions(idx, selected),
        "selected": {"marker": {"opacity": SELECTED_OPACITY}},
        "unselected": {"marker": {"opacity": UNSELECTED_OPACITY}},
        "showlegend": False,
        "name": plot_text(title),
    }
    if lines:
        trace["text"] = lines
    if value_texts is not None:
        trace["hovertext"] = value_texts
    axis = {
        "showticklabels": False,
        "ticks": "",
        "showgrid": False,
        "zeroline": False,
        "showline": True,
        "linecolor": "#d8dee4",
        "mirror": True,
    }
    layout: dict[str, Any] = {
        **RAW_LAYOUT,
        "margin": {"l": 40, "r": 20, "t": 50, "b": 30},
        "title": {"text": plot_text(title), "x": 0.02, "xanchor": "left"},
        "dragmode": "select",
        "hovermode": "closest",
        "uirevision": uirevision,
        "legend": {
            **LEGEND_BELOW,
            "y": -0.09,
            "itemclick": False,
            "itemdoubleclick": False,
            "font": {"size": 11},
        },
        "showlegend": bool(legend),
        "plot_bgcolor": "#fbfcfd",
        "xaxis": {"title": {"text": f"{axis_name} 1", "standoff": 6}, **axis},
        # equal aspect: distances in the plane mean the same along both axes
        "yaxis": {
            "title": {"text": f"{axis_name} 2", "standoff": 6},
            "scaleanchor": "x",
            "scaleratio": 1,
            **axis,
        },
    }
    return {"data": [trace, *legend], "layout": layout}


def embedding_scatter(*args: Any, **kwargs: Any) -> go.Figure:
    """:func:`embedding_figure` as a validated plotly figure (same arguments).

    plotly.py checks every property of what the dashboard sends, so a typo in a key fails
    here, in the unit tests, rather than silently in the browser; the dashboard sends the
    dict itself, which validation would take ~50 ms per 10^4-point figure to build.

    Raises:
        ValueError: as :func:`embedding_figure`, or on a property plotly does not know.
    """
    return go.Figure(embedding_figure(*args, **kwargs))
