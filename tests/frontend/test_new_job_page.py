"""The new-job page (train and analyze): the form-to-JSON conversions, the layout and the named
callbacks, against a fake API; what the forms refuse is asked of the real API's dry run.

The fake API of conftest.py is extended here with what only this page uses:
``GET /api/architectures?q=&limit=&offset=`` (searched by name as the API does),
``GET /api/corruptions``, ``POST /api/jobs`` (with ``?dry_run=true``: the API's own pydantic
spec classes and that the dataset or model exists, in the API's 422 shape),
``POST /api/datasets`` and ``GET /api/analyses/{id}``; every request is still recorded in
``FakeApi.requests``. The refusals themselves (ranges, names, what the architecture or the
model accepts) are checked against the real API in-process (the ``real_api`` fixture).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import dash
import httpx
import pytest
from dash import dcc, html
from dash.development.base_component import Component
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor
from backend.jobs.specs import AnalyzeSpec, TrainSettings, TrainSpec
from frontend import client as client_module
from frontend.app import create_dash_app
from frontend.components import (
    JOB_KIND_TABS,
    architecture_about,
    job_kind_href,
    job_kind_tabs,
    search_architectures,
)
from frontend.forms import ON as TICKED
from frontend.forms import dry_run
from frontend.jobs import FINAL_STATUSES
from frontend.pages import new_job, prune
from frontend.pages.new_job import analyze, common, train

FakeApi = Any  # the fake_api / empty_api fixtures of conftest.py
CREATED = "2024-05-01T12:00:00Z"
ON = [TICKED]

# What GET /api/architectures answers (models.registry.model_info of the built-ins).
ARCHITECTURES: list[dict[str, Any]] = [
    {
        "name": "digits_cnn",
        "doc": "Small 3-conv CNN for 8x8 inputs (sklearn digits), no BatchNorm.",
        "defaults": {"num_classes": 10, "in_channels": 1},
        "required": [],
        "source": "builtin",
    },
    {
        "name": "mlp",
        "doc": "Fully connected ReLU network on the flattened input.",
        "defaults": {"hidden": [128, 64]},
        "required": ["input_shape", "num_classes"],
        "source": "builtin",
    },
    {
        "name": "resnet20",
        "doc": 'ResNet-20 for 32x32 images (He et al., "Deep Residual Learning", CVPR 2016).',
        "defaults": {"num_classes": 10, "in_channels": 3},
        "required": [],
        "source": "builtin",
    },
]
# ... and after them, found only by a search, torchvision's and timm's (for those, "defaults"
# are the arguments PruneScope sets from the dataset)
LIBRARY: list[dict[str, Any]] = [
    {
        "name": "torchvision/resnet18",
        "doc": "ResNet-18 from Deep Residual Learning for Image Recognition.",
        "defaults": {"num_classes": 1000},
        "required": [],
        "source": "torchvision",
    },
    {
        "name": "timm/resnet18",
        "doc": "Constructs a ResNet-18 model.",
        "defaults": {"num_classes": 1000, "in_chans": 3},
        "required": [],
        "source": "timm",
    },
    {
        "name": "timm/vit_tiny_patch16_224",
        "doc": "ViT-Tiny (Vit-Ti/16)",
        "defaults": {"num_classes": 1000, "in_chans": 3, "img_size": 224},
        "required": [],
        "source": "timm",
    },
]
METHOD = {
    "name": "global_magnitude",
    "doc": "Global magnitude pruning.",
    "defaults": {},
    "needs_batch": False,
    "scope": "global",
    "schedule": "one_shot",
    "revives": False,
}
CORRUPTIONS = ["gaussian_noise", "shot_noise", "fog", "brightness"]
DIGITS = {
    "id": 2,
    "name": "digits",
    "source": "builtin:digits",
    "num_classes": 10,
    "class_names": [str(i) for i in range(10)],
    "input_shape": [1, 8, 8],
    "n_train": 1347,
    "n_test": 450,
    "created_at": CREATED,
}


SPECS = {"train": TrainSpec, "analyze": AnalyzeSpec}


@dataclass
class NewJobApi:
    """The conftest fake plus architectures, corruptions, job submission and datasets."""

    fake: FakeApi
    architectures: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(a) for a in ARCHITECTURES + LIBRARY]
    )
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in self.fake.errors or self.fake.down:
            return self.fake.handle(request)
        method = request.method
        if method == "GET" and path == "/api/architectures":
            self.fake.requests.append(request)
            params = request.url.params
            words = params.get("q", "").lower().split()
            hits = [a for a in self.architectures if all(w in a["name"].lower() for w in words)]
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 50))
            data = hits[offset : offset + limit]
            body = {"data": data, "count": len(data), "total": len(hits)}
            return httpx.Response(200, json=body)
        if method == "GET" and path == "/api/methods":  # for the prune page's strip
            self.fake.requests.append(request)
            return httpx.Response(200, json={"data": [METHOD], "count": 1})
        if method == "GET" and path == "/api/corruptions":
            self.fake.requests.append(request)
            return httpx.Response(200, json={"data": self.corruptions, "severities": [1, 2, 3]})
        if method == "POST" and path == "/api/jobs" and request.url.params.get("dry_run"):
            self.fake.requests.append(request)
            return self.dry_run(json.loads(request.content))
        if method == "POST" and path == "/api/jobs":
            self.fake.requests.append(request)
            body = json.loads(request.content)
            job = {
                "id": max(j["id"] for j in self.fake.jobs or [{"id": 0}]) + 1,
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
        if method == "POST" and (m := re.fullmatch(r"/api/jobs/(\d+)/cancel", path)):
            self.fake.requests.append(request)
            return self.cancel(int(m[1]))
        if method == "POST" and path == "/api/datasets":
            self.fake.requests.append(request)
            body = json.loads(request.content)
            row = {**DIGITS, "id": len(self.fake.datasets) + 1, "name": body["builtin"]}
            self.fake.datasets.append(row)
            return httpx.Response(201, json=row)
        if method == "GET" and (m := re.fullmatch(r"/api/analyses/(\d+)", path)):
            self.fake.requests.append(request)
            for analysis in self.fake.analyses:
                if analysis["id"] == int(m[1]):
                    return httpx.Response(200, json=analysis)
            return httpx.Response(404, json={"detail": "Analysis not found"})
        return self.fake.handle(request)

    def dry_run(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /api/jobs?dry_run=true`` of a train or analyze spec: the API's spec class,
        then that its dataset (train) or model (analyze) exists."""
        kind = body["kind"]
        try:
            spec = SPECS[kind].model_validate(body["spec"])
        except ValidationError as exc:
            detail = [
                {"loc": ["spec", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
            return httpx.Response(422, json={"detail": detail})
        rows, key = (
            (self.fake.datasets, "dataset_id")
            if kind == "train"
            else (self.fake.models, "model_id")
        )
        wanted = getattr(spec, key)
        if wanted not in [row["id"] for row in rows]:
            msg = f"{key.removesuffix('_id')} {wanted} does not exist"
            detail = [{"loc": ["spec", key], "msg": msg, "type": "not_found"}]
            return httpx.Response(422, json={"detail": detail})
        return httpx.Response(200, json={"kind": kind, "spec": spec.model_dump(mode="json")})

    def cancel(self, job_id: int) -> httpx.Response:
        matches = [j for j in self.fake.jobs if j["id"] == job_id]
        if not matches:
            return httpx.Response(404, json={"detail": "Job not found"})
        job = matches[0]
        if job["status"] in FINAL_STATUSES:
            return httpx.Response(409, json={"detail": "Job already finished"})
        status = "cancelled" if job["status"] == "queued" else "cancelling"
        job.update(status=status, stage=status)
        return httpx.Response(200, json=job)

    def posted(self, path: str) -> list[Any]:
        """JSON bodies of the POSTs to ``path`` (dry runs left out), in order."""
        return [
            json.loads(r.content)
            for r in self.fake.requests
            if r.method == "POST" and r.url.path == path and "dry_run" not in r.url.params
        ]


def _install(api: NewJobApi) -> Iterator[NewJobApi]:
    # replaces the transport the conftest fixture installed; that fixture resets it afterwards
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    try:
        yield api
    finally:
        client_module.reset()


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[NewJobApi]:
    """The populated fake API (plus a 10-class digits dataset) with this page's endpoints."""
    fake_api.datasets.append(dict(DIGITS))
    yield from _install(NewJobApi(fake_api))


@pytest.fixture
def bare_api(empty_api: FakeApi) -> Iterator[NewJobApi]:
    """Architectures and corruptions are listed, but there are no datasets nor models."""
    yield from _install(NewJobApi(empty_api))


@dataclass
class Server:
    """The real API in-process, with the rows the refusals below are about."""

    http: TestClient
    digits: int  # the built-in digits: 10 classes of 1×8×8 images
    blobs5: int  # 5-class vectors of 32 numbers
    blobs3: int  # 3-class vectors of 32 numbers
    cnn: int  # digits_cnn trained on digits (no epochs)
    mlp: int  # an MLP trained on blobs5 (no epochs)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("dry-run") / "data", warm_embeddings=False)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as http:

        def ok(response: httpx.Response) -> Any:
            assert response.status_code in (200, 201), response.text
            return response.json()

        def dataset(**body: Any) -> int:
            return int(ok(http.post("/api/datasets", json=body))["id"])

        def trained(dataset_id: int, architecture: str) -> int:
            spec = {"dataset_id": dataset_id, "architecture": architecture, "epochs": 0}
            job = ok(http.post("/api/jobs", json={"kind": "train", "spec": spec}))
            return int(ok(http.get(f"/api/jobs/{job['id']}"))["result"]["model_id"])

        digits = dataset(builtin="digits")
        blobs5 = dataset(builtin="blobs", name="blobs5", params={"num_classes": 5})
        blobs3 = dataset(builtin="blobs", name="blobs3", params={"num_classes": 3})
        yield Server(
            http, digits, blobs5, blobs3, trained(digits, "digits_cnn"), trained(blobs5, "mlp")
        )


class Through(httpx.BaseTransport):
    """An httpx transport that hands each request to the in-process API's test client."""

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.http.request(
            request.method, str(request.url), content=request.read(), headers=request.headers
        )
        headers = {
            k: v for k, v in r.headers.items() if k not in ("content-encoding", "content-length")
        }
        return httpx.Response(r.status_code, headers=headers, content=r.content)


@pytest.fixture
def real_api(server: Server) -> Iterator[Server]:
    """The shared page client pointed at the real API (see :func:`server`)."""
    client_module.configure("http://testserver", transport=Through(server.http))
    try:
        yield server
    finally:
        client_module.reset()


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


def ids_of_type(node: Any, kind: str) -> list[dict[str, str]]:
    return [
        c.id
        for c in walk(node)
        if isinstance(c, Component)
        and isinstance(getattr(c, "id", None), dict)
        and c.id.get("type") == kind
    ]


def train_form(page: Any, **changes: Any) -> dict[str, Any]:
    """validate_train / submit_train arguments as Dash would pass them for ``page``."""
    kids = ids_of_type(page, train.KWARG_TYPE)
    values: dict[str, Any] = {
        key: getattr(by_id(page, cid), "value", None) for key, cid in train.TRAIN_INPUTS.items()
    }
    values.update(
        kwarg_values=[by_id(page, kid).value for kid in kids],
        kwarg_ids=kids,
        architectures=by_id(page, train.ARCH_PICKER.entries).data,
    )
    values.update(changes)
    return values


def analyze_form(page: Any, **changes: Any) -> dict[str, Any]:
    """validate_analyze / submit_analyze arguments as Dash would pass them for ``page``."""
    values: dict[str, Any] = {
        key: getattr(by_id(page, cid), "value", None) for key, cid in analyze.ANALYZE_INPUTS.items()
    }
    values.update(corruption_names=by_id(page, analyze.ID_ANALYZE_CORRUPTION_NAMES).data)
    values.update(changes)
    return values


def messages(error_ids: list[dict[str, str]], errors: list[str]) -> dict[str, str]:
    fields = [e["field"] for e in error_ids]
    return dict(zip(fields, errors, strict=True))


def slots(error_type: str, fields: Any) -> list[dict[str, str]]:
    """The ids of the message slots of ``fields``, as the validation callback gets them."""
    return [{"type": error_type, "field": f} for f in fields]


TRAIN_SLOTS = slots(
    train.FORM.error_type, [*train.TRAIN_FIELDS, "arch_kwargs.num_classes", "arch_kwargs.hidden"]
)
ANALYZE_SLOTS = slots(analyze.FORM.error_type, analyze.ANALYZE_FIELDS)


def train_spec(arch_kwargs: dict[str, Any] | None = None, **form: Any) -> dict[str, Any]:
    """train_spec_of a form of digits_cnn on the digits dataset (#2) with these fields."""
    kwargs = arch_kwargs or {}
    values: dict[str, Any] = {
        "dataset": 2,
        "architecture": "digits_cnn",
        "architectures": ARCHITECTURES + LIBRARY,
        "kwarg_ids": [{"name": k} for k in kwargs],
        "kwarg_values": list(kwargs.values()),
    }
    values.update(form)
    return train.train_spec_of(values)


def analyze_spec(**form: Any) -> dict[str, Any]:
    """analyze_spec_of a form of model #1 on the test split with these fields."""
    values: dict[str, Any] = {
        "model": 1,
        "split": "test",
        "severities": [1, 2, 3, 4, 5],
        "corruption_names": CORRUPTIONS,
    }
    values.update(form)
    return analyze.analyze_spec_of(values)


def refusals(server: Server, kind: str, **form: Any) -> dict[str, str]:
    """What the real API's dry run says of a form, by message slot (only the slots with one)."""
    if kind == "train":
        form = {"dataset": server.digits, "architecture": "digits_cnn", **form}
        out = train.validate_train(error_ids=TRAIN_SLOTS, **form)
        marked = messages(TRAIN_SLOTS, out["errors"])
    else:
        form = {
            "model": server.cnn,
            "split": "test",
            "severities": [1, 2, 3, 4, 5],
            "corruption_names": CORRUPTIONS,
            **form,
        }
        out = analyze.validate_analyze(error_ids=ANALYZE_SLOTS, **form)
        marked = messages(ANALYZE_SLOTS, out["errors"])
    assert out["disabled"] is bool([m for m in marked.values() if m])
    return {f: m for f, m in marked.items() if m}


# the help and the choices -------------------------------------------------------------------


def test_every_training_setting_has_its_help_and_no_mirrored_rule() -> None:
    fields = TrainSettings.model_fields
    assert set(train.TRAIN_HELP) >= set(fields) | {"dataset_id", "architecture", "name"}
    assert set(train.TRAIN_INPUTS) - {"dataset", "architecture"} == set(fields) | {"name"}
    # the rules live on the server: the page keeps no defaults, limits or validators of its own
    for module in (new_job, train, analyze, common):
        mirrors = ("TRAIN_DEFAULTS", "MAX_EPOCHS", "MAX_BATCH_SIZE", "MAX_LR", "MAX_SEED")
        assert not [name for name in mirrors if hasattr(module, name)]
        assert not hasattr(module, "build_train_spec") and not hasattr(module, "FormError")


# what the server refuses, next to its field ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("epochs", 10_000, 10_001),
        ("epochs", 0, -1),
        ("batch_size", 65_536, 65_537),
        ("batch_size", 1, 0),
        ("lr", 10.0, 10.1),
        ("momentum", 0.0, 1.0),
    ],
)
def test_the_servers_limits_are_the_forms(
    real_api: Server, name: str, inside: Any, outside: Any
) -> None:
    assert refusals(real_api, "train", **{name: inside}) == {}
    assert set(refusals(real_api, "train", **{name: outside})) == {name}


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"dataset": None}, "dataset_id", "Field required"),
        ({"dataset": 99}, "dataset_id", "dataset 99 does not exist"),
        ({"architecture": None}, "architecture", "Field required"),
        ({"architecture": "vgg16"}, "architecture", "vgg16"),
        ({"epochs": -1}, "epochs", "greater than or equal to 0"),
        ({"epochs": 1.5}, "epochs", "fractional part"),
        ({"epochs": "ten"}, "epochs", "valid integer"),
        ({"batch_size": 0}, "batch_size", "greater than or equal to 1"),
        ({"lr": 0}, "lr", "greater than 0"),
        ({"lr": "fast"}, "lr", "valid number"),
        ({"momentum": 1}, "momentum", "less than 1"),
        ({"weight_decay": -0.1}, "weight_decay", "greater than or equal to 0"),
        ({"seed": "x"}, "seed", "valid integer"),
        ({"optimizer": "rmsprop"}, "optimizer", "'adam' or 'sgd'"),
        ({"lr_schedule": "linear"}, "lr_schedule", "'constant', 'cosine' or 'step'"),
        ({"name": "n" * 201}, "name", "at most 200 characters"),
        (
            {"architecture": "mlp", "kwarg_ids": [{"name": "hidden"}], "kwarg_values": ["128"]},
            "arch_kwargs",
            "not iterable",
        ),
        (
            {"kwarg_ids": [{"name": "num_classes"}], "kwarg_values": ["5"]},
            "arch_kwargs",
            "dataset 1 ('digits') has 10 classes",
        ),
        (
            {"kwarg_ids": [{"name": "in_channels"}], "kwarg_values": [3]},
            "architecture",
            "digits_cnn (dataset 1, 'digits')",
        ),
        ({"kwarg_ids": [{"name": "depth"}], "kwarg_values": ["3"]}, "arch_kwargs", "'depth'"),
    ],
)
def test_train_refusals_name_the_field_and_its_rule(
    real_api: Server, form: dict[str, Any], field: str, words: str
) -> None:
    form = {"architectures": ARCHITECTURES, **form}
    marked = refusals(real_api, "train", **form)
    assert set(marked) == {field}
    assert words in marked[field]


