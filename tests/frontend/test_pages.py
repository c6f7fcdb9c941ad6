"""Page layouts and named callbacks, called directly against the fake API of conftest.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import dash
import pytest
from dash import Input, Output, dcc, html
from dash.development.base_component import Component
from plotly.utils import PlotlyJSONEncoder

from frontend import forms
from frontend.client import ApiError
from frontend.pages import compare, home
from frontend.views import CONTEXT

# The fixtures fake_api / empty_api / down_api come from conftest.py (a FakeApi each).
FakeApi = Any
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]


# component-tree helpers ------------------------------------------------------------------------


def walk(node: Any) -> Iterator[Any]:
    """Every component and string under ``node``, depth first, ``node`` included."""
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def by_id(node: Any, component_id: str) -> Any:
    matches = [
        c for c in walk(node) if isinstance(c, Component) and getattr(c, "id", None) == component_id
    ]
    assert len(matches) == 1, f"expected one component with id {component_id!r}, got {len(matches)}"
    return matches[0]


def of_type(node: Any, kind: type) -> list[Any]:
    return [c for c in walk(node) if isinstance(c, kind)]


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


def body_rows(table: html.Table) -> list[html.Tr]:
    (tbody,) = of_type(table, html.Tbody)
    return list(tbody.children)


def cells(row: html.Tr) -> list[Any]:
    return [td.children for td in row.children]


def context_of(page: Any) -> dict[str, Any]:
    """The CONTEXT store the view sections read (comparison, B, class, query)."""
    return dict(by_id(page, CONTEXT).data)


def confusion_of(api: FakeApi, model_id: int) -> list[list[int]]:
    (analysis,) = [a for a in api.analyses if a["model_id"] == model_id]
    return analysis["confusion"]


def shift(api: FakeApi, b: int) -> list[list[int]]:
    return [
        [vb - va for va, vb in zip(ra, rb, strict=True)]
        for ra, rb in zip(confusion_of(api, 1), confusion_of(api, b), strict=True)
    ]


# compare page: layout ---------------------------------------------------------------------------


def test_compare_layout_builds_the_figures_from_the_view(fake_api: FakeApi) -> None:
    page = compare.layout(id="1")
    an_a, an_b = fake_api.analyses[0], fake_api.analyses[1]

    recall = by_id(page, "compare-recall-bars")
    assert isinstance(recall, dcc.Graph)
    bars_a, bars_b = recall.figure.data
    assert list(bars_a.x) == CLASS_NAMES
    assert list(bars_a.y) == an_a["recall"]
    assert list(bars_b.y) == an_b["recall"]

    conf_a = by_id(page, "compare-confusion-a").figure.data[0]
    conf_b = by_id(page, "compare-confusion-b").figure.data[0]
    conf_s = by_id(page, "compare-confusion-shift").figure.data[0]
    assert fake_api.datasets[0]["class_names"] == CLASS_NAMES
    assert [list(r) for r in conf_a.z] == confusion_of(fake_api, 1)
    # default B: the first of model_b_ids
    assert [list(r) for r in conf_b.z] == confusion_of(fake_api, 2)
    assert [list(r) for r in conf_s.z] == shift(fake_api, 2)
    assert conf_s.zmid == 0 and conf_s.zmin == -conf_s.zmax

    assert "resnet8 vs global magnitude" in text(by_id(page, "compare-header"))
    assert "cifar5-mini" in text(by_id(page, "compare-header"))


def test_compare_selectors_reflect_the_url(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", b="3", cls="3")
    b_select = by_id(page, "compare-b-select")
    assert b_select.value == 3
    assert [o["value"] for o in b_select.options] == [2, 3]
    assert [o["label"] for o in b_select.options] == [
        "global_magnitude 50%",
        "global_magnitude 90%",
    ]
    class_select = by_id(page, "compare-class-select")
    assert class_select.value == 3
    assert class_select.options[0] == {"label": "All classes", "value": "all"}
    assert [o["value"] for o in class_select.options[1:]] == list(range(len(CLASS_NAMES)))


def test_compare_without_cls_selects_all_classes(fake_api: FakeApi) -> None:
    page = compare.layout(id="1")
    assert by_id(page, "compare-class-select").value == "all"
    for trace in by_id(page, "compare-recall-bars").figure.data:
        assert len(set(trace.marker.opacity)) == 1


def test_compare_with_b_fetches_that_model(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", b="3")
    conf_b = by_id(page, "compare-confusion-b").figure.data[0]
    assert [list(r) for r in conf_b.z] == confusion_of(fake_api, 3)
    view_requests = [r for r in fake_api.requests if r.url.path == "/api/comparisons/1/view"]
    assert [dict(r.url.params) for r in view_requests] == [{"b": "3"}]
    assert context_of(page)["b"] == 3


def test_compare_headline_cards(fake_api: FakeApi) -> None:
    headline = by_id(compare.layout(id="1", b="3"), "compare-headline")
    content = text(headline)
    for title in ("Accuracy", "Sparsity", "Compression", "Nonzero params"):
        assert title in content
    assert "90.0%" in content  # B's sparsity
    assert "10.0×" in content  # B's compression ratio
    assert "100.00k" in content  # B's nonzero params
    assert "Largest recall drop: class cat" in content  # not read as a count (issue 18)


def test_flagged_samples_follow_the_confusion_matrices(fake_api: FakeApi) -> None:
    page = compare.layout(id="1")
    order = [
        c.id
        for c in walk(page)
        if isinstance(c, Component)
        and getattr(c, "id", None)
        in ("compare-confusion-shift", "compare-samples-lazy", "compare-embedding")
    ]
    assert order == ["compare-confusion-shift", "compare-samples-lazy", "compare-embedding"]
    assert compare.VIEW_ORDER[0] == "samples"
    # the old flips table is gone, and the page itself fetches no samples (the view does)
    ids = {getattr(c, "id", None) for c in walk(page) if isinstance(c, Component)}
    assert not [i for i in ids if isinstance(i, str) and i.startswith("compare-flips")]
    assert not [r for r in fake_api.requests if r.url.path.endswith(("/flips", "/table"))]


def test_lazy_views_are_placeholders_until_woken(fake_api: FakeApi) -> None:
    """The lazy views' sections (and their graphs) are not in the page as it loads: each
    holder has a titled placeholder and its wake and context stores; waking answers the
    section with the ready store that hands the context on."""
    from frontend.views import samples

    page = compare.layout(id="1")
    graphs = {c.id for c in walk(page) if isinstance(c, dcc.Graph)}
    assert "compare-embedding-a" in graphs  # the eager view is whole
    for name in compare.lazy_views():
        holder = by_id(page, f"compare-{name}-lazy")
        inside = {getattr(c, "id", None) for c in walk(holder) if isinstance(c, Component)}
        assert {f"compare-{name}-lazy-body", f"compare-{name}-wake", f"compare-{name}-context"} <= (
            inside
        )
        assert not [c for c in walk(holder) if isinstance(c, dcc.Graph)]
        module = next(m for m in compare.view_modules() if compare.view_name(m) == name)
        assert module.TITLE in text(holder)
        # the holder's own ids never clash with the section's (they share the page once woken)
        own = {getattr(c, "id", None) for c in walk(module.section()) if isinstance(c, Component)}
        assert not (inside - {None}) & own
    assert not [g for g in graphs if g.startswith(("compare-samples", "compare-geometry"))]

    render = compare.section_when_woken(samples)
    assert render(None) is dash.no_update
    section, ready = render({"id": 1, "b": 3, "cls": None, "query": {}})
    assert section.id == samples.section().id
    assert ready.id == "compare-samples-ready" and ready.data is True


def test_selected_class_reaches_the_views_and_highlights(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", b="3", cls="3")
    assert context_of(page)["cls"] == 3
    for trace in by_id(page, "compare-recall-bars").figure.data:
        opacity = list(trace.marker.opacity)
        assert opacity[3] > max(o for i, o in enumerate(opacity) if i != 3)
    assert "Recall of class cat" in text(by_id(page, "compare-headline"))
    assert len(by_id(page, "compare-confusion-a").figure.layout.shapes) == 1


@pytest.mark.parametrize("cls", ["all", None, ""])
def test_all_classes_selects_no_class(fake_api: FakeApi, cls: str | None) -> None:
    assert context_of(compare.layout(id="1", cls=cls))["cls"] is None


def test_class_zero_is_a_real_selection(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", cls="0")
    assert by_id(page, "compare-class-select").value == 0
    assert context_of(page)["cls"] == 0


def test_out_of_range_class_falls_back_to_all_with_a_warning(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", cls="12")
    assert by_id(page, "compare-class-select").value == "all"
    assert "Unknown class '12'" in text(page)
    assert context_of(page)["cls"] is None


def test_unknown_comparison_renders_a_not_found_message(fake_api: FakeApi) -> None:
    page = compare.layout(id="99")
    content = text(page)
    assert "Comparison 99 not found" in content
    assert "/" in [link.href for link in of_type(page, dcc.Link)]
    assert not [c for c in walk(page) if isinstance(c, dcc.Graph)]


@pytest.mark.parametrize("comparison_id", [None, "abc", ["x"]])
def test_missing_or_malformed_id_asks_to_pick_one(fake_api: FakeApi, comparison_id: Any) -> None:
    page = compare.layout(id=comparison_id)
    assert "No comparison selected" in text(page)
    assert "/" in [link.href for link in of_type(page, dcc.Link)]
    assert fake_api.requests == []


def test_b_outside_the_comparison_links_to_the_default_view(fake_api: FakeApi) -> None:
    page = compare.layout(id="1", b="7")
    assert "Model 7 is not part of comparison 1" in text(page)
    assert "/compare?id=1" in [link.href for link in of_type(page, dcc.Link)]


def test_unreachable_api_is_explained(down_api: FakeApi) -> None:
    page = compare.layout(id="1")
    assert "Cannot reach the PruneScope API" in text(page)
    assert "prunescope serve" in text(page)


def test_missing_analyses_say_so(fake_api: FakeApi) -> None:
    original = fake_api.view

    def view_without_b_analysis(comparison_id: int, b: int | None) -> dict[str, Any]:
        return {**original(comparison_id, b), "analysis_b": None}

    fake_api.view = view_without_b_analysis
    assert "not analysed yet" in text(compare.layout(id="1"))


def test_malformed_view_is_reported_not_raised(fake_api: FakeApi) -> None:
    fake_api.analyses[1]["recall"] = [0.5]  # B's recall: 1 value for 5 classes
    content = text(compare.layout(id="1"))
    assert "could not be displayed" in content
    assert "recall_b has 1" in content


def test_repeated_query_parameter_uses_the_first(fake_api: FakeApi) -> None:
    page = compare.layout(id=["1", "2"], b=["3"])
    assert by_id(page, "compare-b-select").value == 3


# compare page: callbacks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b", "cls", "search", "expected"),
    [
        (3, 4, "?id=1", "?id=1&b=3&cls=4"),
        (3, "all", "?id=1&b=3&cls=4", "?id=1&b=3"),
        (2, "all", "?id=1&b=3", "?id=1&b=2"),
        (3, 0, "?id=1&b=3", "?id=1&b=3&cls=0"),
        (3, None, "?id=1&b=3&cls=2", "?id=1&b=3"),
        (3, 1, "?b=2&id=1&cls=4&panel=x", "?id=1&b=3&cls=1&panel=x"),
    ],
)
def test_update_url_writes_the_selection(b: Any, cls: Any, search: str, expected: str) -> None:
    assert compare.update_url(b, cls, search) == expected


def test_update_url_leaves_an_unchanged_url_alone() -> None:
    assert compare.update_url(3, 4, "?id=1&b=3&cls=4") is dash.no_update
    assert compare.update_url(3, "all", "?id=1&b=3") is dash.no_update
    assert compare.update_url(3, 4, "?cls=4&id=1&b=3") is dash.no_update  # order is no change


B_OPTIONS = [{"label": "global_magnitude 50%", "value": 2}, {"label": "gm 90%", "value": 3}]


def test_update_url_on_render_keeps_an_implicit_default_b() -> None:
    # Dash calls update_url when the page is inserted; "?id=1" already means B = first option,
    # so no new history entry may be pushed (Back would bounce forward again).
    assert compare.update_url(2, "all", "?id=1", B_OPTIONS) is dash.no_update
    assert compare.update_url(2, 4, "?id=1", B_OPTIONS) == "?id=1&cls=4"
    assert compare.update_url(3, "all", "?id=1", B_OPTIONS) == "?id=1&b=3"
    assert compare.update_url(2, "all", "?id=1&b=3", B_OPTIONS) == "?id=1&b=2"


def test_compare_page_renders_a_stable_url(fake_api: FakeApi) -> None:
    """The selectors' initial values map back onto the URL the page was rendered from."""
    for query in ({"id": "1"}, {"id": "1", "b": "3"}, {"id": "1", "b": "2", "cls": "0"}):
        page = compare.layout(**query)
        search = "?" + "&".join(f"{k}={v}" for k, v in query.items())
        b_select = by_id(page, "compare-b-select")
        cls = by_id(page, "compare-class-select").value
        assert compare.update_url(b_select.value, cls, search, b_select.options) is dash.no_update


