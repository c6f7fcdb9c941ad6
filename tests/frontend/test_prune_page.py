"""The prune page: the spec builder, the layout and the named callbacks, against a fake API.

The fake API of conftest.py is extended here with what only this page uses: ``GET /api/methods``,
``POST /api/jobs`` and ``POST /api/comparisons``; every request is still recorded in
``FakeApi.requests``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dash
import httpx
import pytest
from dash import dcc
from dash.development.base_component import Component

from frontend import client as client_module
from frontend import forms, jobs
from frontend.app import create_dash_app
from frontend.pages import prune

FakeApi = Any  # the fake_api / empty_api fixtures of conftest.py
CREATED = "2024-05-01T12:00:00Z"

# A subset of the real registry's answer, covering every kind of default (bool, int, float,
# str, None) and every schedule the form treats differently.
METHODS: list[dict[str, Any]] = [
    {
        "name": "global_magnitude",
        "doc": "Global magnitude pruning: one |w| threshold over all prunable layers jointly.",
        "defaults": {"include_classifier": True},
        "needs_batch": False,
        "scope": "global",
        "schedule": "one_shot",
        "revives": False,
    },
    {
        "name": "layer_magnitude",
        "doc": "Layer-wise magnitude pruning: the same sparsity in every prunable layer.",
        "defaults": {"include_classifier": True},
        "needs_batch": False,
        "scope": "layer",
        "schedule": "one_shot",
        "revives": False,
    },
    {
        "name": "rigl",
        "doc": "RigL (Evci et al. 2020): sparse training from scratch with ERK densities.",
        "defaults": {
            "delta_t": 100,
            "end_fraction": 0.75,
            "alpha": 0.3,
            "seed": 0,
            "include_classifier": True,
        },
        "needs_batch": False,
        "scope": "global",
        "schedule": "at_init",
        "revives": True,
    },
    {
        "name": "dynamic_network_surgery",
        "doc": "Dynamic network surgery (Guo et al. 2016): prune and splice while training.",
        "defaults": {"gamma": 0.0001, "power": 1.0, "c": None, "seed": 0},
        "needs_batch": False,
        "scope": "layer",
        "schedule": "during_training",
        "revives": True,
    },
    {
        "name": "gradual_magnitude",
        "doc": "Gradual magnitude pruning (Zhu & Gupta 2017): cubic sparsity schedule.",
        "defaults": {"frequency": 10, "ranking": "global"},
        "needs_batch": False,
        "scope": "global",
        "schedule": "during_training",
        "revives": False,
    },
    {
        "name": "l1_filter",
        "doc": "Structured L1 filter pruning (Li et al. 2017): remove the weakest channels.",
        "defaults": {"include_linear": True},
        "needs_batch": True,
        "scope": "structured",
        "schedule": "one_shot",
        "revives": False,
    },
]
RIGL = METHODS[2]["defaults"]
DNS = METHODS[3]["defaults"]
GMP = METHODS[4]["defaults"]
ON = [forms.ON]


@dataclass
class PruneApi:
    """The conftest fake plus methods, job submission and comparison creation."""

    fake: FakeApi
    methods: list[dict[str, Any]] = field(default_factory=lambda: [dict(m) for m in METHODS])
    comparisons_created: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in self.fake.errors or self.fake.down:
            return self.fake.handle(request)
        if request.method == "GET" and path == "/api/methods":
            self.fake.requests.append(request)
            return httpx.Response(200, json={"data": self.methods, "count": len(self.methods)})
        if request.method == "POST" and path == "/api/jobs":
            self.fake.requests.append(request)
            body = json.loads(request.content)
            if request.url.params.get("dry_run") == "true":
                return httpx.Response(200, json={**body, "jobs": 1})
            job = {
                "id": max(j["id"] for j in self.fake.jobs) + 1,
                "kind": body["kind"],
                "spec": body["spec"],
                "status": "queued",
                "progress": 0.0,
                "stage": "queued",
                "error": None,
                "result": None,
                "created_at": CREATED,
                "started_at": None,
                "finished_at": None,
                "heartbeat_at": None,
            }
            self.fake.jobs.append(job)
            return httpx.Response(201, json=job)
        if request.method == "POST" and (m := re.fullmatch(r"/api/jobs/(\d+)/cancel", path)):
            self.fake.requests.append(request)
            return self.cancel(int(m[1]))
        if request.method == "GET" and path == "/api/corruptions":
            self.fake.requests.append(request)
            return httpx.Response(200, json={"data": ["fog", "snow"], "severities": [1, 2, 3]})
        if request.method == "POST" and (m := re.fullmatch(r"/api/comparisons/(\d+)/models", path)):
            self.fake.requests.append(request)
            (comparison,) = [c for c in self.fake.comparisons if c["id"] == int(m[1])]
            comparison["model_b_ids"] += json.loads(request.content)["model_b_ids"]
            return httpx.Response(201, json={**comparison, "job_id": 99})
        if request.method == "POST" and path == "/api/comparisons":
            self.fake.requests.append(request)
            body = json.loads(request.content)
            if request.url.params.get("dry_run") == "true":
                return httpx.Response(200, json=body)
            comparison = {
                "id": max((c["id"] for c in self.fake.comparisons), default=0) + 1,
                "name": body.get("name", "new"),
                "dataset_id": 1,
                "model_a_id": body["model_a_id"],
                "model_b_ids": body["model_b_ids"],
                "created_at": CREATED,
            }
            self.fake.comparisons.append(comparison)
            return httpx.Response(201, json=comparison)
        return self.fake.handle(request)

    def cancel(self, job_id: int) -> httpx.Response:
        """``POST /api/jobs/{id}/cancel`` as the API answers it (a sweep takes its children)."""
        matches = [j for j in self.fake.jobs if j["id"] == job_id]
        if not matches:
            return httpx.Response(404, json={"detail": "Job not found"})
        job = matches[0]
        if job["status"] in jobs.FINAL_STATUSES:
            return httpx.Response(409, json={"detail": "Job already finished"})
        targets = [job] + [
            j
            for j in self.fake.jobs
            if j.get("parent_job_id") == job_id and j["status"] not in jobs.FINAL_STATUSES
        ]
        for target in targets:
            status = "cancelled" if target["status"] == "queued" else "cancelling"
            target.update(status=status, stage=status)
        return httpx.Response(200, json=job)

    def posted(self, path: str) -> list[Any]:
        """JSON bodies of the POSTs to ``path``, in order."""
        return [
            json.loads(r.content)
            for r in self.fake.requests
            if r.method == "POST" and r.url.path == path and "dry_run" not in r.url.params
        ]

    def job(self, job_id: int) -> dict[str, Any]:
        (job,) = [j for j in self.fake.jobs if j["id"] == job_id]
        return job


def _install(api: PruneApi) -> Iterator[PruneApi]:
    # replaces the transport the conftest fixture installed; that fixture resets it afterwards
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    try:
        yield api
    finally:
        client_module.reset()


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[PruneApi]:
    """The populated fake API with this page's endpoints."""
    yield from _install(PruneApi(fake_api))