def test_every_bad_train_field_is_reported_at_once(real_api: Server) -> None:
    bad = {"dataset": None, "epochs": -2, "lr": "x", "seed": "s"}
    assert set(refusals(real_api, "train", **bad)) == {"dataset_id", "epochs", "lr", "seed"}
    out = train.validate_train(error_ids=TRAIN_SLOTS, architecture="digits_cnn", **bad)
    assert out["summary"] == "4 fields to fix before submitting." and out["plan"] == ""


@pytest.mark.parametrize(
    ("name", "kwargs", "field", "words"),
    [
        ("timm/resnet18", {"in_chans": "3"}, "architecture", "timm/resnet18 (dataset 1"),
        ("timm/vit_tiny_patch16_224", {"img_size": 224}, "architecture", "(dataset 1"),
        # torchvision's ResNet takes 3 channels whatever the classes
        ("torchvision/resnet18", {"num_classes": 1000}, "architecture", "shape (1, 8, 8)"),
    ],
)
def test_library_arguments_set_from_the_dataset_must_agree_with_it(
    real_api: Server, name: str, kwargs: dict[str, Any], field: str, words: str
) -> None:
    form = {"kwarg_ids": [{"name": k} for k in kwargs], "kwarg_values": list(kwargs.values())}
    marked = refusals(real_api, "train", architecture=name, architectures=LIBRARY, **form)
    assert set(marked) == {field} and words in marked[field]
    spec = train_spec(
        architecture="timm/vit_tiny_patch16_224",
        arch_kwargs={"img_size": "8", "in_chans": "1", "num_classes": ""},
    )
    assert spec["arch_kwargs"] == {"img_size": 8, "in_chans": 1}


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"model": None}, "model_id", "Field required"),
        ({"model": 99}, "model_id", "model 99 does not exist"),
        ({"dataset": 99}, "dataset_id", "dataset 99 does not exist"),
        ({"dataset": "blobs3", "model": "mlp"}, "dataset_id", "has 3 classes but model"),
        ({"dataset": "blobs5"}, "dataset_id", "accepts inputs of shape (1, 8, 8)"),
        ({"split": "val"}, "split", "'train' or 'test'"),
        ({"corruptions": ["frost2"]}, "corruptions", "unknown corruption 'frost2'"),
        ({"corruptions": ["fog"], "severities": []}, "severities", "at least 1 item"),
        ({"corruptions": ["fog"], "severities": [6]}, "severities", "less than or equal to 5"),
    ],
)
def test_analyze_refusals_name_the_field_and_its_rule(
    real_api: Server, form: dict[str, Any], field: str, words: str
) -> None:
    rows = {"blobs3": real_api.blobs3, "blobs5": real_api.blobs5, "mlp": real_api.mlp}
    form = {
        key: rows.get(value, value) if isinstance(value, str) else value
        for key, value in form.items()
    }
    marked = refusals(real_api, "analyze", **form)
    assert set(marked) == {field}
    assert words in marked[field]


