"""Linear-regions view: its figures, and its callbacks (job submission and progress polling,
empty state, results) against a fake API."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import pytest
from dash import html
from dash.development.base_component import Component

from frontend import client as client_module
from frontend.figures._common import COLOR_A, COLOR_B
from frontend.figures.regions import (
    COUNT_METRICS,
    boundary_lines,
    class_palette,
    decision_interval_figure,
    distance_boxes,
    interval_sentence,
    merge_polygons,
    region_count_boxes,
    region_map_figure,
)
from frontend.views import QUERY
from frontend.views import regions as view

FakeApi = Any  # the fake_api fixture of conftest.py
NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
KINDS = ["within_class", "across_class", "local"]


# synthetic data -------------------------------------------------------------------------------


def grid_map(n: int = 12, extent: float = 0.1, classes: int = 3) -> dict[str, Any]:
    """A region map tiling [0, e]^2 with n x n squares, each cut into two triangles."""
    h = extent / n
    polygons, predicted = [], []
    for i in range(n):
        for j in range(n):
            x0, y0 = i * h, j * h
            polygons.append([[x0, y0], [x0 + h, y0], [x0 + h, y0 + h]])
            polygons.append([[x0, y0], [x0 + h, y0 + h], [x0, y0 + h]])
            cls = (i + 2 * j) % classes
            predicted.extend([cls, (cls + (i % 2)) % classes])
    return {
        "samples": [3, 17, 42],
        "extent": extent,
        "self_check_error": 0.0,
        "polygons": polygons,
        "areas": [h * h / 2] * len(polygons),
        "predicted": predicted,
        "pattern_ids": list(range(len(polygons))),
        "truncated": False,
        "n_polygons": len(polygons),
        "n_regions": len(polygons),
        "n_patterns": len(polygons) // 2,
        "decision_boundary": [[[0.05, 0.0], [0.05, 0.1]], [[0.0, 0.05], [0.1, 0.05]]],
        "domain": [0.0, extent, 0.0, extent],
        "domain_area": extent * extent,
        "points": {"p0": [0.0, 0.0], "p1": [1.0, 0.0], "p2": [0.0, 1.0]},
    }


def segments(scale: float) -> dict[str, list[Any]]:
    kind = [k for k in KINDS for _ in range(4)]
    linear = [int(scale * (10 + 3 * i)) for i in range(len(kind))]
    return {
        "kind": kind,
        "segment": [i % 4 for i in range(len(kind))],
        "activation_pieces": [v + 2 for v in linear],
        "distinct_patterns": [v + 1 for v in linear],
        "linear_pieces": linear,
        "decision_crossings": [i % 3 for i in range(len(kind))],
        "length": [1.0] * len(kind),
    }


def samples(scale: float, n: int = 10) -> dict[str, list[Any]]:
    """A samples table as stored before the decision interval existed."""
    return {
        "index": list(range(n)),
        "label": [i % 5 for i in range(n)],
        "region_distance": [scale * 0.01 * (i + 1) for i in range(n)],
        "decision_distance": [scale * 0.1 * (i + 1) for i in range(n)],
        "decision_exact": [i % 2 == 0 for i in range(n)],
        "local_complexity": [i for i in range(n)],
    }


def interval_samples(scale: float) -> dict[str, list[Any]]:
    """Six samples with the decision interval: #0 exact, #2 no crossing found, #5 on a
    boundary (lower end 0, not drawable on a log axis), the others an interval."""
    table = samples(scale, 6)
    lower = [scale * v for v in (0.01, 0.02, 0.03, 0.04, 0.05, 0.0)]
    upper = [scale * v if v is not None else None for v in (0.01, 0.05, None, 0.2, 0.3, 0.4)]
    return {
        **table,
        "decision_distance": lower,
        "decision_lower": lower,
        "decision_upper": upper,
        "decision_exact": [True, False, False, False, False, False],
        "decision_upper_direction": [
            "margin_gradient",
            "towards_sample",
            "",
            "margin_gradient",
            "towards_sample",
            "towards_sample",
        ],
        "decision_upper_target": [-1, 7, -1, -1, 9, 3],
        "decision_upper_class": [1, 3, -1, 0, 2, 4],
        "decision_rays": [4, 4, 3, 4, 4, 4],
    }


def comparison_table() -> dict[str, list[Any]]:
    """Ten samples of five classes; #7 is flipped (cat -> deer) and close to both boundaries,
    #4 is closer to A's boundary but not flipped."""
    label = [0, 1, 2, 3, 4, 0, 1, 3, 2, 4]
    pred_a = list(label)
    pred_b = list(label)
    pred_b[7] = 4
    margin_a = [2.0, 1.5, 1.2, 0.9, 0.01, 2.2, 1.1, 0.3, 0.8, 1.9]
    margin_b = [1.8, 1.4, 1.0, 0.7, 0.9, 2.0, 1.0, -0.2, 0.6, 1.6]
    return {
        "index": list(range(10)),
        "label": label,
        "pred_a": pred_a,
        "pred_b": pred_b,
        "margin_a": margin_a,
        "margin_b": margin_b,
    }