def test_select_class_from_click_toggles() -> None:
    click = {"points": [{"curveNumber": 1, "pointIndex": 2, "x": "bird", "y": 0.6}]}
    assert compare.select_class_from_click(click, "all") == 2
    assert compare.select_class_from_click(click, 2) == "all"
    assert compare.select_class_from_click(click, 4) == 2
    assert compare.select_class_from_click(None, "all") is dash.no_update
    assert compare.select_class_from_click({"points": []}, "all") is dash.no_update


# home page -------------------------------------------------------------------------------------


def test_home_empty_states(empty_api: FakeApi) -> None:
    page = home.layout()
    assert "No models yet — run" in text(by_id(page, "home-models"))
    assert "prunescope demo" in text(by_id(page, "home-models"))
    assert "submit a train job" in text(by_id(page, "home-models"))
    assert "No datasets yet" in text(by_id(page, "home-datasets"))
    assert "No jobs yet" in text(by_id(page, "home-jobs"))
    assert "No comparisons yet" in text(by_id(page, "home-comparisons"))
    assert by_id(page, "home-refresh").interval == home.REFRESH_INTERVAL_MS
    assert not of_type(page, html.Table)


def test_home_models_show_lineage(fake_api: FakeApi) -> None:
    page = home.layout()
    rows = body_rows(by_id(page, "home-models").children)
    names = [text(cells(r)[0]).replace("↳", "").strip() for r in rows]
    # original, then its children by sparsity, the grandchild under its parent
    assert names == ["resnet8-cifar5", "resnet8-gm50", "resnet8-gm90", "resnet8-gm90-ft"]
    indents = [cells(r)[0].style["paddingLeft"] for r in rows]
    assert indents == ["0.0em", "1.25em", "1.25em", "2.5em"]
    first = cells(rows[2])
    # the real architecture name, its parameter count, the input shape it was proven on
    assert first[1] == "resnet8 · 1M params" and first[3] == "global_magnitude"
    assert first[4] == "90.0%" and first[5] == "67.0%"
    assert cells(rows[0])[3] == "original"


