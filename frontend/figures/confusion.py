"""Confusion matrices of one model, and the shift between two models, as heatmaps."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from frontend.figures._common import BASE_LAYOUT, empty_figure, plot_text, plot_texts

# Above this many classes the per-cell numbers become unreadable; hover still shows them.
MAX_ANNOTATED_CLASSES = 20
SHIFT_LABEL = "pruned − original"


def _check_square(matrix: Sequence[Sequence[float]], class_names: Sequence[str], what: str) -> None:
    n = len(class_names)
    if len(matrix) != n:
        raise ValueError(f"{what} has {len(matrix)} rows but there are {n} class names")
    for i, row in enumerate(matrix):
        if len(row) != n:
            raise ValueError(f"{what} row {i} has {len(row)} columns but there are {n} class names")


def _highlight_row(fig: go.Figure, n: int, selected_class: int | None) -> None:
    if selected_class is None:
        return
    if not 0 <= selected_class < n:
        raise ValueError(f"selected_class={selected_class} should be in [0, {n})")
    fig.add_shape(
        type="rect",
        xref="x",
        yref="y",
        x0=-0.5,
        x1=n - 0.5,
        y0=selected_class - 0.5,
        y1=selected_class + 0.5,
        line={"color": "#111", "width": 2},
        fillcolor="rgba(0,0,0,0)",
    )


def _style_axes(fig: go.Figure) -> None:
    fig.update_xaxes(type="category", title_text="predicted class", tickangle=-45)
    fig.update_yaxes(
        type="category",
        title_text="true class",
        autorange="reversed",  # row 0 on top, as the matrix is written
        scaleanchor="x",
        constrain="domain",
    )


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
        title: figure title.
        selected_class: true class whose row is outlined, or None.
        annotate: write the count in each cell; by default only up to
            ``MAX_ANNOTATED_CLASSES`` classes.

    Returns:
        A figure with one heatmap trace whose ``z`` is ``confusion``.

    Raises:
        ValueError: when the matrix is not ``C x C`` for ``C = len(class_names)``.
    """
    _check_square(confusion, class_names, "confusion")
    n = len(class_names)
    if n == 0:
        return empty_figure("No confusion matrix: the analysis has no classes.", title)
    if annotate is None:
        annotate = n <= MAX_ANNOTATED_CLASSES
    names = plot_texts(class_names)
    z = [list(row) for row in confusion]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            text=[[str(v) for v in row] for row in z],
            texttemplate="%{text}" if annotate else None,
            colorscale="Blues",
            zmin=0,
            colorbar={"title": {"text": "samples", "side": "right"}, "thickness": 14},
            hovertemplate="true %{y}<br>predicted %{x}<br>%{z} samples<extra></extra>",
        )
    )
    fig.update_layout(**BASE_LAYOUT, title=plot_text(title))
    _style_axes(fig)
    _highlight_row(fig, n, selected_class)
    return fig


def _signed(v: int | float) -> str:
    if v == 0:
        return ""
    return f"{v:+g}"


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
        class_names: ``[C]`` class names, in class-index order.
        title: figure title.
        selected_class: true class whose row is outlined, or None.
        annotate: write the signed change in each non-zero cell; by default only up to
            ``MAX_ANNOTATED_CLASSES`` classes.

    Returns:
        A figure with one heatmap trace whose ``z`` is ``shift``, a diverging colour scale with
        ``zmid = 0`` and the symmetric range ``[-m, m]``, ``m = max |shift|`` (1 when all zero).

    Raises:
        ValueError: when the matrix is not ``C x C`` for ``C = len(class_names)``.
    """
    _check_square(shift, class_names, "confusion shift")
    n = len(class_names)
    if n == 0:
        return empty_figure("No confusion shift: the analyses have no classes.", title)
    if annotate is None:
        annotate = n <= MAX_ANNOTATED_CLASSES
    names = plot_texts(class_names)
    z = [list(row) for row in shift]
    m = max((abs(v) for row in z for v in row), default=0) or 1
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            text=[[_signed(v) for v in row] for row in z],
            texttemplate="%{text}" if annotate else None,
            colorscale="RdBu",
            reversescale=True,  # positive (gained) red, negative (lost) blue
            zmid=0,
            zmin=-m,
            zmax=m,
            colorbar={"title": {"text": SHIFT_LABEL, "side": "right"}, "thickness": 14},
            hovertemplate=(
                "true %{y}<br>predicted %{x}<br>" + SHIFT_LABEL + ": %{z:+d}<extra></extra>"
            ),
        )
    )
    fig.update_layout(**BASE_LAYOUT, title=plot_text(title))
    _style_axes(fig)
    _highlight_row(fig, n, selected_class)
    return fig
