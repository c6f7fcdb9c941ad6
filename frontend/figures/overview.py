"""The evaluation overview: accuracy by pruning method x sparsity x corruption.

The paper's evaluation table (Li et al., IEEE TVCG 2024; SCIENCE.md section 1) for one
comparison: a row per model (the original A and every pruned B), a column for clean accuracy and
one per corruption with its accuracy averaged over the severities that were run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import base_layout, empty_figure, plot_text
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
        rows.append(
            EvaluationRow(mid, "B" if k else "A", **fields, clean=clean, corruptions=corruptions)
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
