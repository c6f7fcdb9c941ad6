"""Per-class recall of the original and the pruned model, as grouped bars."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    base_layout,
    empty_figure,
    finite,
    plot_text,
    plot_texts,
)
from frontend.figures.formatting import format_delta_pp

SELECTED_OPACITY = 1.0
FADED_OPACITY = 0.3
# the value axis starts this far (as a share of 1 - lowest recall, at least MIN_PAD) below the
# lowest recall shown, rounded down to the first of TICK_STEPS giving at most MAX_TICKS ticks
PAD = 0.1
MIN_PAD = 0.02
TICK_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2)
MAX_TICKS = 10
ZERO_BELOW = 0.2  # an axis that would start below this starts at 0
HEADROOM = 0.1  # above 100%, as a share of the axis span, for the change labels
MAX_LABELLED_CLASSES = 12  # past this the change labels run into each other; hover shows it
LOSS_COLOR = "#cf222e"
GAIN_COLOR = "#1a7f37"
SAME_COLOR = "#59636e"


def recall_axis(values: Sequence[float | None]) -> tuple[float, float]:
    """The recall axis ``(start, tick step)``: from a little below the lowest of ``values``
    (None skipped), rounded down to a clean step, to 100%; it starts at 0 when that would be
    near 0 anyway, or when no value is given."""
    shown = [v for v in map(finite, values) if v is not None]
    if not shown:
        return 0.0, 0.2
    low = min(max(min(shown), 0.0), 1.0)
    start = low - max(PAD * (1.0 - low), MIN_PAD)
    step = next((s for s in TICK_STEPS if (1.0 - start) / s <= MAX_TICKS), 0.2)
    start = round(math.floor(round(start / step, 9)) * step, 6)
    if start < ZERO_BELOW:
        return 0.0, 0.2
    return start, step


def _change_color(delta: float | None) -> str:
    if delta is None or abs(delta) < 5e-4:  # what rounds to "+0.0 pp"
        return SAME_COLOR
    return LOSS_COLOR if delta < 0 else GAIN_COLOR


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
        Up to ``MAX_LABELLED_CLASSES`` classes, an annotation above each class with both
        recalls (``x`` its index) writes the change in percentage points ("-4.7 pp"). The
        value axis is zoomed to the data (:func:`recall_axis`) and its title says where it
        starts when that is not 0.
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
    # above each class's pair, centred on it: bar text would be shrunk to one bar's width
    notes = []
    for i, (ra, rb) in enumerate(zip(recall_a, recall_b, strict=True)):
        a, b = finite(ra), finite(rb)
        if n > MAX_LABELLED_CLASSES or a is None or b is None:
            continue
        notes.append(
            {
                "x": i,  # the category's position: class names may repeat or need escaping
                "y": max(a, b),
                "yanchor": "bottom",
                "yshift": 2,
                "text": format_delta_pp(a, b),
                "showarrow": False,
                "font": {"size": 11, "color": _change_color(b - a)},
                "opacity": opacity[i],
            }
        )
    fig.update_layout(
        **base_layout(title, barmode="group", bargap=0.2),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        annotations=notes,
    )
    fig.update_xaxes(type="category", title_text="class")
    start, step = recall_axis([*recall_a, *recall_b])
    # bars on an axis not starting at 0 exaggerate differences by design (a 4.7-point drop is
    # invisible on 0-100%); say so where the reader looks for the scale
    axis_title = "recall" if start == 0 else f"recall (axis starts at {100 * start:.0f}%, not 0)"
    ticks = [round(start + k * step, 6) for k in range(round((1.0 - start) / step) + 1)]
    fig.update_yaxes(
        title_text=axis_title,
        tickformat=".0%",
        tickvals=ticks,
        range=[start, 1.0 + HEADROOM * (1.0 - start)],
    )
    return fig