def result(model_id: int, scale: float) -> dict[str, Any]:
    stats = {"mean": 20.0 * scale, "median": 19.0 * scale, "std": 2.0}
    return {
        "model_id": model_id,
        "segments": {k: {"linear_pieces": stats, "activation_pieces": stats} for k in KINDS},
        "samples": {"region_distance": {"mean": 0.05, "median": 0.04 * scale, "std": 0.01}},
        "dead_neuron_rate": {"conv1": 0.2 * scale, "fc1": 0.4 * scale},
        "decision_exact_fraction": 0.5,
        "slice": {"samples": [3, 17, 42], "n_patterns": int(100 * scale), "n_polygons": 288},
    }


def rgb(color: str) -> tuple[int, ...]:
    """The red, green and blue of "#rrggbb", "rgb(r, g, b)" or "rgba(r, g, b, a)"."""
    if color.startswith("#"):
        return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(p)) for p in color[color.index("(") + 1 : -1].split(",")[:3])


# figures: polygon merging ------------------------------------------------------------------------


def test_merging_keeps_every_polygon_once_per_class() -> None:
    rmap = grid_map()
    merged = merge_polygons(rmap["polygons"], rmap["predicted"])
    expected = Counter(rmap["predicted"])  # an independent count per class
    assert {k: xs.count(None) for k, (xs, _ys) in merged.items()} == dict(expected)
    assert list(merged) == sorted(expected)
    for k, (xs, ys) in merged.items():
        assert len(xs) == len(ys)
        # each triangle: 3 vertices + the closing one + the None separator
        assert len(xs) == 5 * expected[k]
        assert [x is None for x in xs] == [y is None for y in ys]
    # the closing vertex repeats the first one of each polygon
    xs, ys = merged[min(merged)]
    assert (xs[0], ys[0]) == (xs[3], ys[3]) and xs[4] is None


def test_merging_skips_degenerate_polygons_and_checks_lengths() -> None:
    merged = merge_polygons([[[0, 0], [1, 0]], [[0, 0], [1, 0], [0, 1]]], [0, 1])
    assert list(merged) == [1]
    with pytest.raises(ValueError, match="2 polygons but 1 predicted"):
        merge_polygons([[[0, 0], [1, 0], [0, 1]]] * 2, [0])


def test_boundary_edges_become_one_broken_line() -> None:
    xs, ys = boundary_lines([[[0, 0], [1, 1]], [[2, 2], [3, 4]]])
    assert xs == [0.0, 1.0, None, 2.0, 3.0, None]
    assert ys == [0.0, 1.0, None, 2.0, 4.0, None]