def test_home_models_show_the_input_shape_they_were_proven_on(fake_api: FakeApi) -> None:
    fake_api.models[0]["architecture"] = "timm/resnet18"
    fake_api.models[0]["n_params"] = 11_181_642
    fake_api.models[0]["input_shape"] = [3, 32, 32]
    rows = body_rows(by_id(home.layout(), "home-models").children)
    assert cells(rows[0])[1] == "timm/resnet18 · 11.2M params · 3×32×32"


def test_lineage_order_survives_orphans_and_cycles() -> None:
    models = [
        {"id": 5, "parent_id": 99, "sparsity": 0.5},  # parent not listed: shown as a root
        {"id": 6, "parent_id": 7, "sparsity": 0.5},  # 6 <-> 7 cycle
        {"id": 7, "parent_id": 6, "sparsity": 0.5},
    ]
    order = forms.lineage_order(models)  # type: ignore[arg-type]
    assert sorted(m["id"] for _, m in order) == [5, 6, 7]


def test_home_datasets_and_comparisons(fake_api: FakeApi) -> None:
    page = home.layout()
    (dataset_row,) = body_rows(by_id(page, "home-datasets").children)
    first = cells(dataset_row)
    assert [first[0], first[1], text(first[2]), first[3]] == [
        "cifar5-mini",
        "builtin",
        "5",
        "3×32×32",
    ]
    assert first[2].title == ", ".join(CLASS_NAMES)  # the class names on hover
    links = of_type(by_id(page, "home-comparisons"), dcc.Link)
    assert [(link.children, link.href) for link in links] == [
        ("resnet8 vs global magnitude", "/compare?id=1"),
        ("Overview", "/overview?id=1"),
        ("Similarity map", "/similarity?id=1"),
    ]
    assert "global_magnitude 50%, global_magnitude 90%" in text(by_id(page, "home-comparisons"))