def test_a_refusal_without_a_slot_is_shown_with_the_whole_spec() -> None:
    errors = {"severities.0": "too strong", "arch_kwargs.depth": "no depth", "jobs": "too many"}
    placed = common.nearest_slots(errors, ["severities", "arch_kwargs", ""])
    assert placed == {"severities": "too strong", "arch_kwargs": "no depth", "jobs": "too many"}


# the form as JSON ------------------------------------------------------------------------------


def test_the_train_form_as_first_shown_is_a_valid_train_spec(api: NewJobApi) -> None:
    spec = train.train_spec_of(train_form(new_job.layout(dataset="2")))
    assert spec == {
        "dataset_id": 2,
        "architecture": "digits_cnn",
        "arch_kwargs": {},
        "epochs": 15,
        "batch_size": 64,
        "lr": 0.001,
        "lr_schedule": "constant",
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "seed": 0,
        "amp": False,
    }
    validated = TrainSpec.model_validate(spec)  # extra="forbid": no unknown key either
    assert validated.model_dump(include=set(spec)) == spec


def test_train_spec_as_the_browser_sends_it(api: NewJobApi) -> None:
    spec = train_spec(
        architecture="mlp",
        arch_kwargs={"input_shape": "", "num_classes": None, "hidden": "[32]"},
        epochs="3",
        batch_size=128.0,
        lr="0.05",
        lr_schedule="cosine",
        optimizer="sgd",
        momentum=0.5,
        weight_decay="1e-4",
        seed=7,
        amp=[TICKED],
        name="  tiny mlp  ",
    )
    assert spec == {
        "dataset_id": 2,
        "architecture": "mlp",
        "arch_kwargs": {"hidden": [32]},
        "epochs": 3,
        "batch_size": 128,
        "lr": 0.05,
        "lr_schedule": "cosine",
        "optimizer": "sgd",
        "momentum": 0.5,
        "weight_decay": 0.0001,
        "seed": 7,
        "amp": True,
        "name": "tiny mlp",
    }
    # the server's normalised spec, as the form's plan shows it, has whole numbers
    normalised = dry_run("train", spec).spec
    assert normalised is not None
    assert type(normalised["batch_size"]) is int and type(normalised["epochs"]) is int
    assert TrainSpec.model_validate(spec).model_dump(include=set(spec)) == spec