def test_region_map_has_one_svg_trace_per_class_plus_boundary_and_samples() -> None:
    rmap = grid_map()
    fig = region_map_figure(rmap, NAMES, "A: region map", ["p0: test #3", "p1", "p2"])
    classes = sorted(set(rmap["predicted"]))
    fills = [t for t in fig.data if t.fill == "toself"]
    assert len(fills) == len(classes)
    assert all(t.type == "scatter" for t in fig.data)  # SVG, never WebGL
    assert len(fig.data) == len(classes) + 2  # + decision boundary + sample marker
    palette = class_palette(len(NAMES))
    for t, k in zip(fills, classes, strict=True):
        assert t.name == f"predicted {NAMES[k]}"
        assert rgb(t.fillcolor) == rgb(palette[k]) and t.fillcolor.startswith("rgba(")
        assert t.hoveron == "fills"
        assert f"{Counter(rmap['predicted'])[k]:,} polygons" in t.text
    assert sum(list(t.x).count(None) for t in fills) == len(rmap["polygons"])
    boundary = fig.data[len(classes)]
    assert boundary.name == "decision boundary" and list(boundary.x).count(None) == 2
    marks = fig.data[-1]
    assert list(marks.x) == [0.0] and list(marks.text) == ["p0: test #3"]
    # p1 and p2 lie outside the map: an arrow at the edge points towards each
    arrows = [a.text for a in fig.layout.annotations]
    assert arrows == ["p1 →", "↑ p2"]
    assert list(fig.layout.xaxis.range) == [0.0, 0.1]
    assert fig.layout.yaxis.scaleanchor == "x"
    assert "p0 to p1" in fig.layout.xaxis.title.text
    assert "p0 to p2" in fig.layout.yaxis.title.text


def test_same_class_same_colour_in_a_and_b() -> None:
    a = region_map_figure(grid_map(classes=3), NAMES, "A")
    b = region_map_figure(grid_map(classes=2), NAMES, "B")
    colours_a = {t.name: t.fillcolor for t in a.data if t.fill == "toself"}
    colours_b = {t.name: t.fillcolor for t in b.data if t.fill == "toself"}
    shared = set(colours_a) & set(colours_b)
    assert shared and all(colours_a[n] == colours_b[n] for n in shared)


def test_a_map_over_budget_says_why() -> None:
    fig = region_map_figure({"error": "the slice needs more than max_regions=10"}, NAMES, "A")
    assert len(fig.data) == 0
    assert "max_regions=10" in fig.layout.annotations[0].text
    assert len(region_map_figure({"polygons": []}, NAMES, "A").data) == 0


def test_region_counts_are_boxes_of_a_and_b_per_segment_kind() -> None:
    fig = region_count_boxes(segments(1.0), segments(0.5), "A: net", "B: pruned")
    assert [t.type for t in fig.data] == ["box", "box"]
    a, b = fig.data
    assert a.marker.color == COLOR_A and b.marker.color == COLOR_B
    assert list(a.y) == segments(1.0)["linear_pieces"]
    assert set(a.x) == {"within a class", "across classes", "short, around a sample"}
    assert fig.layout.boxmode == "group"
    assert fig.layout.yaxis.title.text == COUNT_METRICS["linear_pieces"][0]
    assert "affine" in a.hovertemplate
    other = region_count_boxes(segments(1.0), segments(1.0), "A", "B", metric="decision_crossings")
    assert "crossings" in other.layout.yaxis.title.text
    with pytest.raises(ValueError, match="metric='area'"):
        region_count_boxes(segments(1.0), segments(1.0), "A", "B", metric="area")
    assert len(region_count_boxes({}, {}, "A", "B").data) == 0


def test_distances_are_log_scaled_boxes_without_non_positive_values() -> None:
    sa, sb = samples(1.0), samples(2.0)
    sb["region_distance"][0] = 0.0  # a sample on a boundary cannot be drawn on a log axis
    sb["decision_distance"][1] = None
    fig = distance_boxes(sa, sb, "A", "B")
    a, b = fig.data
    assert fig.layout.yaxis.type == "log" and "L2 distance" in fig.layout.yaxis.title.text
    assert len(a.y) == 20 and len(b.y) == 18
    assert a.marker.color == COLOR_A and b.marker.color == COLOR_B
    assert set(a.x) == {"to its activation-region boundary", "to the decision boundary"}
    lower = [c for c in a.customdata if c[1].endswith("— lower bound")]
    assert len(lower) == 5 and all(c[0] % 2 == 1 for c in lower)
    assert len(distance_boxes({}, {}, "A", "B").data) == 0