def test_home_models_link_to_prune_and_their_comparisons(fake_api: FakeApi) -> None:
    rows = body_rows(by_id(home.layout(), "home-models").children)
    hrefs = [[link.href for link in of_type(r, dcc.Link)] for r in rows]
    # lineage order: 1, 2, 3, 4; models 1-3 are in comparison 1, model 4 in none
    assert hrefs == [
        ["/compare?id=1", "/prune?model=1"],
        ["/compare?id=1", "/prune?model=2"],
        ["/compare?id=1", "/prune?model=3"],
        ["/prune?model=4"],
    ]


def test_home_empty_states_link_to_what_to_do_first(empty_api: FakeApi) -> None:
    page = home.layout()
    assert "/upload" in [link.href for link in of_type(by_id(page, "home-models"), dcc.Link)]
    assert "/prune" in [link.href for link in of_type(by_id(page, "home-models"), dcc.Link)]
    assert "/upload" in [link.href for link in of_type(by_id(page, "home-datasets"), dcc.Link)]
    assert "/prune" in [link.href for link in of_type(by_id(page, "home-comparisons"), dcc.Link)]
    # nothing is running: the jobs panel does not poll
    assert by_id(page, "home-refresh").disabled is True
    assert by_id(page, home.ID_JOBS_ACTIVE).data is False


