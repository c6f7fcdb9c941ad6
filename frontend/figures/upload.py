"""Figures of an imported upload: per-layer sparsity of a checkpoint, class balance of a dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import COLOR_A, COLOR_B, base_layout, empty_figure, plot_texts

ROW_HEIGHT_PX = 22
MIN_HEIGHT_PX = 260


def layer_sparsity_bars(layers: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Horizontal bars of each prunable layer's sparsity, in module order from the top: one
    bar trace, ``y`` the names of the ``[L]`` ``layers`` (as the ``import_model`` job reports
    them), ``x`` their ``sparsity`` (fraction of zero weights; a 0-100 % axis), ``customdata``
    their optional ``[shape, n_zero, n_params]``, shown on hover."""
    title = "Sparsity per layer"
    if not layers:
        return empty_figure("The checkpoint has no prunable (conv or linear) layers.", title)
    names = plot_texts(layer.get("name") or f"layer {i}" for i, layer in enumerate(layers))
    values = [float(layer.get("sparsity") or 0.0) for layer in layers]
    custom = [
        ["×".join(str(d) for d in layer.get("shape") or []) or "?"]
        + [layer.get("n_zero", "?"), layer.get("n_params", "?")]
        for layer in layers
    ]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker={"color": [COLOR_B if v > 0 else COLOR_A for v in values]},
            customdata=custom,
            text=[f"{100 * v:.1f}%" for v in values],
            textposition="auto",
            hovertemplate="%{y} (%{customdata[0]})<br>%{customdata[1]} of %{customdata[2]} "
            "weights are zero: %{x:.1%}<extra></extra>",
            name="sparsity",
        )
    )
    height = max(MIN_HEIGHT_PX, 110 + ROW_HEIGHT_PX * len(layers))
    fig.update_layout(**base_layout(title, (140, 20, 50, 40), height=height, showlegend=False))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="zero weights")
    # module order reads from the top
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def class_balance_bars(
    class_names: Sequence[str], counts: Mapping[str, Sequence[int]]
) -> go.Figure:
    """Grouped bars of the samples per class, train next to test: one bar trace per
    non-empty split of ``counts`` (``{"train": [C], "test": [C]}``), named after it, ``x`` the
    ``[C]`` class names. ValueError when a split's counts are not one per class."""
    title = "Samples per class"
    names = plot_texts(class_names)
    fig = go.Figure()
    for split, color in (("train", COLOR_A), ("test", COLOR_B)):
        values = list(counts.get(split) or [])
        if not values:
            continue
        if len(values) != len(names):
            raise ValueError(
                f"class_balance_bars needs one {split} count per class: {len(names)} class "
                f"names, {len(values)} counts"
            )
        fig.add_bar(name=split, x=names, y=values, marker={"color": color})
    if not fig.data:
        return empty_figure("No samples to count.", title)
    fig.update_layout(**base_layout(title, barmode="group", height=320))
    fig.update_yaxes(title="samples")
    return fig
