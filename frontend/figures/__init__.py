"""Pure functions from data to plotly figures and display strings; no HTTP, no Dash.

Every string argument of a figure function (titles, model labels, class and layer names) is
plain text, as typed: the function escapes it with :func:`frontend.figures._common.plot_text`
before plotly.js, which reads HTML-like markup and ``%{...}`` placeholders in figure text, sees
it. Callers never escape (a name would show its entities) and never pass markup.
"""

from __future__ import annotations

from frontend.figures._common import empty_figure
from frontend.figures.confusion import confusion_heatmap, confusion_shift_heatmap
from frontend.figures.formatting import (
    format_count,
    format_delta_pp,
    format_percent,
    format_ratio,
    model_label,
)
from frontend.figures.recall import recall_bars

__all__ = [
    "confusion_heatmap",
    "confusion_shift_heatmap",
    "empty_figure",
    "format_count",
    "format_delta_pp",
    "format_percent",
    "format_ratio",
    "model_label",
    "recall_bars",
]
