"""The geometric similarity map: every (model, corruption) pair of a comparison in 2-D.

After Li et al., "Understanding Robustness Lottery" (IEEE TVCG 2024), SCIENCE.md section 1: the
geometric fingerprint of a (model, corruption) pair is projected to 2-D and the fingerprints are
linked by their minimum spanning tree (computed on the fingerprints, not the 2-D positions).
Colour says the pruning method, size the sparsity, shape clean or corrupted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from frontend.figures._common import BASE_LAYOUT, COLOR_A, empty_figure, plot_text

ORIGINAL = "original"  # the "method" of model A
CLEAN = "clean"
# Tableau 10 without its blue, which is the original's (COLOR_A) everywhere in the dashboard.
METHOD_PALETTE = (
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
)
SYMBOL_CLEAN = "circle"
SYMBOL_CORRUPTED = "diamond"
MIN_SIZE = 11.0  # marker diameter (px) of a dense model
MAX_SIZE = 28.0  # ... of a model at sparsity 1
EDGE_COLOR = "#aab2bb"
LEGEND_GREY = "#6e7781"


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """A colour per pruning method: the original blue, the others a qualitative palette.

    Methods are coloured in sorted order, so the same set of methods always gets the same
    colours on every page; the palette repeats after nine methods.

    Args:
        methods: method names, with repeats; ``"original"`` for unpruned models.

    Returns:
        ``{method: "#rrggbb"}`` for every distinct method.
    """
    given = {str(m) for m in methods}
    names = sorted(given - {ORIGINAL})
    colors = {name: METHOD_PALETTE[i % len(METHOD_PALETTE)] for i, name in enumerate(names)}
    if ORIGINAL in given:
        colors[ORIGINAL] = COLOR_A
    return colors


def marker_size(sparsity: float | None) -> float:
    """Marker diameter in px, growing linearly with sparsity in [0, 1] (clipped; None is 0)."""
    s = 0.0 if sparsity is None or math.isnan(float(sparsity)) else float(sparsity)
    s = min(max(s, 0.0), 1.0)
    return MIN_SIZE + (MAX_SIZE - MIN_SIZE) * s


@dataclass(frozen=True)
class MapPoint:
    """One (model, corruption) pair of the map, with what its hover says."""

    x: float
    y: float
    model_id: int
    name: str
    method: str  # "original" for model A
    sparsity: float
    corruption: str  # "clean" or a corruption name
    severity: int  # 0 for clean
    accuracy: float | None

    @property
    def clean(self) -> bool:
        return self.corruption == CLEAN


def point_accuracy(
    model_id: int,
    corruption: str,
    severity: int,
    clean_accuracy: Mapping[int, float | None],
    robustness: Mapping[int, Mapping[str, Any] | None],
) -> float | None:
    """Test accuracy of one (model, corruption, severity); None when it was not measured.

    Args:
        model_id: the model.
        corruption: "clean" or a corruption name.
        severity: the corruption's severity (ignored for clean).
        clean_accuracy: ``{model_id: accuracy}`` on the clean test split.
        robustness: ``{model_id: GET /api/analyses/{id}/robustness}``, i.e.
            ``{"corruptions": [c], "severities": [s], "accuracy": [c][s]}``.
    """
    if corruption == CLEAN:
        return clean_accuracy.get(model_id)
    table = robustness.get(model_id)
    if not table:
        return None
    try:
        ci = list(table["corruptions"]).index(corruption)
        si = [int(s) for s in table["severities"]].index(int(severity))
        return float(table["accuracy"][ci][si])
    except (KeyError, ValueError, IndexError, TypeError):
        return None


def map_points(
    similarity: Mapping[str, Any],
    models: Mapping[int, Mapping[str, Any]],
    clean_accuracy: Mapping[int, float | None],
    robustness: Mapping[int, Mapping[str, Any] | None],
) -> list[MapPoint]:
    """Join the API's similarity map with the models and their accuracies.

    Args:
        similarity: ``GET /api/comparisons/{id}/similarity``: ``coords`` (M x 2) and ``points``
            (M dicts with ``model_id``, ``corruption``, ``severity``), in the same order.
        models: ``{id: model}`` as ``GET /api/models`` returns them.
        clean_accuracy: see :func:`point_accuracy`.
        robustness: see :func:`point_accuracy`.

    Returns:
        M points, in the order of the response (edge indices refer to it).

    Raises:
        ValueError: when ``coords`` and ``points`` differ in length.
    """
    coords = list(similarity.get("coords") or [])
    meta = list(similarity.get("points") or [])
    if len(coords) != len(meta):
        raise ValueError(f"similarity map has {len(coords)} coords but {len(meta)} points")
    out = []
    for (x, y), p in zip(coords, meta, strict=True):
        mid = int(p["model_id"])
        model = models.get(mid) or {}
        corruption = str(p.get("corruption") or CLEAN)
        severity = int(p.get("severity") or 0)
        out.append(
            MapPoint(
                x=float(x),
                y=float(y),
                model_id=mid,
                name=str(model.get("name") or f"model {mid}"),
                method=str(model.get("pruning_method") or ORIGINAL),
                sparsity=float(model.get("sparsity") or 0.0),
                corruption=corruption,
                severity=severity,
                accuracy=point_accuracy(mid, corruption, severity, clean_accuracy, robustness),
            )
        )
    return out


def mst_pairs(similarity: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The spanning tree's edges of a similarity response as ``(i, j)`` point indices."""
    return [(int(e["source"]), int(e["target"])) for e in similarity.get("mst_edges") or []]