def test_home_jobs_show_progress_stage_and_error(fake_api: FakeApi) -> None:
    jobs = by_id(home.layout(), "home-jobs")
    (table,) = of_type(jobs, html.Table)
    rows = body_rows(table)
    assert [cells(r)[0] for r in rows] == ["3", "2", "1"]  # newest first
    progress = [of_type(r, html.Progress)[0] for r in rows]
    assert [float(p.value) for p in progress] == [0.1, 0.3, 1.0]
    assert all(p.max == "1" for p in progress)
    assert "epoch 3/10" in text(rows[1])
    assert "CUDA out of memory" in text(rows[0])
    assert [cells(r)[2].children for r in rows] == ["failed", "running", "succeeded"]


def _job(job_id: int, status: str, progress: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "kind": "prune",
        "spec": {"method": "random", "sparsity": 0.7},
        "status": status,
        "progress": progress,
        "stage": "",
        "error": None,
        "result": None,
        **extra,
    }


def cancel_buttons(node: Any) -> list[int]:
    return [
        c.id["index"]
        for c in walk(node)
        if isinstance(c, html.Button)
        and isinstance(c.id, dict)
        and c.id["type"] == home.CANCEL_TYPE
    ]


def test_home_jobs_offer_cancel_only_while_queued_or_running() -> None:
    jobs = [
        _job(1, "queued", 0.0),
        _job(2, "running", 0.42),
        _job(3, "cancelling", 0.5),
        _job(4, "succeeded", 0.9, result={"model_id": 7}),
        _job(5, "failed", 0.1, error="RuntimeError: boom\nTraceback line 2"),
        _job(6, "cancelled", 0.3),
    ]
    panel = home.jobs_section(jobs)  # type: ignore[arg-type]
    (table,) = of_type(panel, html.Table)
    rows = {int(cells(r)[0]): r for r in body_rows(table)}
    assert sorted(cancel_buttons(panel)) == [1, 2]
    (button,) = of_type(rows[2], html.Button)
    assert button.children == "Cancel" and button.n_clicks == 0
    assert "Stopping…" in text(rows[3])
    # progress bars per row, with ids of their own; a succeeded job's bar is full
    bars = {j: of_type(r, html.Progress)[0] for j, r in rows.items()}
    assert float(bars[2].value) == pytest.approx(0.42) and float(bars[4].value) == 1.0
    assert len({b.id for b in bars.values()}) == 6
    # a finished prune job links to its model; a failed one shows its error, expandable
    assert [link.href for link in of_type(rows[4], dcc.Link)] == ["/prune?model=7"]
    (details,) = of_type(rows[5], html.Details)
    assert details.title == "RuntimeError: boom\nTraceback line 2"
    assert text(of_type(details, html.Summary)[0]) == "RuntimeError: boom"
    assert "random at 70%" in text(rows[1])
    assert by_id(panel, home.ID_JOBS_ACTIVE).data is True
    final = home.jobs_section([jobs[3], jobs[4], jobs[5]])  # type: ignore[list-item]
    assert by_id(final, home.ID_JOBS_ACTIVE).data is False
    assert cancel_buttons(final) == []


def test_an_expanded_error_stays_open_when_the_panel_refreshes(fake_api: FakeApi) -> None:
    error_id = {"type": home.ERROR_TYPE, "index": 3}
    (details,) = of_type(by_id(home.layout(), "home-jobs"), html.Details)
    assert details.open is False
    (summary,) = of_type(details, html.Summary)
    assert summary.id == error_id and summary.n_clicks == 0
    # clicked once: open after the refresh; twice: closed again
    (details,) = of_type(home.refresh_jobs(1, [1], [error_id]), html.Details)
    assert details.open is True and of_type(details, html.Summary)[0].n_clicks == 1
    (details,) = of_type(home.refresh_jobs(2, [2], [error_id]), html.Details)
    assert details.open is False


def test_home_polls_only_while_a_job_is_active(fake_api: FakeApi) -> None:
    assert by_id(home.layout(), "home-refresh").disabled is False  # job 2 is running
    assert home.REFRESH_INTERVAL_MS == 1000
    assert home.sync_polling(True) is False
    assert home.sync_polling(False) is True
    fake_api.jobs = [j for j in fake_api.jobs if j["status"] != "running"]
    assert by_id(home.layout(), "home-refresh").disabled is True


