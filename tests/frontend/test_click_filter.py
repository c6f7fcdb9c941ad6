"""Click to filter (issue 18): a confusion cell selects its samples, a robustness cell the
samples its setting broke in B and not in A, and the selection exports as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import pytest

from frontend import client as client_module
from frontend.pages import compare
from frontend.views import robustness, selection

RNG = np.random.default_rng(7)
N, C = 300, 4
LABEL = RNG.integers(0, C, N)
PRED_A = np.where(RNG.random(N) < 0.7, LABEL, RNG.integers(0, C, N))
PRED_B = np.where(RNG.random(N) < 0.6, LABEL, RNG.integers(0, C, N))
INDEX = np.arange(N) * 3 + 5  # dataset indices need not be positions
TABLE = {
    "index": INDEX.tolist(),
    "label": LABEL.tolist(),
    "pred_a": PRED_A.tolist(),
    "pred_b": PRED_B.tolist(),
    "d_margin": np.round(RNG.normal(size=N), 4).tolist(),
}


def confusion(pred: np.ndarray) -> np.ndarray:
    """The textbook confusion matrix (rows: true class)."""
    matrix = np.zeros((C, C), dtype=int)
    np.add.at(matrix, (LABEL, pred), 1)
    return matrix


def test_a_cells_members_are_as_many_as_the_confusion_matrix_counts() -> None:
    conf_a, conf_b = confusion(PRED_A), confusion(PRED_B)
    for i in range(C):
        for j in range(C):
            a = compare.confusion_members(TABLE, i, j, "confusion-a")
            b = compare.confusion_members(TABLE, i, j, "confusion-b")
            shift = compare.confusion_members(TABLE, i, j, "confusion-shift")
            assert len(a) == conf_a[i, j] and len(b) == conf_b[i, j]
            assert set(shift) == set(a) ^ set(b)  # entered or left the cell
            assert set(a) <= set(INDEX[LABEL == i].tolist())


@pytest.mark.parametrize(
    ("click", "expected"),
    [
        ({"points": [{"pointNumber": [2, 1], "x": "b", "y": "c"}]}, (2, 1)),
        ({"points": [{"x": "d", "y": "a"}]}, (0, 3)),  # from the axis names
        ({"points": [{"pointNumber": [9, 1]}]}, None),  # out of range
        ({"points": []}, None),
        (None, None),
    ],
)
def test_the_clicked_cell(click: Any, expected: Any) -> None:
    assert compare.confusion_cell(click, ["a", "b", "c", "d"]) == expected


def test_export_label_follows_the_selection() -> None:
    assert compare.export_label(None) == ("Export selection (CSV)", True)
    assert compare.export_label(selection([3], "x")) == ("Export 1 selected sample (CSV)", False)
    text, disabled = compare.export_label(selection(range(1200), "x"))
    assert text == "Export 1,200 selected samples (CSV)" and not disabled


class Api:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/comparisons/1/table":
            asked = request.url.params.get_list("columns") or list(TABLE)
            offset = int(request.url.params.get("offset", 0))
            limit = int(request.url.params.get("limit", 1000))
            page = {k: TABLE[k][offset : offset + limit] for k in asked}
            body = {"count": N, "offset": offset, "limit": limit}
            return httpx.Response(200, json={**body, "column_names": asked, "columns": page})
        if path == "/api/comparisons/1/broken":
            p = request.url.params
            ids = [5, 8] if (p["corruption"], p["severity"]) == ("fog", "3") else []
            body = {"comparison_id": 1, "model_b_id": 3, "corruption": p["corruption"]}
            body |= {"severity": int(p["severity"]), "fragile_a": 0, "fragile_b": 2}
            return httpx.Response(200, json={**body, "ids": ids, "count": len(ids)})
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def api() -> Iterator[Api]:
    fake = Api()
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    try:
        yield fake
    finally:
        client_module.reset()


def test_export_writes_the_selected_rows_as_csv(api: Api) -> None:
    chosen = [int(i) for i in INDEX[[0, 7, 299]]]
    sent = compare.export_selection(1, selection(chosen, "x"), {"id": 1, "b": 3})
    assert sent["filename"] == "comparison-1-b3-selection.csv" and sent["type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(sent["content"])))
    assert [int(r["index"]) for r in rows] == chosen
    for r in rows:
        k = int(np.flatnonzero(INDEX == int(r["index"]))[0])
        assert (int(r["label"]), int(r["pred_a"]), int(r["pred_b"])) == (
            LABEL[k],
            PRED_A[k],
            PRED_B[k],
        )
        assert float(r["d_margin"]) == TABLE["d_margin"][k]
    assert compare.export_selection(1, None, {"id": 1, "b": 3}) is dash.no_update


def test_a_robustness_cell_selects_what_it_broke_and_a_second_click_clears(api: Api) -> None:
    click = {"points": [{"x": 3, "y": "fog"}]}
    context = {"id": 1, "b": 3}
    chosen = robustness.select_broken(click, {}, context, None)
    assert chosen == selection([5, 8], "robustness")
    assert json.loads(json.dumps(chosen)) == chosen  # a store value
    cell = {"rob_c": "fog", "rob_s": "3"}
    assert robustness.select_broken(click, cell, context, chosen) is None
    other = selection([1], "embedding-a")  # a selection made elsewhere stays
    assert robustness.select_broken(click, cell, context, other) is dash.no_update