def test_distance_boxes_add_the_upper_end_where_the_result_has_it() -> None:
    fig = distance_boxes(interval_samples(1.0), samples(1.0, 6), "A", "B")
    a, b = fig.data
    upper = [
        y for x, y in zip(a.x, a.y, strict=True) if x == "to the nearest decision crossing found"
    ]
    assert upper == [0.01, 0.05, 0.2, 0.3, 0.4]  # the finite, positive upper ends
    assert "to the nearest decision crossing found" not in set(b.x)  # an older result


def test_decision_interval_draws_both_ends_of_every_sample() -> None:
    sa, sb = interval_samples(1.0), interval_samples(2.0)
    fig = decision_interval_figure(sa, sb, "A", "B", NAMES)
    by_name = {t.name: t for t in fig.data}
    assert fig.layout.yaxis.type == "log" and "decision boundary" in fig.layout.yaxis.title.text
    assert list(fig.layout.xaxis.ticktext) == [f"#{i}" for i in range(6)]
    for label, table, color, side in (("A", sa, COLOR_A, -1), ("B", sb, COLOR_B, 1)):
        lower = by_name[f"{label}: certified lower end"]
        upper = by_name[f"{label}: nearest crossing found (upper end)"]
        exact = by_name[f"{label}: exact"]
        segs = by_name[f"{label}: interval"]
        assert {t.marker.color for t in (lower, upper, exact)} == {color}
        assert segs.line.color == color
        # lower ends: every non-exact sample with a positive lower end (#1-#4)
        samples_of = {int(c[0]) for c in lower.customdata}
        assert samples_of == {1, 2, 3, 4}
        assert list(lower.y) == [table["decision_lower"][i] for i in (1, 2, 3, 4)]
        # upper ends: every non-exact sample with a crossing found (#1, #3, #4, #5)
        assert [int(c[0]) for c in upper.customdata] == [1, 3, 4, 5]
        assert list(upper.y) == [table["decision_upper"][i] for i in (1, 3, 4, 5)]
        assert [int(c[0]) for c in exact.customdata] == [0] and list(exact.y) == [
            table["decision_lower"][0]
        ]
        # A left of each tick, B right of it; a segment from lower to upper where both exist
        assert all(np.sign(x - round(x)) == side for x in lower.x)
        pairs = [(segs.y[k], segs.y[k + 1]) for k in range(0, len(segs.y), 3)]
        assert pairs == [
            (table["decision_lower"][i], table["decision_upper"][i]) for i in (1, 3, 4)
        ]
        assert all(lo <= hi for lo, hi in pairs)
        assert list(segs.x)[::3] == list(segs.x)[1::3]  # vertical
        # hover: what each end is, and how the upper end was reached
        assert "certified" in lower.hovertemplate and "no decision boundary is closer" in (
            lower.hovertemplate
        )
        assert "nearest decision crossing found" in upper.hovertemplate
        words = {int(c[0]): c[1] for c in upper.customdata}
        assert words[1] == "reached towards test sample #7, into cat"
        assert words[3] == "reached down the margin gradient, into airplane"
        no_cross = {int(c[0]): c[1] for c in lower.customdata}[2]
        assert no_cross == "no decision crossing found along the 4 directions walked"
    assert len(fig.data) == 8


def test_decision_interval_of_old_results_draws_the_lower_end_only() -> None:
    old = samples(1.0, 4)  # no decision_upper: stored before the interval existed
    fig = decision_interval_figure(old, interval_samples(1.0), "A", "B")
    names = [t.name for t in fig.data]
    assert "A: nearest crossing found (upper end)" not in names and "A: interval" not in names
    lower = next(t for t in fig.data if t.name == "A: certified lower end")
    assert list(lower.y) == [0.2, 0.4]  # the non-exact samples #1 and #3
    assert all("not computed" in c[1] for c in lower.customdata)
    exact = next(t for t in fig.data if t.name == "A: exact")
    assert list(exact.y) == [0.1, 0.30000000000000004]
    assert "B: nearest crossing found (upper end)" in names
    assert len(decision_interval_figure({}, {}, "A", "B").data) == 0


