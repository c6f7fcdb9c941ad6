"""The pruning limit of A (SCIENCE.md section 7; Zhang et al., NeurIPS 2024).

One figure over the sparsity s (the fraction of prunable weights removed by one-shot global
magnitude pruning): the theory curve w(R(s)), the line s it is compared with, their crossing
marked as the predicted limit, and, on a second axis, the observed test accuracy of one-shot
pruning (no fine-tuning) with the dense accuracy - 1 pp line; fine-tuned models already
pruned from A by global magnitude are points on that axis too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import COLOR_A, COLOR_B, LEGEND_BELOW, base_layout, empty_figure

THEORY_COLOR = "#54a24b"
LINE_COLOR = "#888"
LIMIT_COLOR = "#e45756"
HEIGHT_PX = 520


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values or []]


def limit_figure(result: Mapping[str, Any], title: str | None = None) -> go.Figure:
    """Theory, the line s, their crossing and the observed one-shot accuracy over s.

    Args:
        result: ``GET /api/models/{id}/pruning-limit``'s answer: ``sparsities``,
            ``predicted`` (w(R(s))), ``limit``, ``interpolated``, ``observed`` (``accuracy``,
            ``dense_accuracy``, ``threshold``, ``limit``) and ``sweep_models``.
        title: The figure's title.

    Returns:
        The figure (a message figure when the result has no grid).
    """
    s = _floats(result.get("sparsities"))
    w = _floats(result.get("predicted"))
    if not s or len(s) != len(w):
        return empty_figure("No pruning-limit grid in this result", title)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=s,
            y=w,
            mode="lines+markers",
            name="theory w(R(s))",
            line={"color": THEORY_COLOR, "width": 2},
            hovertemplate="s = %{x:.3f}<br>w(R(s)) = %{y:.3f}<extra>theory</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0, 1.0],
            y=[0.0, 1.0],
            mode="lines",
            name="sparsity s",
            line={"color": LINE_COLOR, "dash": "dash", "width": 1},
            hoverinfo="skip",
        )
    )
    limit = result.get("interpolated")
    limit = result.get("limit") if limit is None else limit
    if limit is not None:
        fig.add_trace(
            go.Scatter(
                x=[float(limit)],
                y=[float(limit)],
                mode="markers",
                name=f"predicted limit s = {float(limit):.3f}",
                marker={"color": LIMIT_COLOR, "size": 12, "symbol": "x"},
                hovertemplate="predicted limit<br>s = %{x:.3f}<extra></extra>",
            )
        )
        fig.add_vline(x=float(limit), line={"color": LIMIT_COLOR, "dash": "dot", "width": 1})
    observed = result.get("observed") or {}
    acc = _floats(observed.get("accuracy"))
    if len(acc) == len(s):
        fig.add_trace(
            go.Scatter(
                x=s,
                y=acc,
                mode="lines+markers",
                name="one-shot accuracy (no fine-tuning)",
                yaxis="y2",
                line={"color": COLOR_A, "width": 2},
                hovertemplate="s = %{x:.3f}<br>accuracy %{y:.2%}<extra>one-shot</extra>",
            )
        )
    threshold = observed.get("threshold")
    if threshold is not None:
        fig.add_trace(
            go.Scatter(
                x=[0.0, 1.0],
                y=[float(threshold)] * 2,
                mode="lines",
                name="dense accuracy − 1 pp",
                yaxis="y2",
                line={"color": COLOR_A, "dash": "dot", "width": 1},
                hovertemplate="dense − 1 pp: %{y:.2%}<extra></extra>",
            )
        )
    sweep = [m for m in result.get("sweep_models") or [] if m.get("accuracy") is not None]
    if sweep:
        fig.add_trace(
            go.Scatter(
                x=[float(m["sparsity"]) for m in sweep],
                y=[float(m["accuracy"]) for m in sweep],
                mode="markers",
                name="pruned from A, fine-tuned",
                yaxis="y2",
                marker={"color": COLOR_B, "size": 8, "symbol": "diamond"},
                text=[str(m.get("name") or f"model {m.get('id')}") for m in sweep],
                hovertemplate="%{text}<br>s = %{x:.3f}<br>accuracy %{y:.2%}<extra></extra>",
            )
        )
    fig.update_layout(
        base_layout(
            title,
            (60, 60, 50 if title else 20, 110),  # room for the axis title and the legend
            height=HEIGHT_PX,
            legend={**LEGEND_BELOW, "y": -0.2},
            xaxis={"title": "sparsity s (fraction of prunable weights removed)", "range": [0, 1]},
            yaxis={"title": "fraction", "range": [0, 1.02]},
            yaxis2={
                "title": "test accuracy",
                "overlaying": "y",
                "side": "right",
                "range": [0, 1.02],
                "tickformat": ".0%",
                "showgrid": False,
            },
        )
    )
    return fig


def limit_summary(result: Mapping[str, Any]) -> dict[str, float | None]:
    """The view's cards: the predicted limit (interpolated when it can be, else the grid
    point), the observed one (the largest grid s before the one-shot accuracy falls below
    the dense - 1 pp line), eps and the near-zero mass of the density."""
    observed = result.get("observed") or {}
    density = result.get("density") or {}
    predicted = result.get("interpolated")
    predicted = result.get("limit") if predicted is None else predicted

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        "predicted": number(predicted),
        "observed": number(observed.get("limit")),
        "dense_accuracy": number(observed.get("dense_accuracy")),
        "eps": number(result.get("eps")),
        "near_zero_mass": number(density.get("near_zero_mass")),
    }
