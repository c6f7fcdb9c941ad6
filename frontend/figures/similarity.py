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
from plotly.colors import qualitative

from frontend.figures._common import COLOR_A, base_layout, empty_figure, plot_text

Models = Mapping[int, Mapping[str, Any]]  # {id: GET /api/models/{id}}
Clean = Mapping[int, float | None]  # {model id: accuracy on the clean test split}
Tables = Mapping[int, Mapping[str, Any] | None]  # {model id: GET /api/analyses/{id}/robustness}

ORIGINAL = "original"  # the "method" of model A
CLEAN = "clean"
# Tableau 10 without its blue, which is the original's (COLOR_A) everywhere in the dashboard.
METHOD_PALETTE = tuple(c.lower() for c in qualitative.T10 if c.lower() != COLOR_A)
SYMBOL_CLEAN = "circle"
SYMBOL_CORRUPTED = "diamond"
MIN_SIZE = 11.0  # marker diameter (px) of a dense model
MAX_SIZE = 28.0  # ... of a model at sparsity 1
EDGE_COLOR = "#aab2bb"
LEGEND_GREY = "#6e7781"


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """``{method: "#rrggbb"}`` for every distinct method name (``"original"`` for unpruned
    models): the original blue, the others the palette in sorted order, so the same set of
    methods gets the same colours on every page (repeating after nine methods)."""
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
    model_id: int, corruption: str, severity: int, clean_accuracy: Clean, robustness: Tables
) -> float | None:
    """Test accuracy of one (model, corruption, severity); None when it was not measured.

    ``corruption`` is "clean" or a corruption name, ``severity`` ignored for clean; a
    robustness table is ``{"corruptions": [c], "severities": [s], "accuracy": [c][s]}``.
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


def model_fields(model_id: int, models: Models) -> dict[str, Any]:
    """A model's ``name``, ``method`` ("original" when unpruned) and ``sparsity``; a model
    missing from ``models`` is named by its id."""
    model = models.get(model_id) or {}
    return {
        "name": str(model.get("name") or f"model {model_id}"),
        "method": str(model.get("pruning_method") or ORIGINAL),
        "sparsity": float(model.get("sparsity") or 0.0),
    }


def map_points(
    similarity: Mapping[str, Any], models: Models, clean_accuracy: Clean, robustness: Tables
) -> list[MapPoint]:
    """Join ``GET /api/comparisons/{id}/similarity`` (``coords`` (M x 2) and M ``points``:
    ``model_id``, ``corruption``, ``severity``) with the models and their accuracies: M
    points, in the response's order (edge indices refer to it). ValueError when ``coords`` and
    ``points`` differ in length."""
    coords = list(similarity.get("coords") or [])
    meta = list(similarity.get("points") or [])
    if len(coords) != len(meta):
        raise ValueError(f"similarity map has {len(coords)} coords but {len(meta)} points")
    out = []
    for (x, y), p in zip(coords, meta, strict=True):
        mid = int(p["model_id"])
        corruption = str(p.get("corruption") or CLEAN)
        severity = int(p.get("severity") or 0)
        accuracy = point_accuracy(mid, corruption, severity, clean_accuracy, robustness)
        fields = model_fields(mid, models) | {"corruption": corruption, "severity": severity}
        out.append(MapPoint(float(x), float(y), mid, **fields, accuracy=accuracy))
    return out


def mst_pairs(similarity: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The spanning tree's edges of a similarity response as ``(i, j)`` point indices."""
    return [(int(e["source"]), int(e["target"])) for e in similarity.get("mst_edges") or []]


def _hover(p: MapPoint) -> str:
    acc = "—" if p.accuracy is None else f"{100 * p.accuracy:.1f}%"
    corruption = CLEAN if p.clean else f"{plot_text(p.corruption)} (severity {p.severity})"
    return (
        f"<b>{plot_text(p.name)}</b> · {plot_text(p.method)} · {100 * p.sparsity:.3g}% sparse · "
        f"{corruption} · accuracy {acc}"
    )


def similarity_figure(
    points: Sequence[MapPoint],
    edges: Sequence[tuple[int, int]],
    projection: str = "pca",
    title: str = "Geometric similarity of every (model, corruption) pair",
) -> go.Figure:
    """Scatter of the map's M points (:func:`map_points`) joined by the minimum spanning
    tree, ``edges`` index pairs into ``points``; ``projection`` ("umap" or "pca") names the axes.

    Returns:
        First the tree (a line segment per edge, separated by None), then a marker trace per
        pruning method (size grows with sparsity, circles clean, diamonds corrupted;
        ``customdata`` = ``[model_id, corruption, hover text]``), then two legend-only traces
        for the shapes. ValueError when an edge names a point that does not exist.
    """
    if not points:
        return empty_figure("No (model, corruption) pairs in this map.", title)
    n = len(points)
    for i, j in edges:
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f"edge ({i}, {j}) names a point outside [0, {n})")
    axis = "UMAP" if projection == "umap" else "PCA"
    fig = go.Figure()
    fig.add_scatter(
        x=[v for i, j in edges for v in (points[i].x, points[j].x, None)],
        y=[v for i, j in edges for v in (points[i].y, points[j].y, None)],
        mode="lines",
        line={"color": EDGE_COLOR, "width": 1},
        hoverinfo="skip",
        name="spanning tree",
        legendgroup="tree",
        legendgrouptitle={"text": "Edges"},
        legendrank=1100,
    )
    colors = method_colors(p.method for p in points)
    order = sorted(colors, key=lambda m: (m != ORIGINAL, m))
    for k, method in enumerate(order):
        group = [p for p in points if p.method == method]
        fig.add_scatter(
            x=[p.x for p in group],
            y=[p.y for p in group],
            mode="markers+text",
            name=plot_text(method),
            legendgroup="method",
            legendgrouptitle={"text": "Pruning method"} if k == 0 else None,
            # the clean points are labelled: the original, the others by their sparsity
            text=[
                ("A (original)" if method == ORIGINAL else f"{100 * p.sparsity:.3g}%")
                if p.clean
                else ""
                for p in group
            ],
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
    for label, symbol in (("clean", SYMBOL_CLEAN), ("corrupted", SYMBOL_CORRUPTED)):
        fig.add_scatter(
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
    fig.update_layout(
        **base_layout(None, (60, 20, 80, 60)),
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
    for k, update in enumerate((fig.update_xaxes, fig.update_yaxes), start=1):
        update(title_text=f"{axis} {k}", showticklabels=False, zeroline=False)
    return fig