def test_interval_sentence_says_what_each_end_is() -> None:
    said = interval_sentence(4)
    assert said.startswith("lower end: certified, no decision boundary is closer (exact inside")
    assert (
        "upper end: the nearest decision crossing found along 4 directions, with its exact "
        "crossing point" in said
    )
    assert "not computed" in interval_sentence(None)


# fake API --------------------------------------------------------------------------------------


class RegionsApi:
    """The conftest fake plus region results, tables, maps and a regions job that advances
    one step per poll."""

    def __init__(self, base: FakeApi) -> None:
        self.base = base
        self.results: list[dict[str, Any]] = []
        self.tables = {
            (1, "segments"): segments(1.0),
            (2, "segments"): segments(0.6),
            (1, "samples"): samples(1.0),
            (2, "samples"): samples(2.0),
        }
        self.maps = {1: grid_map(classes=3), 2: grid_map(n=8, classes=2)}
        self.submitted: list[dict[str, Any]] = []
        self.steps = [
            ("queued", 0.0, ""),
            ("running", 0.4, "model 1: local"),
            ("succeeded", 1.0, "done"),
        ]
        self.refuse: str | None = None
        self.table: dict[str, list[Any]] | None = comparison_table()

    def _job(self, job_id: int) -> dict[str, Any] | None:
        for job in self.base.jobs:
            if job["id"] == job_id:
                return job
        return None

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/jobs" and request.method == "POST":
            self.base.requests.append(request)
            if self.refuse:
                return httpx.Response(422, json={"detail": self.refuse})
            payload = json.loads(request.content)
            self.submitted.append(payload)
            job = {
                "id": 100 + len(self.submitted),
                "kind": payload["kind"],
                "spec": payload["spec"],
                "status": "queued",
                "progress": 0.0,
                "stage": "",
                "error": None,
                "result": None,
                "created_at": "2024-05-01T12:00:00Z",
                "started_at": None,
                "finished_at": None,
                "heartbeat_at": None,
                "_step": 0,
            }
            self.base.jobs.append(job)
            return httpx.Response(201, json={k: v for k, v in job.items() if k != "_step"})
        if (m := re.fullmatch(r"/api/jobs/(\d+)", path)) and (job := self._job(int(m[1]))):
            if "_step" in job:
                self.base.requests.append(request)
                step = min(job["_step"], len(self.steps) - 1)
                job["status"], job["progress"], job["stage"] = self.steps[step]
                job["_step"] += 1
                if job["status"] == "succeeded":
                    self.results = [result(1, 1.0), result(2, 0.6), result(3, 0.5)]
                return httpx.Response(200, json={k: v for k, v in job.items() if k != "_step"})
        if path == "/api/comparisons/1/table" and self.table is not None:
            self.base.requests.append(request)
            cols = request.url.params.get_list("columns") or list(self.table)
            columns = {c: self.table[c] for c in cols}
            n = len(self.table["index"])
            return httpx.Response(
                200,
                json={
                    "count": n,
                    "offset": 0,
                    "limit": n,
                    "column_names": cols,
                    "columns": columns,
                },
            )
        if re.fullmatch(r"/api/comparisons/1/regions", path):
            self.base.requests.append(request)
            if not self.results:
                return httpx.Response(409, json={"detail": "no linear-region results yet"})
            return httpx.Response(200, json={"data": self.results, "count": len(self.results)})
        if m := re.fullmatch(r"/api/comparisons/1/regions/(\d+)/table", path):
            self.base.requests.append(request)
            which = request.url.params.get("which", "samples")
            table = self.tables.get((int(m[1]), which))
            if table is None:
                return httpx.Response(404, json={"detail": "Region results not found"})
            n = len(next(iter(table.values())))
            return httpx.Response(
                200,
                json={
                    "count": n,
                    "offset": 0,
                    "limit": 10000,
                    "column_names": list(table),
                    "columns": table,
                },
            )
        if m := re.fullmatch(r"/api/comparisons/1/regions/(\d+)/slice", path):
            self.base.requests.append(request)
            rmap = self.maps.get(int(m[1]))
            if rmap is None:
                return httpx.Response(404, json={"detail": "Region map not found"})
            return httpx.Response(200, json=rmap)
        return self.base.handle(request)


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[RegionsApi]:
    fake = RegionsApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    yield fake


