"""Fourier sensitivity heat maps of A and B (Yin et al., NeurIPS 2019; SCIENCE.md section 7).

Three heat maps side by side: A's and B's test error under the perturbation ``x + v r U_ij``
per 2-D frequency (one sequential scale shared by both, so colours compare), and B − A on a
diverging scale centred at 0 (red: B errs more). The zero frequency is at the centre; the axes
are the signed frequency indices (k_h down, k_w across), so the corners are the highest
frequencies. Hover gives the frequency, the error rate and its change from the clean error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend.figures._common import (
    DIVERGING_SCALE,
    SEQUENTIAL_SCALE,
    base_layout,
    colorbar,
    empty_figure,
    finite,
    plot_text,
)

HEIGHT_PX = 400
GAP = 0.09  # horizontal space between the panels (room for the colour bars)


def error_grid(entry: Mapping[str, Any] | None) -> np.ndarray | None:
    """A model entry's error map as an (H, W) float array (NaN for missing values), or None."""
    rows = (entry or {}).get("error")
    if not rows:
        return None
    try:
        grid = np.array(
            [[np.nan if finite(v) is None else float(v) for v in row] for row in rows], float
        )
    except (TypeError, ValueError):
        return None
    return grid if grid.ndim == 2 and grid.size else None


def frequency_axis(n: int) -> list[int]:
    """The signed frequency index of each centred position of a side of ``n`` pixels:
    ``-(n // 2) .. n - 1 - n // 2`` (the zero frequency at position ``n // 2``)."""
    return [i - n // 2 for i in range(n)]


def fourier_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean error over all frequencies of A and B and the largest increase B − A."""
    diff = b - a
    return {
        "mean_a": float(np.nanmean(a)),
        "mean_b": float(np.nanmean(b)),
        "max_increase": float(np.nanmax(diff)),
    }


def _hover(label: str, clean: float | None) -> str:
    base = f"{plot_text(label)}<br>k_h = %{{y}}, k_w = %{{x}}<br>error %{{z:.1%}}"
    if clean is None:
        return base + "<extra></extra>"
    return base + f"<br>clean error {clean:.1%}<extra></extra>"


def fourier_figure(
    entry_a: Mapping[str, Any] | None,
    entry_b: Mapping[str, Any] | None,
    label_a: str = "A",
    label_b: str = "B",
) -> go.Figure:
    """A's and B's Fourier heat maps and their difference B − A.

    Args:
        entry_a, entry_b: model entries of ``GET /api/comparisons/{id}/fourier``
            (``{"error": H rows of W rates, "clean_error": ...}``).
        label_a, label_b: the panels' names.

    Returns:
        Three heatmap traces (A, B, B − A) whose ``z`` are the (H, W) maps, the zero frequency
        at the centre and the axes the signed frequency indices; an empty figure when either
        map is missing or their shapes differ.
    """
    a, b = error_grid(entry_a), error_grid(entry_b)
    if a is None or b is None:
        return empty_figure("No Fourier heat map for this model.")
    if a.shape != b.shape:
        return empty_figure(f"A's and B's maps differ in shape ({a.shape} vs {b.shape}).")
    h, w = a.shape
    ky, kx = frequency_axis(h), frequency_axis(w)
    diff = b - a
    top = float(np.nanmax([np.nanmax(a), np.nanmax(b)])) if np.isfinite(a).any() else 1.0
    top = top if top > 0 else 1.0
    m = float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0
    m = m if m > 0 else 0.01
    titles = [plot_text(f"{label_a}: error"), plot_text(f"{label_b}: error"), "B − A"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=GAP)
    clean_a, clean_b = (
        finite((entry_a or {}).get("clean_error")),
        finite((entry_b or {}).get("clean_error")),
    )
    width = (1 - 2 * GAP) / 3
    for col, (z, name, clean) in enumerate(((a, label_a, clean_a), (b, label_b, clean_b)), 1):
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=kx,
                y=ky,
                colorscale=SEQUENTIAL_SCALE,
                zmin=0,
                zmax=top,
                showscale=col == 2,
                colorbar=colorbar("error", 10, x=2 * (width + GAP) - GAP * 0.8, tickformat=".0%"),
                hovertemplate=_hover(name, clean),
            ),
            row=1,
            col=col,
        )
    fig.add_trace(
        go.Heatmap(
            z=diff,
            x=kx,
            y=ky,
            colorscale=DIVERGING_SCALE,
            zmid=0,
            zmin=-m,
            zmax=m,
            colorbar=colorbar("B − A", 10, x=1.02, tickformat="+.0%"),
            hovertemplate="B − A<br>k_h = %{y}, k_w = %{x}<br>%{z:+.1%}<extra></extra>",
        ),
        row=1,
        col=3,
    )
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="k_w", constrain="domain", row=1, col=col)
        fig.update_yaxes(
            title_text="k_h" if col == 1 else None,
            autorange="reversed",
            scaleanchor=f"x{'' if col == 1 else col}",
            constrain="domain",
            row=1,
            col=col,
        )
    fig.update_layout(**base_layout(None, (50, 60, 40, 50), height=HEIGHT_PX))
    return fig


def model_entry(models: Sequence[Mapping[str, Any]], model_id: int | None) -> Mapping[str, Any]:
    """The entry of ``models`` for ``model_id`` (an empty mapping when there is none)."""
    return next((m for m in models if m.get("model_id") == model_id), {})