@pytest.fixture
def no_models_api(empty_api: FakeApi) -> Iterator[PruneApi]:
    """Methods are registered, but there are no models yet."""
    yield from _install(PruneApi(empty_api))


# component-tree helpers ------------------------------------------------------------------------


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def by_id(node: Any, component_id: Any) -> Any:
    matches = [
        c for c in walk(node) if isinstance(c, Component) and getattr(c, "id", None) == component_id
    ]
    assert len(matches) == 1, f"expected one component with id {component_id!r}, got {len(matches)}"
    return matches[0]


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


def param_ids(node: Any) -> list[dict[str, str]]:
    return [
        c.id
        for c in walk(node)
        if isinstance(c, Component)
        and isinstance(getattr(c, "id", None), dict)
        and c.id.get("type") == prune.PARAM_TYPE
    ]


def error_ids(node: Any) -> list[dict[str, str]]:
    return [
        c.id
        for c in walk(node)
        if isinstance(c, Component)
        and isinstance(getattr(c, "id", None), dict)
        and c.id.get("type") == prune.ERROR_TYPE
    ]


def spec(**form: Any) -> dict[str, Any]:
    """build_spec with the form's defaults: model 1, global magnitude at 90%."""
    values: dict[str, Any] = {
        "model_id": 1,
        "method": "global_magnitude",
        "sparsity": 0.9,
        "defaults": METHODS[0]["defaults"],
    }
    values.update(form)
    return prune.build_spec(**values)


# build_spec ------------------------------------------------------------------------------------


def test_one_shot_spec_with_the_form_defaults() -> None:
    assert spec(params={"include_classifier": ON}, analyze=ON) == {
        "model_id": 1,
        "method": "global_magnitude",
        "sparsity": 0.9,
        "params": {},
        "finetune": None,
        "analyze": True,
    }


def test_at_init_spec_types_params_from_defaults_and_keeps_only_changes() -> None:
    out = spec(
        method="rigl",
        sparsity="0.95",
        defaults=RIGL,
        # as the browser sends them: numbers from number inputs, a Checklist's list for bools
        params={
            "delta_t": 200,
            "end_fraction": "0.5",
            "alpha": 0.3,
            "seed": None,
            "include_classifier": [],
        },
        epochs=2,
        lr="0.01",
        optimizer="sgd",
        lr_schedule="cosine",
        seed="7",
        analyze=[],
    )
    assert out == {
        "model_id": 1,
        "method": "rigl",
        "sparsity": 0.95,
        "params": {"delta_t": 200, "end_fraction": 0.5, "include_classifier": False},
        "finetune": {"epochs": 2, "lr": 0.01, "optimizer": "sgd", "lr_schedule": "cosine"},
        "analyze": False,
        "seed": 7,
    }
    assert type(out["params"]["delta_t"]) is int
    assert type(out["params"]["end_fraction"]) is float


@pytest.mark.parametrize(
    ("default", "raw", "expected"),
    [
        (True, [], False),
        (False, ON, True),
        (True, True, True),
        (10, "10", 10),
        (10, 12.0, 12),
        (0.0001, "1e-3", 0.001),
        (0.75, 1, 1.0),
        ("global", " layer ", "layer"),
        (None, "0.5", 0.5),
        (None, "3", 3),
        (None, "true", True),
        (None, "erk", "erk"),
        ([1, 2], "[3, 4]", [3, 4]),
    ],
)
def test_params_are_typed_from_their_defaults(default: Any, raw: Any, expected: Any) -> None:
    value = forms.parse_param(raw, default)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_a_blank_parameter_means_the_methods_default(raw: Any) -> None:
    out = spec(method="dynamic_network_surgery", defaults=DNS, params={"c": raw, "gamma": raw})
    assert out["params"] == {}