def context(b: int = 2, **query: str) -> dict[str, Any]:
    return {"id": 1, "b": b, "cls": None, "query": {"id": "1", "b": str(b), **query}}


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


LOAD_FIELDS = (
    "message",
    "intro",
    "body",
    "spec",
    "note",
    "job",
    "data",
    "cards",
    "distances",
    "map_a",
    "map_b",
    "map_note",
    "metric",
    "intervals",
    "interval_note",
)


def load(ctx: dict[str, Any], done: Any = None) -> dict[str, Any]:
    return dict(zip(LOAD_FIELDS, view.load_regions(ctx, done), strict=True))


# callbacks ---------------------------------------------------------------------------------------


def test_section_starts_hidden_with_the_button_and_the_poll_off() -> None:
    section = view.section()
    found = {getattr(c, "id", None): c for c in walk(section) if isinstance(c, Component)}
    assert found[view.ID_COMPUTE].children == view.BUTTON
    assert found[view.ID_POLL].disabled is True
    assert found[view.ID_INTRO].style == view.HIDDEN and found[view.ID_BODY].style == view.HIDDEN
    assert all(i.startswith("compare-regions") for i in found if isinstance(i, str))


def test_without_results_the_empty_state_explains_and_offers_the_button(api: RegionsApi) -> None:
    out = load(context())
    assert out["message"] is None
    assert out["intro"] == view.SHOWN and out["body"] == view.HIDDEN
    assert out["job"] is None and out["data"] is None
    # the fake dataset is 3 x 32 x 32: the smaller job, through #7 (flipped, near both
    # boundaries), a deer (the class B confuses it with) and a third class
    assert out["spec"] == {**view.LARGE_INPUT_SPEC, "slice_samples": [7, 4, 0]}
    assert "segments of each kind" in text(out["note"]) and "test #7" in text(out["note"])
    assert "linear regions" in view.WHAT and view.WHAT.count(".") == 1  # one sentence


def test_a_network_without_linear_regions_says_why_instead_of_offering_the_button(
    api: RegionsApi,
) -> None:
    reason = "linear-region statistics are defined for piecewise-linear networks; this uses GELU"
    api.base.models[0]["regions_unsupported"] = reason  # A, as the server records it
    out = load(context())
    assert out["intro"] == view.HIDDEN and out["body"] == view.HIDDEN  # no button
    said = text(out["message"])
    assert "No linear regions for A" in said and "Linear-region statistics are defined" in said
    assert not api.submitted


def test_slice_samples_prefer_a_flip_near_both_boundaries() -> None:
    table = comparison_table()
    assert view.pick_slice_samples(table) == [7, 4, 0]
    # without flips: the sample nearest to both boundaries, towards the next class
    table["pred_b"][7] = 3
    assert view.pick_slice_samples(table) == [7, 0, 1]
    assert view.pick_slice_samples({}) is None
    assert view.pick_slice_samples({c: [] for c in view.SLICE_COLUMNS}) is None
    two_classes = {c: v[:2] for c, v in comparison_table().items()}
    assert view.pick_slice_samples(two_classes) is None


def test_without_a_comparison_table_the_job_uses_its_default_plane(api: RegionsApi) -> None:
    api.table = None
    out = load(context())
    assert "slice_samples" not in out["spec"] and "three test samples" in text(out["note"])