def test_blank_training_fields_are_left_to_the_apis_defaults() -> None:
    spec = train_spec(epochs=None, lr="", seed="  ", optimizer=None, name="")
    assert not {"epochs", "lr", "seed", "optimizer", "name"} & set(spec)
    assert TrainSpec.model_validate(spec).epochs == TrainSettings.model_fields["epochs"].default


def test_architecture_arguments_keep_only_changes_and_the_dataset_values_set() -> None:
    # the arguments the dataset fills are sent only when set
    spec = train_spec(arch_kwargs={"num_classes": "10", "in_channels": ""})
    assert spec["arch_kwargs"] == {"num_classes": 10}
    assert train_spec(architecture="mlp", arch_kwargs={"hidden": "[128, 64]"})["arch_kwargs"] == {}
    # a field the architecture lacks is sent as typed: the server names it
    assert train_spec(arch_kwargs={"depth": "3"})["arch_kwargs"] == {"depth": 3}


def test_analyze_spec_of_the_form_as_first_shown() -> None:
    spec = analyze_spec()
    assert spec == {"model_id": 1, "split": "test"}
    assert AnalyzeSpec.model_validate(spec).model_dump(include=set(spec)) == spec


def test_analyze_spec_with_corruptions_and_an_explicit_dataset() -> None:
    spec = analyze_spec(
        dataset="1",
        split="train",
        corruptions=["fog", "gaussian_noise", "fog"],
        severities=[5, 1, 3],
        feature_layer=" fc ",
    )
    assert spec == {
        "model_id": 1,
        "dataset_id": 1,
        "split": "train",
        "corruptions": ["fog", "gaussian_noise"],
        "severities": [1, 3, 5],
        "feature_layer": "fc",
    }
    assert AnalyzeSpec.model_validate(spec).model_dump(include=set(spec)) == spec


def test_all_corruptions_takes_every_listed_name() -> None:
    spec = analyze_spec(all_corruptions=[TICKED], corruptions=["fog"])
    assert spec["corruptions"] == CORRUPTIONS
    assert spec["severities"] == [1, 2, 3, 4, 5]
    AnalyzeSpec.model_validate(spec)


def test_severities_are_only_sent_with_corruptions() -> None:
    assert "severities" not in analyze_spec(severities=[])


# the job-kind strip ---------------------------------------------------------------------------


def test_job_kind_links_lead_to_the_two_pages_and_carry_the_choice() -> None:
    assert [k for k, _, _ in JOB_KIND_TABS] == ["train", "prune", "sweep", "analyze"]
    assert job_kind_href("train") == "/new?kind=train"
    assert job_kind_href("train", dataset=2, model=5) == "/new?kind=train&dataset=2"
    assert job_kind_href("prune") == "/prune"
    assert job_kind_href("prune", model=5) == "/prune?model=5"
    assert job_kind_href("sweep", model=5) == "/prune?kind=sweep&model=5"
    assert job_kind_href("analyze", model=5) == "/new?kind=analyze&model=5"
    with pytest.raises(ValueError, match="kind='compare'"):
        job_kind_href("compare")
    strip = job_kind_tabs("sweep", model=3, tabs_id="x")
    links = [c for c in walk(strip) if isinstance(c, dcc.Link)]
    assert [link.children for link in links] == ["Train", "Prune", "Sweep", "Analyze"]
    assert [link.className for link in links].count("job-tab job-tab-active") == 1
    assert links[2].className == "job-tab job-tab-active"
    assert all(link.title for link in links)  # a tooltip says what each kind does


def test_the_prune_page_has_the_strip_and_opens_in_sweep_mode_from_the_url(
    api: NewJobApi,
) -> None:
    page = prune.layout(model="1")
    strip = by_id(page, prune.ID_KIND_TABS)
    assert by_id(strip, "job-tab-prune").className.endswith("job-tab-active")
    assert by_id(strip, "job-tab-analyze").href == "/new?kind=analyze&model=1"
    assert by_id(page, prune.ID_SWEEP).value == []

    page = prune.layout(model="1", kind="sweep")
    assert by_id(page, prune.ID_SWEEP).value == [TICKED]
    strip = by_id(page, prune.ID_KIND_TABS)
    assert by_id(strip, "job-tab-sweep").className.endswith("job-tab-active")
    assert prune.toggle_sweep(by_id(page, prune.ID_SWEEP).value)[1] == "Run sweep"
    # ticking the box moves the highlight and writes kind=sweep; unticking removes it
    tabs = prune.follow_kind([TICKED], 3)
    assert [t.className for t in tabs if t.className.endswith("active")] == [
        "job-tab job-tab-active"
    ]
    assert tabs[2].id == "job-tab-sweep" and tabs[2].className.endswith("active")
    assert prune.update_kind_url([TICKED], "?model=3") == "?model=3&kind=sweep"
    assert prune.update_kind_url([], "?model=3&kind=sweep") == "?model=3"
    assert prune.update_kind_url([TICKED], "?kind=sweep") is dash.no_update
    assert prune.update_kind_url([], "?model=3") is dash.no_update


# layout -----------------------------------------------------------------------------------------


