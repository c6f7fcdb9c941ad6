"""The new-comparison page ("/comparisons/new", "?add=<id>") without a browser: its layout from
the fake API's rows, the B options grouped by lineage, the body it sends, the server's messages
in their slots (a fake's, and the real API's dry run), submitting and the followed job's links;
and the Overview page's "Add models" link."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from dash import dcc

from frontend import client as client_module
from frontend import forms
from frontend.pages import new_comparison as page
from frontend.pages import overview

FakeApi = Any  # conftest.py's
CORRUPTIONS = ["gaussian_noise", "fog", "snow"]
SLOTS = [{"type": page.ERROR_TYPE, "field": f} for f in (*page.FIELDS, forms.WHOLE)]


@dataclass
class PageApi:
    """The conftest fake plus what this page posts: comparisons, models added, dry runs."""

    fake: FakeApi
    refusal: list[dict[str, Any]] | None = None  # a dry run's 422 detail, when set
    posted: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "GET" and path == "/api/corruptions":
            return httpx.Response(200, json={"data": CORRUPTIONS, "severities": [1, 2, 3, 4, 5]})
        add = re.fullmatch(r"/api/comparisons/(\d+)/models", path)
        if method == "POST" and (path == "/api/comparisons" or add):
            body, dry = json.loads(request.content), request.url.params.get("dry_run") == "true"
            self.posted.append((path, body, dry))
            if self.refusal is not None:
                return httpx.Response(422, json={"detail": self.refusal})
            if dry:
                return httpx.Response(200, json={**body, "name": body.get("name", "cnn vs 1")})
            job = {**self.fake.jobs[0], "id": 50, "kind": "compare", "status": "queued"}
            if add:
                (comparison,) = [c for c in self.fake.comparisons if c["id"] == int(add[1])]
                comparison["model_b_ids"] += body["model_b_ids"]
                spec = {"comparison_id": comparison["id"], "added_model_b_ids": body["model_b_ids"]}
            else:
                comparison = {**body, "id": 9, "dataset_id": 1, "created_at": "2024-05-01"}
                self.fake.comparisons.append(comparison)
                spec = {"comparison_id": 9}
            self.fake.jobs.append({**job, "spec": spec})
            return httpx.Response(201, json={**comparison, "job_id": 50})
        return self.fake.handle(request)


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[PageApi]:
    wrapped = PageApi(fake_api)
    client_module.configure("http://testserver", transport=httpx.MockTransport(wrapped.handle))
    try:
        yield wrapped
    finally:
        client_module.reset()


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            yield from walk(child)


def by_id(node: Any, cid: str) -> Any:
    found = [c for c in walk(node) if getattr(c, "id", None) == cid]
    assert found, f"no component {cid}"
    return found[0]


def text(node: Any) -> str:
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return " ".join(text(n) for n in node)
    return text(getattr(node, "children", None) or "")


def form(**values: Any) -> dict[str, Any]:
    """The callbacks' keyword arguments for the fake's rows (a new comparison of model 1)."""
    models = {"models": [], "datasets": []}
    return {
        "a": 1,
        "b": [2],
        "corruptions": ["fog"],
        "severities": [5, 1],
        "embedding": "auto",
        "name": "",
        "mode": {"add": None, "members": []},
        "models": models,
        **values,
    }


def slotted(messages: list[str]) -> dict[str, str]:
    """The messages of :data:`SLOTS` by field."""
    return dict(zip([s["field"] for s in SLOTS], messages, strict=True))


def rows(api: PageApi) -> dict[str, Any]:
    return {"models": api.fake.models, "datasets": api.fake.datasets}


# layout ----------------------------------------------------------------------------------------


def test_layout_offers_a_new_comparison_with_the_demos_corruptions(api: PageApi) -> None:
    layout = page.layout()
    assert by_id(layout, page.ID_A).value == 1  # the first original
    options = by_id(layout, page.ID_B).options
    assert options[0] == {
        "label": "Pruned from #1 resnet8-cifar5",
        "value": "group:children",
        "disabled": True,
    }
    assert [o["value"] for o in options[1:]] == [2, 3, 4]  # A's descendants, by sparsity
    assert "global_magnitude 50% sparse" in options[1]["label"]
    assert options[3]["label"].startswith("\u2003↳ #4")  # a grandchild, indented once more
    assert by_id(layout, page.ID_B).multi is True
    assert by_id(layout, page.ID_CORRUPTIONS).value == CORRUPTIONS  # every one, ticked
    assert by_id(layout, page.ID_SEVERITIES).value == [1, 3, 5]
    assert by_id(layout, page.ID_CORRUPTION_FIELDS).style == {}  # 3x32x32: images
    assert [o["value"] for o in by_id(layout, page.ID_EMBEDDING).options] == list(page.EMBEDDINGS)
    assert page.EMBEDDINGS == ("auto", "aligned_umap", "umap_init", "pca")  # create_comparison's
    assert by_id(layout, page.ID_SUBMIT).children == "Create comparison"
    assert by_id(layout, page.ID_SETTINGS).style == {}
    assert "Dataset: #1 cifar5-mini" in text(by_id(layout, page.ID_DATASET))


def test_layout_preselects_the_models_of_the_url(api: PageApi) -> None:
    layout = page.layout(a="1", b=["3", "2", "group:x", "1"])
    assert by_id(layout, page.ID_B).value == [3, 2]  # A and headings are not Bs
    warned = page.layout(a="77")
    assert "Model '77' not found" in text(warned)


def test_add_mode_keeps_a_and_offers_the_models_not_in_it(api: PageApi) -> None:
    layout = page.layout(add="1")
    a = by_id(layout, page.ID_A)
    assert (a.value, a.disabled) == (1, True)
    assert [o["value"] for o in by_id(layout, page.ID_B).options] == ["group:children", 4]
    assert by_id(layout, page.ID_SETTINGS).style == {"display": "none"}
    assert by_id(layout, page.ID_SUBMIT).children == "Add models"
    assert "no corruptions" in text(by_id(layout, page.ID_ADDING))
    assert by_id(layout, page.ID_MODE).data == {"add": 1, "members": [2, 3]}
    assert "resnet8 vs global magnitude" in text(layout)  # the comparison's header


def test_add_mode_of_a_comparison_that_does_not_exist(api: PageApi) -> None:
    assert "Comparison 5 not found" in text(page.layout(add="5"))
    assert "'x' is not a comparison id" in text(page.layout(add="x"))


def test_an_empty_workspace_says_what_to_do(empty_api: FakeApi) -> None:
    empty_api.errors["/api/corruptions"] = (200, "")
    client_module.configure(
        "http://testserver",
        transport=httpx.MockTransport(PageApi(empty_api).handle),
    )
    assert "No models yet" in text(by_id(page.layout(), page.ID_EMPTY))


# options ---------------------------------------------------------------------------------------


def _model(mid: int, parent: int | None, dataset: int | None, **kw: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "name": f"m{mid}",
        "architecture": "cnn",
        "parent_id": parent,
        "dataset_id": dataset,
        "pruning_method": None if parent is None else "rigl",
        "sparsity": kw.get("sparsity", 0.0 if parent is None else 0.9),
        "accuracy": 0.9,
    }


def test_b_options_put_a_s_descendants_first_then_its_datasets_other_models() -> None:
    models = [
        _model(1, None, 1),
        _model(2, 1, 1),
        _model(3, None, 1),
        _model(4, 3, 1),
        _model(5, None, 2),  # another dataset: not offered
        _model(6, None, None),  # no dataset: offered with the others
        _model(7, 2, 1, sparsity=0.95),
    ]
    options = page.b_options(models, 1)
    values = [o["value"] for o in options]
    assert values == ["group:children", 2, 7, "group:others", 3, 4, 6]
    assert options[3]["label"] == "Other models of #1 m1's dataset"
    assert "rigl 95% sparse" in options[2]["label"]
    assert [o["value"] for o in page.b_options(models, 3, exclude=[4])] == [
        "group:others",
        1,
        2,
        7,
        6,
    ]
    assert [o["value"] for o in page.b_options(models, None)] == [1, 2, 7, 3, 4, 5, 6]


def test_choosing_a_redraws_the_bs_and_hides_corruptions_for_vectors(api: PageApi) -> None:
    api.fake.datasets.append({**api.fake.datasets[0], "id": 2, "input_shape": [32]})
    api.fake.models.append({**api.fake.models[0], "id": 8, "dataset_id": 2})
    options, kept, line, style = page.choose_a(8, [2, 3], None, rows(api))
    assert options == [] and kept == [] and style == {"display": "none"}
    assert "#2 cifar5-mini" in line
    options, kept, _, style = page.choose_a(1, [3, "group:children", 99], None, rows(api))
    assert kept == [3] and style == {}
    members = {"add": 1, "members": [2, 3]}
    assert [o["value"] for o in page.choose_a(1, [], members, rows(api))[0]] == [
        "group:children",
        4,
    ]


# the body and the server's answer --------------------------------------------------------------


def test_comparison_body_is_what_the_form_says() -> None:
    body = page.comparison_body(1, [3, "group:x", 2, 3], ["fog"], [5, 1, 5], "pca", " mine ")
    assert body == {
        "model_a_id": 1,
        "model_b_ids": [3, 2],
        "corruptions": ["fog"],
        "severities": [1, 5],
        "embedding": "pca",
        "name": "mine",
    }
    assert page.comparison_body(1, [], [], [1], None, "") == {"model_a_id": 1, "model_b_ids": []}
    # not images: the corruptions are hidden and not sent
    assert "corruptions" not in page.comparison_body(1, [2], ["fog"], [1], "auto", "", False)


def test_field_errors_put_list_items_in_their_fields_slot() -> None:
    errors = page.field_errors(
        {
            "model_b_ids.0": "model 1 is comparison 2's model A",
            "model_b_ids.2": "model 9 does not exist",
            "severities.1": "Input should be less than or equal to 5",
            "dataset_id": "dataset 4 does not exist",
            "": "whole",
        }
    )
    assert errors == {
        "model_b_ids": "model 1 is comparison 2's model A; model 9 does not exist",
        "severities": "Input should be less than or equal to 5",
        "": "dataset_id: dataset 4 does not exist; whole",
    }


def test_validate_form_asks_the_servers_dry_run_and_places_its_messages(api: PageApi) -> None:
    answer = page.validate_form(SLOTS, **form(models=rows(api)))
    assert answer["errors"] == [""] * len(SLOTS) and answer["placeholder"] == "cnn vs 1"
    (path, body, dry) = api.posted[-1]
    assert (path, dry) == ("/api/comparisons", True)
    assert body == {
        "model_a_id": 1,
        "model_b_ids": [2],
        "corruptions": ["fog"],
        "severities": [1, 5],
        "embedding": "auto",
    }
    api.refusal = [
        {"loc": ["body", "model_b_ids", 0], "msg": "model 2 does not exist", "type": "x"},
        {"loc": ["body", "corruptions"], "msg": "not images", "type": "value_error"},
    ]
    messages = slotted(page.validate_form(SLOTS, **form())["errors"])
    assert messages["model_b_ids"] == "model 2 does not exist"
    assert messages["corruptions"] == "not images"


def test_validate_form_is_quiet_until_models_are_chosen(api: PageApi) -> None:
    assert page.validate_form(SLOTS, **form(a=None))["errors"] == [""] * len(SLOTS)
    assert api.posted == []
    api.refusal = [{"loc": ["body", "model_b_ids"], "msg": "too short", "type": "too_short"}]
    assert page.validate_form(SLOTS, **form(b=[]))["errors"] == [""] * len(SLOTS)
    adding = {"add": 1, "members": [2, 3]}
    page.validate_form(SLOTS, **form(b=[4], mode=adding))
    assert api.posted[-1] == ("/api/comparisons/1/models", {"model_b_ids": [4]}, True)


def test_submit_creates_the_comparison_and_follows_its_job(api: PageApi) -> None:
    out = page.submit(1, SLOTS, **form(name="mine", models=rows(api)))
    assert out["job"] == {"id": 50, "kind": "compare"} and out["submit_error"] is None
    assert api.posted[-1] == (
        "/api/comparisons",
        {
            "model_a_id": 1,
            "model_b_ids": [2],
            "corruptions": ["fog"],
            "severities": [1, 5],
            "embedding": "auto",
            "name": "mine",
        },
        False,
    )
    assert page.submit(0, SLOTS, **form())["job"] is not None  # no_update: nothing clicked


def test_submit_adds_models_to_the_comparison(api: PageApi) -> None:
    out = page.submit(1, SLOTS, **form(b=[4], mode={"add": 1, "members": [2, 3]}))
    assert out["job"] == {"id": 50, "kind": "compare"}
    assert api.posted[-1] == ("/api/comparisons/1/models", {"model_b_ids": [4]}, False)
    assert api.fake.comparisons[0]["model_b_ids"] == [2, 3, 4]


def test_a_refused_submission_says_why_at_the_fields(api: PageApi) -> None:
    api.refusal = [{"loc": ["body", "model_b_ids", 0], "msg": "already in it", "type": "x"}]
    out = page.submit(1, SLOTS, **form(b=[2], mode={"add": 1, "members": [2, 3]}))
    assert "already in it" in out["errors"][1]
    assert "The API refused the models" in text(out["submit_error"])
    out = page.submit(1, SLOTS, **form(a=None))
    assert out["errors"][0] == "Choose model A." and api.posted[-1][2] is False


def test_the_followed_job_ends_with_links_to_the_comparison(api: PageApi) -> None:
    page.submit(1, SLOTS, **form(b=[4], mode={"add": 1, "members": [2, 3]}))
    job = api.fake.jobs[-1] | {"status": "succeeded", "progress": 1.0}
    children = page.comparison_made(client_module.get_client(), job)
    assert by_id(children, page.ID_OPEN).href == "/compare?id=1&b=4"
    assert by_id(children, page.ID_OVERVIEW).href == "/overview?id=1"
    panel, stop, hidden = page.poll_job(1, {"id": 50})
    assert (stop, hidden) == (False, False)  # queued: still followed
    assert "comparison #1" in text(panel)


def test_overview_links_to_adding_models(api: PageApi) -> None:
    link = by_id(overview.add_models_link(3), overview.ID_ADD_MODELS)
    assert isinstance(link, dcc.Link) and link.href == "/comparisons/new?add=3"
    assert "needs-write" in link.className  # hidden from read-only viewers


# the real API's dry run -------------------------------------------------------------------------


@pytest.fixture
def real(server: Any) -> Any:
    """The real REST API (a fresh database, jobs inline): a trained digits_cnn and two pruned
    versions, compared with the first."""
    from tests.conftest import build_pipeline

    return build_pipeline(server, epochs=1)


def test_the_servers_dry_run_messages_land_in_their_slots(real: Any) -> None:
    a, (b1, b2) = real.original_id, real.pruned_ids
    mode = {"add": real.comparison_id, "members": [b1, b2]}
    answer = page.validate_form(SLOTS, **form(a=a, b=[a, 999], mode=mode))
    messages = slotted(answer["errors"])
    assert f"model {a} is comparison {real.comparison_id}'s model A" in messages["model_b_ids"]
    assert "model 999 does not exist" in messages["model_b_ids"]
    # a new comparison with a severity out of range: FastAPI's schema answers at the field
    new = {"add": None, "members": []}
    client = client_module.get_client()
    models = {"models": client.list_models(), "datasets": client.list_datasets()}
    answer = page.validate_form(
        SLOTS, **form(a=a, b=[b1], severities=[1, 9], mode=new, models=models)
    )
    messages = slotted(answer["errors"])
    assert messages["severities"] and not messages["model_b_ids"]