def test_a_none_default_parameter_is_sent_when_filled() -> None:
    out = spec(method="dynamic_network_surgery", defaults=DNS, params={"c": "3.5"})
    assert out["params"] == {"c": 3.5}


@pytest.mark.parametrize("epochs", [None, "", " "])
def test_blank_epochs_means_finetune_null_and_ignores_the_other_training_fields(
    epochs: Any,
) -> None:
    out = spec(epochs=epochs, lr="abc", optimizer="sgd", lr_schedule="step")
    assert out["finetune"] is None


def test_zero_epochs_is_no_training_not_the_default() -> None:
    assert spec(epochs="0")["finetune"] == {
        "epochs": 0,
        "optimizer": "adam",
        "lr_schedule": "constant",
    }


def test_sweep_spec_expands_the_comma_separated_lists() -> None:
    out = spec(
        sweep=ON,
        sweep_sparsities="0.5, 0.8,0.9 0.5",
        sweep_seeds="0, 1 2",
        epochs="1",
        analyze=ON,
    )
    assert out == {
        "model_id": 1,
        "methods": ["global_magnitude"],
        "sparsities": [0.5, 0.8, 0.9],
        "seeds": [0, 1, 2],
        "finetune": {"epochs": 1, "optimizer": "adam", "lr_schedule": "constant"},
        "analyze": True,
    }
    assert prune.job_kind(ON) == "sweep" and prune.job_kind([]) == "prune"


def test_sweep_with_params_names_the_method_with_them_and_falls_back_to_the_form() -> None:
    out = spec(
        method="gradual_magnitude",
        defaults=GMP,
        params={"frequency": "20", "ranking": "global"},
        sweep=True,
        sparsity=0.8,
        seed=5,
    )
    assert out["methods"] == [{"method": "gradual_magnitude", "params": {"frequency": 20}}]
    assert out["sparsities"] == [0.8]
    assert out["seeds"] == [5]
    assert "seed" not in out and "sparsity" not in out


@pytest.fixture
def server(server: Any) -> Any:
    """The real REST API of conftest.py with one registered model: the form's checks are the
    server's."""
    dataset = server.post("/api/datasets", json={"builtin": "digits"}).json()
    spec = {"dataset_id": dataset["id"], "architecture": "digits_cnn", "epochs": 0}
    assert server.post("/api/jobs", json={"kind": "train", "spec": spec}).status_code == 201
    return server


def dry_run_errors(**form: Any) -> dict[str, str]:
    """The server's verdict on the spec of :func:`spec`'s form, by the form's field."""
    kind = prune.job_kind(form.get("sweep"))
    return prune.form_errors(kind, forms.dry_run(kind, spec(**form)).errors)


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"sparsity": 1.2}, "sparsity", "less than 1"),
        ({"sparsity": 1}, "sparsity", "less than 1"),
        ({"sparsity": -0.1}, "sparsity", "greater than or equal to 0"),
        ({"sparsity": None}, "sparsity", "required"),
        ({"sparsity": "most"}, "sparsity", "valid number"),
        ({"epochs": -1}, "finetune.epochs", "greater than or equal to 0"),
        ({"epochs": 1.5}, "finetune.epochs", "integer"),
        ({"epochs": "ten"}, "finetune.epochs", "integer"),
        ({"epochs": 1, "lr": "fast"}, "finetune.lr", "valid number"),
        ({"epochs": 1, "lr": 0}, "finetune.lr", "greater than 0"),
        ({"epochs": 1, "optimizer": "rmsprop"}, "finetune.optimizer", "'adam' or 'sgd'"),
        ({"seed": "x"}, "seed", "integer"),
        ({"model_id": None}, "model_id", "required"),
        ({"model_id": 99}, "model_id", "model 99 does not exist"),
        ({"method": "magic"}, "method", "unknown pruning method 'magic'"),
        (
            {"method": "rigl", "defaults": RIGL, "params": {"delta_t": "2.5"}},
            "params.delta_t",
            "delta_t=2.5 should be an integer",
        ),
        (
            {"method": "rigl", "defaults": RIGL, "params": {"alpha": "lots"}},
            "params.alpha",
            "alpha='lots'",
        ),
        ({"sweep": ON, "sweep_sparsities": "0.5, 2"}, "sweep.sparsities", "less than 1"),
        ({"sweep": ON, "sweep_seeds": "1, a"}, "sweep.seeds", "integer"),
    ],
)
def test_the_servers_dry_run_names_the_bad_field(
    server: Any, form: dict[str, Any], field: str, words: str
) -> None:
    errors = dry_run_errors(**form)
    assert field in errors, errors
    assert words in errors[field]


def test_every_bad_field_is_reported_at_once(server: Any) -> None:
    assert set(dry_run_errors(sparsity=1.5, epochs=-2, seed="s")) == {
        "sparsity",
        "finetune.epochs",
        "seed",
    }
    assert dry_run_errors() == {}  # the form's defaults are a valid job


@pytest.mark.parametrize(
    ("sparsity", "words"),
    [(0.9, "90% sparsity · pruning ratio t = 10×"), (0.5, "t = 2×"), (0.0, "t = 1×")],
)
def test_sparsity_text_shows_the_pruning_ratio(sparsity: float, words: str) -> None:
    assert words in prune.sparsity_text(sparsity, "global")
    assert prune.pruning_ratio(0.99) == pytest.approx(100)


