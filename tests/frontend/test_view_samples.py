"""Flagged-samples view: its pure helpers, and its callbacks against the fake API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import dash
import httpx
import numpy as np
import pytest
from dash import dcc, html
from dash.development.base_component import Component

from frontend import client as client_module
from frontend.views import CONTEXT, QUERY, SELECTION, selection, view_context
from frontend.views import samples as view
from frontend.views.parts import HIDDEN, SHOWN, column_array
from frontend.views.samples import common
from frontend.views.samples import detail as detail_view
from frontend.views.samples import gallery as gallery_view

FakeApi = Any  # the fake_api fixture of conftest.py
NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
N_SAMPLES = 600
TABLE_COLUMNS = [
    "index",
    "label",
    "pred_a",
    "pred_b",
    "category",
    "pie",
    "margin_a",
    "margin_b",
    "d_margin",
    "d_angle",
    "d_length_z",
    "ax",
    "ay",
    "nbr_jaccard",
]
FRAGILITY_COLUMNS = ["fragile_a", "fragile_b", "made_fragile"]


def comparison_table(b: int, corruptions: bool = True) -> dict[str, list[Any]]:
    """The comparison table of (1, b), built from the same records as ``/samples/{index}``."""
    if (b, corruptions) not in _TABLES:
        _TABLES[b, corruptions] = _build_table(b, corruptions)
    return _TABLES[b, corruptions]


_TABLES: dict[tuple[int, bool], dict[str, list[Any]]] = {}
sample_record: Any = None  # FakeApi.sample_record, set by the autouse fixture below


def _build_table(b: int, corruptions: bool) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in TABLE_COLUMNS}
    if corruptions:
        out |= {c: [] for c in FRAGILITY_COLUMNS}
    for i in range(N_SAMPLES):
        rec = sample_record(b, i, corruptions)
        a, bb = rec["a"], rec["b"]
        row = {
            "index": i,
            "label": rec["label"],
            "pred_a": a["pred"],
            "pred_b": bb["pred"],
            "category": rec["category"],
            "pie": rec["pie"],
            "margin_a": a["margin"],
            "margin_b": bb["margin"],
            # sample 5 has no margin change recorded: it sorts last
            "d_margin": None if i == 5 else bb["margin"] - a["margin"] - i / 1000,
            "d_angle": bb["angle"] - a["angle"] + (i % 11),
            "d_length_z": ((i % 13) - 6) / 3,
            "ax": 0.0,
            "ay": 0.0,
            # neighbourhood kept: sample 8 has none recorded (sorts last)
            "nbr_jaccard": None if i == 8 else ((i * 7) % 20) / 20,
        }
        if corruptions:
            made = bool(rec["made_fragile"])
            row |= {"fragile_a": 0, "fragile_b": 2 if made else 0, "made_fragile": made}
        for c in out:
            out[c].append(row[c])
    return out


class SamplesApi:
    """Serves ``/comparisons/1/table`` next to FakeApi (which answers the sample endpoints)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.ready = True
        self.corruptions = True
        self.neighbours = True  # False: a comparison computed before the neighbourhood change

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        if re.fullmatch(r"/api/comparisons/1/table", path):
            self.api.requests.append(request)
            if not self.ready:
                return httpx.Response(409, json={"detail": "comparison results are not ready"})
            table = comparison_table(int(params.get("b", 2)), self.corruptions)
            if not self.neighbours:
                table = {c: v for c, v in table.items() if c != "nbr_jaccard"}
            names = params.get_list("columns") or list(table)
            unknown = [c for c in names if c not in table]
            if unknown:
                return httpx.Response(422, json={"detail": f"unknown column {unknown[0]!r}"})
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 1000))
            return httpx.Response(
                200,
                json={
                    "count": N_SAMPLES,
                    "offset": offset,
                    "limit": limit,
                    "column_names": names,
                    "columns": {c: table[c][offset : offset + limit] for c in names},
                },
            )
        found = re.fullmatch(r"/api/comparisons/1/neighbours/(\d+)", path)
        if found:
            self.api.requests.append(request)
            index = int(found.group(1))
            if index >= N_SAMPLES:
                return httpx.Response(404, json={"detail": "Sample not found"})
            a = [(index + j) % N_SAMPLES for j in range(1, 6)]
            b = a[:2] + [(index + 100 + j) % N_SAMPLES for j in range(3)]
            return httpx.Response(
                200,
                json={
                    "comparison_id": 1,
                    "model_b_id": int(params.get("b", 2)),
                    "index": index,
                    "k": 5,
                    "metric": "cosine",
                    "a": a,
                    "b": b,
                    "shared": a[:2],
                    "jaccard": 2 / 8,
                },
            )
        return self.api.handle(request)