def test_train_layout_fills_every_setting_with_its_default(api: NewJobApi) -> None:
    page = new_job.layout()
    # the stores of the server's check as the form is filled in (forms.register_validation)
    for store in ("stamp", "verdict"):
        by_id(page, f"{train.FORM.submit}-{store}")  # exactly one each
    assert by_id(page, train.ID_TRAIN_DATASET).value == 1
    dataset_labels = [o["label"] for o in by_id(page, train.ID_TRAIN_DATASET).options]
    assert dataset_labels == [
        "#1 cifar5-mini · 5 classes, 3×32×32 · 5,000 train / 1,000 test",
        "#2 digits · 10 classes, 1×8×8 · 1,347 train / 450 test",
    ]
    # the architecture built for 32×32 images, with every listed one offered
    arch = by_id(page, train.ID_TRAIN_ARCH)
    assert arch.value == "resnet20"
    assert [o["value"] for o in arch.options] == [a["name"] for a in ARCHITECTURES]
    assert "/api/architectures" in api.fake.paths()
    for key, cid in train.TRAIN_INPUTS.items():
        if key in ("dataset", "architecture", "name"):
            continue
        value = by_id(page, cid).value
        expected = TrainSettings.model_fields[key].default  # the server's, by its dry run
        assert value == ([TICKED] if expected is True else [] if expected is False else expected)
    # one input per architecture argument; those the dataset fills are blank
    kids = [k["name"] for k in ids_of_type(page, train.KWARG_TYPE)]
    assert kids == ["num_classes", "in_channels"]
    assert by_id(page, {"type": train.KWARG_TYPE, "name": "num_classes"}).value == ""
    # a message slot per field, a one-line hint per setting, and a valid form to start with
    fields = {e["field"] for e in ids_of_type(page, train.FORM.error_type)}
    assert set(train.TRAIN_FIELDS) | {"arch_kwargs.num_classes", "arch_kwargs.in_channels"} == (
        fields
    )
    words = text(page)
    for help_text in train.TRAIN_HELP.values():
        assert help_text in words
    assert by_id(page, train.FORM.submit).disabled is False
    assert by_id(page, new_job.FOLLOW.ids.poll).disabled is True
    strip = by_id(page, common.ID_KIND_TABS)
    assert by_id(strip, "job-tab-train").className.endswith("job-tab-active")
    assert by_id(strip, "job-tab-prune").href == "/prune"


def test_train_query_params_preselect_the_form(api: NewJobApi) -> None:
    page = new_job.layout(kind="train", dataset="2", architecture="mlp", job="2")
    assert by_id(page, train.ID_TRAIN_DATASET).value == 2
    assert by_id(page, train.ID_TRAIN_ARCH).value == "mlp"
    kids = [k["name"] for k in ids_of_type(page, train.KWARG_TYPE)]
    assert kids == ["input_shape", "num_classes", "hidden"]
    assert by_id(page, {"type": train.KWARG_TYPE, "name": "hidden"}).value == "[128, 64]"
    assert by_id(page, new_job.FOLLOW.ids.job).data == {"id": 2}
    assert by_id(page, new_job.FOLLOW.ids.poll).disabled is False
    assert by_id(by_id(page, common.ID_KIND_TABS), "job-tab-train").href == (
        "/new?kind=train&dataset=2"
    )


def test_the_digits_dataset_preselects_the_digits_cnn(api: NewJobApi) -> None:
    assert by_id(new_job.layout(dataset="2"), train.ID_TRAIN_ARCH).value == "digits_cnn"


def test_unknown_things_in_the_url_are_reported(api: NewJobApi) -> None:
    page = new_job.layout(kind="train", dataset="99", architecture="vgg")
    words = text(page)
    assert "Dataset '99' not found" in words
    assert "Unknown architecture 'vgg'" in words and "digits_cnn, mlp, resnet20" in words
    assert by_id(page, train.FORM.submit).disabled is True
    assert "Unknown job kind 'magic'" in text(new_job.layout(kind="magic"))
    page = new_job.layout(kind="analyze", model="99")
    assert "Model '99' not found" in text(page)
    assert by_id(page, analyze.ID_ANALYZE_MODEL).value is None


@pytest.mark.parametrize("kind", ["prune", "sweep"])
def test_prune_and_sweep_point_to_the_prune_page(api: NewJobApi, kind: str) -> None:
    page = new_job.layout(kind=kind, model="3")
    hrefs = [c.href for c in walk(page) if isinstance(c, dcc.Link)]
    assert job_kind_href(kind, model="3") in hrefs


def test_analyze_layout_lists_models_by_lineage_and_the_corruptions(api: NewJobApi) -> None:
    page = new_job.layout(kind="analyze")
    for store in ("stamp", "verdict"):
        by_id(page, f"{analyze.FORM.submit}-{store}")  # exactly one each
    model = by_id(page, analyze.ID_ANALYZE_MODEL)
    assert [o["value"] for o in model.options] == [1, 2, 3, 4]
    labels = [o["label"] for o in model.options]
    assert labels[0] == "#1 resnet8-cifar5 · resnet8 · 1M params · original · acc 85.0%"
    assert labels[2] == (
        "↳ #3 resnet8-gm90 · resnet8 · 1M params · global_magnitude 90% sparse · acc 67.0%"
    )
    assert labels[3].startswith(
        "\u2003↳ #4 resnet8-gm90-ft · resnet8 · 1M params · lottery_ticket 95% sparse"
    )
    assert model.value == 1
    info = text(by_id(page, analyze.ID_ANALYZE_MODEL_INFO))
    assert "original" in info and "trained on #1 cifar5-mini" in info
    dataset = by_id(page, analyze.ID_ANALYZE_DATASET)
    assert dataset.value is None
    assert dataset.placeholder == "the model's own: #1 cifar5-mini"
    options = by_id(page, analyze.ID_ANALYZE_CORRUPTIONS).options
    assert [o["value"] for o in options] == CORRUPTIONS
    assert "All 4 corruptions" in text(by_id(page, analyze.ID_ANALYZE_ALL).options[0]["label"])
    assert by_id(page, analyze.ANALYZE_INPUTS["severities"]).value == [1, 2, 3, 4, 5]
    assert by_id(page, analyze.ANALYZE_INPUTS["split"]).value == "test"
    assert by_id(page, analyze.FORM.submit).disabled is False
    fields = {e["field"] for e in ids_of_type(page, analyze.FORM.error_type)}
    assert fields == set(analyze.ANALYZE_FIELDS)
    strip = by_id(page, common.ID_KIND_TABS)
    assert by_id(strip, "job-tab-analyze").className.endswith("job-tab-active")
    assert by_id(strip, "job-tab-prune").href == "/prune?model=1"


def test_analyze_query_params_preselect_the_form(api: NewJobApi) -> None:
    page = new_job.layout(kind="analyze", model="3", dataset="1")
    assert by_id(page, analyze.ID_ANALYZE_MODEL).value == 3
    assert by_id(page, analyze.ID_ANALYZE_DATASET).value == 1
    assert "pruned with global_magnitude to 90.0% sparsity, from #1 resnet8-cifar5" in text(
        by_id(page, analyze.ID_ANALYZE_MODEL_INFO)
    )


