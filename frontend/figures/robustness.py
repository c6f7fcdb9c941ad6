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

from frontend.figures._common import BASE_LAYOUT, COLOR_A, COLOR_B, empty_figure, plot_text

ACCURACY_SCALE = "Viridis"  # sequential: dark = low accuracy, yellow = high
DIFF_SCALE = "RdBu"  # B - A: red where B lost accuracy, blue where it gained
DIFF_LABEL = "B − A (pp)"
ACCURACY_LABEL = "accuracy (%)"
SEVERITY_AXIS = "severity (1 = mild … 5 = severe)"
CORRUPTION_AXIS = "corruption"
SELECTED_LINE = "#111"
MAX_ANNOTATED_CELLS = 120  # past this the numbers in the cells become unreadable
MIN_RELATIVE_DROP = 0.01  # relative CE needs A to lose >= 1 pp per severity on average
ACCURACY_HOVER = "share of the test samples classified correctly under this corruption"
DIFF_HOVER = "change in accuracy from A to B, in percentage points; red: B lost accuracy"


@dataclass(frozen=True)
class RobustnessGrid:
    """Accuracy of A and B on the (corruption, severity) settings both were measured on.

    Attributes:
        corruptions: ``[C]`` corruption names, in A's order.
        severities: ``[S]`` severities, ascending.
        acc_a: ``(C, S)`` accuracy of A in [0, 1]; NaN where a value is missing.
        acc_b: ``(C, S)`` accuracy of B, likewise.
    """

    corruptions: list[str]
    severities: list[int]
    acc_a: np.ndarray
    acc_b: np.ndarray

    @property
    def empty(self) -> bool:
        return not self.corruptions or not self.severities

    def cell(self, corruption: str, severity: int) -> tuple[float | None, float | None] | None:
        """``(accuracy of A, accuracy of B)`` at one setting; None when it was not measured."""
        if corruption not in self.corruptions or severity not in self.severities:
            return None
        i, j = self.corruptions.index(corruption), self.severities.index(severity)
        return _finite(self.acc_a[i, j]), _finite(self.acc_b[i, j])


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


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
    """Align two ``GET /api/analyses/{id}/robustness`` tables on their common settings.

    Args:
        robustness_a: A's table: ``corruptions`` [C], ``severities`` [S], ``accuracy`` [C][S].
        robustness_b: B's table, possibly over other corruptions or severities.

    Returns:
        The grid over the corruptions both measured (A's order) and the severities both
        measured (ascending); empty when either table is None or they share no setting.

    Raises:
        ValueError: when a table's ``accuracy`` is not ``[C][S]``.
    """
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
    """CE_c = sum_s (1 - acc_B[c, s]) / sum_s (1 - acc_A[c, s]) per corruption.

    Args:
        acc_a: ``(C, S)`` accuracy of the reference model A.
        acc_b: ``(C, S)`` accuracy of B.

    Returns:
        ``[C]`` ratios; None where A made no error under that corruption (or values are NaN).
    """
    err_a = (1 - np.asarray(acc_a, dtype=np.float64)).sum(axis=1)
    err_b = (1 - np.asarray(acc_b, dtype=np.float64)).sum(axis=1)
    out: list[float | None] = []
    for ea, eb in zip(err_a, err_b, strict=True):
        out.append(float(eb / ea) if math.isfinite(ea) and math.isfinite(eb) and ea > 0 else None)
    return out


def relative_corruption_errors(
    acc_a: np.ndarray, acc_b: np.ndarray, clean_a: float, clean_b: float
) -> list[float | None]:
    """Relative CE_c = sum_s (E^B_{c,s} - E^B_clean) / sum_s (E^A_{c,s} - E^A_clean).

    Args:
        acc_a: ``(C, S)`` accuracy of A under corruption.
        acc_b: ``(C, S)`` accuracy of B under corruption.
        clean_a: A's clean accuracy.
        clean_b: B's clean accuracy.

    Returns:
        ``[C]`` ratios; None where corruption barely lowered A's accuracy (less than
        ``MIN_RELATIVE_DROP`` per severity on average: the ratio would divide by noise) or
        values are missing.
    """
    a = np.asarray(acc_a, dtype=np.float64)
    b = np.asarray(acc_b, dtype=np.float64)
    drop_a = (clean_a - a).sum(axis=1)  # = sum_s (E^A_{c,s} - E^A_clean)
    drop_b = (clean_b - b).sum(axis=1)
    floor = MIN_RELATIVE_DROP * a.shape[1] if a.ndim == 2 else MIN_RELATIVE_DROP
    out: list[float | None] = []
    for da, db in zip(drop_a, drop_b, strict=True):
        ok = math.isfinite(da) and math.isfinite(db) and da >= floor
        out.append(float(db / da) if ok else None)
    return out