def test_sparsity_text_says_what_the_sparsity_counts() -> None:
    assert "every prunable layer" in prune.sparsity_text(0.5, "layer")
    assert "output channels" in prune.sparsity_text(0.5, "structured")
    assert "[0, 1)" in prune.sparsity_text(1.0, "global")


# layout ----------------------------------------------------------------------------------------


def test_layout_offers_every_method_of_the_api(api: PruneApi) -> None:
    page = prune.layout()
    method = by_id(page, prune.ID_METHOD)
    assert [o["value"] for o in method.options] == [m["name"] for m in METHODS]
    labels = [o["label"] for o in method.options]
    assert "rigl · at init" in labels and "layer_magnitude · one-shot" in labels
    assert method.value == "global_magnitude"
    assert "/api/methods" in api.fake.paths()
    # the chosen method's doc and what its sparsity counts
    info = text(by_id(page, prune.ID_METHOD_INFO))
    assert "one |w| threshold" in info and "all prunable weights together" in info
    # the stores of the server's check as the form is filled in (forms.register_validation)
    for store in ("stamp", "verdict"):
        by_id(page, f"{prune.ID_SUBMIT}-{store}")  # exactly one each


def test_layout_models_originals_first_with_sparsity_and_accuracy(api: PruneApi) -> None:
    page = prune.layout()
    model = by_id(page, prune.ID_MODEL)
    assert [o["value"] for o in model.options] == [1, 2, 3, 4]
    assert model.value == 1
    assert "original" in model.options[0]["label"]
    assert "90% sparse" in model.options[2]["label"]
    assert "acc 67.0%" in model.options[2]["label"]


def test_query_params_preselect_the_form(api: PruneApi) -> None:
    page = prune.layout(model="3", method="rigl", sparsity="0.9")
    assert by_id(page, prune.ID_MODEL).value == 3
    assert by_id(page, prune.ID_METHOD).value == "rigl"
    assert by_id(page, prune.ID_SPARSITY).value == 0.9
    assert "t = 10×" in text(by_id(page, prune.ID_SPARSITY_INFO))
    # one input per parameter, typed from the defaults
    assert [pid["name"] for pid in param_ids(page)] == list(RIGL)
    inputs = {pid["name"]: by_id(page, pid) for pid in param_ids(page)}
    assert isinstance(inputs["include_classifier"], dcc.Checklist)
    assert inputs["include_classifier"].value == ON
    assert inputs["delta_t"].type == "number" and inputs["delta_t"].value == 100
    # a message slot next to every field, and one per parameter
    fields = {eid["field"] for eid in error_ids(page)}
    assert set(prune.FORM_FIELDS) | {f"params.{n}" for n in RIGL} == fields
    assert by_id(page, prune.FOLLOW.ids.poll).disabled is True


def test_a_none_default_gets_an_empty_text_input(api: PruneApi) -> None:
    page = prune.layout(method="dynamic_network_surgery")
    c = by_id(page, {"type": prune.PARAM_TYPE, "name": "c"})
    assert c.type == "text" and c.value == ""


def test_unknown_model_and_method_in_the_url_are_reported(api: PruneApi) -> None:
    page = prune.layout(model="99", method="magic")
    words = text(page)
    assert "Model '99' not found" in words
    assert "Unknown pruning method 'magic'" in words
    assert by_id(page, prune.ID_METHOD).value == "global_magnitude"
    assert by_id(page, prune.ID_MODEL).value is None


def test_a_job_in_the_url_is_followed(api: PruneApi) -> None:
    page = prune.layout(job="2")
    assert by_id(page, prune.FOLLOW.ids.job).data == {"id": 2}
    assert by_id(page, prune.FOLLOW.ids.poll).disabled is False


def test_no_models_says_how_to_get_one(no_models_api: PruneApi) -> None:
    page = prune.layout()
    words = text(by_id(page, prune.ID_EMPTY))
    assert "No models yet" in words and "prunescope demo" in words


def test_unreachable_api_is_explained(api: PruneApi) -> None:
    api.fake.down = True
    assert "Cannot reach the PruneScope API" in text(prune.layout())


# callbacks -------------------------------------------------------------------------------------


def form(page: Any, **changes: Any) -> dict[str, Any]:
    """submit_job's arguments as Dash would pass them for ``page``, with ``changes``."""
    pids = param_ids(page)
    values: dict[str, Any] = {
        "n_clicks": 1,
        "model": by_id(page, prune.ID_MODEL).value,
        "method": by_id(page, prune.ID_METHOD).value,
        "sparsity": by_id(page, prune.ID_SPARSITY).value,
        "param_values": [by_id(page, pid).value for pid in pids],
        "param_ids": pids,
        "epochs": None,
        "lr": None,
        "optimizer": "adam",
        "lr_schedule": "constant",
        "seed": None,
        "analyze": ON,
        "sweep": [],
        "sweep_sparsities": None,
        "sweep_seeds": None,
        "error_ids": error_ids(page),
        "methods": METHODS,
    }
    values.update(changes)
    return values