def test_large_inputs_get_a_smaller_job() -> None:
    assert view.interactive_spec([3, 32, 32]) == view.LARGE_INPUT_SPEC
    assert view.interactive_spec([1, 8, 8]) == view.INTERACTIVE_SPEC
    assert view.interactive_spec(None) == view.INTERACTIVE_SPEC


def test_button_submits_the_job_and_polling_follows_it_to_the_results(api: RegionsApi) -> None:
    spec = {"n_pairs": 2, "n_samples": 8, "slice_max_regions": 500}
    job, panel = view.start_regions_job(1, context(), spec)
    (payload,) = api.submitted
    assert payload == {"kind": "regions", "spec": {"comparison_id": 1, **spec}}
    assert job == {"id": 101, "comparison_id": 1}
    assert "Job #101" in text(panel) and "queued" in text(panel)
    # following the job turns polling on and the button off
    poll_disabled, button_disabled, _ = view.follow_job(job)
    assert (poll_disabled, button_disabled) == (False, True)
    progress, poll_disabled, button_disabled, done = view.poll_regions_job(1, job)
    assert "queued" in text(progress) and not poll_disabled and button_disabled
    assert done is dash.no_update
    progress, poll_disabled, _, done = view.poll_regions_job(2, job)
    assert "40%" in text(progress) and "model 1: local" in text(progress)
    assert not poll_disabled and done is dash.no_update
    progress, poll_disabled, _, done = view.poll_regions_job(3, job)
    assert "100%" in text(progress) and poll_disabled and done == job
    # done reloads the view: now with results
    out = load(context(), done)
    assert out["intro"] == view.HIDDEN and out["body"] == view.SHOWN
    assert out["job"] is None
    assert len(out["cards"]) == 5
    paths = api.base.paths()
    for mid in (1, 2):
        assert f"/api/comparisons/1/regions/{mid}/slice" in paths
    assert "/api/comparisons/1/regions/3/slice" not in paths  # only A and the selected B


def test_a_failed_job_shows_its_error_and_frees_the_button(api: RegionsApi) -> None:
    api.steps = [("running", 0.2, "model 1"), ("failed", 0.2, "model 1")]
    job, _ = view.start_regions_job(1, context(), None)
    assert api.submitted[0]["spec"] == {"comparison_id": 1, **view.INTERACTIVE_SPEC}
    view.poll_regions_job(1, job)
    api.base.jobs[-1]["error"] = "unsupported module: nn.GELU at features.3"
    progress, poll_disabled, button_disabled, done = view.poll_regions_job(2, job)
    assert "The regions job failed" in text(progress) and "nn.GELU" in text(progress)
    assert poll_disabled and not button_disabled and done is dash.no_update


def test_a_refused_submission_is_said_and_nothing_is_followed(api: RegionsApi) -> None:
    api.refuse = "model 1 has an unsupported module: nn.GELU"
    job, panel = view.start_regions_job(1, context(), view.INTERACTIVE_SPEC)
    assert job is dash.no_update
    assert "422" in text(panel) and "nn.GELU" in text(panel)
    assert view.start_regions_job(0, context(), None) == (dash.no_update, dash.no_update)


def test_a_running_job_is_picked_up_when_the_page_opens(api: RegionsApi) -> None:
    api.base.jobs.append(
        {
            "id": 50,
            "kind": "regions",
            "spec": {"comparison_id": 1},
            "status": "running",
            "progress": 0.5,
            "stage": "model 2",
            "error": None,
            "result": None,
            "created_at": "2024-05-01T12:00:00Z",
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
        }
    )
    out = load(context())
    assert out["job"] == {"id": 50, "comparison_id": 1} and out["intro"] == view.SHOWN
    assert view.follow_job(None) == (True, False, dash.no_update)