@pytest.fixture(autouse=True)
def _fresh_cache(fake_api: FakeApi) -> Iterator[None]:
    global sample_record
    sample_record = type(fake_api).sample_record
    view.clear_cache()
    yield
    view.clear_cache()


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[SamplesApi]:
    fake = SamplesApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(fake.handle))
    yield fake


def context(b: int = 2, cls: int | None = None, **query: str) -> dict[str, Any]:
    return {"id": 1, "b": b, "cls": cls, "query": {"id": "1", "b": str(b), **query}}


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


def tiles(body: Any) -> list[Any]:
    return [
        c
        for c in walk(body)
        if isinstance(c, Component)
        and isinstance(getattr(c, "id", None), dict)
        and c.id.get("type") == gallery_view.TILE
    ]


def tile_indices(body: Any) -> list[int]:
    return [t.id["index"] for t in tiles(body)]


INIT_FIELDS = (
    "cards",
    "category",
    "pie",
    "fragile",
    "fragile_options",
    "fragile_note",
    "sort",
    "state",
    "open",
    "message",
    "sort_options",
)
GALLERY_FIELDS = (
    "summary",
    "body",
    "prev_disabled",
    "next_disabled",
    "page",
    "state",
    "category_options",
    "clear_style",
)


def init(ctx: dict[str, Any], current: Any = None) -> dict[str, Any]:
    return dict(zip(INIT_FIELDS, gallery_view.init_samples(ctx, current), strict=True))


def gallery(
    ctx: dict[str, Any],
    state: dict[str, Any] | None = None,
    *,
    category: str = "flagged",
    pie: bool = False,
    fragile: bool = False,
    sort: str = "index",
    n_prev: int = 0,
    n_next: int = 0,
    current: Any = None,
) -> dict[str, Any]:
    if state is None:
        state = init(ctx, current)["state"]
    out = gallery_view.update_gallery(
        category,
        ["on"] if pie else [],
        ["on"] if fragile else [],
        sort,
        n_prev,
        n_next,
        current,
        state,
        ctx,
    )
    return dict(zip(GALLERY_FIELDS, out, strict=True))


def expected_flagged(b: int, corruptions: bool = True) -> list[int]:
    table = comparison_table(b, corruptions)
    return [
        i
        for i in range(N_SAMPLES)
        if table["category"][i] or table["pie"][i] or (corruptions and table["made_fragile"][i])
    ]


# pure helpers ----------------------------------------------------------------------------------