def test_submit_posts_the_exact_job(api: PruneApi) -> None:
    page = prune.layout(model="1", method="layer_magnitude")
    out = prune.submit_job(**form(page, sparsity=0.5, epochs=1, seed=3))
    assert api.posted("/api/jobs") == [
        {
            "kind": "prune",
            "spec": {
                "model_id": 1,
                "method": "layer_magnitude",
                "sparsity": 0.5,
                "params": {},
                "finetune": {"epochs": 1, "optimizer": "adam", "lr_schedule": "constant"},
                "analyze": True,
                "seed": 3,
            },
        }
    ]
    new_id = api.fake.jobs[-1]["id"]
    assert out["job"] == {"id": new_id, "kind": "prune"}
    assert out["submit_error"] is None
    assert out["errors"] == [""] * len(error_ids(page))
    assert out["cancel_notice"] is None  # what cancelling the previous job said is cleared


def test_submit_a_sweep(api: PruneApi) -> None:
    page = prune.layout(model="1", method="rigl")
    params = dict(
        zip([p["name"] for p in param_ids(page)], form(page)["param_values"], strict=True)
    )
    params["delta_t"] = 50
    out = prune.submit_job(
        **form(
            page,
            param_values=list(params.values()),
            sweep=ON,
            sweep_sparsities="0.8, 0.9",
            sweep_seeds="1,2",
        )
    )
    (body,) = api.posted("/api/jobs")
    assert body == {
        "kind": "sweep",
        "spec": {
            "model_id": 1,
            "methods": [{"method": "rigl", "params": {"delta_t": 50}}],
            "sparsities": [0.8, 0.9],
            "seeds": [1, 2],
            "finetune": None,
            "analyze": True,
        },
    }
    assert out["job"]["kind"] == "sweep"


def test_submit_renders_the_422_detail_verbatim(api: PruneApi) -> None:
    detail = "spec.params: rewind_step=5000 is beyond training (3 steps)"
    api.fake.errors["/api/jobs"] = (422, detail)
    out = prune.submit_job(**form(prune.layout()))
    assert detail in text(out["submit_error"])
    assert "refused" in text(out["submit_error"])
    assert out["job"] is dash.no_update
    assert out["cancel_notice"] is dash.no_update  # still following the same job


def test_the_form_is_checked_by_the_server_as_it_is_filled_in(server: Any) -> None:
    page = prune.layout(method="rigl")
    pids = param_ids(page)
    values = [("soon" if pid["name"] == "delta_t" else by_id(page, pid).value) for pid in pids]
    bad = form(page, sparsity=1.0, epochs=-1, param_values=values)
    del bad["n_clicks"]
    out = prune.validate_form(**bad)
    messages = dict(zip([e["field"] for e in error_ids(page)], out["errors"], strict=True))
    assert "less than 1" in messages["sparsity"]
    assert "greater than or equal to 0" in messages["finetune.epochs"]
    assert messages["finetune.lr"] == ""
    # the parameters are checked once the spec's own fields are valid
    bad.update(sparsity=0.5, epochs=None)
    out = prune.validate_form(**bad)
    messages = dict(zip([e["field"] for e in error_ids(page)], out["errors"], strict=True))
    assert "delta_t='soon'" in messages["params.delta_t"]
    assert [m for m in messages.values() if m] == [messages["params.delta_t"]]


def test_submit_with_bad_fields_writes_nothing_and_says_why(server: Any) -> None:
    page = prune.layout()
    out = prune.submit_job(**form(page, sparsity=1.0, epochs=-1))
    assert server.get("/api/jobs").json()["count"] == 1  # only the fixture's train job
    assert out["job"] is dash.no_update
    assert "refused" in text(out["submit_error"]) and "less than 1" in text(out["submit_error"])


def test_a_message_without_a_field_of_its_own_goes_under_the_form() -> None:
    ids = [{"field": "sparsity"}, {"field": ""}]
    assert forms.slot_messages(ids, {"sparsity": "bad", "params": "no such", "": "too many"}) == [
        "bad",
        "too many; params: no such",
    ]


def test_submit_before_any_click_does_nothing(api: PruneApi) -> None:
    out = prune.submit_job(**form(prune.layout(), n_clicks=0))
    assert api.posted("/api/jobs") == [] and out["job"] is dash.no_update


def test_poll_a_running_job_shows_progress_and_keeps_polling(api: PruneApi) -> None:
    panel, stop, cancel_hidden = prune.poll_job(3, {"id": 2})
    assert stop is False
    assert cancel_hidden is False  # a running job can be cancelled
    words = text(panel)
    assert "running" in words and "epoch 3/10" in words and "30%" in words


def test_poll_a_succeeded_job_shows_the_result_and_stops(api: PruneApi) -> None:
    (new_model,) = [m for m in api.fake.models if m["id"] == 2]
    new_model["report_note"] = "Unstructured sparsity: the zeros are still multiplied."
    job = api.fake.jobs[1]
    job.update(
        status="succeeded",
        progress=1.0,
        stage="done",
        spec={"model_id": 1, "method": "global_magnitude", "sparsity": 0.5},
        result={
            "model_id": 2,
            "accuracy": 0.81,
            "sparsity": 0.5,
            "compression_ratio": 2.0,
            "theoretical_speedup": 1.8,
            "measured_speedup": None,
        },
    )
    panel, stop, cancel_hidden = prune.poll_job(4, {"id": 2})
    assert stop is True and cancel_hidden is True
    assert text(by_id(panel, prune.FOLLOW.ids.status)) == "succeeded"
    assert "50.0%" in text(by_id(panel, f"{prune.ID_RESULT}-sparsity"))
    assert "t = 2×" in text(by_id(panel, f"{prune.ID_RESULT}-sparsity"))
    assert "81.0%" in text(by_id(panel, f"{prune.ID_RESULT}-accuracy"))
    assert "2.0×" in text(by_id(panel, f"{prune.ID_RESULT}-compression"))
    assert "1.8×" in text(by_id(panel, f"{prune.ID_RESULT}-theoretical-speedup"))
    assert "—" in text(by_id(panel, f"{prune.ID_RESULT}-measured-speedup"))
    assert "still multiplied" in text(by_id(panel, prune.ID_RESULT))
    button = by_id(panel, prune.ID_COMPARE)
    assert button.children == "Compare with the original"


