"""The evaluation overview: accuracy by pruning method x sparsity x corruption.

The paper's evaluation table (Li et al., IEEE TVCG 2024; SCIENCE.md section 1) for one
comparison: a row per model (the original A and every pruned B), a column for clean accuracy and
one per corruption with its accuracy averaged over the severities that were run. Beside it,
accuracy against sparsity with each model's learning distance on a second axis (He et al.,
"Sparse Double Descent", ICML 2022; SCIENCE.md section 7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import LEGEND_BELOW, base_layout, empty_figure, finite, plot_text
from frontend.figures.formatting import format_percent
from frontend.figures.similarity import (
    CLEAN,
    ORIGINAL,
    Clean,
    Models,
    Tables,
    method_colors,
    model_fields,
)

MEAN_CORRUPTED = "corrupted"  # sort key / column of the mean over all corruptions


@dataclass(frozen=True)
class EvaluationRow:
    """One model's accuracies in the evaluation table."""

    model_id: int
    role: str  # "A" (the original) or "B" (a pruned model)
    name: str
    method: str  # "original" for A
    sparsity: float
    clean: float | None
    corruptions: dict[str, float | None] = field(default_factory=dict)
    # || m * (theta_final - theta_start) ||_2 (SCIENCE.md 7); None when not recorded
    learning_distance: float | None = None

    @property
    def mean_corrupted(self) -> float | None:
        """Mean accuracy over the corruptions that were measured; None when none were."""
        values = [v for v in self.corruptions.values() if v is not None]
        return sum(values) / len(values) if values else None

    def accuracy(self, column: str) -> float | None:
        """Accuracy in ``column``: "clean", "corrupted" (the mean) or a corruption name."""
        if column == CLEAN:
            return self.clean
        if column == MEAN_CORRUPTED:
            return self.mean_corrupted
        return self.corruptions.get(column)


def mean_over_severities(robustness: Mapping[str, Any] | None) -> dict[str, float | None]:
    """``{corruption: mean accuracy over its severities}`` of ``GET
    /api/analyses/{id}/robustness`` (``corruptions`` [C], ``accuracy`` [C][S]); None or empty
    for an analysis without corruptions."""
    robustness = robustness or {}
    rows = zip(robustness.get("corruptions") or [], robustness.get("accuracy") or [], strict=False)
    out: dict[str, float | None] = {}
    for name, row in rows:
        values = [float(v) for v in row if v is not None and not math.isnan(float(v))]
        out[str(name)] = sum(values) / len(values) if values else None
    return out


def evaluation_rows(
    comparison: Mapping[str, Any], models: Models, clean_accuracy: Clean, robustness: Tables
) -> list[EvaluationRow]:
    """The rows of ``GET /api/comparisons/{id}``'s table: A first, then every B by (method,
    sparsity, id); a model without clean accuracy from its analysis shows its own
    ``accuracy``, a model missing from ``models`` its id."""
    rows = []
    ids = [int(comparison["model_a_id"]), *(int(b) for b in comparison.get("model_b_ids") or [])]
    for k, mid in enumerate(ids):
        clean = clean_accuracy.get(mid)
        if clean is None and (models.get(mid) or {}).get("accuracy") is not None:
            clean = float(models[mid]["accuracy"])
        fields = model_fields(mid, models) | ({"method": ORIGINAL} if k == 0 else {})
        corruptions = mean_over_severities(robustness.get(mid))
        distance = finite((models.get(mid) or {}).get("learning_distance"))
        rows.append(
            EvaluationRow(
                mid,
                "B" if k else "A",
                **fields,
                clean=clean,
                corruptions=corruptions,
                learning_distance=distance,
            )
        )
    a, bs = rows[:1], rows[1:]
    return a + sorted(bs, key=lambda r: (r.method, r.sparsity, r.model_id))


def corruption_columns(rows: Sequence[EvaluationRow]) -> list[str]:
    """Every corruption measured for some row, in first-seen order (A's order first)."""
    return list(dict.fromkeys(name for row in rows for name in row.corruptions))


def sort_rows(
    rows: Sequence[EvaluationRow], key: str | None, descending: bool = False
) -> list[EvaluationRow]:
    """Rows sorted by column ``key`` ("model", "method", "sparsity", "clean", "corrupted" or a
    corruption name; None keeps the order), ``descending`` or not, missing values last."""
    if not key:
        return list(rows)

    def value(row: EvaluationRow) -> Any:
        if key == "model":
            return row.name.lower()
        if key == "method":
            return row.method
        if key == "sparsity":
            return row.sparsity
        return row.accuracy(key)

    present = [r for r in rows if value(r) is not None]
    missing = [r for r in rows if value(r) is None]
    return sorted(present, key=value, reverse=descending) + missing


