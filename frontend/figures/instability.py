"""Instability of a B with a rewind point (Frankle et al., ICML 2020; SCIENCE.md sect. 4, 7).

One figure over a in [0, 1]: the test error of the network (1 - a) W1 + a W2 between two copies
trained from B's rewind point with different data orders, the straight line between the
endpoints' errors, the mean of the endpoints' errors and, at the path's highest point, the
error barrier max_a E(a) - (E(0) + E(1)) / 2 marked as a vertical segment above that mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import COLOR_B, LEGEND_BELOW, base_layout, empty_figure

LINE_COLOR = "#888"
BARRIER_COLOR = "#e45756"
HEIGHT_PX = 470


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values or []]


def instability_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The view's cards: the barrier, the endpoints' errors and their mean, where the path is
    highest, and whether the paper would call B stable (barrier below 2 %). Values missing
    from ``result`` are recomputed from its path where they can be, else None."""
    errors = _floats(result.get("errors"))
    alphas = _floats(result.get("alphas"))
    ends = _floats(result.get("endpoint_errors")) or (
        [errors[0], errors[-1]] if len(errors) >= 2 else []
    )
    mean = 0.5 * (ends[0] + ends[1]) if len(ends) == 2 else None
    barrier = result.get("barrier")
    if barrier is None and errors and mean is not None:
        barrier = max(errors) - mean
    peak = max(range(len(errors)), key=errors.__getitem__) if errors else None
    below = float(result.get("stable_below") or 0.02)
    return {
        "barrier": None if barrier is None else float(barrier),
        "endpoint_errors": ends or None,
        "endpoint_mean": mean,
        "max_error": errors[peak] if peak is not None else None,
        "max_alpha": alphas[peak] if peak is not None and len(alphas) == len(errors) else None,
        "stable": None if barrier is None else float(barrier) < below,
        "stable_below": below,
    }


def instability_figure(result: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """Test error along the linear path, the endpoints' line, their mean and the barrier.

    Args:
        result: ``GET /api/models/{id}/instability``'s answer: ``alphas``, ``errors`` (same
            length, endpoints first and last), ``barrier``, ``endpoint_errors``, ``seeds``.
        title: The figure's title.

    Returns:
        The figure (a message figure when the result has no path).
    """
    a = _floats(result.get("alphas"))
    e = _floats(result.get("errors"))
    if len(a) < 2 or len(a) != len(e):
        return empty_figure("No linear path in this result", title)
    summary = instability_summary(result)
    e0, e1 = e[0], e[-1]
    seeds = result.get("seeds") or []
    names = [f"seed {s}" for s in seeds] if len(seeds) == 2 else ["copy 1", "copy 2"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[a[0], a[-1]],
            y=[e0, e1],
            mode="lines",
            name="endpoints' line",
            line={"color": LINE_COLOR, "dash": "dash", "width": 1},
            hoverinfo="skip",
        )
    )
    mean = summary["endpoint_mean"]
    if mean is not None:
        fig.add_trace(
            go.Scatter(
                x=[a[0], a[-1]],
                y=[mean, mean],
                mode="lines",
                name="mean of the endpoints' errors",
                line={"color": LINE_COLOR, "dash": "dot", "width": 1},
                hovertemplate="mean of the endpoints: %{y:.2%}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=a,
            y=e,
            mode="lines+markers",
            name="test error along the path",
            line={"color": COLOR_B, "width": 2},
            marker={"size": 5},
            hovertemplate="a = %{x:.3f}<br>test error %{y:.2%}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[a[0], a[-1]],
            y=[e0, e1],
            mode="markers+text",
            name="the two trained copies",
            marker={"color": COLOR_B, "size": 11, "symbol": "diamond"},
            text=names,
            textposition=["top right", "top left"],
            hovertemplate="%{text}<br>test error %{y:.2%}<extra></extra>",
        )
    )
    barrier, peak_a, peak_e = summary["barrier"], summary["max_alpha"], summary["max_error"]
    if barrier is not None and mean is not None and peak_a is not None and peak_e is not None:
        fig.add_trace(
            go.Scatter(
                x=[peak_a, peak_a],
                y=[mean, peak_e],
                mode="lines+markers",
                name=f"error barrier {100 * barrier:.1f} pp",
                line={"color": BARRIER_COLOR, "width": 3},
                marker={"symbol": ["line-ew", "triangle-up"], "size": 10},
                hovertemplate=f"barrier {100 * barrier:.2f} pp<br>a = {peak_a:.3f}<extra></extra>",
            )
        )
    top = max(max(e), 0.01)
    fig.update_layout(
        base_layout(
            title,
            (60, 20, 50 if title else 20, 100),  # room for the axis title and the legend
            height=HEIGHT_PX,
            legend={**LEGEND_BELOW, "y": -0.22},
            xaxis={"title": "a: weights (1 − a) W₁ + a W₂", "range": [-0.03, 1.03]},
            yaxis={
                "title": "test error",
                "range": [0, min(1.0, top * 1.15) + 0.005],
                "tickformat": ".0%",
            },
        )
    )
    return fig