def test_poll_a_failed_job_shows_the_error(api: PruneApi) -> None:
    panel, stop, cancel_hidden = prune.poll_job(1, {"id": 3})
    assert stop is True and cancel_hidden is True
    assert "CUDA out of memory" in text(by_id(panel, prune.FOLLOW.ids.job_error))


def test_poll_without_a_job_is_idle(api: PruneApi) -> None:
    assert prune.poll_job(0, None) == ([], True, True)


# cancelling ---------------------------------------------------------------------------------------


def cancels(api: PruneApi) -> list[str]:
    """Paths of the cancel requests the fake API answered, in order."""
    return [
        r.url.path
        for r in api.fake.requests
        if r.method == "POST" and r.url.path.endswith("/cancel")
    ]


def test_the_cancel_button_is_in_the_layout_from_the_start_hidden(api: PruneApi) -> None:
    for page in (prune.layout(), prune.layout(job="2")):
        button = by_id(page, prune.FOLLOW.ids.cancel)
        assert button.children == "Cancel job"
        assert button.hidden is True  # the poll shows it once it knows the job's status
        by_id(page, prune.FOLLOW.ids.cancel_notice)
        # outside the polled panel, whose children the poll replaces every second
        assert prune.FOLLOW.ids.cancel not in [
            getattr(c, "id", None) for c in walk(by_id(page, prune.FOLLOW.ids.progress))
        ]


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        ("queued", True),
        ("running", True),
        ("cancelling", False),
        ("succeeded", False),
        ("failed", False),
        ("cancelled", False),
    ],
)
def test_cancel_is_offered_only_while_the_job_is_queued_or_running(
    api: PruneApi, status: str, offered: bool
) -> None:
    assert jobs.can_cancel({"id": 2, "status": status}) is offered
    api.job(2).update(status=status)
    panel, stop, cancel_hidden = prune.poll_job(1, {"id": 2})
    assert cancel_hidden is (not offered)
    assert stop is (status in jobs.FINAL_STATUSES)
    assert text(by_id(panel, prune.FOLLOW.ids.status)) == status
    # "Stopping…" only while the job is being cancelled
    stopping = [c for c in walk(panel) if getattr(c, "id", None) == prune.FOLLOW.ids.stopping]
    assert bool(stopping) is (status == "cancelling")


def test_the_panel_of_a_cancelling_job_says_stopping() -> None:
    job: Any = {"id": 7, "kind": "prune", "spec": {}, "status": "cancelling", "progress": 0.4}
    panel = prune.job_panel(job)
    assert "Stopping…" in text(by_id(panel, prune.FOLLOW.ids.stopping))
    assert text(by_id(panel, prune.FOLLOW.ids.status)) == "cancelling"
    assert "40%" in text(panel)
    sweep = prune.job_panel({**job, "kind": "sweep"})
    assert "prune jobs stop" in text(by_id(sweep, prune.FOLLOW.ids.stopping))
    assert prune.FOLLOW.ids.stopping not in [
        getattr(c, "id", None) for c in walk(prune.job_panel({**job, "status": "cancelled"}))
    ]


def test_cancel_a_running_job_asks_the_api_and_shows_stopping(api: PruneApi) -> None:
    out = prune.cancel_followed_job(1, {"id": 2})
    assert cancels(api) == ["/api/jobs/2/cancel"]
    assert api.job(2)["status"] == "cancelling"
    assert out["hidden"] is True
    assert out["notice"] is None
    assert text(by_id(out["panel"], prune.FOLLOW.ids.status)) == "cancelling"
    assert "Stopping…" in text(by_id(out["panel"], prune.FOLLOW.ids.stopping))
    # the poll keeps following it, without the button, until the worker has stopped it
    panel, stop, cancel_hidden = prune.poll_job(2, {"id": 2})
    assert (stop, cancel_hidden) == (False, True)
    assert "Stopping…" in text(panel)
    api.job(2).update(status="cancelled", stage="cancelled")
    panel, stop, cancel_hidden = prune.poll_job(3, {"id": 2})
    assert (stop, cancel_hidden) == (True, True)
    assert "The job was cancelled" in text(by_id(panel, prune.FOLLOW.ids.job_error))


def test_cancel_a_queued_job_cancels_it_at_once(api: PruneApi) -> None:
    page = prune.layout(model="1")
    job_id = prune.submit_job(**form(page))["job"]["id"]
    assert api.job(job_id)["status"] == "queued"
    out = prune.cancel_followed_job(1, {"id": job_id, "kind": "prune"})
    assert cancels(api) == [f"/api/jobs/{job_id}/cancel"]
    assert text(by_id(out["panel"], prune.FOLLOW.ids.status)) == "cancelled"
    assert "The job was cancelled" in text(by_id(out["panel"], prune.FOLLOW.ids.job_error))
    assert out["hidden"] is True