def test_results_draw_distributions_cards_and_both_maps(api: RegionsApi) -> None:
    api.results = [result(1, 1.0), result(2, 0.6)]
    api.tables[(1, "samples")] = interval_samples(1.0)
    out = load(context(reg_count="activation_pieces"))
    assert out["metric"] == "activation_pieces"
    words = text(out["cards"])
    assert "Linear regions per segment, across classes (mean)" in words
    assert "B/A = 0.60" in words and "Activation regions in the 2-D map" in words
    assert "Dead ReLU outputs" in words and "30.0%" in words and "18.0%" in words
    assert [t.type for t in out["distances"].data] == ["box", "box"]
    # A's table has the decision interval, B's was stored before it: both render
    intervals = {t.name: t for t in out["intervals"].data}
    label_b = out["map_b"].layout.title.text.removesuffix(": region map")
    upper_a = intervals["A: resnet8-cifar5: nearest crossing found (upper end)"]
    assert list(upper_a.y) == [0.05, 0.2, 0.3, 0.4]
    assert f"{label_b}: certified lower end" in intervals
    assert not any(n.startswith(label_b) and "upper end" in n for n in intervals)
    note = text(out["interval_note"])
    assert "lower end: certified, no decision boundary is closer" in note
    assert "upper end: the nearest decision crossing found along 4 directions" in note
    for fig, rmap in ((out["map_a"], api.maps[1]), (out["map_b"], api.maps[2])):
        fills = [t for t in fig.data if t.fill == "toself"]
        assert sum(list(t.x).count(None) for t in fills) == len(rmap["polygons"])
        assert all(t.type == "scatter" for t in fig.data)
    assert out["map_a"].layout.title.text == "A: resnet8-cifar5: region map"
    imgs = [c for c in walk(out["map_note"]) if isinstance(c, html.Img)]
    assert [i.src for i in imgs] == [f"/api/datasets/1/images/test/{i}.png" for i in (3, 17, 42)]
    counts = view.render_counts(out["data"], "activation_pieces")
    assert list(counts.data[0].y) == api.tables[(1, "segments")]["activation_pieces"]
    assert view.render_counts(None, "linear_pieces") is dash.no_update


def test_results_without_the_selected_b_offer_to_compute_again(api: RegionsApi) -> None:
    api.results = [result(1, 1.0), result(3, 0.5)]
    out = load(context(b=2))
    assert out["intro"] == view.SHOWN and out["body"] == view.HIDDEN
    assert "do not cover this A and B" in text(out["message"])


def test_a_missing_map_is_explained_in_its_figure(api: RegionsApi) -> None:
    api.results = [result(1, 1.0), result(2, 0.6)]
    api.maps[2] = {"samples": [3, 17, 42], "extent": 0.1, "error": "needs more than 5000"}
    out = load(context())
    assert "needs more than 5000" in out["map_b"].layout.annotations[0].text
    assert len(out["map_a"].data) > 0


def test_unreachable_api_is_said_in_words(api: RegionsApi) -> None:
    api.base.down = True
    out = load(context())
    assert "Cannot reach the PruneScope API" in text(out["message"])
    assert out["intro"] == view.HIDDEN and out["body"] == view.HIDDEN


def test_count_setting_round_trips_through_the_query() -> None:
    assert view.store_count("decision_crossings", {"id": "1"}) == {
        "id": "1",
        "reg_count": "decision_crossings",
    }
    assert view.store_count("linear_pieces", {"id": "1", "reg_count": "decision_crossings"}) == {
        "id": "1"
    }
    assert view.store_count("linear_pieces", {"id": "1"}) is dash.no_update
    assert view.parse_count("bogus") == "linear_pieces"


def test_callbacks_are_registered_with_the_contract_stores() -> None:
    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    view.register(app)
    outputs = " ".join(str(k) for k in app.callback_map)
    assert f"{QUERY}.data" in outputs and f"{view.ID_POLL}.disabled" in outputs
    inputs = [
        i["id"] for cb in app.callback_map.values() for i in cb["inputs"] if isinstance(i, dict)
    ]
    assert view.CTX == "compare-regions-context" and view.CTX in inputs
    assert view.ID_POLL in inputs and view.ID_COMPUTE in inputs


def test_palette_is_qualitative_and_long_enough() -> None:
    assert len(set(class_palette(8))) == 8
    assert len(class_palette(30)) == 30
    assert np.all([c.startswith("#") or c.startswith("rgb") for c in class_palette(5)])
