"""Corruption robustness of A and B: accuracy by corruption x severity, and mCE.

Accuracy under the 15 corruptions of Hendrycks & Dietterich (2019) at severities 1-5
(SCIENCE.md section 6), as measured by analyses run with corruptions. Corruption errors follow
the paper with the original model A as the reference instead of AlexNet:

- CE_c = sum_s E^B_{c,s} / sum_s E^A_{c,s}, mCE = mean over corruptions (E = 1 - accuracy);
- relative CE_c = sum_s (E^B_{c,s} - E^B_clean) / sum_s (E^A_{c,s} - E^A_clean), relative mCE
  its mean: how much more accuracy B loses to corruption than A does (1 = the same drop); a
  corruption that costs A under 1 pp per severity is left out (the ratio would divide by noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from frontend.figures._common import (
    COLOR_A,
    COLOR_B,
    base_layout,
    centred,
    colorbar,
    empty_figure,
    finite,
    outline,
    plot_text,
)

ACCURACY_SCALE = "Viridis"  # sequential: dark = low accuracy, yellow = high
DIFF_SCALE = "RdBu"  # B - A: red where B lost accuracy, blue where it gained
DIFF_LABEL = "B − A (pp)"
ACCURACY_LABEL = "accuracy (%)"
SEVERITY_AXIS = "severity (1 = mild … 5 = severe)"
MAX_ANNOTATED_CELLS = 120  # past this the numbers in the cells become unreadable
MIN_RELATIVE_DROP = 0.01  # relative CE needs A to lose >= 1 pp per severity on average
ACCURACY_HOVER = "share of the test samples classified correctly under this corruption"
DIFF_HOVER = "change in accuracy from A to B, in percentage points; red: B lost accuracy"


@dataclass(frozen=True)
class RobustnessGrid:
    """Accuracy of A and B on the (corruption, severity) settings both were measured on."""

    corruptions: list[str]  # [C], in A's order
    severities: list[int]  # [S], ascending
    acc_a: np.ndarray  # (C, S) accuracy of A in [0, 1]; NaN where a value is missing
    acc_b: np.ndarray  # (C, S) accuracy of B, likewise

    @property
    def empty(self) -> bool:
        return not self.corruptions or not self.severities

    def cell(self, corruption: str, severity: int) -> tuple[float | None, float | None] | None:
        """``(accuracy of A, accuracy of B)`` at one setting; None when it was not measured."""
        if corruption not in self.corruptions or severity not in self.severities:
            return None
        i, j = self.corruptions.index(corruption), self.severities.index(severity)
        return finite(self.acc_a[i, j]), finite(self.acc_b[i, j])


def _lookup(robustness: Mapping[str, Any]) -> dict[tuple[str, int], float]:
    """``{(corruption, severity): accuracy}`` of one robustness table; checks its shape."""
    names = [str(c) for c in robustness.get("corruptions") or []]
    sevs = [int(s) for s in robustness.get("severities") or []]
    acc = robustness.get("accuracy") or []
    if len(acc) != len(names):
        raise ValueError(f"accuracy has {len(acc)} rows but there are {len(names)} corruptions")
    out: dict[tuple[str, int], float] = {}
    for i, (name, row) in enumerate(zip(names, acc, strict=True)):
        if len(row) != len(sevs):
            raise ValueError(
                f"accuracy row {i} ({name}) has {len(row)} values but there are "
                f"{len(sevs)} severities"
            )
        for s, v in zip(sevs, row, strict=True):
            out[(name, s)] = np.nan if v is None else float(v)
    return out


def robustness_grid(
    robustness_a: Mapping[str, Any] | None, robustness_b: Mapping[str, Any] | None
) -> RobustnessGrid:
    """Align two ``GET /api/analyses/{id}/robustness`` tables (``corruptions`` [C],
    ``severities`` [S], ``accuracy`` [C][S]) on the corruptions both measured (in A's order)
    and the severities both measured (ascending); empty when either is None or they share no
    setting. Raises ValueError when a table's ``accuracy`` is not ``[C][S]``."""
    if not robustness_a or not robustness_b:
        return RobustnessGrid([], [], np.zeros((0, 0)), np.zeros((0, 0)))
    la, lb = _lookup(robustness_a), _lookup(robustness_b)
    names_b = {str(c) for c in robustness_b.get("corruptions") or []}
    names = [str(c) for c in robustness_a.get("corruptions") or [] if str(c) in names_b]
    sevs = sorted(
        {int(s) for s in robustness_a.get("severities") or []}
        & {int(s) for s in robustness_b.get("severities") or []}
    )
    acc_a = np.array([[la[(c, s)] for s in sevs] for c in names], dtype=np.float64)
    acc_b = np.array([[lb[(c, s)] for s in sevs] for c in names], dtype=np.float64)
    shape = (len(names), len(sevs))
    return RobustnessGrid(names, sevs, acc_a.reshape(shape), acc_b.reshape(shape))


# corruption errors ----------------------------------------------------------------------------


def corruption_errors(acc_a: np.ndarray, acc_b: np.ndarray) -> list[float | None]:
    """``[C]`` CE_c = sum_s (1 - acc_B[c, s]) / sum_s (1 - acc_A[c, s]) of ``(C, S)``
    accuracies, A the reference; None where A made no error (or values are NaN)."""
    err_a = (1 - np.asarray(acc_a, dtype=np.float64)).sum(axis=1)
    err_b = (1 - np.asarray(acc_b, dtype=np.float64)).sum(axis=1)
    return [_ratio(eb, ea, ea > 0) for ea, eb in zip(err_a, err_b, strict=True)]


def _ratio(numerator: float, denominator: float, enough: bool) -> float | None:
    """``numerator / denominator`` when both are finite and the denominator is ``enough``."""
    ok = enough and math.isfinite(numerator) and math.isfinite(denominator)
    return float(numerator / denominator) if ok else None


def relative_corruption_errors(
    acc_a: np.ndarray, acc_b: np.ndarray, clean_a: float, clean_b: float
) -> list[float | None]:
    """``[C]`` relative CE_c = sum_s (E^B_{c,s} - E^B_clean) / sum_s (E^A_{c,s} - E^A_clean)
    of ``(C, S)`` accuracies under corruption and the clean ones; None where values are missing
    or corruption cost A under ``MIN_RELATIVE_DROP`` per severity (the ratio would divide by
    noise)."""
    a = np.asarray(acc_a, dtype=np.float64)
    drop_a = (clean_a - a).sum(axis=1)  # = sum_s (E^A_{c,s} - E^A_clean)
    drop_b = (clean_b - np.asarray(acc_b, dtype=np.float64)).sum(axis=1)
    floor = MIN_RELATIVE_DROP * a.shape[1] if a.ndim == 2 else MIN_RELATIVE_DROP
    return [_ratio(db, da, da >= floor) for da, db in zip(drop_a, drop_b, strict=True)]


def mean_of(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(present) / len(present) if present else None


def mean_by_severity(acc: np.ndarray) -> list[float | None]:
    """``[S]`` mean accuracy over corruptions at each severity (NaN values skipped)."""
    arr = np.asarray(acc, dtype=np.float64)
    columns = [
        arr[:, j][np.isfinite(arr[:, j])] for j in range(arr.shape[1] if arr.ndim == 2 else 0)
    ]
    return [float(column.mean()) if column.size else None for column in columns]


def largest_drop(grid: RobustnessGrid) -> tuple[str, int, float] | None:
    """The setting where B lost most accuracy against A: ``(corruption, severity, B - A)``;
    None when B lost accuracy nowhere."""
    if grid.empty:
        return None
    diff = grid.acc_b - grid.acc_a
    if not np.isfinite(diff).any():
        return None
    i, j = np.unravel_index(np.nanargmin(diff), diff.shape)
    value = float(diff[i, j])
    if value >= 0:
        return None
    return grid.corruptions[int(i)], grid.severities[int(j)], value


# figures ------------------------------------------------------------------------------------


def _grid_heatmap(
    grid: RobustnessGrid,
    title: str,
    values: np.ndarray,
    cell: str,
    hover: str,
    selected: tuple[str, int] | None,
    annotate: bool | None,
    centre: bool = False,
    **trace: Any,
) -> go.Figure:
    """Heatmap of ``values`` (corruption rows x severity columns) in percent, ``cell`` the
    format of the number written in each cell, ``selected``'s cell outlined; ``centre``: a
    diverging scale symmetric around 0."""
    if grid.empty:
        return empty_figure("No corruption results.", title)
    z = [
        [None if not math.isfinite(v) else round(100 * float(v), 3) for v in row] for row in values
    ]
    if annotate is None:
        annotate = len(grid.corruptions) * len(grid.severities) <= MAX_ANNOTATED_CELLS
    if centre:
        trace |= centred(max((abs(v) for row in z for v in row if v is not None), default=0) or 1.0)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(s) for s in grid.severities],
            y=list(grid.corruptions),
            text=[["" if v is None else format(v, cell) for v in row] for row in z],
            texttemplate="%{text}" if annotate else None,
            xgap=1,
            ygap=1,
            hovertemplate=f"%{{y}}, severity %{{x}}<br>{hover}<extra></extra>",
            **trace,
        )
    )
    fig.update_layout(**base_layout(title, (120, 20, 50, 60)))
    fig.update_xaxes(
        type="category",
        title_text=SEVERITY_AXIS,
        tickmode="array",
        tickvals=[str(s) for s in grid.severities],
    )
    fig.update_yaxes(type="category", title_text=None, autorange="reversed")
    if selected is not None and selected[0] in grid.corruptions and selected[1] in grid.severities:
        i, j = grid.corruptions.index(selected[0]), grid.severities.index(selected[1])
        outline(fig, (j - 0.5, j + 0.5), (i - 0.5, i + 0.5), width=3)
    return fig


