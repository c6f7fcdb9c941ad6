"""The Experiments page without a browser: its URL state read and written back, the layout and
the callbacks against the real REST API (tests/frontend/conftest.py ``server``) over generated
model rows, and the comparison it plans for a selection."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from backend.config import Settings
from frontend.client import get_client
from frontend.pages import experiments as page
from tests.experiment_rows import insert_experiments


@pytest.fixture(autouse=True)
def _no_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page, "PREFETCH", False)


@pytest.fixture
def rows(server: Any, settings: Settings) -> list[dict[str, Any]]:
    insert_experiments(settings.database_url, 60, seed=4)
    return get_client().experiments(sort="id", order="asc")


def components(layout: Any) -> list[Any]:
    out, stack = [], list(layout) if isinstance(layout, list | tuple) else [layout]
    while stack:
        node = stack.pop()
        out.append(node)
        children = getattr(node, "children", None)
        if isinstance(children, list | tuple):
            stack.extend(children)
        elif children is not None and not isinstance(children, str | int | float):
            stack.append(children)
    return out


def find(layout: Any, component_id: str) -> Any:
    return next(c for c in components(layout) if getattr(c, "id", None) == component_id)


def text(layout: Any) -> str:
    return " ".join(
        str(c.children) for c in components(layout) if isinstance(getattr(c, "children", None), str)
    )


# the URL --------------------------------------------------------------------------------------
def test_the_default_view_has_an_empty_query() -> None:
    assert page.parse_state({}) == page.ViewState()
    assert page.state_query(page.ViewState()) == ""


@pytest.mark.parametrize(
    "state",
    [
        page.ViewState(method=("random", "original"), sort="accuracy", order="asc"),
        page.ViewState(dataset=(2, 3), architecture=("timm/resnet18",), sparsity=(0.2, 0.9)),
        page.ViewState(q="resnet 90%", page=4, size=50, x="latency_ms", y="corrupted_accuracy"),
        page.ViewState(columns=("name", "seed", "alpha_t"), selected=(12, 5, 7), sort="parent"),
    ],
)
def test_a_view_survives_its_url(state: page.ViewState) -> None:
    query = page.state_query(state)
    parsed = {k: v[0] for k, v in parse_qs(query.lstrip("?")).items()}
    assert page.parse_state(parsed) == state


def test_malformed_values_fall_back_to_their_defaults() -> None:
    state = page.parse_state(
        {
            "sort": "nonsense",
            "order": "sideways",
            "page": "-3",
            "size": "7",
            "smin": "0.9",
            "smax": "0.1",  # crossed: the whole range
            "cols": "nope",
            "x": "depth",
            "sel": "3,x,-1,4",
            "dataset": "a,2",
        }
    )
    assert state == page.ViewState(selected=(3, 4), dataset=(2,))


def test_sort_by_and_the_api_sort_agree() -> None:
    for column in page.COLUMNS:
        if column.sort is None:
            assert page.sort_of([{"column_id": column.id, "direction": "asc"}]) == ("id", "desc")
            continue
        state = page.ViewState(sort=column.sort, order="asc")
        assert page.sort_of(page.sort_by_of(state)) == (column.sort, "asc")


# layout and callbacks -------------------------------------------------------------------------
def test_an_empty_workspace_says_what_to_do(server: Any) -> None:
    layout = page.layout()
    notice = find(layout, "experiments-empty")
    said = text(notice)
    assert "No models yet" in said and "prunescope demo" in said
    assert {c.href for c in components(notice) if isinstance(c, dcc.Link)} == {"/new", "/upload"}


def test_the_layout_shows_the_urls_page_sorted_and_filtered(rows: list[dict[str, Any]]) -> None:
    method = "lottery_ticket"
    layout = page.layout(method=method, sort="accuracy", order="asc", page="2", size="25")
    table = find(layout, page.ID_TABLE)
    assert isinstance(table, DataTable)
    want = get_client().list_experiments(
        method=[method], sort="accuracy", order="asc", offset=25, limit=25
    )
    assert [r["id"] for r in table.data] == [r["id"] for r in want["data"]]
    assert table.page_current == 1 and table.page_size == 25
    assert table.sort_by == [{"column_id": "accuracy", "direction": "asc"}]
    assert find(layout, page.ID_METHOD).value == [method]
    assert "method=lottery_ticket" in find(layout, page.ID_CSV).href
    assert "sort=accuracy" in find(layout, page.ID_CSV).href
    assert find(layout, page.ID_FILTERS).data["method"] == [method]


def test_a_page_past_the_end_shows_the_last_one(rows: list[dict[str, Any]]) -> None:
    table = find(page.layout(page="99"), page.ID_TABLE)
    assert table.page_current == table.page_count - 1 == 2  # 60 rows, 25 a page
    assert len(table.data) == 10


def test_filtering_goes_back_to_the_first_page_paging_does_not(
    rows: list[dict[str, Any]],
) -> None:
    sort_by = [{"column_id": "sparsity", "direction": "desc"}]
    data, pages, current, status, csv, filters = page.update_table(
        ["original"], [], [], [0, 1], "", sort_by, 3, 25, None, paging=False
    )
    originals = [r for r in rows if r["pruning_method"] is None]
    assert current == 0 and pages == 1 and len(data) == len(originals)
    assert status == f"{len(originals)} models match · page 1 of 1"
    assert filters["method"] == ["original"] and "method=original" in csv
    everything = sorted(rows, key=lambda r: (-r["sparsity"], -r["id"]))
    data, pages, current, _, _, kept = page.update_table(
        [], [], [], [0, 1], "", sort_by, 1, 25, filters, paging=True
    )
    assert current == 1 and pages == 3
    assert [r["id"] for r in data] == [r["id"] for r in everything[25:50]]
    assert kept == {**filters, "method": []}  # the filters changed: the scatter follows


def test_unchanged_filters_leave_the_scatter_alone(rows: list[dict[str, Any]]) -> None:
    first = page.update_table([], [], [], [0.1, 0.8], "on", None, 0, 25, None, paging=False)
    again = page.update_table([], [], [], [0.1, 0.8], "on", None, 1, 25, first[5], paging=True)
    assert again[5] is page.dash.no_update


def test_the_scatter_and_the_query_follow_the_controls(rows: list[dict[str, Any]]) -> None:
    figure = page.update_scatter({"method": ["original"]}, "sparsity", "accuracy", [rows[0]["id"]])
    drawn = [c[0] for t in figure.data if t.meta == "points" for c in t.customdata]
    originals = [r["id"] for r in rows if r["pruning_method"] is None and r["accuracy"]]
    assert sorted(drawn) == sorted(originals)
    query = page.view_query(
        ["random"], [], [], [0, 0.5], "", [{"column_id": "seed", "direction": "asc"}], 2, 50,
        ["seed"], "latency_ms", "accuracy", [4, 2],
    )  # fmt: skip
    assert parse_qs(query.lstrip("?")) == {
        "method": ["random"],
        "smax": ["0.5"],
        "sort": ["seed"],
        "order": ["asc"],
        "page": ["3"],
        "size": ["50"],
        "cols": ["seed"],
        "x": ["latency_ms"],
        "sel": ["4,2"],
    }
    assert page.hidden_columns(["seed"]) == [
        c for c in page.COLUMN_IDS if c not in ("name", "seed")
    ]


# selection and comparison ---------------------------------------------------------------------
def test_a_selection_of_one_lineage_is_compared_with_its_original(
    rows: list[dict[str, Any]], settings: Settings
) -> None:
    family = [r for r in rows if r["depth"] >= 1]
    original = family[0]["original_id"]
    chosen = [r["id"] for r in family if r["original_id"] == original][:3]
    panel, disabled = page.describe_selection(chosen)
    assert not disabled
    assert f"Compare A = #{original}" in text(panel)
    hrefs = {a.href for a in components(panel) if isinstance(a, html.A)}
    assert {f"/api/models/{i}/download?format=safetensors" for i in chosen} <= hrefs
    made = page.compare_selected(1, chosen)
    link = next(c for c in components(made) if isinstance(c, dcc.Link))
    comparison = get_client().get_comparison(int(link.href.split("id=")[1]))
    assert comparison["model_a_id"] == original
    assert sorted(comparison["model_b_ids"]) == sorted(i for i in chosen if i != original)


def test_a_selection_without_a_common_original_says_so(rows: list[dict[str, Any]]) -> None:
    originals = [r for r in rows if r["pruning_method"] is None][:2]
    children = [r for r in rows if r["parent_id"] in {o["id"] for o in originals}]
    chosen = [
        originals[0]["id"],
        *[r["id"] for r in children if r["parent_id"] != originals[0]["id"]][:1],
    ]
    panel, disabled = page.describe_selection(chosen)
    assert disabled and "no common original" in text(panel)
    answer = page.compare_selected(1, chosen)
    assert "no common original" in text(answer)
    alone, disabled = page.describe_selection([originals[0]["id"]])
    assert disabled and "is an original: select pruned models" in text(alone)
    empty, disabled = page.describe_selection([])
    assert disabled and "Select models" in text(empty)
