"""Helpers shared by the figure functions."""

from __future__ import annotations

import plotly.graph_objects as go

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
COLOR_A = "#4c78a8"  # original
COLOR_B = "#f58518"  # pruned
BASE_LAYOUT: dict[str, object] = {
    "template": "plotly_white",
    "font": {"family": FONT_FAMILY, "size": 12},
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
}


def empty_figure(message: str, title: str | None = None) -> go.Figure:
    """A blank figure that says why there is nothing to draw.

    Args:
        message: the explanation, shown in the middle of the plot area.
        title: optional figure title.

    Returns:
        A figure without traces, hidden axes and one annotation holding ``message``.
    """
    fig = go.Figure()
    fig.update_layout(**BASE_LAYOUT, title=title)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=message,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 14, "color": "#666"},
    )
    return fig