def _corruption_text(p: MapPoint) -> str:
    return CLEAN if p.clean else f"{plot_text(p.corruption)} (severity {p.severity})"


def _hover(p: MapPoint) -> str:
    acc = "—" if p.accuracy is None else f"{100 * p.accuracy:.1f}%"
    return (
        f"<b>{plot_text(p.name)}</b> · {plot_text(p.method)} · {100 * p.sparsity:.3g}% sparse · "
        f"{_corruption_text(p)} · accuracy {acc}"
    )


def _short_label(p: MapPoint) -> str:
    return "A (original)" if p.method == ORIGINAL else f"{100 * p.sparsity:.3g}%"


def similarity_figure(
    points: Sequence[MapPoint],
    edges: Sequence[tuple[int, int]],
    projection: str = "pca",
    title: str = "Geometric similarity of every (model, corruption) pair",
) -> go.Figure:
    """Scatter of the map's points joined by the minimum spanning tree.

    Args:
        points: M points (see :func:`map_points`).
        edges: the tree's edges as index pairs into ``points`` (M - 1 of them for M >= 1).
        projection: "umap" or "pca", names the axes.
        title: figure title.

    Returns:
        A figure whose first trace holds the tree (one line segment per edge, segments separated
        by None), then one marker trace per pruning method (its legend entry; marker size grows
        with sparsity, circles clean, diamonds corrupted; ``customdata`` =
        ``[model_id, corruption, hover text]``), then two legend-only traces for the shapes.

    Raises:
        ValueError: when an edge names a point that does not exist.
    """
    if not points:
        return empty_figure("No (model, corruption) pairs in this map.", title)
    n = len(points)
    for i, j in edges:
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f"edge ({i}, {j}) names a point outside [0, {n})")
    axis = "UMAP" if projection == "umap" else "PCA"
    fig = go.Figure()
    ex: list[float | None] = []
    ey: list[float | None] = []
    for i, j in edges:
        ex += [points[i].x, points[j].x, None]
        ey += [points[i].y, points[j].y, None]
    fig.add_trace(
        go.Scatter(
            x=ex,
            y=ey,
            mode="lines",
            line={"color": EDGE_COLOR, "width": 1},
            hoverinfo="skip",
            name="spanning tree",
            legendgroup="tree",
            legendgrouptitle={"text": "Edges"},
            legendrank=1100,
        )
    )
    colors = method_colors(p.method for p in points)
    order = sorted(colors, key=lambda m: (m != ORIGINAL, m))
    for k, method in enumerate(order):
        group = [p for p in points if p.method == method]
        fig.add_trace(
            go.Scatter(
                x=[p.x for p in group],
                y=[p.y for p in group],
                mode="markers+text",
                name=plot_text(method),
                legendgroup="method",
                legendgrouptitle={"text": "Pruning method"} if k == 0 else None,
                text=[_short_label(p) if p.clean else "" for p in group],
                textposition="top center",
                textfont={"size": 11, "color": "#444"},
                marker={
                    "color": colors[method],
                    "size": [marker_size(p.sparsity) for p in group],
                    "symbol": [SYMBOL_CLEAN if p.clean else SYMBOL_CORRUPTED for p in group],
                    "line": {"color": "#ffffff", "width": 1},
                    "opacity": 0.9,
                },
                customdata=[[p.model_id, p.corruption, _hover(p)] for p in group],
                hovertemplate="%{customdata[2]}<extra></extra>",
            )
        )
    for label, symbol in (("clean", SYMBOL_CLEAN), ("corrupted", SYMBOL_CORRUPTED)):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=label,
                marker={"color": LEGEND_GREY, "size": 10, "symbol": symbol},
                legendgroup="shape",
                legendgrouptitle={"text": "Shape"} if symbol == SYMBOL_CLEAN else None,
                hoverinfo="skip",
                legendrank=1000,
            )
        )
    fig.update_layout(
        **BASE_LAYOUT,
        title={
            "text": plot_text(title),
            "subtitle": {
                "text": "colour: pruning method · size: sparsity · grey lines: minimum spanning "
                "tree of the fingerprint distances"
            },
        },
        height=620,
        legend={"itemsizing": "constant", "groupclick": "toggleitem", "tracegroupgap": 14},
        hovermode="closest",
        clickmode="event",
    )
    fig.update_layout(margin={"l": 60, "r": 20, "t": 80, "b": 60})
    fig.update_xaxes(title_text=f"{axis} 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text=f"{axis} 2", showticklabels=False, zeroline=False)
    return fig
