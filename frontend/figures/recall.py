"""Per-class recall of the original and the pruned model, as grouped bars."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from frontend.figures._common import (
    BASE_LAYOUT,
    COLOR_A,
    COLOR_B,
    empty_figure,
    plot_text,
    plot_texts,
)

SELECTED_OPACITY = 1.0
FADED_OPACITY = 0.3


def _opacities(n: int, selected_class: int | None) -> list[float]:
    if selected_class is None:
        return [SELECTED_OPACITY] * n
    return [SELECTED_OPACITY if i == selected_class else FADED_OPACITY for i in range(n)]


def _line_widths(n: int, selected_class: int | None) -> list[float]:
    return [2.0 if i == selected_class else 0.0 for i in range(n)]


def recall_bars(
    class_names: Sequence[str],
    recall_a: Sequence[float | None],
    recall_b: Sequence[float | None],
    label_a: str,
    label_b: str,
    selected_class: int | None = None,
) -> go.Figure:
    """Grouped bars of per-class recall, A next to B, one group per class.

    Args:
        class_names: ``[C]`` class names, in class-index order.
        recall_a: ``[C]`` recall of model A (the original) per class, in [0, 1]; None where a
            class has no samples.
        recall_b: ``[C]`` recall of model B (the pruned model) per class.
        label_a: legend name of A.
        label_b: legend name of B.
        selected_class: index of the class to highlight (the others are faded), or None.

    Returns:
        A figure with two bar traces named ``label_a`` and ``label_b``; trace B's ``customdata``
        holds the per-class change ``recall_b - recall_a`` shown on hover.

    Raises:
        ValueError: when the three sequences differ in length, or ``selected_class`` is not a
            class index.
    """
    n = len(class_names)
    if len(recall_a) != n or len(recall_b) != n:
        raise ValueError(
            f"recall_bars needs one value per class: {n} class names, "
            f"recall_a has {len(recall_a)} values, recall_b has {len(recall_b)}"
        )
    if selected_class is not None and not 0 <= selected_class < n:
        raise ValueError(f"selected_class={selected_class} should be in [0, {n})")
    title = "Per-class recall"
    if n == 0:
        return empty_figure("No classes to show: the analyses have no per-class recall.", title)

    names = plot_texts(class_names)
    label_a, label_b = plot_text(label_a), plot_text(label_b)
    deltas = [
        None if a is None or b is None else b - a for a, b in zip(recall_a, recall_b, strict=True)
    ]
    opacity = _opacities(n, selected_class)
    widths = _line_widths(n, selected_class)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name=label_a,
            x=names,
            y=list(recall_a),
            marker={
                "color": COLOR_A,
                "opacity": opacity,
                "line": {"color": "#222", "width": widths},
            },
            hovertemplate="%{x}<br>" + label_a + ": %{y:.1%}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            name=label_b,
            x=names,
            y=list(recall_b),
            customdata=deltas,
            marker={
                "color": COLOR_B,
                "opacity": opacity,
                "line": {"color": "#222", "width": widths},
            },
            hovertemplate=(
                "%{x}<br>" + label_b + ": %{y:.1%}<br>change: %{customdata:+.1%}<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        **BASE_LAYOUT,
        title=title,
        barmode="group",
        bargap=0.2,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
    )
    fig.update_xaxes(type="category", title_text="class")
    fig.update_yaxes(title_text="recall", tickformat=".0%", range=[0, 1.05])
    return fig