def test_no_datasets_says_how_to_get_one(bare_api: NewJobApi) -> None:
    page = new_job.layout()
    empty = by_id(page, common.ID_EMPTY)
    assert "No datasets yet" in text(empty)
    assert "/upload" in [c.href for c in walk(empty) if isinstance(c, dcc.Link)]
    assert by_id(empty, train.ID_BUILTIN).children == "Add the built-in digits dataset"


def test_no_models_says_how_to_get_one(bare_api: NewJobApi) -> None:
    empty = by_id(new_job.layout(kind="analyze"), common.ID_EMPTY)
    assert "No models yet" in text(empty) and "prunescope demo" in text(empty)
    hrefs = [c.href for c in walk(empty) if isinstance(c, dcc.Link)]
    assert hrefs == ["/new?kind=train", "/upload"]


def test_unreachable_api_is_explained(api: NewJobApi) -> None:
    api.fake.down = True
    assert "Cannot reach the PruneScope API" in text(new_job.layout())
    assert "Cannot reach the PruneScope API" in text(new_job.layout(kind="analyze"))


def test_user_text_is_shown_as_text(api: NewJobApi) -> None:
    api.fake.datasets[0]["name"] = "<img src=x onerror=alert(1)>"
    api.fake.datasets[0]["class_names"] = ["<b>cat</b>", "dog", "x", "y", "z"]
    page = new_job.layout()
    assert not [c for c in walk(page) if isinstance(c, dcc.Markdown)]
    labels = [o["label"] for o in by_id(page, train.ID_TRAIN_DATASET).options]
    assert labels[0].startswith("#1 <img src=x onerror=alert(1)> ·")  # a plain string label
    assert "<b>cat</b>" in text(by_id(page, train.ID_TRAIN_DATASET_INFO))


# callbacks: validation and submission -------------------------------------------------------------


def test_validate_train_marks_each_bad_field_and_disables_submit(real_api: Server) -> None:
    form = {
        "dataset": real_api.digits,
        "architecture": "digits_cnn",
        "architectures": ARCHITECTURES,
    }
    ok = train.validate_train(error_ids=TRAIN_SLOTS, **form)
    assert ok["errors"] == [""] * len(TRAIN_SLOTS)
    assert ok["disabled"] is False and ok["summary"] == ""
    # what will run: the server's normalised spec, defaults filled in
    assert ok["plan"].startswith("Will run with: epochs 15 · lr 0.001 · batch_size 64")
    assert "architecture digits_cnn" in ok["plan"]
    bad = train.validate_train(error_ids=TRAIN_SLOTS, **form, epochs=-1, lr=0)
    assert bad["disabled"] is True and bad["plan"] == ""
    assert bad["summary"] == "2 fields to fix before submitting."
    marked = messages(TRAIN_SLOTS, bad["errors"])
    assert "greater than or equal to 0" in marked["epochs"]
    assert "greater than 0" in marked["lr"]
    assert marked["batch_size"] == "" and marked["dataset_id"] == ""
    # the checks of what the architecture makes of the dataset come once the fields are right
    kwargs = {"kwarg_ids": [{"name": "num_classes"}], "kwarg_values": ["7"]}
    bad = train.validate_train(error_ids=TRAIN_SLOTS, **form, **kwargs)
    assert bad["disabled"] is True and bad["summary"] == "1 field to fix before submitting."
    assert "returns 7 logits" in messages(TRAIN_SLOTS, bad["errors"])["arch_kwargs"]


def test_validate_analyze_marks_each_bad_field_and_disables_submit(real_api: Server) -> None:
    form = {"model": real_api.cnn, "split": "test", "corruption_names": CORRUPTIONS}
    ok = analyze.validate_analyze(error_ids=ANALYZE_SLOTS, **form)
    assert ok["disabled"] is False and set(ok["errors"]) == {""}
    assert "severities [1, 2, 3, 4, 5]" in ok["plan"]
    bad = analyze.validate_analyze(
        error_ids=ANALYZE_SLOTS, **form, corruptions=["fog"], severities=[]
    )
    assert bad["disabled"] is True
    marked = messages(ANALYZE_SLOTS, bad["errors"])
    assert "at least 1 item" in marked["severities"]
    assert marked["model_id"] == ""
    bad = analyze.validate_analyze(error_ids=ANALYZE_SLOTS, **form, dataset=real_api.blobs5)
    assert "has inputs of shape (32,)" in messages(ANALYZE_SLOTS, bad["errors"])["dataset_id"]


def test_submit_train_posts_exactly_a_valid_train_spec(api: NewJobApi) -> None:
    page = new_job.layout(dataset="2", architecture="mlp")
    kids = ids_of_type(page, train.KWARG_TYPE)
    kwargs = ["", "", "[64]"]  # input_shape and num_classes from the dataset
    form = train_form(page, n_clicks=1, epochs=2, name="small", kwarg_values=kwargs)
    out = train.submit_train(**form)
    (body,) = api.posted("/api/jobs")
    assert body["kind"] == "train"
    assert body["spec"] == {
        "dataset_id": 2,
        "architecture": "mlp",
        "arch_kwargs": {"hidden": [64]},
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.001,
        "lr_schedule": "constant",
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 0.0,
        "seed": 0,
        "amp": False,
        "name": "small",
    }
    assert [k["name"] for k in kids] == ["input_shape", "num_classes", "hidden"]
    TrainSpec.model_validate(body["spec"])
    assert out == {
        "submit_error": None,
        "job": {"id": api.fake.jobs[-1]["id"], "kind": "train"},
        "cancel_notice": None,
    }


def test_submit_analyze_posts_exactly_a_valid_analyze_spec(api: NewJobApi) -> None:
    page = new_job.layout(kind="analyze", model="3")
    form = analyze_form(page, n_clicks=1, all_corruptions=[TICKED], severities=[2, 4])
    out = analyze.submit_analyze(**form)
    (body,) = api.posted("/api/jobs")
    assert body == {
        "kind": "analyze",
        "spec": {
            "model_id": 3,
            "split": "test",
            "corruptions": CORRUPTIONS,
            "severities": [2, 4],
        },
    }
    AnalyzeSpec.model_validate(body["spec"])
    assert out["job"]["kind"] == "analyze"


def test_submit_renders_the_apis_refusal_verbatim(api: NewJobApi) -> None:
    detail = "spec.architecture: unknown architecture 'mlp'; known: digits_cnn"
    api.fake.errors["/api/jobs"] = (422, detail)
    out = train.submit_train(**train_form(new_job.layout(), n_clicks=1))
    assert detail in text(out["submit_error"]) and "refused" in text(out["submit_error"])
    assert out["job"] is dash.no_update and out["cancel_notice"] is dash.no_update


def test_submit_with_bad_fields_posts_nothing(api: NewJobApi) -> None:
    out = train.submit_train(**train_form(new_job.layout(), n_clicks=1, epochs=-5))
    assert api.posted("/api/jobs") == []
    assert "Check the form" in text(out["submit_error"]) and "epochs" in text(out["submit_error"])
    assert out["job"] is dash.no_update


def test_submit_before_any_click_does_nothing(api: NewJobApi) -> None:
    out = train.submit_train(**train_form(new_job.layout(), n_clicks=0))
    assert api.posted("/api/jobs") == [] and out["job"] is dash.no_update


