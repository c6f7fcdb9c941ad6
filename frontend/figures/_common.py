"""Helpers shared by the figure functions."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

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
# B − A: gains red, losses blue, like the confusion shift; resolved here from the scales' names
# because figures built unvalidated skip plotly.py's validation, which is what resolves them
DIVERGING_SCALE = [list(step) for step in go.scattergl.Marker(colorscale="RdBu_r").colorscale]
SEQUENTIAL_SCALE = [list(step) for step in go.scattergl.Marker(colorscale="Viridis").colorscale]
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.16, "xanchor": "left", "x": 0}


# for figures built unvalidated (``go.Figure(..., _validate=False)``, for their 10^3-10^4
# element arrays): there the template must be the template itself, since plotly.py only
# resolves a template's name while validating and plotly.js ignores a name
RAW_LAYOUT: dict[str, object] = {**BASE_LAYOUT, "template": TEMPLATE_JSON}


def base_layout(
    title: str | None = None, margin: Sequence[int] | None = None, /, **props: Any
) -> dict[str, Any]:
    """``BASE_LAYOUT`` with ``title`` (escaped, :func:`plot_text`), ``margin`` as (l, r, t, b)
    and any other layout properties."""
    out: dict[str, Any] = {**BASE_LAYOUT, **props}
    if title is not None:
        out["title"] = plot_text(title)
    if margin is not None:
        out["margin"] = dict(zip("lrtb", margin, strict=True))
    return out


def colorbar(title: str, thickness: int = 12, **props: Any) -> dict[str, Any]:
    """A colour bar titled ``title`` on its right."""
    return {"title": {"text": title, "side": "right"}, "thickness": thickness, **props}


def centred(m: float) -> dict[str, float]:
    """A diverging scale's range ``[-m, m]`` around 0."""
    return {"zmid": 0, "zmin": -m, "zmax": m}


def outline(fig: go.Figure, x: Sequence[float], y: Sequence[float], width: float = 2) -> None:
    """Outline the rectangle ``x[0]..x[1]`` x ``y[0]..y[1]`` (data coordinates) in near-black."""
    fig.add_shape(
        type="rect",
        xref="x",
        yref="y",
        x0=x[0],
        x1=x[1],
        y0=y[0],
        y1=y[1],
        line={"color": "#111", "width": width},
        fillcolor="rgba(0,0,0,0)",
    )


def stepped_scale(colors: Sequence[str]) -> list[list[Any]]:
    """A colour scale mapping integer code k of ``len(colors)`` codes to ``colors[k]``."""
    k = len(colors)
    return [[(i + j) / k, c] for i, c in enumerate(colors) for j in (0, 1)]


def finite(value: Any) -> float | None:
    """``value`` as a float; None when absent, not a number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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
    """A blank figure that says why there is nothing to draw: no traces, hidden axes and one
    annotation holding ``message`` (plain text, escaped, as ``title``) in the middle."""
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