class _CancelClient:
    """Answers cancel_job and list_jobs like the API, and records the cancels."""

    def __init__(self, jobs: list[dict[str, Any]], finished: frozenset[int] = frozenset()) -> None:
        self.jobs = {j["id"]: j for j in jobs}
        self.finished = finished
        self.cancelled: list[int] = []

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        if job_id in self.finished:
            raise ApiError(409, "Job already finished")
        self.cancelled.append(job_id)
        job = self.jobs[job_id]
        job["status"] = "cancelled" if job["status"] == "queued" else "cancelling"
        return job

    def list_jobs(self) -> list[dict[str, Any]]:
        return list(self.jobs.values())


def test_cancel_button_cancels_its_job(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _CancelClient([_job(1, "queued"), _job(2, "running")])
    monkeypatch.setattr(home, "get_client", lambda: fake)
    ids = [{"type": home.CANCEL_TYPE, "index": 2}, {"type": home.CANCEL_TYPE, "index": 1}]
    panel = home.cancel_jobs([1, 0], ids)
    assert fake.cancelled == [2]
    rows = {int(cells(r)[0]): r for r in body_rows(of_type(panel, html.Table)[0])}
    assert cells(rows[2])[2].children == "cancelling"
    assert cancel_buttons(panel) == [1]
    assert by_id(panel, home.ID_JOBS_ACTIVE).data is True  # stopping: keep polling
    # a re-rendered panel starts with no clicks, so nothing fires twice
    assert home.cancel_jobs([0], ids[1:]) is dash.no_update
    assert home.cancel_jobs([], []) is dash.no_update


def test_cancel_of_a_job_that_already_ended_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _CancelClient([_job(2, "succeeded", 1.0)], finished=frozenset({2}))
    monkeypatch.setattr(home, "get_client", lambda: fake)
    panel = home.cancel_jobs([1], [{"type": home.CANCEL_TYPE, "index": 2}])
    assert "Job #2 had already finished" in text(panel)
    assert fake.cancelled == []


def test_refresh_jobs_re_fetches(fake_api: FakeApi) -> None:
    before = len(fake_api.requests)
    fake_api.jobs = fake_api.jobs[:1]
    content = home.refresh_jobs(5)
    assert fake_api.paths()[before:] == ["/api/jobs"]
    (table,) = of_type(content, html.Table)
    assert len(body_rows(table)) == 1
    fake_api.jobs = []
    assert "No jobs yet" in text(home.refresh_jobs(6))


def test_refresh_jobs_reports_an_unreachable_api(fake_api: FakeApi) -> None:
    fake_api.down = True
    assert "Cannot reach the PruneScope API" in text(home.refresh_jobs(1))


def test_home_unreachable_api(down_api: FakeApi) -> None:
    page = home.layout()
    assert "Cannot reach the PruneScope API" in text(page)
    assert not of_type(page, html.Table)


def test_update_url_keeps_the_views_settings_and_selection() -> None:
    # the views write their settings into QUERY and the address bar (replaceState), which
    # Location ``url`` never hears of: changing B must not drop them
    query = {"id": "1", "b": "2", "emb_color": "flip", "smp": "17", "sel": "stale"}
    sel = {"ids": [3, 4, 5, 9], "source": "embedding-a"}
    out = compare.update_url(3, 4, "?id=1&b=2", B_OPTIONS, query, sel)
    assert isinstance(out, str)
    assert parse_qs(out.lstrip("?")) == {
        "id": ["1"],
        "b": ["3"],
        "cls": ["4"],
        "emb_color": ["flip"],
        "smp": ["17"],
        "sel": ["3-5,9"],
    }
    # nothing changed: the render-time call still leaves the URL alone
    same = {"id": "1", "b": "2"}
    assert compare.update_url(2, "all", "?id=1&b=2", B_OPTIONS, same, None) is dash.no_update


# an unfinished or failed compare job ---------------------------------------------------------


def _ids(node: Any) -> set[Any]:
    return {getattr(c, "id", None) for c in walk(node) if isinstance(c, Component)}


def test_comparison_still_computing_shows_its_job_progress(fake_api: FakeApi) -> None:
    fake_api.errors["/api/comparisons/1/view"] = (409, "model 1 has no analysis yet")
    fake_api.comparisons[0]["job_id"] = 2  # running, 30 %, "epoch 3/10"
    page = compare.layout(id="1")
    content = text(page)
    assert "Comparison 1 is being computed" in content
    assert "Job #2" in content and "30%" in content and "epoch 3/10" in content
    polls = [c for c in walk(page) if getattr(c, "id", None) == compare.ID_PENDING_POLL]
    assert len(polls) == 1 and polls[0].disabled is False


def test_a_view_with_a_running_compare_job_shows_what_exists_and_the_progress(
    fake_api: FakeApi,
) -> None:
    fake_api.comparisons[0]["job_id"] = 2
    page = compare.layout(id="1")
    ids = _ids(page)
    assert compare.ID_HEADLINE in ids and compare.ID_PENDING in ids  # both: what exists + bar
    assert "still running" in text(page)
    fake_api.jobs[1] |= {"status": "succeeded", "progress": 1.0}
    assert compare.ID_PENDING not in _ids(compare.layout(id="1"))  # done: no panel


def test_a_failed_compare_job_shows_its_error(fake_api: FakeApi) -> None:
    fake_api.comparisons[0]["job_id"] = 2
    fake_api.jobs[1] |= {"status": "failed", "error": "UMAP ran out of memory"}
    fake_api.errors["/api/comparisons/1/view"] = (409, "model 1 has no analysis yet")
    page = compare.layout(id="1")
    assert "The compare job failed" in text(page) and "UMAP ran out of memory" in text(page)
    polls = [c for c in walk(page) if getattr(c, "id", None) == compare.ID_PENDING_POLL]
    assert polls[0].disabled is True  # nothing left to follow


def test_without_a_job_a_409_is_said_as_an_api_error(fake_api: FakeApi) -> None:
    fake_api.errors["/api/comparisons/1/view"] = (409, "model 1 has no analysis yet")
    page = compare.layout(id="1")
    assert compare.ID_PENDING not in _ids(page)
    assert "model 1 has no analysis yet" in text(page)


def test_poll_pending_follows_the_job_and_stops_when_it_ends(fake_api: FakeApi) -> None:
    body, stop, done = compare.poll_pending(1, 2)
    assert "30%" in text(body) and stop is False and done is dash.no_update
    fake_api.jobs[1] |= {"status": "succeeded", "progress": 1.0}
    body, stop, done = compare.poll_pending(2, 2)
    assert stop is True and done == "succeeded" and "reloading" in text(body)
    fake_api.jobs[1] |= {"status": "failed", "error": "boom"}
    body, stop, done = compare.poll_pending(3, 2)
    assert stop is True and done == "failed" and "boom" in text(body)
    assert compare.poll_pending(4, None)[1] is True


# downloads ----------------------------------------------------------------------------------------


def download_hrefs(node: Any) -> list[str]:
    """The main "Download" link of every download_link under ``node``."""
    return [a.href for a in of_type(node, html.A) if a.children == "Download"]


def test_download_link_offers_every_format_from_the_api_route() -> None:
    from frontend.components import DOWNLOAD_FORMATS, download_link

    link = download_link(7)
    anchors = of_type(link, html.A)
    assert [a.href for a in anchors] == [
        f"/api/models/7/download?format={fmt}" for fmt, _, _ in DOWNLOAD_FORMATS
    ]
    assert all(a.download == "" for a in anchors)  # the API's Content-Disposition names it
    assert download_hrefs(download_link(7, "onnx")) == ["/api/models/7/download?format=onnx"]
    with pytest.raises(ValueError, match="fmt='h5' should be one of safetensors, pt"):
        download_link(7, "h5")


def test_models_can_be_downloaded_from_home_and_compare(fake_api: FakeApi) -> None:
    rows = body_rows(by_id(home.layout(), "home-models").children)
    assert [download_hrefs(r) for r in rows] == [
        [f"/api/models/{i}/download?format=safetensors"] for i in (1, 2, 3, 4)
    ]
    header = by_id(compare.layout(id="1", b="3"), "compare-header")
    assert download_hrefs(header) == [
        "/api/models/1/download?format=safetensors",
        "/api/models/3/download?format=safetensors",
    ]


# checking a form as it is filled in (forms.register_validation) ---------------------------------


def checked_form() -> tuple[dash.Dash, Any, list[str]]:
    """A form of one field, ``t-x``, checked the one way every form is: its app, the
    server-side callback, and what the server said for each value it was asked about."""
    app = dash.Dash(__name__)
    asked: list[str] = []

    def validate(x: Any, error_ids: Any) -> dict[str, Any]:
        asked.append(x)
        return {"errors": [f"{x} is wrong"] * len(error_ids), "disabled": True}

    stamped = forms.register_validation(
        app,
        validate,
        prefix="t-submit",
        inputs={"x": Input("t-x", "value")},
        outputs={"disabled": Output("t-submit", "disabled")},
        error_type="t-error",
    )
    return app, stamped, asked


def shown_in_browser(app: dash.Dash, verdict: Any, stamp: float, slots: list[Any]) -> Any:
    """What the page shows of ``verdict`` while the form's latest stamp is ``stamp``: the
    app's clientside callback that reads the verdict store, run by node as the browser runs it
    ("prevented" when it shows nothing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (spec,) = [c for c in app._callback_list if c["inputs"][0]["id"] == "t-submit-verdict"]
    function = spec["clientside_function"]
    script = "\n".join(
        [
            "globalThis.window = {dash_clientside: {PreventUpdate: {prevented: true},"
            " no_update: 'no_update'}};",
            *app._inline_scripts,
            f"const show = window.dash_clientside[{json.dumps(function['namespace'])}]"
            f"[{json.dumps(function['function_name'])}];",
            "let out;",
            f"try {{ out = show(...{json.dumps([verdict, stamp, slots])}); }}",
            "catch (e) { if (e !== window.dash_clientside.PreventUpdate) throw e;"
            " out = 'prevented'; }",
            "process.stdout.write(JSON.stringify(out));",
        ]
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_change_stamps_the_form_and_the_server_checks_it_with_its_stamp() -> None:
    app, stamped, asked = checked_form()
    by_output = {c["output"]: c for c in app._callback_list}
    stamp = by_output["t-submit-stamp.data"]
    assert stamp["clientside_function"] and stamp["inputs"] == [{"id": "t-x", "property": "value"}]
    # the server is asked when the stamp changes, with the form's values as they are then
    check = by_output["t-submit-verdict.data"]
    assert "clientside_function" not in check or not check["clientside_function"]
    assert check["inputs"] == [{"id": "t-submit-stamp", "property": "data"}]
    assert {"id": "t-x", "property": "value"} in check["state"]
    slots = [{"type": "t-error", "field": "x"}]
    assert stamped(7.5, x="a", error_ids=slots) == {
        "stamp": 7.5,
        "answer": {"errors": ["a is wrong"], "disabled": True},
    }
    assert asked == ["a"]


def test_an_answer_about_an_older_state_of_the_form_is_not_shown() -> None:
    app, stamped, _ = checked_form()
    slots = [{"type": "t-error", "field": "x"}, {"type": "t-error", "field": ""}]
    older = stamped(1.0, x="old", error_ids=slots)  # a slow check of what was typed first
    newer = stamped(2.0, x="new", error_ids=slots)  # then the user typed again
    # the newer answer comes back first and is shown, in the slots and the other outputs
    assert shown_in_browser(app, newer, 2.0, slots) == [["new is wrong"] * 2, True]
    # the older one comes back after it: dropped, not shown over the newer one
    assert shown_in_browser(app, older, 2.0, slots) == "prevented"
    # an answer for slots that have changed since (another method's parameters) neither
    assert shown_in_browser(app, newer, 2.0, slots[:1]) == "prevented"
    assert shown_in_browser(app, None, 2.0, slots) == "prevented"


def test_an_output_the_check_leaves_alone_is_not_touched() -> None:
    """A check that answers ``dash.no_update`` for an output (the new-comparison form's name
    placeholder, until the server names it) left that output alone in Python but reached the
    browser as ``{}``: the field showed "[object Object]" (issue 18, seen in the browser)."""
    app = dash.Dash(__name__)

    def validate(x: Any, error_ids: Any) -> dict[str, Any]:
        return {"errors": [""] * len(error_ids), "disabled": dash.no_update}

    stamped = forms.register_validation(
        app,
        validate,
        prefix="t-submit",
        inputs={"x": Input("t-x", "value")},
        outputs={"disabled": Output("t-submit", "disabled")},
        error_type="t-error",
    )
    slots = [{"type": "t-error", "field": "x"}]
    verdict = json.loads(json.dumps(stamped(3.0, x="a", error_ids=slots), cls=PlotlyJSONEncoder))
    shown = shown_in_browser(app, verdict, 3.0, slots)
    assert shown[0] == [""] and shown[1] == "no_update", shown


def test_every_form_is_checked_through_the_one_wiring(fake_api: FakeApi) -> None:
    from frontend.app import create_dash_app

    app = create_dash_app("http://testserver")
    verdicts = [c["output"] for c in app._callback_list if c["output"].endswith("-verdict.data")]
    assert sorted(verdicts) == [
        "new-analyze-submit-verdict.data",
        "new-train-submit-verdict.data",
        "newcmp-submit-verdict.data",
        "prune-submit-verdict.data",
        "upload-dataset-submit-verdict.data",
        "upload-model-submit-verdict.data",
    ]
