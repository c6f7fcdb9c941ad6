"""The similarity map: its pure figure functions and its page, against a fake API."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import pytest
from dash import dcc
from dash.development.base_component import Component

from frontend import client as client_module
from frontend.figures.similarity import (
    COLOR_A,
    METHOD_PALETTE,
    SYMBOL_CLEAN,
    SYMBOL_CORRUPTED,
    MapPoint,
    map_points,
    marker_size,
    method_colors,
    mst_pairs,
    point_accuracy,
    similarity_figure,
)
from frontend.pages import similarity

# model id -> (method, sparsity, clean accuracy)
MODELS = {1: (None, 0.0, 0.9), 2: ("global_magnitude", 0.5, 0.85), 3: ("random", 0.9, 0.4)}
CORRUPTIONS = ["gaussian_noise", "contrast"]
SEVERITY = 3


def model(mid: int) -> dict[str, Any]:
    method, sparsity, acc = MODELS[mid]
    return {
        "id": mid,
        "name": f"model-{mid}",
        "architecture": "digits_cnn",
        "dataset_id": 1,
        "parent_id": None if method is None else 1,
        "pruning_method": method,
        "sparsity": sparsity,
        "accuracy": acc,
    }


def similarity_response() -> dict[str, Any]:
    """Nine (model, corruption) pairs on a line, the tree a path through them."""
    points = [
        {"model_id": mid, "corruption": c, "severity": 0 if c == "clean" else SEVERITY}
        for mid in MODELS
        for c in ["clean", *CORRUPTIONS]
    ]
    return {
        "labels": [f"{p['model_id']}:{p['corruption']}" for p in points],
        "coords": [[float(i), float(i % 3)] for i in range(len(points))],
        "mst_edges": [
            {"source": i, "target": i + 1, "weight": 1.0} for i in range(len(points) - 1)
        ],
        "method": "umap",
        "notes": [],
        "points": points,
    }


def robustness(mid: int) -> dict[str, Any]:
    # accuracy[c][s] = clean - 0.1 * (c + 1) - 0.01 * s, severities 1, 3, 5
    clean = MODELS[mid][2]
    return {
        "corruptions": CORRUPTIONS,
        "severities": [1, 3, 5],
        "accuracy": [[clean - 0.1 * (c + 1) - 0.01 * s for s in (1, 3, 5)] for c in range(2)],
    }


def compare_job(status: str, progress: float, error: str | None = None) -> dict[str, Any]:
    return {
        "id": 10,
        "kind": "compare",
        "spec": {"comparison_id": 1},
        "status": status,
        "progress": progress,
        "stage": "similarity map",
        "error": error,
        "result": None,
    }


class FakeApi:
    """Routes path -> JSON body (or (status, detail))."""

    def __init__(self) -> None:
        comparison = {
            "id": 1,
            "name": "cnn vs two pruned",
            "dataset_id": 1,
            "model_a_id": 1,
            "model_b_ids": [2, 3],
            "job_id": 10,
            "created_at": "2024-05-01T12:00:00Z",
        }
        analyses = [
            {"id": 100 + mid, "model_id": mid, "dataset_id": 1, "split": "test", "accuracy": m[2]}
            for mid, m in MODELS.items()
        ]
        self.routes: dict[str, Any] = {
            "/api/comparisons": {"data": [comparison], "count": 1},
            "/api/comparisons/1": comparison,
            "/api/comparisons/1/similarity": similarity_response(),
            "/api/models": {"data": [model(m) for m in MODELS], "count": 3},
            "/api/comparisons/1/analyses": {"data": analyses, "count": 3},
            "/api/jobs/10": compare_job("succeeded", 1.0),
        }
        for mid in MODELS:
            self.routes[f"/api/analyses/{100 + mid}/robustness"] = robustness(mid)
        for one in self.routes["/api/models"]["data"]:  # one at a time, as a share link reads
            self.routes[f"/api/models/{one['id']}"] = one

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = self.routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        if isinstance(body, tuple):
            return httpx.Response(body[0], json={"detail": body[1]})
        return httpx.Response(200, json=body)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    try:
        yield fake
    finally:
        client_module.reset()


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


def by_id(node: Any, component_id: str) -> Any:
    found = [c for c in walk(node) if getattr(c, "id", None) == component_id]
    assert len(found) == 1, f"{len(found)} components with id {component_id!r}"
    return found[0]


def points() -> list[MapPoint]:
    models = {mid: model(mid) for mid in MODELS}
    clean = {mid: m[2] for mid, m in MODELS.items()}
    return map_points(similarity_response(), models, clean, {m: robustness(m) for m in MODELS})


# pure functions ---------------------------------------------------------------------------------


def test_method_colors_are_stable_and_the_original_is_blue() -> None:
    colors = method_colors(["random", "original", "snip", "random"])
    assert colors["original"] == COLOR_A
    assert colors["random"] == METHOD_PALETTE[0] and colors["snip"] == METHOD_PALETTE[1]
    assert method_colors(iter(["snip", "random", "original"])) == colors
    assert len(set(colors.values())) == 3


def test_marker_size_grows_with_sparsity() -> None:
    sizes = [marker_size(s) for s in (0.0, 0.1, 0.5, 0.9, 0.99)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert marker_size(None) == marker_size(0.0) == marker_size(-1.0)
    assert marker_size(2.0) == marker_size(1.0)
    assert marker_size(math.nan) == marker_size(0.0)


def test_points_join_models_and_accuracies() -> None:
    pts = points()
    assert len(pts) == 9
    clean_b, noise_b = pts[3], pts[4]
    assert (clean_b.model_id, clean_b.method, clean_b.sparsity) == (2, "global_magnitude", 0.5)
    assert clean_b.clean and clean_b.accuracy == 0.85
    assert (noise_b.corruption, noise_b.severity) == ("gaussian_noise", SEVERITY)
    assert noise_b.accuracy == pytest.approx(0.85 - 0.1 - 0.03)
    assert pts[0].method == "original"
    # unmeasured: no robustness table, or a severity it does not hold
    assert point_accuracy(2, "contrast", 3, {}, {}) is None
    assert point_accuracy(2, "contrast", 4, {}, {2: robustness(2)}) is None


def test_points_and_coords_must_match() -> None:
    bad = similarity_response()
    bad["coords"] = bad["coords"][:-1]
    with pytest.raises(ValueError, match="8 coords but 9 points"):
        map_points(bad, {}, {}, {})


def test_figure_draws_the_spanning_tree_and_one_trace_per_method() -> None:
    response = similarity_response()
    pts = points()
    fig = similarity_figure(pts, mst_pairs(response), response["method"])
    tree, *rest = fig.data
    # an independent count: a spanning tree of the response's M points has M - 1 edges
    m = len(response["points"])
    segments = [i for i, v in enumerate(tree.x) if v is None]
    assert len(segments) == len(response["mst_edges"]) == m - 1
    assert tree.mode == "lines" and tree.hoverinfo == "skip"
    # each segment joins the two points its edge names
    for k, edge in enumerate(response["mst_edges"]):
        x0, x1 = tree.x[3 * k], tree.x[3 * k + 1]
        assert (x0, x1) == (pts[edge["source"]].x, pts[edge["target"]].x)

    markers = [t for t in rest if t.x != (None,)]
    assert [t.name for t in markers] == ["original", "global_magnitude", "random"]
    colors = method_colors(["original", "global_magnitude", "random"])
    assert [t.marker.color for t in markers] == [colors[t.name] for t in markers]
    assert sum(len(t.x) for t in markers) == m
    # size by sparsity: monotone across methods; shape by corruption
    by_sparsity = sorted((MODELS[t.customdata[0][0]][1], t.marker.size[0]) for t in markers)
    assert [s for _, s in by_sparsity] == sorted(s for _, s in by_sparsity)
    assert len({s for _, s in by_sparsity}) == 3
    for t in markers:
        assert list(t.marker.symbol) == [SYMBOL_CLEAN, SYMBOL_CORRUPTED, SYMBOL_CORRUPTED]
        assert [c[1] for c in t.customdata] == ["clean", *CORRUPTIONS]
    # one-line hover: name, method, sparsity, corruption, accuracy
    hover = markers[1].customdata[1][2]
    assert "<br>" not in hover
    for part in ("model-2", "global_magnitude", "50% sparse", "gaussian_noise", "72.0%"):
        assert part in hover
    legend_only = [t.name for t in rest if t.x == (None,)]
    assert legend_only == ["clean", "corrupted"]
    assert fig.layout.xaxis.title.text == "UMAP 1" and fig.layout.yaxis.title.text == "UMAP 2"


def test_figure_rejects_a_bad_edge_and_says_when_empty() -> None:
    with pytest.raises(ValueError, match="outside"):
        similarity_figure(points(), [(0, 9)])
    empty = similarity_figure([], [])
    assert empty.data == () and "No (model, corruption)" in empty.layout.annotations[0].text
    assert similarity_figure(points()[:1], []).layout.xaxis.title.text == "PCA 1"


# the page ---------------------------------------------------------------------------------------


def test_page_draws_the_map(api: FakeApi) -> None:
    page = similarity.layout(id="1")
    graph = by_id(page, similarity.ID_MAP)
    assert isinstance(graph, dcc.Graph)
    assert len([t for t in graph.figure.data if t.x != (None,)]) == 4  # tree + three methods
    summary = text(by_id(page, similarity.ID_SUMMARY))
    assert "9 fingerprints" in summary and "3 models" in summary and "8 tree edges" in summary
    assert by_id(page, similarity.ID_POLL).disabled is True
    assert by_id(page, similarity.ID_STATE).data == {"id": 1, "model_a_id": 1}
    hrefs = [c.href for c in walk(page) if isinstance(c, dcc.Link)]
    assert "/overview?id=1" in hrefs and "/compare?id=1" in hrefs


def test_running_compare_job_shows_progress_and_polls(api: FakeApi) -> None:
    api.routes["/api/comparisons/1/similarity"] = (409, "comparison results are not ready")
    api.routes["/api/jobs/10"] = compare_job("running", 0.62)
    page = similarity.layout(id="1")
    pending = text(by_id(page, similarity.ID_PENDING))
    assert "The similarity map appears when the compare job has finished" in pending
    assert "62%" in pending and "running" in pending
    assert by_id(page, similarity.ID_POLL).disabled is False
    body, stop = similarity.refresh_similarity(1, {"id": 1})
    assert stop is False
    api.routes = FakeApi().routes
    body, stop = similarity.refresh_similarity(2, {"id": 1})
    assert stop is True and similarity.ID_MAP in str(body)


def test_failed_compare_job_says_why(api: FakeApi) -> None:
    api.routes["/api/comparisons/1/similarity"] = (409, "comparison results are not ready")
    api.routes["/api/jobs/10"] = compare_job("failed", 0.9, "ValueError: fingerprints contain NaN")
    page = similarity.layout(id="1")
    assert "fingerprints contain NaN" in text(by_id(page, similarity.ID_PENDING))
    assert by_id(page, similarity.ID_POLL).disabled is True


def test_without_id_or_with_an_unknown_one(api: FakeApi) -> None:
    page = similarity.layout()
    hrefs = [c.href for c in walk(by_id(page, similarity.ID_PICKER)) if isinstance(c, dcc.Link)]
    assert hrefs == ["/similarity?id=1"]
    assert "not a comparison id" in text(similarity.layout(id="x"))
    assert "Comparison 5 not found" in text(similarity.layout(id="5"))


def click(model_id: int, corruption: str) -> dict[str, Any]:
    return {"points": [{"x": 0, "y": 0, "customdata": [model_id, corruption, "hover"]}]}


def test_clicking_a_point_opens_its_comparison() -> None:
    state = {"id": 1, "model_a_id": 1}
    assert similarity.open_point(click(3, "contrast"), state) == "/compare?id=1&b=3&rob_c=contrast"
    assert similarity.open_point(click(2, "clean"), state) == "/compare?id=1&b=2"
    assert similarity.open_point(click(1, "clean"), state) == "/compare?id=1"
    assert similarity.open_point({"points": [{"x": 1}]}, state) is dash.no_update
    assert similarity.open_point(None, state) is dash.no_update
    assert similarity.open_point(click(2, "clean"), None) is dash.no_update