def test_describe_callbacks_follow_the_choice(api: NewJobApi) -> None:
    editor = train.describe_train_architecture("mlp", ARCHITECTURES)
    assert "Fully connected" in text(architecture_about("mlp", ARCHITECTURES))
    assert [k["name"] for k in ids_of_type(editor, train.KWARG_TYPE)] == [
        "input_shape",
        "num_classes",
        "hidden",
    ]
    assert "Required" not in text(editor)  # both required ones come from the dataset
    info = text(train.describe_train_dataset(2, [DIGITS]))
    assert "1,347 training and 450 test samples of shape 1×8×8" in info
    assert "classes: 0, 1, 2" in info and "(source: builtin:digits)" in info
    info, placeholder = analyze.describe_analyze_model(3, api.fake.models, api.fake.datasets)
    assert "from #1 resnet8-cifar5" in text(info)
    assert placeholder == "the model's own: #1 cifar5-mini"
    assert train.toggle_momentum("adam") is True and train.toggle_momentum("sgd") is False
    assert analyze.toggle_all_corruptions([TICKED]) is True
    assert analyze.toggle_all_corruptions([]) is False


def test_add_the_builtin_dataset_reopens_the_form_with_it(bare_api: NewJobApi) -> None:
    search, box = train.add_builtin_dataset(1)
    assert bare_api.posted("/api/datasets") == [{"builtin": "digits"}]
    assert search == "?kind=train&dataset=1"
    assert "/new?kind=train&dataset=1" in [c.href for c in walk(box) if isinstance(c, dcc.Link)]
    assert train.add_builtin_dataset(0) == (dash.no_update, dash.no_update)


# the architecture picker: the registry's ~1,450 names, searched on the server ---------------------


def test_the_train_picker_offers_the_builtins_and_searches_the_rest(api: NewJobApi) -> None:
    page = new_job.layout()
    picker = by_id(page, train.ID_TRAIN_ARCH)
    assert picker.searchable is True and picker.clearable is False
    assert [o["label"] for o in picker.options] == [
        "digits_cnn · builtin",
        "mlp · builtin",
        "resnet20 · builtin",
    ]
    entries = by_id(page, train.ARCH_PICKER.entries).data
    assert entries == ARCHITECTURES
    assert "ResNet-20 for 32x32 images" in text(by_id(page, train.ARCH_PICKER.about))
    options, shown = search_architectures("resnet", picker.value, entries)
    # the server's matches in its order; resnet20, the choice, is among them
    assert [o["value"] for o in options] == ["resnet20", "torchvision/resnet18", "timm/resnet18"]
    assert options[2]["label"] == "timm/resnet18 · timm"
    options, shown = search_architectures("vit", picker.value, shown)
    assert [o["value"] for o in options] == ["timm/vit_tiny_patch16_224", "resnet20"]
    # the picked model's entry is what the form checks and edits the arguments of
    options, shown = search_architectures("resnet18", "resnet20", entries)
    editor = train.describe_train_architecture("timm/resnet18", shown)
    assert [k["name"] for k in ids_of_type(editor, train.KWARG_TYPE)] == [
        "num_classes",
        "in_chans",
    ]
    assert text(editor).count("Blank: taken from the dataset.") == 2
    kids = ids_of_type(editor, train.KWARG_TYPE)
    form = train_form(
        page,
        n_clicks=1,
        dataset=2,
        architecture="timm/resnet18",
        architectures=shown,
        kwarg_ids=kids,
        kwarg_values=["", ""],
        epochs=1,
    )
    error_ids = ids_of_type(page, train.FORM.error_type)
    assert train.validate_train(error_ids=error_ids, **form)["disabled"] is False
    train.submit_train(**form)
    (body,) = api.posted("/api/jobs")
    assert body["spec"]["architecture"] == "timm/resnet18"
    assert body["spec"]["arch_kwargs"] == {}  # the job sets num_classes and in_chans
    TrainSpec.model_validate(body["spec"])


def test_a_timm_architecture_in_the_url_is_preselected(api: NewJobApi) -> None:
    page = new_job.layout(kind="train", dataset="2", architecture="timm/vit_tiny_patch16_224")
    picker = by_id(page, train.ID_TRAIN_ARCH)
    assert picker.value == "timm/vit_tiny_patch16_224"
    assert [o["value"] for o in picker.options] == [
        "digits_cnn",
        "mlp",
        "resnet20",
        "timm/vit_tiny_patch16_224",
    ]
    assert "ViT-Tiny" in text(by_id(page, train.ARCH_PICKER.about))
    kids = [k["name"] for k in ids_of_type(page, train.KWARG_TYPE)]
    assert kids == ["num_classes", "in_chans", "img_size"]
    assert by_id(page, train.FORM.submit).disabled is False
    searched = [r.url.params.get("q") for r in api.fake.requests if "architectures" in str(r.url)]
    assert searched == [None, "timm/vit_tiny_patch16_224"]


def test_an_unknown_architecture_in_the_url_lists_a_few_known_names() -> None:
    many = [{"name": f"arch{i}"} for i in range(30)]
    message = train.known_names(many)
    assert message.startswith("arch0, arch1,")
    assert message.endswith("arch11, … (30 listed)")


def test_the_trained_and_listed_models_show_architecture_size_and_input_shape(
    api: NewJobApi,
) -> None:
    api.fake.models[0].update(
        architecture="timm/resnet18", n_params=11_181_642, input_shape=[3, 32, 32]
    )
    page = new_job.layout(kind="analyze")
    label = by_id(page, analyze.ID_ANALYZE_MODEL).options[0]["label"]
    assert (
        label == "#1 resnet8-cifar5 · timm/resnet18 · 11.2M params · 3×32×32 · original · acc 85.0%"
    )
    assert "timm/resnet18 · 11.2M params · 3×32×32, original" in text(
        by_id(page, analyze.ID_ANALYZE_MODEL_INFO)
    )
    result = train.train_result({"model_id": 1, "accuracy": 0.8}, api.fake.models[0])
    params = text(by_id(result, f"{common.ID_RESULT}-params"))
    assert "11.18M" in params and "timm/resnet18 · 11.2M params · 3×32×32" in params


# URL state ----------------------------------------------------------------------------------------


def test_train_url_round_trip(api: NewJobApi) -> None:
    search, tabs = train.update_train_url(2, "mlp", "?job=5")
    assert search == "?kind=train&dataset=2&architecture=mlp&job=5"
    assert tabs[0].href == "/new?kind=train&dataset=2"
    query = dict(parse_qsl(search.lstrip("?")))
    page = new_job.layout(**query)
    assert by_id(page, train.ID_TRAIN_DATASET).value == 2
    assert by_id(page, train.ID_TRAIN_ARCH).value == "mlp"
    assert by_id(page, new_job.FOLLOW.ids.job).data == {"id": 5}
    # a URL that already says so is left alone: rendering never adds a history entry
    assert train.update_train_url(2, "mlp", search) == (dash.no_update, dash.no_update)