def mean_of(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(present) / len(present) if present else None


def mean_by_severity(acc: np.ndarray) -> list[float | None]:
    """``[S]`` mean accuracy over corruptions at each severity (NaN values skipped)."""
    arr = np.asarray(acc, dtype=np.float64)
    out: list[float | None] = []
    for j in range(arr.shape[1] if arr.ndim == 2 else 0):
        column = arr[:, j]
        column = column[np.isfinite(column)]
        out.append(float(column.mean()) if column.size else None)
    return out


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


def _pct(values: np.ndarray) -> list[list[float | None]]:
    return [
        [None if not math.isfinite(v) else round(100 * float(v), 3) for v in row] for row in values
    ]


def _outline(fig: go.Figure, grid: RobustnessGrid, selected: tuple[str, int] | None) -> None:
    """Outline the selected cell (the heatmap's axes are categorical: cells sit at integers)."""
    if selected is None:
        return
    corruption, severity = selected
    if corruption not in grid.corruptions or severity not in grid.severities:
        return
    i, j = grid.corruptions.index(corruption), grid.severities.index(severity)
    fig.add_shape(
        type="rect",
        xref="x",
        yref="y",
        x0=j - 0.5,
        x1=j + 0.5,
        y0=i - 0.5,
        y1=i + 0.5,
        line={"color": SELECTED_LINE, "width": 3},
        fillcolor="rgba(0,0,0,0)",
    )


def _style(fig: go.Figure, title: str, grid: RobustnessGrid) -> None:
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(title=plot_text(title), margin={"l": 120, "r": 20, "t": 50, "b": 60})
    fig.update_xaxes(
        type="category",
        title_text=SEVERITY_AXIS,
        tickmode="array",
        tickvals=[str(s) for s in grid.severities],
    )
    fig.update_yaxes(type="category", title_text=None, autorange="reversed")


def _annotate(grid: RobustnessGrid, annotate: bool | None) -> bool:
    if annotate is None:
        return len(grid.corruptions) * len(grid.severities) <= MAX_ANNOTATED_CELLS
    return annotate


def accuracy_heatmap(
    grid: RobustnessGrid,
    side: str,
    title: str,
    *,
    selected: tuple[str, int] | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Accuracy of one model by corruption (rows) x severity (columns), in percent.

    A and B share the colour scale and its fixed range 0-100 %, so equal colours mean equal
    accuracy in both heatmaps.

    Args:
        grid: the aligned accuracies of A and B.
        side: "a" or "b": whose accuracy to draw.
        title: figure title.
        selected: ``(corruption, severity)`` whose cell is outlined, or None.
        annotate: write the accuracy in each cell; by default up to ``MAX_ANNOTATED_CELLS``.

    Returns:
        One heatmap trace, ``z`` = 100 x accuracy ``[C][S]``, ``zmin`` 0, ``zmax`` 100.
    """
    if side not in ("a", "b"):
        raise ValueError(f"side={side!r} should be 'a' or 'b'")
    if grid.empty:
        return empty_figure("No corruption results.", title)
    z = _pct(grid.acc_a if side == "a" else grid.acc_b)
    text = [["" if v is None else f"{v:.0f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(s) for s in grid.severities],
            y=list(grid.corruptions),
            text=text,
            texttemplate="%{text}" if _annotate(grid, annotate) else None,
            colorscale=ACCURACY_SCALE,
            zmin=0,
            zmax=100,
            colorbar={"title": {"text": ACCURACY_LABEL, "side": "right"}, "thickness": 12},
            xgap=1,
            ygap=1,
            hovertemplate=(
                "%{y}, severity %{x}<br>accuracy %{z:.1f}%<br>"
                f"<i>{ACCURACY_HOVER}</i><extra></extra>"
            ),
        )
    )
    _style(fig, title, grid)
    _outline(fig, grid, selected)
    return fig


def accuracy_diff_heatmap(
    grid: RobustnessGrid,
    title: str,
    *,
    selected: tuple[str, int] | None = None,
    annotate: bool | None = None,
) -> go.Figure:
    """Change in accuracy from A to B per setting, in percentage points, centred on zero.

    Returns:
        One heatmap trace, ``z`` = 100 x (acc_B - acc_A), diverging scale with ``zmid`` 0 and
        the symmetric range ``[-m, m]``, ``m`` = the largest absolute change (1 when none).
    """
    if grid.empty:
        return empty_figure("No corruption results.", title)
    z = _pct(grid.acc_b - grid.acc_a)
    m = max((abs(v) for row in z for v in row if v is not None), default=0.0) or 1.0
    text = [["" if v is None else f"{v:+.1f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(s) for s in grid.severities],
            y=list(grid.corruptions),
            text=text,
            texttemplate="%{text}" if _annotate(grid, annotate) else None,
            colorscale=DIFF_SCALE,
            zmid=0,
            zmin=-m,
            zmax=m,
            colorbar={"title": {"text": DIFF_LABEL, "side": "right"}, "thickness": 12},
            xgap=1,
            ygap=1,
            hovertemplate=(
                "%{y}, severity %{x}<br>B − A: %{z:+.1f} pp<br>"
                f"<i>{DIFF_HOVER}</i><extra></extra>"
            ),
        )
    )
    _style(fig, title, grid)
    _outline(fig, grid, selected)
    return fig


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
    """Mean accuracy over the corruptions at each severity, for A and B.

    Args:
        grid: the aligned accuracies.
        label_a: legend name of A.
        label_b: legend name of B.
        clean_a: A's clean accuracy, drawn at severity 0 ("clean") when given.
        clean_b: B's clean accuracy, likewise.
        highlight: a corruption whose own curves (A and B, dashed) are added.
        title: figure title.

    Returns:
        Two line traces (A, B), plus two dashed ones for ``highlight``; y in percent.
    """
    if grid.empty:
        return empty_figure("No corruption results.", title)
    with_clean = clean_a is not None and clean_b is not None
    xs: list[int] = ([0] if with_clean else []) + list(grid.severities)
    ticks = (["clean"] if with_clean else []) + [str(s) for s in grid.severities]
    fig = go.Figure()

    def add(
        values: list[float | None], clean: float | None, name: str, color: str, *, dash: str
    ) -> None:
        ys = ([clean] if with_clean else []) + values
        where = [("clean" if x == 0 else f"severity {x}") for x in xs]
        name = plot_text(name)  # a model's name, drawn in the legend and the hover template
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[None if v is None else 100 * v for v in ys],
                mode="lines+markers",
                name=name,
                line={"color": color, "width": 2, "dash": dash},
                marker={"size": 7, "color": color},
                text=where,
                hovertemplate=f"{name}<br>%{{text}}: %{{y:.1f}}%<extra></extra>",
            )
        )

    n = len(grid.corruptions)
    mean = f" (mean of {n} corruption{'s' if n != 1 else ''})"
    add(mean_by_severity(grid.acc_a), clean_a, label_a + mean, COLOR_A, dash="solid")
    add(mean_by_severity(grid.acc_b), clean_b, label_b + mean, COLOR_B, dash="solid")
    if highlight is not None and highlight in grid.corruptions:
        i = grid.corruptions.index(highlight)
        for acc, clean, side, color in (
            (grid.acc_a, clean_a, "A", COLOR_A),
            (grid.acc_b, clean_b, "B", COLOR_B),
        ):
            add([_finite(v) for v in acc[i]], clean, f"{side}: {highlight}", color, dash="dot")
    fig.update_layout(**BASE_LAYOUT)
    fig.update_layout(
        title=plot_text(title),
        legend={"orientation": "h", "y": -0.28, "x": 0},
        margin={"l": 60, "r": 20, "t": 50, "b": 100},
    )
    fig.update_xaxes(
        title_text="severity (clean = uncorrupted test set)" if with_clean else SEVERITY_AXIS,
        tickmode="array",
        tickvals=xs,
        ticktext=ticks,
    )
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100.5])
    return fig
