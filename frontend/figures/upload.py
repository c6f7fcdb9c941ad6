"""Figures of an imported upload: per-layer sparsity of a checkpoint, class balance of a dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import BASE_LAYOUT, COLOR_A, COLOR_B, empty_figure, plot_texts

ROW_HEIGHT_PX = 22
MIN_HEIGHT_PX = 260


def _shape_text(shape: Any) -> str:
    return "×".join(str(d) for d in shape) if shape else "?"


def layer_sparsity_bars(layers: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Horizontal bars of each prunable layer's sparsity, in module order from the top.

    Args:
        layers: ``[L]`` layers as the ``import_model`` job reports them: ``name``,
            ``sparsity`` (fraction of zero weights, in [0, 1]), and optionally ``shape``,
            ``n_params``, ``n_zero`` (shown on hover).

    Returns:
        A figure with one bar trace: ``y`` the layer names, ``x`` their sparsities (axis in
        percent, from 0 to 100%); ``customdata`` holds ``[shape, n_zero, n_params]`` per layer.
    """
    title = "Sparsity per layer"
    if not layers:
        return empty_figure("The checkpoint has no prunable (conv or linear) layers.", title)
    names = plot_texts(layer.get("name") or f"layer {i}" for i, layer in enumerate(layers))
    values = [float(layer.get("sparsity") or 0.0) for layer in layers]
    custom = [
        [_shape_text(layer.get("shape")), layer.get("n_zero", "?"), layer.get("n_params", "?")]
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
    fig.update_layout(
        **BASE_LAYOUT,
        title=title,
        height=max(MIN_HEIGHT_PX, 110 + ROW_HEIGHT_PX * len(layers)),
        showlegend=False,
    )
    fig.update_layout(margin={"l": 140, "r": 20, "t": 50, "b": 40})
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="zero weights")
    # module order reads from the top
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def class_balance_bars(
    class_names: Sequence[str], counts: Mapping[str, Sequence[int]]
) -> go.Figure:
    """Grouped bars of the number of samples per class, train next to test.

    Args:
        class_names: ``[C]`` class names in class-index order.
        counts: ``{"train": [C], "test": [C]}`` samples per class in each split; a missing or
            empty split is left out.

    Returns:
        A figure with one bar trace per non-empty split, named after it, ``x`` the class names.

    Raises:
        ValueError: when a split's counts are not one per class.
    """
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
        fig.add_trace(go.Bar(name=split, x=names, y=values, marker={"color": color}))
    if not fig.data:
        return empty_figure("No samples to count.", title)
    fig.update_layout(**BASE_LAYOUT, title=title, barmode="group", height=320)
    fig.update_yaxes(title="samples")
    return fig
