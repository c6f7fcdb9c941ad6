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

from frontend.figures._common import BASE_LAYOUT, empty_figure, plot_text
from frontend.figures.similarity import CLEAN, ORIGINAL, method_colors

MEAN_CORRUPTED = "corrupted"  # sort key / column of the mean over all corruptions
TEXT_KEYS = ("model", "method")  # sorted ascending on the first click
NUMBER_KEYS = ("sparsity",)


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
    """``{corruption: mean accuracy over its severities}`` of a robustness table.

    Args:
        robustness: ``GET /api/analyses/{id}/robustness``: ``corruptions`` [C], ``severities``
            [S] and ``accuracy`` [C][S]; None or empty for an analysis without corruptions.
    """
    if not robustness:
        return {}
    out: dict[str, float | None] = {}
    names = robustness.get("corruptions") or []
    accuracy = robustness.get("accuracy") or []
    for name, row in zip(names, accuracy, strict=False):
        values = [float(v) for v in row if v is not None and not math.isnan(float(v))]
        out[str(name)] = sum(values) / len(values) if values else None
    return out


def evaluation_rows(
    comparison: Mapping[str, Any],
    models: Mapping[int, Mapping[str, Any]],
    clean_accuracy: Mapping[int, float | None],
    robustness: Mapping[int, Mapping[str, Any] | None],
) -> list[EvaluationRow]:
    """The table's rows: A first, then every B by (method, sparsity, id).

    Args:
        comparison: ``GET /api/comparisons/{id}``.
        models: ``{id: model}``; a model missing here is shown by its id.
        clean_accuracy: ``{model_id: test accuracy}`` from its analysis; the model's own
            ``accuracy`` is used where a model has none.
        robustness: ``{model_id: robustness table or None}``.
    """
    rows = []
    ids = [int(comparison["model_a_id"]), *(int(b) for b in comparison.get("model_b_ids") or [])]
    for k, mid in enumerate(ids):
        model = models.get(mid) or {}
        clean = clean_accuracy.get(mid)
        if clean is None and model.get("accuracy") is not None:
            clean = float(model["accuracy"])
        rows.append(
            EvaluationRow(
                model_id=mid,
                role="A" if k == 0 else "B",
                name=str(model.get("name") or f"model {mid}"),
                method=ORIGINAL if k == 0 else str(model.get("pruning_method") or ORIGINAL),
                sparsity=float(model.get("sparsity") or 0.0),
                clean=clean,
                corruptions=mean_over_severities(robustness.get(mid)),
            )
        )
    a, bs = rows[:1], rows[1:]
    return a + sorted(bs, key=lambda r: (r.method, r.sparsity, r.model_id))


def corruption_columns(rows: Sequence[EvaluationRow]) -> list[str]:
    """Every corruption measured for some row, in first-seen order (A's order first)."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row.corruptions:
            seen.setdefault(name, None)
    return list(seen)


def sort_rows(
    rows: Sequence[EvaluationRow], key: str | None, descending: bool = False
) -> list[EvaluationRow]:
    """Rows sorted by a column, missing values last whatever the direction.

    Args:
        rows: the table's rows.
        key: "model", "method", "sparsity", "clean", "corrupted" or a corruption name; None
            keeps the given order.
        descending: largest (or last in alphabetical order) first.
    """
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


def _scaled(value: float | None) -> float | None:
    return None if value is None else 100 * value


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def accuracy_vs_sparsity(
    rows: Sequence[EvaluationRow], title: str = "Accuracy against sparsity"
) -> go.Figure:
    """Clean (solid) and mean corrupted (dashed) accuracy of each method against sparsity.

    Every method's lines start at the original (sparsity 0), so each line shows what pruning
    with that method cost as sparsity grows.

    Args:
        rows: the evaluation rows (see :func:`evaluation_rows`); the row with role "A" is the
            original.
        title: figure title.

    Returns:
        A figure with one solid trace per pruning method (clean accuracy, named after the
        method) and, when corruptions were measured, one dashed trace per method (mean over
        corruptions, named "<method> · corrupted"); x in percent sparsity, y in percent.
    """
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
            fig.add_trace(
                go.Scatter(
                    x=[100 * r.sparsity for r in line],
                    y=[_scaled(r.accuracy(column)) for r in line],
                    mode="lines+markers",
                    name=name,
                    legendgroup=method,
                    line={"color": colors[method], "dash": dash, "width": 2},
                    marker={"size": 8},
                    customdata=[
                        f"<b>{plot_text(r.name)}</b> · {plot_text(r.method)} · "
                        f"{100 * r.sparsity:.3g}% sparse · "
                        f"{what} {_pct(r.accuracy(column))}"
                        for r in line
                    ],
                    hovertemplate="%{customdata}<extra></extra>",
                )
            )
    fig.update_layout(
        **BASE_LAYOUT,
        title=plot_text(title),
        height=380,
        legend={"title": {"text": "Method"}},
        hovermode="closest",
    )
    fig.update_xaxes(title_text="Sparsity (% of prunable weights that are zero)", ticksuffix="%")
    fig.update_yaxes(title_text="Test accuracy", ticksuffix="%")
    return fig
