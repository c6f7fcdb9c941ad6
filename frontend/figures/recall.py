"""Per-class recall of the original and the pruned model, as grouped bars."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    base_layout,
    empty_figure,
    plot_text,
    plot_texts,
)

SELECTED_OPACITY = 1.0
FADED_OPACITY = 0.3


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
        recall_a, recall_b: ``[C]`` recall per class of A (the original) and B (the pruned
            model), in [0, 1]; None where a class has no samples.
        label_a, label_b: legend names of A and B, the names of the two bar traces.
        selected_class: index of the class to highlight (the others are faded), or None.

    Returns:
        Two bar traces; B's ``customdata`` holds the change ``recall_b - recall_a`` (on hover).
        ValueError when the sequences differ in length or ``selected_class`` is no class index.
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
    faded = FADED_OPACITY if selected_class is not None else SELECTED_OPACITY
    opacity = [SELECTED_OPACITY if i == selected_class else faded for i in range(n)]
    line = {"color": "#222", "width": [2.0 if i == selected_class else 0.0 for i in range(n)]}
    pairs = zip(recall_a, recall_b, strict=True)
    deltas = [None if a is None or b is None else b - a for a, b in pairs]
    fig = go.Figure()
    for label, recall, color, custom in (
        (label_a, recall_a, COLOR_A, None),
        (label_b, recall_b, COLOR_B, deltas),
    ):
        label = plot_text(label)
        change = "" if custom is None else "<br>change: %{customdata:+.1%}"
        fig.add_bar(
            name=label,
            x=names,
            y=list(recall),
            customdata=custom,
            marker={"color": color, "opacity": opacity, "line": line},
            hovertemplate=f"%{{x}}<br>{label}: %{{y:.1%}}{change}<extra></extra>",
        )
    fig.update_layout(
        **base_layout(title, barmode="group", bargap=0.2),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
    )
    fig.update_xaxes(type="category", title_text="class")
    fig.update_yaxes(title_text="recall", tickformat=".0%", range=[0, 1.05])
    return fig