def accuracy_vs_sparsity(
    rows: Sequence[EvaluationRow], title: str = "Accuracy against sparsity"
) -> go.Figure:
    """Clean (solid) and mean corrupted (dashed) accuracy of each method against sparsity, in
    percent, from the :func:`evaluation_rows`: a solid trace per pruning method, named after
    it, and when corruptions were measured a dashed one, "<method> · corrupted". Every line
    starts at the original (sparsity 0): it shows what pruning with that method cost."""
    pruned = [r for r in rows if r.role != "A"]
    if not pruned:
        return empty_figure("No pruned model in this comparison.", title)
    original = next((r for r in rows if r.role == "A"), None)
    colors = method_colors(r.method for r in pruned)
    corrupted = any(r.mean_corrupted is not None for r in rows)
    fig = go.Figure()
    for method in sorted(colors):
        group = sorted((r for r in pruned if r.method == method), key=lambda r: r.sparsity)
        line = ([original] if original is not None else []) + group
        shown = plot_text(method)
        series = [(CLEAN, "solid", shown)]
        if corrupted:
            series.append((MEAN_CORRUPTED, "dash", f"{shown} · corrupted"))
        for column, dash, name in series:
            what = "clean" if column == CLEAN else "mean over corruptions"
            accuracy = [r.accuracy(column) for r in line]
            fig.add_scatter(
                x=[100 * r.sparsity for r in line],
                y=[None if a is None else 100 * a for a in accuracy],
                mode="lines+markers",
                name=name,
                legendgroup=method,
                line={"color": colors[method], "dash": dash, "width": 2},
                marker={"size": 8},
                customdata=[
                    f"<b>{plot_text(r.name)}</b> · {plot_text(r.method)} · "
                    f"{100 * r.sparsity:.3g}% sparse · {what} {format_percent(a)}"
                    for r, a in zip(line, accuracy, strict=True)
                ],
                hovertemplate="%{customdata}<extra></extra>",
            )
    legend = {"title": {"text": "Method"}}
    fig.update_layout(**base_layout(title, height=380, legend=legend, hovermode="closest"))
    fig.update_xaxes(title_text="Sparsity (% of prunable weights that are zero)", ticksuffix="%")
    fig.update_yaxes(title_text="Test accuracy", ticksuffix="%")
    return fig


LEARNING_DISTANCE_EMPTY = (
    "No model of this comparison has a learning distance: it is recorded by prune jobs "
    "(not for originals, uploaded models or models pruned before it was measured)."
)


def accuracy_and_learning_distance(
    rows: Sequence[EvaluationRow], title: str = "Accuracy and learning distance against sparsity"
) -> go.Figure:
    """Clean accuracy (left axis, solid, in percent) and learning distance (right axis,
    dotted, ``y2``) of each method against sparsity, from the :func:`evaluation_rows`.

    Per method that has a learning distance for some model: "<method> · accuracy", its models
    in sparsity order from the original (sparsity 0), and "<method> · learning distance", its
    models with a distance in sparsity order. Double descent (He et al., ICML 2022) shows as
    accuracy that dips and recovers as sparsity grows; the learning distance, how far the kept
    weights moved in training, tends to follow it. An empty figure says so when no model has
    a distance.
    """
    pruned = [r for r in rows if r.role != "A"]
    methods = sorted({r.method for r in pruned if r.learning_distance is not None})
    if not methods:
        return empty_figure(LEARNING_DISTANCE_EMPTY, title)
    original = next((r for r in rows if r.role == "A"), None)
    colors = method_colors(r.method for r in pruned)
    fig = go.Figure()

    def hover(r: EvaluationRow) -> str:
        distance = "—" if r.learning_distance is None else f"{r.learning_distance:.4g}"
        return (
            f"<b>{plot_text(r.name)}</b> · {plot_text(r.method)} · {100 * r.sparsity:.3g}% sparse"
            f" · accuracy {format_percent(r.clean)} · learning distance {distance}"
        )

    for method in methods:
        group = sorted((r for r in pruned if r.method == method), key=lambda r: r.sparsity)
        line = ([original] if original is not None else []) + group
        shown = plot_text(method)
        fig.add_scatter(
            x=[100 * r.sparsity for r in line],
            y=[None if r.clean is None else 100 * r.clean for r in line],
            mode="lines+markers",
            name=f"{shown} · accuracy",
            legendgroup=method,
            line={"color": colors[method], "width": 2},
            marker={"size": 8},
            customdata=[hover(r) for r in line],
            hovertemplate="%{customdata}<extra></extra>",
        )
        measured = [r for r in group if r.learning_distance is not None]
        fig.add_scatter(
            x=[100 * r.sparsity for r in measured],
            y=[r.learning_distance for r in measured],
            yaxis="y2",
            mode="lines+markers",
            name=f"{shown} · learning distance",
            legendgroup=method,
            line={"color": colors[method], "dash": "dot", "width": 2},
            marker={"size": 9, "symbol": "diamond-open"},
            customdata=[hover(r) for r in measured],
            hovertemplate="%{customdata}<extra></extra>",
        )
    legend = {**LEGEND_BELOW, "y": -0.22, "title": {"text": "Method"}}
    fig.update_layout(
        **base_layout(title, (60, 70, 50, 120), height=440, legend=legend, hovermode="closest"),
        yaxis={"title": {"text": "Test accuracy"}, "ticksuffix": "%"},
        yaxis2={
            "title": {"text": "Learning distance ‖m ⊙ (θ_final − θ_start)‖₂"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
            "tickmode": "auto",  # its own round ticks, not the left axis's grid
            "tickformat": ".2~g",
        },
    )
    fig.update_xaxes(title_text="Sparsity (% of prunable weights that are zero)", ticksuffix="%")
    return fig