def test_a_timm_architecture_round_trips_through_the_url(api: NewJobApi) -> None:
    search, _ = train.update_train_url(2, "timm/resnet18", "")
    assert search == "?kind=train&dataset=2&architecture=timm%2Fresnet18"
    page = new_job.layout(**dict(parse_qsl(search.lstrip("?"))))
    assert by_id(page, train.ID_TRAIN_ARCH).value == "timm/resnet18"
    assert train.update_train_url(2, "timm/resnet18", search) == (dash.no_update, dash.no_update)


def test_analyze_url_round_trip(api: NewJobApi) -> None:
    search, tabs = analyze.update_analyze_url(3, 1, "?kind=train&architecture=mlp")
    assert search == "?kind=analyze&model=3&dataset=1&architecture=mlp"
    assert by_id(html.Div(tabs), "job-tab-sweep").href == "/prune?kind=sweep&model=3"
    page = new_job.layout(**dict(parse_qsl(search.lstrip("?"))))
    assert by_id(page, analyze.ID_ANALYZE_MODEL).value == 3
    assert by_id(page, analyze.ID_ANALYZE_DATASET).value == 1
    # clearing the dataset (the model's own) removes it from the URL
    search, _ = analyze.update_analyze_url(3, None, search)
    assert search == "?kind=analyze&model=3&architecture=mlp"


def test_the_followed_job_goes_into_the_url() -> None:
    assert new_job.update_job_url({"id": 9}, "?kind=analyze&model=3") == (
        "?job=9&kind=analyze&model=3"
    )
    assert new_job.update_job_url({"id": 9}, "?job=9") is dash.no_update
    assert new_job.update_job_url({"id": 4}, None, {"search": "?kind=train"}) == (
        "?job=4&kind=train"
    )


# callbacks: the followed job ----------------------------------------------------------------------


def test_poll_a_running_job_shows_progress_and_keeps_polling(api: NewJobApi) -> None:
    panel, stop, cancel_hidden = new_job.poll_job(3, {"id": 2})
    assert stop is False and cancel_hidden is False
    words = text(panel)
    assert "running" in words and "epoch 3/10" in words and "30%" in words


def test_poll_a_succeeded_train_job_links_to_pruning_the_new_model(api: NewJobApi) -> None:
    api.fake.jobs[0]["spec"] = {"dataset_id": 1, "architecture": "resnet20", "epochs": 4}
    api.fake.jobs[0]["result"] = {"model_id": 1, "accuracy": 0.8}
    panel, stop, cancel_hidden = new_job.poll_job(5, {"id": 1})
    assert stop is True and cancel_hidden is True
    assert "resnet20 on dataset #1, 4 epochs" in text(panel)
    assert text(by_id(panel, new_job.FOLLOW.ids.status)) == "succeeded"
    assert "80.0%" in text(by_id(panel, f"{common.ID_RESULT}-accuracy"))
    assert "1.00M" in text(by_id(panel, f"{common.ID_RESULT}-params"))
    link = by_id(panel, common.ID_RESULT_LINK)
    assert link.href == "/prune?model=1" and "Prune this model" in link.children
    assert by_id(panel, new_job.FOLLOW.ids.progress_bar).value == "1.000"


def test_poll_a_succeeded_analysis_links_to_its_comparison(api: NewJobApi) -> None:
    job = api.fake.jobs[2]
    job.update(
        status="succeeded",
        progress=1.0,
        error=None,
        spec={"model_id": 3, "split": "test", "corruptions": ["fog"], "severities": [1, 2]},
        result={"analysis_id": 3, "accuracy": 0.67},
    )
    panel, stop, _ = new_job.poll_job(2, {"id": 3})
    assert stop is True
    assert "model #3 on the test split, 1 corruption × 2 severities" in text(panel)
    assert "67.0%" in text(by_id(panel, f"{common.ID_RESULT}-accuracy"))
    assert by_id(panel, common.ID_RESULT_LINK).href == "/compare?id=1&b=3"
    # a model in no comparison: the home page
    api.fake.comparisons.clear()
    panel, _, _ = new_job.poll_job(3, {"id": 3})
    assert by_id(panel, common.ID_RESULT_LINK).href == "/"
    hrefs = [c.href for c in walk(panel) if isinstance(c, dcc.Link)]
    assert "/prune?model=3" in hrefs


def test_poll_a_failed_job_shows_the_error(api: NewJobApi) -> None:
    panel, stop, cancel_hidden = new_job.poll_job(1, {"id": 3})
    assert stop is True and cancel_hidden is True
    assert "CUDA out of memory" in text(by_id(panel, new_job.FOLLOW.ids.job_error))


def test_poll_without_a_job_is_idle(api: NewJobApi) -> None:
    assert new_job.poll_job(0, None) == ([], True, True)
    panel, stop, _ = new_job.poll_job(0, {"id": 99})
    assert stop is True and "Job 99 not found" in text(panel)


def test_cancel_a_running_job_and_one_already_finished(api: NewJobApi) -> None:
    out = new_job.cancel_followed_job(1, {"id": 2})
    assert out["hidden"] is True and out["notice"] is None
    assert "Stopping…" in text(out["panel"])
    assert api.fake.jobs[1]["status"] == "cancelling"
    out = new_job.cancel_followed_job(1, {"id": 1})
    assert "had already finished" in text(out["notice"]) and out["panel"] is dash.no_update
    assert new_job.cancel_followed_job(0, {"id": 2})["panel"] is dash.no_update


# through the app ----------------------------------------------------------------------------------


def test_new_job_page_is_routed_and_linked_from_the_navbar(api: NewJobApi) -> None:
    app = create_dash_app("http://testserver", transport=httpx.MockTransport(api.handle))
    assert "/new" in [page["path"] for page in dash.page_registry.values()]
    layout = app.layout() if callable(app.layout) else app.layout
    links = [(c.children, c.href) for c in walk(layout) if isinstance(c, dcc.Link)]
    assert ("New job", "/new") in links and ("Prune", "/prune") in links
    client = app.server.test_client()
    assert client.get("/new?kind=analyze").status_code == 200
    response = client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": "/new"},
                {"id": "_pages_location", "property": "search", "value": "?kind=train"},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
    )
    body = response.get_json()["response"]
    assert body["_pages_store"]["data"]["title"] == new_job.TITLE == "New job · PruneScope"
    assert train.FORM.submit in str(body["_pages_content"]["children"])
    dependencies = client.get("/_dash-dependencies").get_json()
    outputs = [d["output"] for d in dependencies]
    assert any(f"{new_job.FOLLOW.ids.progress}.children" in o for o in outputs)
    assert any(o.startswith(f"{common.ID_URL}.search") for o in outputs)
    assert any(f"{prune.ID_KIND_TABS}.children" in o for o in outputs)
    inputs = [i for d in dependencies for i in d["inputs"]]
    assert {"id": new_job.FOLLOW.ids.cancel, "property": "n_clicks"} in inputs
    # the picker's search and about line: one callback each
    for out in (
        f"{train.ID_TRAIN_ARCH}.options",
        f"{train.ARCH_PICKER.about}.children",
        f"{train.ID_TRAIN_KWARGS}.children",
    ):
        assert sum(out in o for o in outputs) == 1, out
    assert {"id": train.ID_TRAIN_ARCH, "property": "search_value"} in inputs
    assert {"id": train.FORM.submit, "property": "n_clicks"} in inputs