def _arrays(table: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    return {k: column_array(k, v) for k, v in table.items() if k in common.TABLE_COLUMNS}


def test_matching_rows_flagged_categories_flags_class_and_selection() -> None:
    t = _arrays(comparison_table(2))
    flagged = gallery_view.matching_rows(t)
    assert t["index"][flagged].tolist() == expected_flagged(2)
    c2w = gallery_view.matching_rows(t, category="correct_to_wrong")
    assert t["index"][c2w].tolist() == [2, 12, 42, 52]
    assert gallery_view.matching_rows(t, category="all").size == N_SAMPLES
    pies = gallery_view.matching_rows(t, pie=True)
    assert t["index"][pies].tolist() == [2, 22, 42, 62]  # every other flip
    fragile = gallery_view.matching_rows(t, fragile=True, category="all")
    assert all(i % 9 == 0 for i in t["index"][fragile])
    cats = gallery_view.matching_rows(t, cls=3, category="all")
    assert set(t["label"][cats].tolist()) == {3}
    # a selection sets the category aside but keeps the class and the flags
    chosen = gallery_view.matching_rows(t, selected=[1, 2, 8, 13, 999], cls=3)
    assert t["index"][chosen].tolist() == [8, 13]
    assert gallery_view.matching_rows(t, selected=[2, 3, 4], pie=True).tolist() == [2]


def test_fragile_filter_without_the_column_matches_nothing() -> None:
    t = _arrays(comparison_table(2, corruptions=False))
    assert gallery_view.matching_rows(t, fragile=True, category="all").size == 0
    assert t["index"][gallery_view.matching_rows(t)].tolist() == expected_flagged(2, False)


def test_sorts_put_the_largest_shift_first_and_missing_values_last() -> None:
    t = _arrays(comparison_table(2))
    rows = gallery_view.matching_rows(t, category="all")
    by_margin = gallery_view.sort_rows(t, rows, "d_margin")
    dm = t["d_margin"][by_margin]
    finite = dm[~np.isnan(dm)]
    assert np.all(np.diff(finite) >= 0) and t["index"][by_margin[-1]] == 5
    by_angle = t["d_angle"][gallery_view.sort_rows(t, rows, "-d_angle")]
    assert np.all(np.diff(by_angle) <= 0)
    by_length = np.abs(t["d_length_z"][gallery_view.sort_rows(t, rows, "d_length")])
    assert np.all(np.diff(by_length) <= 0)
    shuffled = rows[::-1]
    assert t["index"][gallery_view.sort_rows(t, shuffled, "index")].tolist() == list(
        range(N_SAMPLES)
    )
    assert gallery_view.sort_rows(t, shuffled, "bogus").tolist() == rows.tolist()


@pytest.mark.parametrize(
    ("value", "category", "sort", "page", "flag"),
    [
        (None, "flagged", "index", 0, False),
        ("wrong_to_correct", "wrong_to_correct", "index", 0, False),
        ("all", "all", "index", 0, False),
        ("bogus", "flagged", "index", 0, False),
    ],
)
def test_parsing_settings(value: Any, category: str, sort: str, page: int, flag: bool) -> None:
    assert gallery_view.parse_category(value) == category
    assert gallery_view.parse_sort(value) == sort
    assert gallery_view.parse_page(value) == page
    assert gallery_view.parse_flag(value) is flag
    assert gallery_view.parse_sort("-d_angle") == "-d_angle" and gallery_view.parse_page("3") == 2
    assert (
        gallery_view.parse_flag("1")
        and gallery_view.parse_flag(["on"])
        and not gallery_view.parse_flag([])
    )


def test_describe_and_empty_reasons_say_what_is_shown() -> None:
    assert gallery_view.describe("flagged", False, False, None) == "flagged samples"
    assert (
        gallery_view.describe("correct_to_wrong", True, True, "cat")
        == "correct → wrong samples of class cat that are PIEs and were made fragile by pruning"
    )
    assert (
        gallery_view.describe("all", False, True, None)
        == "samples that were made fragile by pruning"
    )
    reason = gallery_view.empty_reason("flagged", False, False, "cat")
    assert "A and B predict every sample the same way" in reason and "All samples" in reason
    assert gallery_view.empty_reason("all", True, False, None).startswith(
        "No samples that are PIEs"
    )


# layout -----------------------------------------------------------------------------------------


def test_section_skeleton_has_prefixed_ids_and_no_webgl() -> None:
    section = view.section()
    assert isinstance(section, html.Section) and section.id == view.ID_SECTION
    ids = {getattr(c, "id", None) for c in walk(section) if isinstance(c, Component)}
    for wanted in (
        gallery_view.ID_CATEGORY,
        gallery_view.ID_PIE,
        gallery_view.ID_FRAGILE,
        gallery_view.ID_SORT,
        gallery_view.ID_GALLERY,
        gallery_view.ID_PREV,
        gallery_view.ID_NEXT,
        detail_view.ID_DETAIL,
        detail_view.ID_TOP5,
        detail_view.ID_COMPUTE,
        detail_view.ID_POLL,
        detail_view.ID_ATTR_FIG,
    ):
        assert wanted in ids
    assert all(i.startswith("compare-samples") for i in ids if isinstance(i, str))
    found = {
        c.id: c
        for c in walk(section)
        if isinstance(c, Component) and isinstance(getattr(c, "id", None), str)
    }
    assert found[detail_view.ID_POLL].disabled is True
    assert found[detail_view.ID_DETAIL_BODY].style == HIDDEN
    assert detail_view.DETAIL_EMPTY in text(found[detail_view.ID_DETAIL_EMPTY])
    assert [o["value"] for o in found[gallery_view.ID_CATEGORY].options] == [
        "flagged",
        "correct_to_wrong",
        "wrong_to_correct",
        "wrong_to_other_wrong",
        "all",
    ]
    assert [o["value"] for o in found[gallery_view.ID_SORT].options] == [
        "index",
        "d_margin",
        "-d_angle",
        "d_length",
        "nbr_jaccard",
    ]
    graphs = [c for c in walk(section) if isinstance(c, dcc.Graph)]
    assert len(graphs) == 2


def test_register_uses_the_lazy_context_and_the_contract_stores() -> None:
    app = dash.Dash(__name__)
    view.register(app)
    outputs = " ".join(app.callback_map)
    assert QUERY in outputs and SELECTION in outputs and gallery_view.ID_GALLERY in outputs
    inputs = {i["id"] for cb in app.callback_map.values() for i in cb["inputs"] if "id" in i} | {
        s["id"] for cb in app.callback_map.values() for s in cb["state"] if "id" in s
    }
    assert view_context("samples") in inputs and CONTEXT not in inputs


# callbacks: init and the gallery ------------------------------------------------------------


def test_init_restores_the_settings_from_the_url(api: SamplesApi) -> None:
    out = init(
        context(
            smp_cat="correct_to_wrong",
            smp_pie="1",
            smp_frag="1",
            smp_sort="-d_angle",
            smp_page="2",
            smp="42",
        )
    )
    assert (out["category"], out["pie"], out["fragile"], out["sort"]) == (
        "correct_to_wrong",
        ["on"],
        ["on"],
        "-d_angle",
    )
    assert out["open"] == 42 and out["message"] is None and out["fragile_note"] is None
    assert out["fragile_options"][0]["disabled"] is False
    assert out["state"] == {
        "category": "correct_to_wrong",
        "pie": True,
        "fragile": True,
        "sort": "-d_angle",
        "sel": None,
        "page": 1,
        "n_prev": 0,
        "n_next": 0,
    }
    cards = text(out["cards"])
    for title in ("correct → wrong", "wrong → correct", "wrong → other wrong", "PIE"):
        assert title in cards
    assert "made fragile" in cards
    counts = [c.children[1].children for c in out["cards"]]
    assert counts == ["4", "2", "1", "4", str(sum(1 for i in range(N_SAMPLES) if i % 9 == 0))]


def test_without_corruption_results_the_fragile_filter_is_disabled(api: SamplesApi) -> None:
    api.corruptions = False
    out = init(context(smp_frag="1"))
    assert out["fragile"] == [] and out["fragile_options"][0]["disabled"] is True
    assert out["fragile_note"] == gallery_view.NO_FRAGILITY
    assert "made fragile" not in text(out["cards"])


def test_before_the_compare_job_the_view_says_so(api: SamplesApi) -> None:
    api.ready = False
    out = init(context())
    assert gallery_view.NOT_READY in text(out["message"])
    shown = gallery(context(), out["state"])
    assert shown["body"] == [] and shown["summary"] == ""
    api.ready = True  # a 409 is not kept: the next load shows the gallery
    assert tiles(gallery(context())["body"])


def test_gallery_shows_a_page_of_flagged_thumbnails(api: SamplesApi) -> None:
    out = gallery(context())
    flagged = expected_flagged(2)
    assert tile_indices(out["body"]) == flagged[: gallery_view.PAGE_SIZE]
    assert out["summary"] == f"Showing 1–24 of {len(flagged)} flagged samples."
    assert (out["prev_disabled"], out["next_disabled"]) == (True, False)
    assert out["page"] == f"page 1 of {gallery_view.page_count(len(flagged))}"
    first = tiles(out["body"])[0]  # sample 0: not flipped, made fragile
    img = next(c for c in walk(first) if isinstance(c, html.Img))
    assert img.src == "/api/datasets/1/images/test/0.png" and "sample-thumb" in img.className
    assert "#0" in text(first) and "airplane" in text(first) and "fragile" in text(first)
    flip = tiles(out["body"])[1]  # sample 2: correct → wrong, PIE
    tags = [c for c in walk(flip) if isinstance(c, html.Span) and "flip-tag" in (c.className or "")]
    assert [t.className.split()[-1] for t in tags[:2]] == [
        "flip-correct_to_wrong",
        "sample-tag-pie",
    ]
    assert "Δm" in text(flip) and "✗" in text(flip)
    assert out["clear_style"] == HIDDEN
    assert not any(o.get("disabled") for o in out["category_options"])


def test_pager_moves_one_page_and_filters_start_over(api: SamplesApi) -> None:
    ctx = context()
    first = gallery(ctx)
    second = gallery(ctx, first["state"], n_next=1)
    flagged = expected_flagged(2)
    assert tile_indices(second["body"]) == flagged[24:48]
    assert second["state"]["page"] == 1 and second["summary"].startswith("Showing 25–48")
    back = gallery(ctx, second["state"], n_prev=1, n_next=1)
    assert back["state"]["page"] == 0
    # a filter change goes back to page 1 even with a pager click counted
    moved = gallery(ctx, second["state"], category="wrong_to_correct", n_next=1)
    assert tile_indices(moved["body"]) == [22, 62] and moved["state"]["page"] == 0
    assert moved["next_disabled"] is True and moved["prev_disabled"] is True
    assert "wrong → correct samples" in moved["summary"]


def test_a_page_from_the_url_is_kept_and_clamped(api: SamplesApi) -> None:
    ctx = context(smp_page="2")
    out = gallery(ctx)
    assert out["state"]["page"] == 1 and out["summary"].startswith("Showing 25–")
    far = gallery(context(smp_page="99"))
    assert far["state"]["page"] == gallery_view.page_count(len(expected_flagged(2))) - 1
    assert far["next_disabled"] is True


def test_sort_and_flags_and_the_page_class(api: SamplesApi) -> None:
    ctx = context(cls=3)
    out = gallery(ctx, category="all", sort="d_margin")
    shown = tile_indices(out["body"])
    labels = comparison_table(2)["label"]
    assert shown and all(labels[i] == 3 for i in shown)
    dm = comparison_table(2)["d_margin"]
    values = [dm[i] for i in shown]
    assert values == sorted(values)
    assert "samples of class cat, largest margin decrease first" in out["summary"]
    pie = gallery(context(), pie=True)
    assert tile_indices(pie["body"]) == [2, 22, 42, 62]
    assert "that are PIEs" in pie["summary"]


def test_empty_gallery_says_why(api: SamplesApi) -> None:
    out = gallery(context(cls=1), category="wrong_to_other_wrong")
    assert tiles(out["body"]) == []
    assert "No wrong → other wrong samples of class automobile" in text(out["body"])
    assert out["page"] == ""


def test_a_selection_shows_only_the_selected_samples(api: SamplesApi) -> None:
    current = selection([7, 3, 12, 999], "embedding-a")
    out = gallery(context(), current=current)
    assert tile_indices(out["body"]) == [3, 7, 12]  # unflagged ones too
    assert out["summary"].startswith("4 selected samples (3 match the filters)")
    assert out["clear_style"] == SHOWN
    assert all(o.get("disabled") for o in out["category_options"])
    # a new selection starts from the first page; clearing it goes back to the flagged ones
    cleared = gallery(context(), out["state"])
    assert tile_indices(cleared["body"]) == expected_flagged(2)[:24]
    none = gallery(context(cls=4), current=selection([7, 3], "geometry"))
    assert "None of the 2 selected samples match class deer" in text(none["body"])
    assert (
        gallery_view.clear_selection(1) is None
        and gallery_view.clear_selection(0) is dash.no_update
    )


def test_samples_that_are_not_images_get_table_rows(api: SamplesApi) -> None:
    api.api.datasets[0]["input_shape"] = [2]
    out = gallery(context())
    (table,) = [c for c in walk(out["body"]) if isinstance(c, html.Table)]
    rows = [
        c
        for c in walk(table)
        if isinstance(c, html.Tr) and isinstance(getattr(c, "id", None), dict)
    ]
    assert [r.id["index"] for r in rows] == expected_flagged(2)[:24]
    assert not [c for c in walk(out["body"]) if isinstance(c, html.Img)]
    assert "#2" in text(rows[1]) and "correct → wrong" in text(rows[1])


def test_the_table_is_fetched_once_with_only_the_gallery_columns(api: SamplesApi) -> None:
    ctx = context()
    state = init(ctx)["state"]
    gallery(ctx, state)
    gallery(ctx, state, category="all")
    tables = [r for r in api.api.requests if r.url.path.endswith("/table")]
    assert len(tables) == 2  # a probe for the column names, then the columns
    assert tables[1].url.params.get_list("columns") == [
        c for c in common.TABLE_COLUMNS if c in comparison_table(2)
    ]
    assert "ax" not in tables[1].url.params.get_list("columns")


def test_settings_and_the_open_sample_round_trip_through_the_query() -> None:
    state = {
        "category": "wrong_to_correct",
        "pie": True,
        "fragile": False,
        "sort": "-d_angle",
        "page": 2,
    }
    query = {"id": "1", "geo_mode": "diff"}
    new = gallery_view.write_samples_query(state, 42, query)
    assert new == {
        "id": "1",
        "geo_mode": "diff",
        "smp_cat": "wrong_to_correct",
        "smp_pie": "1",
        "smp_sort": "-d_angle",
        "smp_page": "3",
        "smp": "42",
    }
    assert gallery_view.write_samples_query(state, 42, new) is dash.no_update
    defaults = {"category": "flagged", "pie": False, "fragile": False, "sort": "index", "page": 0}
    assert gallery_view.write_samples_query(defaults, None, new) == {"id": "1", "geo_mode": "diff"}
    restored = init_from(new)
    assert restored == ("wrong_to_correct", "-d_angle", 2, 42)


def init_from(query: dict[str, str]) -> tuple[Any, ...]:
    return (
        gallery_view.parse_category(query.get(gallery_view.KEY_CATEGORY)),
        gallery_view.parse_sort(query.get(gallery_view.KEY_SORT)),
        gallery_view.parse_page(query.get(gallery_view.KEY_PAGE)),
        int(query[gallery_view.KEY_SAMPLE]),
    )


def test_clicking_a_tile_opens_its_sample() -> None:
    ids = [{"type": gallery_view.TILE, "index": 2}, {"type": gallery_view.TILE, "index": 12}]
    assert gallery_view.open_sample([0, 1], ids, ids[1], None) == 12
    assert gallery_view.open_sample([1, 1], ids, ids[0], 12) == 2
    assert (
        gallery_view.open_sample([0, 0], ids, ids[0], None) is dash.no_update
    )  # new page of tiles
    assert gallery_view.open_sample([1, 0], ids, ids[0], 2) is dash.no_update  # already open
    assert gallery_view.open_sample([1], ids, None, None) is dash.no_update
    assert detail_view.close_sample(1) is None and detail_view.close_sample(0) is dash.no_update


# callbacks: the detail -------------------------------------------------------------------------

DETAIL_FIELDS = ("empty", "body", "head", "top5", "metrics", "corruptions", "info")


def detail(index: Any, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(zip(DETAIL_FIELDS, detail_view.render_detail(index, ctx or context()), strict=True))


def test_detail_shows_image_labels_top5_metrics_and_corruptions(api: SamplesApi) -> None:
    out = detail(42)  # a deer, correct → wrong (to automobile), PIE, not fragile
    assert out["empty"] == HIDDEN and out["body"] == SHOWN
    head = text(out["head"])
    assert "Test sample #42" in head and "True label" in head and "deer" in head
    assert "correct → wrong" in head and "PIE" in head
    (img,) = [c for c in walk(out["head"]) if isinstance(c, html.Img)]
    assert img.src == "/api/datasets/1/images/test/42.png" and "sample-large" in img.className
    downloads = [
        a.href for a in walk(out["head"]) if isinstance(a, html.A) and a.children == "Download"
    ]
    assert downloads == [f"/api/models/{i}/download?format=safetensors" for i in (1, 2)]
    a, b = out["top5"].data
    assert (a.orientation, b.orientation) == ("h", "h")
    assert a.name.startswith("A: ") and b.name.startswith("B: ")
    assert a.y[0] == "deer" and "<b>deer</b> (true)" in out["top5"].layout.yaxis.ticktext
    assert b.x[1] == pytest.approx(0.55)  # B's first choice, under A's
    assert b.y[1] == "automobile"
    rec = sample_record(2, 42)
    metrics = out["metrics"]
    assert metrics.id == detail_view.ID_METRICS
    rows = [c for c in walk(metrics) if isinstance(c, html.Tr)][1:]
    assert [r.children[0].title for r in rows] == [
        detail_view.METRIC_HELP["angle"],
        detail_view.METRIC_HELP["length"],
        detail_view.METRIC_HELP["margin"],
    ]
    angle = [td.children for td in rows[0].children[1:]]
    assert angle == [
        f"{rec['a']['angle']:.1f}",
        f"{rec['b']['angle']:.1f}",
        f"{rec['b']['angle'] - rec['a']['angle']:+.1f}",
    ]
    assert rows[2].children[2].className == "bad"  # B's margin < 0: misclassified
    assert "σ" in rows[1].children[3].children
    grid = out["corruptions"]
    cells = [c for c in walk(grid) if isinstance(c, html.Td)]
    assert len(cells) == 2 * 3
    assert all("A✓" in text(c).replace(" ", "") for c in cells)  # A is right everywhere
    assert all("B✗" in text(c).replace(" ", "") for c in cells)
    assert all("corruption-b-only" in c.className for c in cells)
    assert "gaussian noise" in text(grid) and "severity 3" in text(grid)
    assert out["info"] == {
        "status": "none",
        "job_id": None,
        "progress": 0.0,
        "message": "",
        "error": None,
        "index": 42,
    }


def test_detail_highlights_only_the_settings_where_b_alone_fails(api: SamplesApi) -> None:
    out = detail(9)  # not flipped, made fragile: B fails at severity 3 only
    cells = [c for c in walk(out["corruptions"]) if isinstance(c, html.Td)]
    highlighted = ["corruption-b-only" in c.className for c in cells]
    assert highlighted == [False, False, True, False, False, True]
    assert "2 settings" in text(out["corruptions"])
    assert "fog, severity 3: A predicts deer ✓, B predicts bird ✗" in cells[-1].title


def test_detail_without_corruptions_and_unknown_samples(api: SamplesApi) -> None:
    api.api.sample_corruptions = False
    assert "No corruption results for this comparison" in text(detail(9)["corruptions"])
    missing = detail(5000)
    assert "Test sample #5000 not found" in text(missing["head"])
    assert missing["info"] is None
    none = detail(None)
    assert none["empty"] == SHOWN and none["body"] == HIDDEN


# callbacks: geometric attribution ---------------------------------------------------------------

ATTR_FIELDS = ("button", "note", "progress", "job", "body", "figure", "image", "corrupted")


def attribution(info: Any, done: Any = None) -> dict[str, Any]:
    return dict(
        zip(ATTR_FIELDS, detail_view.render_attribution(info, done, context()), strict=True)
    )


def test_attribution_is_computed_on_demand_and_drawn(api: SamplesApi) -> None:
    info = detail(42)["info"]
    out = attribution(info)
    assert out["button"] == SHOWN and out["body"] == HIDDEN and out["job"] is None
    job, panel = detail_view.start_attribution(1, info, context())
    (posted,) = [r for r in api.api.requests if r.method == "POST"]
    assert posted.url.path == "/api/jobs"
    assert json.loads(posted.content) == {
        "kind": "attribution",
        "spec": {"comparison_id": 1, "model_b_id": 2, "index": 42},
    }
    assert job == {"id": 4, "index": 42} and "queued" in text(panel)
    assert detail_view.follow_job(job) == (False, True)
    progress, poll_off, button_off, done = detail_view.poll_attribution_job(1, job)
    assert "queued" in text(progress) and not poll_off and button_off
    assert done is dash.no_update
    api.api.jobs[-1] |= {"status": "running", "progress": 0.5, "stage": "occluding A"}
    progress, *_ = detail_view.poll_attribution_job(2, job)
    assert "50%" in text(progress) and "occluding A" in text(progress)
    # reopened while it runs: the job is picked up, not offered again
    running = attribution(detail(42)["info"])
    assert running["job"] == {"id": 4, "index": 42} and running["button"] == HIDDEN
    api.api.jobs[-1] |= {"status": "succeeded", "progress": 1.0}
    progress, poll_off, _, done = detail_view.poll_attribution_job(3, job)
    assert poll_off and done == job == {"id": 4, "index": 42}
    drawn = attribution(info, done)
    assert drawn["body"] == SHOWN and drawn["button"] == HIDDEN
    fig = drawn["figure"]
    assert len(fig.data) == 9 and all(t.type == "heatmap" for t in fig.data)
    assert list(fig.data[0].z[2]) == [2.0, 2.1, 2.2, 2.3]  # A's angle, row 2
    assert list(fig.data[0].y) == [0, 2, 4] and list(fig.data[0].x) == [0, 2, 4, 6]
    assert list(fig.data[1].z[2]) == [4.0, 4.2, 4.4, 4.6]  # B's angle: twice A's
    assert fig.data[2].z[2][1] == pytest.approx(2.1)  # B − A
    assert "4×4 px patches, stride 2" in fig.layout.title.text
    (img,) = [c for c in walk(drawn["image"]) if isinstance(c, html.Img)]
    assert img.src.endswith("/42.png")
    (thumb,) = drawn["corrupted"]
    assert "fog 3" in text(thumb) and "✗" in text(thumb)
    assert "corruption-b-only" in thumb.className
    # the next time the sample opens, its maps come straight from the API
    again = attribution(detail(42)["info"])
    assert again["body"] == SHOWN and len(again["figure"].data) == 9


def test_a_failed_attribution_job_shows_its_error_and_the_button(api: SamplesApi) -> None:
    info = detail(12)["info"]
    job, _ = detail_view.start_attribution(1, info, context())
    api.api.jobs[-1] |= {"status": "failed", "error": "attribution needs an image dataset"}
    progress, poll_off, button_off, done = detail_view.poll_attribution_job(1, job)
    assert "The attribution job failed" in text(progress)
    assert "image dataset" in text(progress)
    assert poll_off and not button_off and done is dash.no_update
    out = attribution(detail(12)["info"])
    assert out["button"] == SHOWN and "image dataset" in text(out["note"])


def test_attribution_callbacks_do_nothing_without_a_sample(api: SamplesApi) -> None:
    assert detail_view.start_attribution(0, {"index": 3}, context()) == (
        dash.no_update,
        dash.no_update,
    )
    assert detail_view.start_attribution(1, None, context()) == (dash.no_update, dash.no_update)
    assert detail_view.follow_job(None) == (True, False)
    out = attribution(None)
    assert out["button"] == HIDDEN and out["body"] == HIDDEN
    api.api.errors["/api/jobs"] = (503, "the job queue is down")
    job, panel = detail_view.start_attribution(1, {"index": 3, "status": "none"}, context())
    assert job is dash.no_update and "503" in text(panel)


# neighbourhood change (SCIENCE.md sect. 7) ------------------------------------------------------


def test_neighbourhood_torn_most_sorts_the_lowest_jaccard_first() -> None:
    table = _arrays(comparison_table(2))
    rows = np.arange(N_SAMPLES)
    order = gallery_view.sort_rows(table, rows, "nbr_jaccard")
    values = table["nbr_jaccard"][order]
    assert order[-1] == 8  # no value: last
    assert np.all(np.diff(values[:-1]) >= 0)
    ties = order[values == 0.0]
    assert list(ties) == sorted(ties)  # equal values by index
    assert gallery_view.parse_sort("nbr_jaccard") == "nbr_jaccard"
    assert "nbr_jaccard" in [o["value"] for o in gallery_view.sort_options(table)]
    older = {k: v for k, v in table.items() if k != "nbr_jaccard"}
    assert "nbr_jaccard" not in [o["value"] for o in gallery_view.sort_options(older)]
    assert gallery_view.sort_rows(older, rows, "nbr_jaccard").tolist() == rows.tolist()


def test_the_gallery_sorted_by_neighbourhood_shows_it(api: SamplesApi) -> None:
    ctx = context(smp_sort="nbr_jaccard", smp_cat="all")
    out = init(ctx)
    assert out["sort"] == "nbr_jaccard" and out["state"]["sort"] == "nbr_jaccard"
    assert "nbr_jaccard" in [o["value"] for o in out["sort_options"]]
    shown = gallery(ctx, out["state"], category="all", sort="nbr_jaccard")
    first = tile_indices(shown["body"])
    assert all(((i * 7) % 20) == 0 for i in first[:5])
    assert "neighbourhood torn most first" in shown["summary"]
    assert "nbr 0.00" in text(shown["body"])
    query = gallery_view.write_samples_query(shown["state"], None, {"id": "1"})
    assert query["smp_sort"] == "nbr_jaccard"


def test_an_older_comparison_offers_no_neighbourhood_sort(api: SamplesApi) -> None:
    api.neighbours = False
    out = init(context(smp_sort="nbr_jaccard"))
    assert out["sort"] == "index"
    assert "nbr_jaccard" not in [o["value"] for o in out["sort_options"]]
    assert detail_view.NO_NEIGHBOURS in text(detail_view.render_neighbours(3, context()))
    assert not [r for r in api.api.requests if "/neighbours/" in r.url.path]


def test_rows_of_non_image_samples_have_the_jaccard_column(api: SamplesApi) -> None:
    data = common.load_data(context())
    row = {"index": 1, "label": 0, "pred_a": 0, "pred_b": 1, "category": "", "pie": False}
    table = gallery_view.gallery_rows(data, [{**row, "nbr_jaccard": 0.25}])
    assert "Neighbourhood kept (Jaccard)" in text(table) and "0.25" in text(table)
    plain = gallery_view.gallery_rows(data, [row])
    assert "Neighbourhood kept" not in text(plain)


def test_detail_shows_the_neighbours_in_a_and_b_side_by_side(api: SamplesApi) -> None:
    ctx = context()
    panel = detail_view.render_neighbours(10, ctx)
    assert "Jaccard 0.25" in text(panel) and "2 of its 5 nearest" in text(panel)
    tiles_ = [
        c
        for c in walk(panel)
        if isinstance(c, Component)
        and isinstance(getattr(c, "id", None), dict)
        and c.id.get("type") == detail_view.NBR_TILE
    ]
    assert [t.id["index"] for t in tiles_ if t.id["side"] == "a"] == [11, 12, 13, 14, 15]
    assert [t.id["index"] for t in tiles_ if t.id["side"] == "b"] == [11, 12, 110, 111, 112]
    shared = {(t.id["side"], t.id["index"]) for t in tiles_ if "nbr-shared" in t.className}
    assert shared == {("a", 11), ("a", 12), ("b", 11), ("b", 12)}
    images = [c for t in tiles_ for c in walk(t.children) if isinstance(c, html.Img)]
    assert len(images) == len(tiles_)
    assert detail_view.render_neighbours(None, ctx) == []
    assert "not found" in text(detail_view.render_neighbours(N_SAMPLES + 5, ctx)).lower()
    # a click on a neighbour opens it; tiles appearing (no clicks) open nothing
    ids = [t.id for t in tiles_]
    clicks = [0] * len(ids)
    assert detail_view.open_neighbour(clicks, ids, ids[7], 10) is dash.no_update
    clicks[7] = 1
    assert detail_view.open_neighbour(clicks, ids, ids[7], 10) == ids[7]["index"]