def test_cancel_a_sweep_cancels_its_children(api: PruneApi) -> None:
    api.job(2).update(kind="sweep", spec={"model_id": 1})
    for child_id, status in ((10, "running"), (11, "queued"), (12, "succeeded")):
        api.fake.jobs.append({**api.job(2), "id": child_id, "kind": "prune", "status": status})
        api.job(child_id)["parent_job_id"] = 2
    out = prune.cancel_followed_job(1, {"id": 2, "kind": "sweep"})
    assert cancels(api) == ["/api/jobs/2/cancel"]  # one request: the API cancels the children
    assert [api.job(i)["status"] for i in (10, 11, 12)] == ["cancelling", "cancelled", "succeeded"]
    assert "prune jobs stop" in text(by_id(out["panel"], prune.FOLLOW.ids.stopping))


def test_cancel_a_job_that_already_finished_is_a_notice_not_an_error(api: PruneApi) -> None:
    # the job ended between the last poll and the click
    out = prune.cancel_followed_job(1, {"id": 3})
    assert cancels(api) == ["/api/jobs/3/cancel"]
    words = text(out["notice"])
    assert "Job #3 had already finished" in words and "nothing left to cancel" in words
    assert "notice-info" in out["notice"].className
    assert out["hidden"] is True
    assert out["panel"] is dash.no_update  # the poll shows how it ended
    assert api.job(3)["status"] == "failed"


def test_cancel_an_unknown_job_says_so(api: PruneApi) -> None:
    out = prune.cancel_followed_job(1, {"id": 99})
    assert "Job #99 not found" in text(out["notice"])
    assert out["hidden"] is True


def test_cancel_when_the_api_is_down_keeps_the_button_to_try_again(api: PruneApi) -> None:
    api.fake.down = True
    out = prune.cancel_followed_job(1, {"id": 2})
    assert "Cannot reach the PruneScope API" in text(out["notice"])
    assert out["hidden"] is False
    assert out["panel"] is dash.no_update


@pytest.mark.parametrize(("n_clicks", "job_state"), [(0, {"id": 2}), (None, {"id": 2}), (1, None)])
def test_cancel_without_a_click_or_a_job_does_nothing(
    api: PruneApi, n_clicks: int | None, job_state: dict[str, Any] | None
) -> None:
    out = prune.cancel_followed_job(n_clicks, job_state)
    assert out == {"panel": dash.no_update, "hidden": dash.no_update, "notice": dash.no_update}
    assert cancels(api) == []


def test_client_cancel_job_raises_the_409_with_its_detail(api: PruneApi) -> None:
    client = client_module.get_client()
    assert client.cancel_job(2)["status"] == "cancelling"
    with pytest.raises(client_module.ApiError) as info:
        client.cancel_job(3)
    assert (info.value.status, info.value.detail) == (409, "Job already finished")


# Issue 18: "Compare with the original" adds the new model to the original's latest comparison
# (it used to create a comparison of the original with the new model alone).
def test_compare_with_the_original_adds_the_model_to_its_latest_comparison(api: PruneApi) -> None:
    api.fake.comparisons.append({**api.fake.comparisons[0], "id": 2, "model_b_ids": [2]})
    api.fake.jobs[1].update(status="succeeded", spec={"model_id": 1}, result={"model_id": 4})
    link, disabled = prune.compare_with_original(1, {"id": 2})
    assert api.posted("/api/comparisons/2/models") == [{"model_b_ids": [4]}]
    assert api.posted("/api/comparisons") == []  # no island of its own
    (anchor,) = [c for c in walk(link) if isinstance(c, dcc.Link)]
    assert anchor.href == "/compare?id=2&b=4"
    assert "Added to" in text(link) and disabled is True


def test_compare_with_the_original_links_a_model_already_in_it(api: PruneApi) -> None:
    api.fake.jobs[1].update(status="succeeded", spec={"model_id": 1}, result={"model_id": 3})
    link, _ = prune.compare_with_original(1, {"id": 2})
    assert api.posted("/api/comparisons/1/models") == [] and api.posted("/api/comparisons") == []
    (anchor,) = [c for c in walk(link) if isinstance(c, dcc.Link)]
    assert anchor.href == "/compare?id=1&b=3"


def test_compare_with_the_original_creates_one_with_the_demos_defaults(api: PruneApi) -> None:
    api.fake.comparisons.clear()
    api.fake.jobs[1].update(status="succeeded", spec={"model_id": 1}, result={"model_id": 3})
    link, _ = prune.compare_with_original(1, {"id": 2})
    assert api.posted("/api/comparisons") == [
        {
            "model_a_id": 1,
            "model_b_ids": [3],
            "dataset_id": 1,
            "name": "resnet8-cifar5 (#1) vs its pruned models",
            "corruptions": ["fog", "snow"],  # every corruption the API lists
        }
    ]
    (anchor,) = [c for c in walk(link) if isinstance(c, dcc.Link)]
    assert anchor.href == f"/compare?id={api.fake.comparisons[-1]['id']}&b=3"


