"""Confusion matrices of one model, and the shift between two models, as heatmaps."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import (
    base_layout,
    centred,
    colorbar,
    empty_figure,
    outline,
    plot_texts,
)

# Above this many classes the per-cell numbers become unreadable; hover still shows them.
MAX_ANNOTATED_CLASSES = 20
SHIFT_LABEL = "pruned − original"
MAX_COLORBAR_STEPS = 5  # colour-bar ticks from 0 to the largest count (per side for the shift)


def count_step(m: float, max_steps: int = MAX_COLORBAR_STEPS) -> int:
    """A whole tick step (1, 2, 5, 10, 20, 50, ...) that needs at most ``max_steps`` steps from 0
    to ``m``: counts are whole numbers, and a colour bar ticked at 0.5 says they are not."""
    magnitude = 1
    while True:
        for k in (1, 2, 5):
            if m <= max_steps * k * magnitude:
                return k * magnitude
        magnitude *= 10


def _whole_ticks(m: int) -> list[int]:
    """Colour-bar ticks of a shift in ``[-m, m]``: whole numbers, symmetric around 0."""
    step = count_step(m)
    half = list(range(step, m + 1, step))
    return [-t for t in reversed(half)] + [0, *half]


def _heatmap(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str,
    selected_class: int | None,
    annotate: bool | None,
    what: str,
    empty: str,
    cell_text: Callable[[Any], str],
    **trace: Any,
) -> go.Figure:
    """A ``C x C`` heatmap of ``matrix`` (rows = true class), ``selected_class``'s row outlined."""
    n = len(class_names)
    if len(matrix) != n:
        raise ValueError(f"{what} has {len(matrix)} rows but there are {n} class names")
    for i, row in enumerate(matrix):
        if len(row) != n:
            raise ValueError(f"{what} row {i} has {len(row)} columns but there are {n} class names")
    if n == 0:
        return empty_figure(empty, title)
    if selected_class is not None and not 0 <= selected_class < n:
        raise ValueError(f"selected_class={selected_class} should be in [0, {n})")
    if annotate is None:
        annotate = n <= MAX_ANNOTATED_CLASSES
    names = plot_texts(class_names)
    z = [list(row) for row in matrix]
    text = [[cell_text(v) for v in row] for row in z]
    template = "%{text}" if annotate else None
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, text=text, texttemplate=template, **trace))
    fig.update_layout(**base_layout(title))
    fig.update_xaxes(type="category", title_text="predicted class", tickangle=-45)
    fig.update_yaxes(
        type="category",
        title_text="true class",
        autorange="reversed",  # row 0 on top, as the matrix is written
        scaleanchor="x",
        constrain="domain",
    )
    if selected_class is not None:
        outline(fig, (-0.5, n - 0.5), (selected_class - 0.5, selected_class + 0.5))
    return fig


def confusion_heatmap(
    confusion: Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str,
    selected_class: int | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Heatmap of a confusion matrix, counts written in the cells.

    Args:
        confusion: ``[C, C]`` counts; row = true class, column = predicted class.
        class_names: ``[C]`` class names, in class-index order.
        selected_class: true class whose row is outlined, or None.
        annotate: write the count in each cell; by default only up to
            ``MAX_ANNOTATED_CLASSES`` classes.

    Returns:
        One heatmap trace whose ``z`` is ``confusion``, the colour range ``[0, max count]``
        (at least 1) with its colour bar ticked at whole counts; ValueError when the matrix is
        not ``C x C``.
    """
    top = math.ceil(max((v for row in confusion for v in row), default=0)) or 1
    return _heatmap(
        confusion,
        class_names,
        title,
        selected_class,
        annotate,
        "confusion",
        "No confusion matrix: the analysis has no classes.",
        str,
        colorscale="Blues",
        zmin=0,
        zmax=top,
        colorbar=colorbar(
            "samples", 14, tickmode="linear", tick0=0, dtick=count_step(top), tickformat="d"
        ),
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} samples<extra></extra>",
    )


def confusion_shift_heatmap(
    shift: Sequence[Sequence[int]],
    class_names: Sequence[str],
    title: str,
    selected_class: int | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Heatmap of a change in confusion counts (pruned minus original), centred on zero.

    Red cells gained samples under pruning, blue cells lost them; on the diagonal a loss
    means fewer correct predictions, off the diagonal a gain means a new confusion.

    Args:
        shift: ``[C, C]`` count differences B - A; row = true class, column = predicted class.
        class_names, title, selected_class, annotate: as :func:`confusion_heatmap`; the
            annotation is the signed change of each non-zero cell.

    Returns:
        One heatmap trace whose ``z`` is ``shift``, a diverging colour scale with ``zmid = 0``
        and the range ``[-m, m]``, ``m = max |shift|`` rounded up to a whole count (1 when all
        zero), its colour bar ticked at whole counts symmetric around 0; ValueError when the
        matrix is not ``C x C``.
    """
    m = math.ceil(max((abs(v) for row in shift for v in row), default=0)) or 1
    return _heatmap(
        shift,
        class_names,
        title,
        selected_class,
        annotate,
        "confusion shift",
        "No confusion shift: the analyses have no classes.",
        lambda v: f"{v:+g}" if v else "",
        colorscale="RdBu",
        reversescale=True,  # positive (gained) red, negative (lost) blue
        **centred(m),
        colorbar=colorbar(
            SHIFT_LABEL, 14, tickmode="array", tickvals=_whole_ticks(m), tickformat="d"
        ),
        hovertemplate=f"true %{{y}}<br>predicted %{{x}}<br>{SHIFT_LABEL}: %{{z:+d}}<extra></extra>",
    )
