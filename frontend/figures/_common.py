"""Helpers shared by the figure functions."""

from __future__ import annotations

import html
from collections.abc import Iterable

import plotly.graph_objects as go
import plotly.io as pio

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
COLOR_A = "#4c78a8"  # original
COLOR_B = "#f58518"  # pruned
# plotly_white cut down to what 2-D charts use: plotly copies and validates a figure's whole
# template on every update_layout, and the full one (polar, geo, 3-D scenes and defaults for
# every trace type) cost ~70 ms and 6.5 kB per figure, most of the compare page's render time.
_WHITE = pio.templates["plotly_white"]
_UNUSED_LAYOUT = {"polar", "ternary", "scene", "geo", "mapbox", "map"}
_USED_TRACES = ("bar", "heatmap", "histogram", "scatter", "scattergl", "parcoords")
TEMPLATE_NAME = "prunescope"
pio.templates[TEMPLATE_NAME] = go.layout.Template(
    layout={k: v for k, v in _WHITE.layout.to_plotly_json().items() if k not in _UNUSED_LAYOUT},
    data={k: v for k, v in _WHITE.data.to_plotly_json().items() if k in _USED_TRACES},
)
TEMPLATE_JSON = pio.templates[TEMPLATE_NAME].to_plotly_json()
BASE_LAYOUT: dict[str, object] = {
    "template": TEMPLATE_NAME,
    "font": {"family": FONT_FAMILY, "size": 12},
    "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
}


# for figures built unvalidated (``go.Figure(..., _validate=False)``, for their 10^3-10^4
# element arrays): there the template must be the template itself, since plotly.py only
# resolves a template's name while validating and plotly.js ignores a name
RAW_LAYOUT: dict[str, object] = {**BASE_LAYOUT, "template": TEMPLATE_JSON}


def plot_text(value: object) -> str:
    """``value`` as plotly.js text that shows exactly what was typed, markup and all.

    plotly.js reads a subset of HTML in every string it draws (titles, axis and tick labels,
    legend names, annotations, hover text: ``<b>``, ``<br>``, ``<a href>``, ...) and ``%{...}``
    in hover and text templates as a placeholder. Names users type (models, datasets,
    comparisons, classes, layers) go through this before they reach a figure: ``&``, ``<`` and
    ``>`` become entities, which plotly.js decodes back to the characters, and the ``%`` of
    ``%{`` becomes ``&#37;``, so a name embedded in a template is never read as a placeholder.
    Names without these characters are returned unchanged.
    """
    return html.escape(str(value), quote=False).replace("%{", "&#37;{")


def plot_texts(values: Iterable[object]) -> list[str]:
    """:func:`plot_text` of each value; repeated values are escaped once (10^4-point hovers)."""
    done: dict[object, str] = {}
    out = []
    for v in values:
        text = done.get(v)
        if text is None:
            text = done[v] = plot_text(v)
        out.append(text)
    return out


def empty_figure(message: str, title: str | None = None) -> go.Figure:
    """A blank figure that says why there is nothing to draw.

    Args:
        message: the explanation, shown in the middle of the plot area (plain text: it may
            quote a name, so it is escaped with :func:`plot_text`).
        title: optional figure title (plain text, likewise).

    Returns:
        A figure without traces, hidden axes and one annotation holding ``message``.
    """
    # built unvalidated from plain dicts: the compare page renders a dozen of these
    # placeholders at once, and validation would cost more than the whole rest of its layout
    return go.Figure(
        layout={
            **RAW_LAYOUT,
            "title": {"text": plot_text(title)} if title else None,
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {
                    "text": plot_text(message),
                    "x": 0.5,
                    "y": 0.5,
                    "xref": "paper",
                    "yref": "paper",
                    "showarrow": False,
                    "font": {"size": 14, "color": "#666"},
                }
            ],
        },
        _validate=False,
    )