def test_compare_after_a_sweep_adds_all_its_new_models(api: PruneApi) -> None:
    api.fake.jobs[1].update(
        kind="sweep", status="succeeded", spec={"model_id": 1}, result={"model_ids": [3, 4]}
    )
    prune.compare_with_original(1, {"id": 2})
    assert api.posted("/api/comparisons/1/models") == [{"model_b_ids": [4]}]  # 3 is in it


def test_compare_with_the_original_shows_the_refusal(api: PruneApi) -> None:
    api.fake.jobs[1].update(status="succeeded", spec={"model_id": 1}, result={"model_id": 4})
    busy = "comparison 1's compare job 7 is still running; add models once it has finished"
    api.fake.errors["/api/comparisons/1/models"] = (409, busy)
    box, disabled = prune.compare_with_original(1, {"id": 2})
    assert busy in text(box) and disabled is False


VIEW = {"search": "", "defaults": {"model": 1, "method": "global_magnitude", "sparsity": 0.5}}


def test_update_url_leaves_a_url_that_already_means_the_choices() -> None:
    assert prune.update_url(1, "global_magnitude", 0.5, None, None, VIEW) is dash.no_update
    assert (
        prune.update_url(3, "rigl", 0.9, None, "?model=3&method=rigl&sparsity=0.9", VIEW)
        is dash.no_update
    )


def test_update_url_writes_every_choice_and_keeps_other_params() -> None:
    assert prune.update_url(1, "rigl", 0.5, None, "?x=1", VIEW) == (
        "?model=1&method=rigl&sparsity=0.5&x=1"
    )
    assert prune.update_url(
        1, "rigl", 0.5, {"id": 7}, "?model=1&method=rigl&sparsity=0.5", VIEW
    ) == ("?model=1&method=rigl&sparsity=0.5&job=7")


def test_callbacks_follow_the_chosen_method(api: PruneApi) -> None:
    info, editor = prune.describe_method("rigl", METHODS)
    assert "RigL" in text(info)
    assert [pid["name"] for pid in param_ids(editor)] == list(RIGL)
    assert "every prunable layer" in prune.describe_sparsity(0.5, "layer_magnitude", METHODS)
    assert prune.toggle_training(None) == (True, True, True)
    assert prune.toggle_training(2) == (False, False, False)
    assert prune.toggle_sweep(ON) == ({}, "Run sweep")


def test_training_hint_says_what_blank_epochs_means(api: PruneApi) -> None:
    assert "3 epochs of fine-tuning" in prune.describe_training("global_magnitude", 1, METHODS)
    # rigl trains from scratch with the parent's train job's settings
    hint = prune.describe_training("rigl", 1, METHODS)
    assert "parent's own training" in hint and "15 epochs" in hint
    assert "/api/jobs/1" in api.fake.paths()


# through the app ---------------------------------------------------------------------------------


def test_prune_page_is_routed_and_linked_from_the_navbar(api: PruneApi) -> None:
    app = create_dash_app("http://testserver", transport=httpx.MockTransport(api.handle))
    assert "/prune" in [page["path"] for page in dash.page_registry.values()]
    layout = app.layout() if callable(app.layout) else app.layout
    links = [c for c in walk(layout) if isinstance(c, dcc.Link)]
    assert ("Prune", "/prune") in [(link.children, link.href) for link in links]
    client = app.server.test_client()
    assert client.get("/prune?model=1").status_code == 200
    response = client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": "/prune"},
                {"id": "_pages_location", "property": "search", "value": "?method=rigl"},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
    )
    body = response.get_json()["response"]
    assert body["_pages_store"]["data"]["title"] == prune.TITLE
    assert prune.ID_SUBMIT in str(body["_pages_content"]["children"])
    outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
    assert any(f"{prune.FOLLOW.ids.progress}.children" in o for o in outputs)
    inputs = [i for d in client.get("/_dash-dependencies").get_json() for i in d["inputs"]]
    assert {"id": prune.FOLLOW.ids.cancel, "property": "n_clicks"} in inputs
    assert prune.FOLLOW.ids.cancel in str(body["_pages_content"]["children"])
    assert any(o.startswith(f"{prune.ID_URL}.search") for o in outputs)
    assert "url.search" in outputs  # the compare page's own URL callback is still there


def test_job_title_names_what_runs() -> None:
    assert jobs.job_title({"kind": "prune", "spec": {"method": "rigl", "sparsity": 0.9}}) == (
        "rigl at 90%"
    )
    sweep = {"methods": ["random"], "sparsities": [0.5, 0.8], "seeds": [1]}
    assert jobs.job_title({"kind": "sweep", "spec": sweep}) == (
        "sweep of random: 2 sparsities × 1 seed"
    )


def test_poll_a_succeeded_sweep_lists_its_models_with_their_seeds(api: PruneApi) -> None:
    api.fake.models[1]["pruning_params"] = {"sparsity": 0.9, "training": {"seed": 4}}
    api.fake.jobs[1].update(
        kind="sweep",
        status="succeeded",
        spec={"model_id": 1, "methods": ["global_magnitude"], "sparsities": [0.5, 0.9]},
        result={"child_job_ids": [5, 6], "model_ids": [2, 3]},
    )
    panel, stop, _ = prune.poll_job(1, {"id": 2})
    assert stop is True
    table = by_id(panel, prune.ID_RESULT)
    words = text(table)
    assert "2 pruned models" in words
    assert "#3 resnet8-gm90" in words and "4" in words
    by_id(panel, prune.ID_COMPARE)