def accuracy_heatmap(
    grid: RobustnessGrid,
    side: str,
    title: str,
    *,
    selected: tuple[str, int] | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Accuracy of model ``side`` ("a" or "b") by corruption (rows) x severity (columns): one
    heatmap trace, ``z`` = 100 x accuracy ``[C][S]`` on the fixed range 0-100 % that A and B
    share, so equal colours mean equal accuracy in both. ``selected``: the ``(corruption,
    severity)`` outlined; ``annotate``: write the accuracy in each cell (by default up to
    ``MAX_ANNOTATED_CELLS``)."""
    if side not in ("a", "b"):
        raise ValueError(f"side={side!r} should be 'a' or 'b'")
    return _grid_heatmap(
        grid,
        title,
        grid.acc_a if side == "a" else grid.acc_b,
        ".0f",
        f"accuracy %{{z:.1f}}%<br><i>{ACCURACY_HOVER}</i>",
        selected,
        annotate,
        colorscale=ACCURACY_SCALE,
        zmin=0,
        zmax=100,
        colorbar=colorbar(ACCURACY_LABEL),
    )


def accuracy_diff_heatmap(
    grid: RobustnessGrid,
    title: str,
    *,
    selected: tuple[str, int] | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Change in accuracy from A to B per setting, as :func:`accuracy_heatmap`: one heatmap
    trace, ``z`` = 100 x (acc_B - acc_A) in percentage points, diverging scale with ``zmid`` 0
    and the range ``[-m, m]``, ``m`` the largest absolute change (1 when none)."""
    return _grid_heatmap(
        grid,
        title,
        grid.acc_b - grid.acc_a,
        "+.1f",
        f"B − A: %{{z:+.1f}} pp<br><i>{DIFF_HOVER}</i>",
        selected,
        annotate,
        centre=True,
        colorscale=DIFF_SCALE,
        colorbar=colorbar(DIFF_LABEL),
    )


def severity_lines(
    grid: RobustnessGrid,
    label_a: str,
    label_b: str,
    *,
    clean_a: float | None = None,
    clean_b: float | None = None,
    highlight: str | None = None,
    title: str = "Mean accuracy vs severity",
) -> go.Figure:
    """Mean accuracy (in percent) over the corruptions at each severity: a line trace for A
    and one for B, starting at severity 0 ("clean") when both clean accuracies are given,
    plus two dotted ones for corruption ``highlight`` alone."""
    if grid.empty:
        return empty_figure("No corruption results.", title)
    with_clean = clean_a is not None and clean_b is not None
    xs: list[int] = ([0] if with_clean else []) + list(grid.severities)
    where = [("clean" if x == 0 else f"severity {x}") for x in xs]
    n = len(grid.corruptions)
    mean = f" (mean of {n} corruption{'s' if n != 1 else ''})"
    lines = [
        (mean_by_severity(grid.acc_a), clean_a, label_a + mean, COLOR_A, "solid"),
        (mean_by_severity(grid.acc_b), clean_b, label_b + mean, COLOR_B, "solid"),
    ]
    if highlight is not None and highlight in grid.corruptions:
        i = grid.corruptions.index(highlight)
        for acc, clean, side, color in (
            (grid.acc_a, clean_a, "A", COLOR_A),
            (grid.acc_b, clean_b, "B", COLOR_B),
        ):
            lines.append(([finite(v) for v in acc[i]], clean, f"{side}: {highlight}", color, "dot"))
    fig = go.Figure()
    for values, clean, name, color, dash in lines:
        ys = ([clean] if with_clean else []) + values
        name = plot_text(name)  # a model's name, drawn in the legend and the hover template
        fig.add_scatter(
            x=xs,
            y=[None if v is None else 100 * v for v in ys],
            mode="lines+markers",
            name=name,
            line={"color": color, "width": 2, "dash": dash},
            marker={"size": 7, "color": color},
            text=where,
            hovertemplate=f"{name}<br>%{{text}}: %{{y:.1f}}%<extra></extra>",
        )
    legend = {"orientation": "h", "y": -0.28, "x": 0}
    fig.update_layout(**base_layout(title, (60, 20, 50, 100), legend=legend))
    fig.update_xaxes(
        title_text="severity (clean = uncorrupted test set)" if with_clean else SEVERITY_AXIS,
        tickmode="array",
        tickvals=xs,
        ticktext=(["clean"] if with_clean else []) + [str(s) for s in grid.severities],
    )
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100.5])
    return fig
