"""The evaluation overview: its pure table/figure functions and its page, against a fake API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dash
import httpx
import pytest
from dash import dcc, html
from dash.development.base_component import Component

from frontend import client as client_module
from frontend import components
from frontend.figures.overview import (
    LEARNING_DISTANCE_EMPTY,
    EvaluationRow,
    accuracy_and_learning_distance,
    accuracy_vs_sparsity,
    corruption_columns,
    evaluation_rows,
    mean_over_severities,
    sort_rows,
)
from frontend.figures.similarity import COLOR_A, method_colors
from frontend.pages import overview

CORRUPTIONS = ["gaussian_noise", "contrast"]
SEVERITIES = [1, 3, 5]
# model id -> (name, method, sparsity, clean accuracy, [per corruption [per severity]])
MODELS: dict[int, tuple[str, str | None, float, float, list[list[float]]]] = {
    1: ("cnn", None, 0.0, 0.90, [[0.8, 0.7, 0.6], [0.85, 0.8, 0.75]]),
    2: ("cnn gm50", "global_magnitude", 0.5, 0.88, [[0.7, 0.6, 0.5], [0.8, 0.8, 0.8]]),
    3: ("cnn gm90", "global_magnitude", 0.9, 0.80, [[0.5, 0.4, 0.3], [0.7, 0.6, 0.5]]),
    4: ("cnn rnd70", "random", 0.7, 0.40, [[0.3, 0.2, 0.1], [0.4, 0.3, 0.2]]),
}


def model(mid: int) -> dict[str, Any]:
    name, method, sparsity, acc, _ = MODELS[mid]
    return {
        "id": mid,
        "name": name,
        "architecture": "digits_cnn",
        "arch_kwargs": {},
        "dataset_id": 1,
        "parent_id": None if method is None else 1,
        "pruning_method": method,
        "pruning_params": None,
        "sparsity": sparsity,
        "n_params": 1000,
        "n_nonzero": round(1000 * (1 - sparsity)),
        "compression_ratio": 1 / (1 - sparsity),
        "accuracy": acc,
        "job_id": None,
        "created_at": "2024-05-01T12:00:00Z",
    }


def job(job_id: int, status: str, progress: float, error: str | None = None) -> dict[str, Any]:
    return {
        "id": job_id,
        "kind": "compare",
        "spec": {"comparison_id": 1},
        "status": status,
        "progress": progress,
        "stage": "comparing with model 3",
        "error": error,
        "result": None,
        "created_at": "2024-05-01T12:00:00Z",
        "started_at": None,
        "finished_at": None,
        "heartbeat_at": None,
    }


class FakeApi:
    """Routes path -> JSON body (or (status, detail)); records the paths asked for."""

    def __init__(self) -> None:
        comparison = {
            "id": 1,
            "name": "cnn vs three pruned",
            "dataset_id": 1,
            "model_a_id": 1,
            "model_b_ids": [3, 2, 4],
            "job_id": 10,
            "created_at": "2024-05-01T12:00:00Z",
        }
        analyses = [
            {"id": 100 + mid, "model_id": mid, "dataset_id": 1, "split": "test", "accuracy": m[3]}
            for mid, m in MODELS.items()
        ]
        self.routes: dict[str, Any] = {
            "/api/comparisons": {"data": [comparison], "count": 1},
            "/api/comparisons/1": comparison,
            "/api/models": {"data": [model(m) for m in MODELS], "count": len(MODELS)},
            "/api/comparisons/1/analyses": {"data": analyses, "count": len(analyses)},
            "/api/jobs/10": job(10, "succeeded", 1.0),
        }
        # one model at a time, as a share link may read them (the same dicts as the list)
        for one in self.routes["/api/models"]["data"]:
            self.routes[f"/api/models/{one['id']}"] = one
        for mid, m in MODELS.items():
            self.routes[f"/api/analyses/{100 + mid}/robustness"] = {
                "corruptions": CORRUPTIONS,
                "severities": SEVERITIES,
                "accuracy": m[4],
            }
        self.paths: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
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


def links(node: Any) -> list[str]:
    return [c.href for c in walk(node) if isinstance(c, dcc.Link)]


def rows_of(node: Any) -> list[html.Tr]:
    table = by_id(node, overview.ID_TABLE)
    (tbody,) = [c for c in walk(table) if isinstance(c, html.Tbody)]
    return list(tbody.children)


# pure functions ---------------------------------------------------------------------------------


def robustness(mid: int) -> dict[str, Any]:
    return {"corruptions": CORRUPTIONS, "severities": SEVERITIES, "accuracy": MODELS[mid][4]}


def rows() -> list[EvaluationRow]:
    comparison = {"model_a_id": 1, "model_b_ids": [3, 2, 4]}
    models = {mid: model(mid) for mid in MODELS}
    clean = {mid: MODELS[mid][3] for mid in MODELS}
    return evaluation_rows(comparison, models, clean, {mid: robustness(mid) for mid in MODELS})


def test_mean_over_severities() -> None:
    means = mean_over_severities(robustness(1))
    assert means == pytest.approx({"gaussian_noise": 0.7, "contrast": 0.8})
    assert mean_over_severities(None) == {}


def test_rows_put_the_original_first_then_method_and_sparsity() -> None:
    out = rows()
    assert [(r.model_id, r.role, r.method) for r in out] == [
        (1, "A", "original"),
        (2, "B", "global_magnitude"),
        (3, "B", "global_magnitude"),
        (4, "B", "random"),
    ]
    assert out[2].clean == 0.80
    assert out[2].corruptions == pytest.approx({"gaussian_noise": 0.4, "contrast": 0.6})
    assert out[2].mean_corrupted == pytest.approx(0.5)
    assert corruption_columns(out) == CORRUPTIONS


def test_rows_fall_back_to_the_models_accuracy_without_an_analysis() -> None:
    comparison = {"model_a_id": 1, "model_b_ids": [2]}
    out = evaluation_rows(comparison, {1: model(1), 2: model(2)}, {1: 0.5}, {})
    assert [r.clean for r in out] == [0.5, 0.88]
    assert [r.mean_corrupted for r in out] == [None, None]
    assert corruption_columns(out) == []


def test_sort_rows_puts_missing_values_last_both_ways() -> None:
    base = rows()
    gap = EvaluationRow(9, "B", "x", "snip", 0.3, None)
    table = [*base, gap]
    asc = sort_rows(table, "clean")
    desc = sort_rows(table, "clean", descending=True)
    assert [r.model_id for r in asc] == [4, 3, 2, 1, 9]
    assert [r.model_id for r in desc] == [1, 2, 3, 4, 9]
    assert [r.model_id for r in sort_rows(table, "contrast")][-1] == 9
    assert [r.model_id for r in sort_rows(base, "sparsity", True)] == [3, 4, 2, 1]
    assert sort_rows(table, None) == table


def test_accuracy_figure_has_a_clean_and_a_corrupted_line_per_method() -> None:
    out = rows()
    fig = accuracy_vs_sparsity(out)
    names = [t.name for t in fig.data]
    assert names == [
        "global_magnitude",
        "global_magnitude · corrupted",
        "random",
        "random · corrupted",
    ]
    gm = fig.data[0]
    # every line starts at the original, sparsity 0
    assert list(gm.x) == [0.0, 50.0, 90.0]
    assert list(gm.y) == pytest.approx([90.0, 88.0, 80.0])
    assert list(fig.data[1].y) == pytest.approx([75.0, 70.0, 50.0])
    assert fig.data[1].line.dash == "dash" and gm.line.dash == "solid"
    colors = method_colors(["global_magnitude", "random"])
    assert gm.line.color == colors["global_magnitude"] == fig.data[1].line.color
    assert fig.data[2].line.color == colors["random"] != gm.line.color
    assert fig.layout.xaxis.title.text.startswith("Sparsity")
    assert fig.layout.yaxis.title.text == "Test accuracy"
    assert all("<br>" not in str(c) for t in fig.data for c in t.customdata)  # one-line hover


def test_accuracy_figure_without_corruptions_or_pruned_models() -> None:
    clean_only = [EvaluationRow(1, "A", "a", "original", 0.0, 0.9)]
    assert "No pruned model" in accuracy_vs_sparsity(clean_only).layout.annotations[0].text
    clean_only.append(EvaluationRow(2, "B", "b", "snip", 0.5, 0.8))
    fig = accuracy_vs_sparsity(clean_only)
    assert [t.name for t in fig.data] == ["snip"]


def test_learning_distance_figure_puts_distances_on_the_second_axis() -> None:
    models = {mid: model(mid) for mid in MODELS}
    models[3]["learning_distance"] = 1.25  # gm90
    models[2]["learning_distance"] = 2.5  # gm50; random (4) has none
    comparison = {"model_a_id": 1, "model_b_ids": [3, 2, 4]}
    out = evaluation_rows(comparison, models, {mid: MODELS[mid][3] for mid in MODELS}, {})
    fig = accuracy_and_learning_distance(out)
    # only methods with a distance; accuracy from the original, distances in sparsity order
    assert [t.name for t in fig.data] == [
        "global_magnitude · accuracy",
        "global_magnitude · learning distance",
    ]
    accuracy, distance = fig.data
    assert accuracy.yaxis in (None, "y") and distance.yaxis == "y2"
    assert list(accuracy.x) == [0.0, 50.0, 90.0]
    assert list(accuracy.y) == pytest.approx([90.0, 88.0, 80.0])
    assert list(distance.x) == [50.0, 90.0] and list(distance.y) == [2.5, 1.25]
    assert distance.line.color == accuracy.line.color and distance.line.dash == "dot"
    assert fig.layout.yaxis2.overlaying == "y" and fig.layout.yaxis2.side == "right"
    assert fig.layout.yaxis2.title.text.startswith("Learning distance")
    assert fig.layout.yaxis.title.text == "Test accuracy"
    assert "learning distance 2.5" in distance.customdata[0]
    assert "88.0%" in distance.customdata[0]
    assert "learning distance —" in accuracy.customdata[0]  # the original has none


def test_learning_distance_figure_says_when_no_model_has_one() -> None:
    fig = accuracy_and_learning_distance(rows())
    assert fig.data == ()
    assert fig.layout.annotations[0].text == LEARNING_DISTANCE_EMPTY


def test_page_shows_the_learning_distance_figure_and_explains_it(api: FakeApi) -> None:
    api.routes["/api/models/2"]["learning_distance"] = 3.0  # the list holds the same dicts
    page = overview.layout(id="1")
    graph = by_id(page, overview.ID_LEARNING)
    assert [t.name for t in graph.figure.data] == [
        "global_magnitude · accuracy",
        "global_magnitude · learning distance",
    ]
    assert "double descent" in text(page)


def test_links_and_sort_parameters() -> None:
    assert components.compare_href(1, 3, "contrast") == "/compare?id=1&b=3&rob_c=contrast"
    assert components.compare_href(1, 3, "clean") == "/compare?id=1&b=3"
    assert components.compare_href(1, 3, "corrupted") == "/compare?id=1&b=3"
    assert overview.parse_sort("-clean") == ("clean", True)
    assert overview.parse_sort(["method"]) == ("method", False)
    assert overview.parse_sort(None) == (None, False)
    # accuracies sort best first, text A to Z; a second click reverses
    assert overview.sort_href(1, "clean", None, False) == "/overview?id=1&sort=-clean"
    assert overview.sort_href(1, "method", None, False) == "/overview?id=1&sort=method"
    assert overview.sort_href(1, "clean", "clean", True) == "/overview?id=1&sort=clean"


# the page ---------------------------------------------------------------------------------------


def test_table_has_a_row_per_model_and_a_column_per_corruption(api: FakeApi) -> None:
    page = overview.layout(id="1")
    table = by_id(page, overview.ID_TABLE)
    header = text([c for c in walk(table) if isinstance(c, html.Thead)])
    for title in ("Model", "Method", "Sparsity", "Clean", "gaussian noise", "contrast"):
        assert title in header
    assert "Corrupted (mean)" in header
    body = rows_of(page)
    assert [text(r.children[0]).split()[-1] for r in body] == ["cnn", "gm50", "gm90", "rnd70"]
    # A's cells are plain; every B cell opens the pair, with the cell's corruption
    assert links(body[0]) == []
    assert links(body[2]) == [
        "/compare?id=1&b=3",
        "/compare?id=1&b=3&rob_c=gaussian_noise",
        "/compare?id=1&b=3&rob_c=contrast",
        "/compare?id=1&b=3",
    ]
    row = text(body[2])
    assert "80.0%" in row and "-10.0 pp" in row  # clean, and its change from A
    assert "40.0%" in row and "-30.0 pp" in row  # gaussian noise, mean of 0.5, 0.4, 0.3
    bars = [c for c in walk(body[2]) if getattr(c, "className", None) == "acc-bar"]
    assert bars[0].style["width"] == "80.0%"
    assert "severities 1, 3, 5" in text(page)
    assert by_id(page, overview.ID_POLL).disabled is True
    assert overview.ID_FIGURE in str(page)
    assert "/api/analyses/103/robustness" in api.paths


def test_sort_comes_from_the_url(api: FakeApi) -> None:
    page = overview.layout(id="1", sort="-gaussian_noise")
    body = rows_of(page)
    assert [text(r.children[0]).split()[-1] for r in body] == ["cnn", "gm50", "gm90", "rnd70"]
    page = overview.layout(id="1", sort="gaussian_noise")
    assert [text(r.children[0]).split()[-1] for r in rows_of(page)] == [
        "rnd70",
        "gm90",
        "gm50",
        "cnn",
    ]
    assert "▲" in text(by_id(page, overview.ID_TABLE))
    # an unknown column is ignored, not an error
    page = overview.layout(id="1", sort="-nonsense")
    assert len(rows_of(page)) == 4


def test_without_id_the_page_lists_comparisons(api: FakeApi) -> None:
    page = overview.layout()
    assert links(by_id(page, overview.ID_PICKER)) == ["/overview?id=1"]
    api.routes["/api/comparisons"] = {"data": [], "count": 0}
    page = overview.layout()
    assert "No comparisons yet" in text(page)
    assert "prunescope demo" in text(page)


def test_unknown_comparison(api: FakeApi) -> None:
    page = overview.layout(id="7")
    assert "Comparison 7 not found" in text(page)


def test_clean_only_comparison_says_so(api: FakeApi) -> None:
    for mid in MODELS:
        api.routes[f"/api/analyses/{100 + mid}/robustness"] = (404, "Analysis has no corruption")
    page = overview.layout(id="1")
    assert "Clean accuracy only" in text(page)
    assert "Corrupted (mean)" not in text(by_id(page, overview.ID_TABLE))


def test_running_compare_job_shows_progress_and_polls(api: FakeApi) -> None:
    api.routes["/api/comparisons/1/analyses"] = {"data": [], "count": 0}
    api.routes["/api/jobs/10"] = job(10, "running", 0.4)
    page = overview.layout(id="1")
    pending = by_id(page, overview.ID_PENDING)
    assert "appears when the compare job has finished" in text(pending)
    assert "40%" in text(pending)
    assert by_id(page, overview.ID_POLL).disabled is False
    # the poll re-renders; once the job is done the table is there and polling stops
    body, stop = overview.refresh_overview(1, {"id": 1, "sort": None})
    assert stop is False
    api.routes = FakeApi().routes
    body, stop = overview.refresh_overview(2, {"id": 1, "sort": None})
    assert stop is True
    assert len(rows_of(body)) == 4
    assert overview.refresh_overview(3, None) == (dash.no_update, True)


def test_failed_compare_job_shows_its_error(api: FakeApi) -> None:
    api.routes["/api/comparisons/1/analyses"] = {"data": [], "count": 0}
    api.routes["/api/jobs/10"] = job(10, "failed", 0.2, "CUDA out of memory")
    page = overview.layout(id="1")
    assert "CUDA out of memory" in text(by_id(page, overview.ID_PENDING))
    assert by_id(page, overview.ID_POLL).disabled is True


def test_original_is_blue_everywhere() -> None:
    assert method_colors(iter(["original", "random"]))["original"] == COLOR_A


# issue 18.4d: the model column stays in view and shows whole names ----------------------------

LONG_NAME = "resnet18 cifar10 global_magnitude 90% finetuned 20 epochs seed 3 (rerun)"
STYLE_CSS = Path(overview.__file__).resolve().parents[1] / "assets" / "style.css"


def css_rules(selector_part: str) -> list[str]:
    """The declaration blocks of style.css whose selector mentions ``selector_part``."""
    css = re.sub(r"/\*.*?\*/", "", STYLE_CSS.read_text(), flags=re.S)
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    return [body for selector, body in rules if selector_part in selector]


def test_model_column_is_sticky_and_names_are_whole(api: FakeApi) -> None:
    api.routes["/api/models"]["data"][2]["name"] = LONG_NAME  # model 3
    page = overview.layout(id="1")
    table = by_id(page, overview.ID_TABLE)
    (head,) = [c for c in walk(table) if isinstance(c, html.Thead)]
    first_th = head.children.children[0]
    assert overview.STICKY_CLASS in first_th.className.split()
    for row in rows_of(page):
        cell = row.children[0]
        assert overview.STICKY_CLASS in cell.className.split()
        assert cell.title  # the whole name on hover, too
        assert cell.title in text(cell)  # and written out whole, never shortened
    cells = {row.children[0].title: row.children[0] for row in rows_of(page)}
    assert LONG_NAME in cells
    # the stylesheet pins the column to the left edge of the scrolling table and wraps names
    sticky = " ".join(css_rules(f".{overview.STICKY_CLASS}"))
    assert re.search(r"position:\s*sticky", sticky) and re.search(r"left:\s*0", sticky)
    assert re.search(r"background", sticky)  # opaque, or the scrolled cells show through
    model = " ".join(css_rules(".model-cell"))
    assert "ellipsis" not in model and "nowrap" not in model
    assert re.search(r"white-space:\s*normal", model)


def test_add_models_links_to_the_form_that_adds_them(api: FakeApi) -> None:
    page = overview.layout(id="1")
    link = by_id(page, overview.ID_ADD_MODELS)
    assert link.href == "/comparisons/new?add=1"
    assert by_id(page, overview.ID_NEW_COMPARISON).href == "/comparisons/new?a=1"
    assert "needs-write" in link.className
    # a read-only viewer (a share link, a read token) is not offered it
    api.routes["/api/session"] = {"kind": "share", "scope": "read", "comparison_id": 1}
    assert overview.add_models_link(1) is None
