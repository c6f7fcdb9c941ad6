"""The upload page: its layout, the form-to-fields functions, the figures and the named
callbacks that follow an import job, against the fake API of conftest.py.

The file itself is sent by assets/upload.js (a real browser: tests/browser/test_upload_page.py);
here the API's answer is handed to the callbacks the way upload.js hands it to Dash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import dash
import httpx
import pytest
from dash import dcc
from dash.development.base_component import Component

from frontend import client as client_module
from frontend import components, forms
from frontend.app import ASSETS_FOLDER, create_dash_app
from frontend.client import ApiClient, ApiError
from frontend.figures.upload import class_balance_bars, layer_sparsity_bars
from frontend.pages import upload

FakeApi = Any  # the fake_api / empty_api fixtures of conftest.py
CREATED = "2024-05-01T12:00:00Z"
CORRUPTIONS = ["gaussian_noise", "brightness"]
LAYERS = [
    {"name": "conv1", "kind": "Conv2d", "shape": [16, 3, 3, 3], "n_params": 432, "n_zero": 0,
     "sparsity": 0.0, "masked": False},
    {"name": "layer1.0.conv1", "kind": "Conv2d", "shape": [16, 16, 3, 3], "n_params": 2304,
     "n_zero": 2073, "sparsity": 2073 / 2304, "masked": True},
    {"name": "fc", "kind": "Linear", "shape": [5, 64], "n_params": 320, "n_zero": 160,
     "sparsity": 0.5, "masked": True},
]  # fmt: skip
SUMMARY = {
    "format": "npz",
    "n_train": 40,
    "n_test": 10,
    "input_shape": [3, 32, 32],
    "num_classes": 5,
    "class_names": ["airplane", "automobile", "bird", "cat", "deer"],
    "class_counts": {"train": [8, 8, 8, 8, 8], "test": [1, 2, 3, 4, 0]},
    "normalisation": {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "split": "train"},
    "warnings": ["1 classes have no test samples: deer"],
}
# GET /api/architectures?q= of the API: the built-ins first, then torchvision's and timm's
SEARCHABLE = [
    {"name": "digits_cnn", "doc": "Small CNN.", "defaults": {"num_classes": 10},
     "required": [], "source": "builtin"},
    {"name": "mlp", "doc": "Fully connected ReLU network.", "defaults": {"hidden": [128, 64]},
     "required": ["input_shape", "num_classes"], "source": "builtin"},
    {"name": "resnet20", "doc": "ResNet-20 for 32x32 images.", "defaults": {"num_classes": 10},
     "required": [], "source": "builtin"},
    {"name": "torchvision/resnet18", "doc": "ResNet-18 from Deep Residual Learning.",
     "defaults": {"num_classes": 1000}, "required": [], "source": "torchvision"},
    {"name": "timm/resnet18", "doc": "Constructs a ResNet-18 model.",
     "defaults": {"num_classes": 1000, "in_chans": 3}, "required": [], "source": "timm"},
    {"name": "timm/resnet50", "doc": "Constructs a ResNet-50 model.",
     "defaults": {"num_classes": 1000, "in_chans": 3}, "required": [], "source": "timm"},
    {"name": "timm/vit_tiny_patch16_224", "doc": "ViT-Tiny (Vit-Ti/16)",
     "defaults": {"num_classes": 1000, "in_chans": 3, "img_size": 224}, "required": [],
     "source": "timm"},
]  # fmt: skip


def architectures_page(entries: list[dict[str, Any]], params: httpx.QueryParams) -> dict[str, Any]:
    """The API's answer: every word of ``q`` in the name, a page of ``limit`` from ``offset``."""
    words = params.get("q", "").lower().split()
    hits = [a for a in entries if all(w in a["name"].lower() for w in words)]
    offset, limit = int(params.get("offset", 0)), int(params.get("limit", 50))
    data = hits[offset : offset + limit]
    return {"data": data, "count": len(data), "total": len(hits)}


def _job(job_id: int, kind: str, status: str, **values: Any) -> dict[str, Any]:
    job = {
        "id": job_id,
        "kind": kind,
        "spec": {},
        "status": status,
        "progress": 1.0 if status == "succeeded" else 0.4,
        "stage": "done" if status == "succeeded" else "checking keys and shapes",
        "error": None,
        "result": None,
        "created_at": CREATED,
        "started_at": CREATED,
        "finished_at": None,
        "heartbeat_at": CREATED,
    }
    job.update(values)
    return job


@dataclass
class UploadApi:
    """The conftest fake plus what only this page reads: architectures, corruptions, imports."""

    fake: FakeApi
    architectures: Any = None  # None: the API has no /api/architectures (404)
    searchable: bool = False  # whether it answers ?q=&limit=&offset= (else: the whole list)
    slow: bool = False  # whether its architectures take longer than the client waits
    comparisons_created: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in self.fake.errors or self.fake.down:
            return self.fake.handle(request)
        if request.method == "GET" and path == "/api/corruptions":
            self.fake.requests.append(request)
            return httpx.Response(200, json={"data": CORRUPTIONS, "severities": [1, 2, 3, 4, 5]})
        if request.method == "GET" and path == "/api/architectures":
            self.fake.requests.append(request)
            if self.slow:
                raise httpx.ReadTimeout("timed out", request=request)
            if self.architectures is None:
                return httpx.Response(404, json={"detail": "Not Found"})
            if isinstance(self.architectures, str):  # the dashboard's HTML for unknown paths
                return httpx.Response(200, text=self.architectures)
            if self.searchable:
                page = architectures_page(self.architectures, request.url.params)
                return httpx.Response(200, json=page)
            return httpx.Response(200, json={"data": self.architectures})
        if request.method == "POST" and path == "/api/jobs" and request.url.params.get("dry_run"):
            self.fake.requests.append(request)
            return httpx.Response(200, json={**json.loads(request.content), "jobs": 1})
        if request.method == "POST" and (m := re.fullmatch(r"/api/comparisons/(\d+)/models", path)):
            self.fake.requests.append(request)
            (comparison,) = [c for c in self.fake.comparisons if c["id"] == int(m[1])]
            comparison["model_b_ids"] += json.loads(request.content)["model_b_ids"]
            self.comparisons_created.append(comparison)  # what it became
            return httpx.Response(201, json={**comparison, "job_id": 99})
        if request.method == "POST" and path == "/api/comparisons":
            self.fake.requests.append(request)
            body = json.loads(request.content)
            if request.url.params.get("dry_run") == "true":
                return httpx.Response(200, json=body)
            comparison = {
                "id": 77,
                "name": "new",
                "dataset_id": 1,
                "model_a_id": body["model_a_id"],
                "model_b_ids": body["model_b_ids"],
                "created_at": CREATED,
            }
            self.comparisons_created.append(comparison)
            return httpx.Response(201, json=comparison)
        return self.fake.handle(request)

    def add_model_import(self, status: str, **values: Any) -> int:
        """An import_model job (id 10) and, when it succeeded, the model it registered (id 9)."""
        result = None
        if status == "succeeded":
            self.fake.models.append(
                {
                    **self.fake.models[0],
                    "id": 9,
                    "name": "resnet8-external.safetensors",
                    "parent_id": 1,
                    "pruning_method": "external",
                    "sparsity": 0.8,
                    "accuracy": 0.71,
                    "job_id": 10,
                }
            )
            result = {
                "model_id": 9,
                "architecture": "resnet8",
                "arch_kwargs": {"num_classes": 5},
                "format": "safetensors",
                "masks": "explicit",
                "sparsity": 0.8,
                "n_params": 1_000_000,
                "n_nonzero": 200_000,
                "layers": LAYERS,
                "accuracy": 0.71,
                "warnings": ["converted float64 tensors to float32"],
            }
        self.fake.jobs.append(_job(10, "import_model", status, result=result, **values))
        return 10

    def add_dataset_import(self, status: str, **values: Any) -> int:
        """An import_dataset job (id 11) and, when it succeeded, the dataset it registered (2)."""
        result = None
        if status == "succeeded":
            self.fake.datasets.append(
                {
                    **self.fake.datasets[0],
                    "id": 2,
                    "name": "tiny.npz",
                    "source": "upload:npz",
                    "params": {"summary": SUMMARY},
                    "n_train": 40,
                    "n_test": 10,
                    "job_id": 11,
                }
            )
            result = {"dataset_id": 2, "summary": SUMMARY}
        self.fake.jobs.append(_job(11, "import_dataset", status, result=result, **values))
        return 11


def _install(api: UploadApi) -> Iterator[UploadApi]:
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    try:
        yield api
    finally:
        client_module.reset()


@pytest.fixture
def api(fake_api: FakeApi) -> Iterator[UploadApi]:
    """The populated fake API with this page's endpoints (no architectures listing)."""
    yield from _install(UploadApi(fake_api))


@pytest.fixture
def search_api(fake_api: FakeApi) -> Iterator[UploadApi]:
    """The populated fake API whose architectures are searched by name (``?q=``)."""
    yield from _install(
        UploadApi(fake_api, architectures=[dict(a) for a in SEARCHABLE], searchable=True)
    )


def answer(kind: str, **body: Any) -> dict[str, Any]:
    """What upload.js puts into ``upload-<kind>-response`` for a 201 of the API."""
    full = {
        "kind": kind,
        "sha256": "ab" * 32,
        "size": 4620,
        "filename": "file.bin",
        "format": "safetensors" if kind == "model" else "zip",
        "job_id": None,
        "model_id": None,
        "dataset_id": None,
        "deduplicated": False,
    }
    full.update(body)
    return {"ok": True, "status": 201, "body": full, "filename": "file.bin", "size": 4620}


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


def ids(node: Any) -> list[Any]:
    return [c.id for c in walk(node) if isinstance(c, Component) and getattr(c, "id", None)]


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


# layout ------------------------------------------------------------------------------------------

STATIC_IDS = [
    value
    for name, value in vars(upload).items()
    if name.startswith("ID_")
    and not any(
        part in value
        for part in (
            "-file",  # the <input type=file> is created by upload.js
            "-status",
            "-error",
            "-dedup",
            "-success",
            "-sparsity",
            "-balance",
            "-prune-link",
            "-compare",
        )
    )
] + [
    upload.ID_MODEL_FILE_SLOT,
    upload.ID_MODEL_FILE_NAME,
    upload.ID_DATASET_FILE_SLOT,
    upload.ID_DATASET_FILE_NAME,
    upload.ID_MODEL_KWARGS_ERROR,
    upload.ID_MODEL_FORM_ERROR,
    upload.ID_DATASET_FORM_ERROR,
    upload.ID_DATASET_TEST_FRACTION_ERROR,
    upload.ID_DATASET_SEED_ERROR,
    # the stores of the server's check as the form is filled in (forms.register_validation)
    *(f"upload-{kind}-submit-{store}" for kind in upload.KINDS for store in ("stamp", "verdict")),
]


def test_layout_has_every_id_once(api: UploadApi) -> None:
    page = upload.layout()
    present = ids(page)
    assert len(present) == len(set(present)), "duplicate component ids"
    for component_id in STATIC_IDS:
        assert component_id.startswith("upload-")
        assert component_id in present, component_id
    assert len(STATIC_IDS) > 40


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_each_panel_tells_upload_js_where_to_post(api: UploadApi, kind: str) -> None:
    page = upload.layout()
    panel = by_id(page, f"upload-{kind}-panel")
    assert getattr(panel, "data-upload-kind") == kind
    assert getattr(panel, "data-upload-url") == f"/api/{kind}s/upload"
    zone = by_id(page, f"upload-{kind}-drop")
    assert getattr(zone, "data-upload-kind") == kind
    # the slot for the file input is empty: React never touches what upload.js puts there
    assert by_id(page, f"upload-{kind}-file-slot").children is None
    assert by_id(page, f"upload-{kind}-progress-row").hidden is True


def test_empty_state_explains_formats_and_refuses_pickled_models(api: UploadApi) -> None:
    page = upload.layout()
    model_words = text(by_id(page, upload.ID_MODEL_DROP))
    for words in (".safetensors", "state_dict", "torch.save(model)", "are refused", ".pt"):
        assert words in model_words
    assert "No file chosen yet." in model_words
    dataset_words = text(by_id(page, upload.ID_DATASET_DROP))
    for words in (".npz", "CIFAR-10", "CIFAR-10-C", "MNIST", "image folder"):
        assert words in dataset_words


def option_values(page: Any) -> list[Any]:
    return [o["value"] for o in by_id(page, upload.ID_MODEL_ARCH).options]


def test_without_an_architectures_listing_nothing_is_offered_until_searched(
    api: UploadApi,
) -> None:
    page = upload.layout()
    picker = by_id(page, upload.ID_MODEL_ARCH)
    assert isinstance(picker, dcc.Dropdown) and picker.searchable and picker.clearable
    assert picker.value is None  # blank: the checkpoint names its own architecture
    assert option_values(page) == []
    assert by_id(page, upload.ID_MODEL_ARCHS).data == []
    assert by_id(page, upload.ID_MODEL_ARCH_INFO).children == []
    assert "PruneScope checkpoint" in text(page)
    assert "/api/architectures" in api.fake.paths()


def test_a_dashboard_page_instead_of_a_listing_also_offers_nothing(api: UploadApi) -> None:
    api.architectures = "<!DOCTYPE html><html>dash</html>"
    assert option_values(upload.layout()) == []


def test_an_architectures_listing_is_used_when_the_api_has_one(api: UploadApi) -> None:
    api.architectures = ["resnet8", {"name": "vit", "doc": "ViT", "required": ["patch"]}]
    page = upload.layout()
    assert option_values(page) == ["resnet8", "vit"]
    archs = by_id(page, upload.ID_MODEL_ARCHS).data
    assert "Needs patch" in text(components.architecture_about("vit", archs))


def test_a_registry_still_loading_does_not_keep_the_form_from_showing(
    search_api: UploadApi,
) -> None:
    search_api.slow = True  # its first use imports timm and torchvision
    page = upload.layout()
    assert option_values(page) == []  # the form shows; the search works once it has loaded
    options, _ = components.search_architectures("resnet", None, [])
    assert options[0]["label"] == (
        "Search failed: cannot reach the PruneScope API at http://testserver: timed out"
    )


def test_the_picker_offers_the_builtins_then_the_servers_matches(search_api: UploadApi) -> None:
    page = upload.layout()
    # nothing typed: the registered architectures only, not the ~1,400 of timm and torchvision
    assert option_values(page) == ["digits_cnn", "mlp", "resnet20"]
    entries = by_id(page, upload.ID_MODEL_ARCHS).data
    options, shown = components.search_architectures("ResNet 18", None, entries)
    # the server's matches, in its order, each labelled with its source
    assert [o["value"] for o in options] == ["torchvision/resnet18", "timm/resnet18"]
    assert [o["label"] for o in options] == [
        "torchvision/resnet18 · torchvision",
        "timm/resnet18 · timm",
    ]
    assert options[1]["title"] == "Constructs a ResNet-18 model."
    assert shown == [
        a for a in SEARCHABLE if a["name"] in ("torchvision/resnet18", "timm/resnet18")
    ]
    searched = [r.url.params for r in search_api.fake.requests if r.url.path.endswith("tures")]
    assert searched[-1]["q"] == "ResNet 18" and searched[-1]["limit"] == "50"
    # once chosen, it is described and stays offered whatever is typed next, else the
    # dropdown would clear it
    about = text(components.architecture_about("timm/resnet18", shown))
    assert about.startswith("timm/resnet18  (timm)  — Constructs a ResNet-18 model.")
    assert "Set from the dataset unless given: num_classes, in_chans." in about
    options, kept = components.search_architectures("mlp", "timm/resnet18", shown)
    assert [o["value"] for o in options] == ["mlp", "timm/resnet18"]
    assert [a["name"] for a in kept] == ["mlp", "timm/resnet18"]
    options, kept = components.search_architectures(None, "timm/resnet18", kept)
    assert [o["value"] for o in options] == ["digits_cnn", "mlp", "resnet20", "timm/resnet18"]


def test_the_picker_says_when_there_are_more_matches_than_shown(search_api: UploadApi) -> None:
    search_api.architectures += [
        {"name": f"timm/resnet{i}x", "doc": "", "source": "timm"} for i in range(60)
    ]
    options, shown = components.search_architectures("resnet", None, [])
    assert len(shown) == components.ARCHITECTURE_SEARCH_LIMIT
    last = options[-1]
    assert last["disabled"] is True and last["value"] == components.ARCHITECTURE_NOTE
    assert last["label"] == "… 14 more match 'resnet': type more of the name"
    assert last["search"] == "resnet"  # the dropdown's own filter keeps the note
    assert not any(o.get("disabled") for o in options[:-1])


def test_a_failed_search_keeps_the_choice_and_says_why(search_api: UploadApi) -> None:
    entries = [dict(SEARCHABLE[1])]
    search_api.fake.errors["/api/architectures"] = (422, "q: NUL is not allowed")
    options, kept = components.search_architectures("x", "mlp", entries)
    assert [o["value"] for o in options] == ["mlp", components.ARCHITECTURE_NOTE]
    assert options[1]["label"] == "Search failed: q: NUL is not allowed"
    assert options[1]["disabled"] is True and kept == entries
    search_api.fake.down = True
    options, _ = components.search_architectures("x", None, entries)
    assert options[0]["label"].startswith("Search failed: cannot reach the PruneScope API")


def test_an_architecture_in_the_url_is_preselected(search_api: UploadApi) -> None:
    page = upload.layout(architecture="timm/resnet18", parent="1")
    assert by_id(page, upload.ID_MODEL_ARCH).value == "timm/resnet18"
    assert option_values(page) == ["digits_cnn", "mlp", "resnet20", "timm/resnet18"]
    assert [a["name"] for a in by_id(page, upload.ID_MODEL_ARCHS).data][-1] == "timm/resnet18"
    assert "Constructs a ResNet-18 model." in text(by_id(page, upload.ID_MODEL_ARCH_INFO))
    # a name no architecture has is not preselected
    page = upload.layout(architecture="timm/resnet")
    assert by_id(page, upload.ID_MODEL_ARCH).value is None
    assert option_values(page) == ["digits_cnn", "mlp", "resnet20"]
    assert by_id(upload.layout(architecture="mlp"), upload.ID_MODEL_ARCH).value == "mlp"


def test_the_model_panels_choices_go_into_the_url(search_api: UploadApi) -> None:
    search = upload.update_model_url("timm/resnet18", 1, None, "?dataset=1&x=y")
    assert search == "?architecture=timm%2Fresnet18&parent=1&x=y"
    query = dict(parse_qsl(search.lstrip("?")))
    page = upload.layout(**query)
    assert by_id(page, upload.ID_MODEL_ARCH).value == "timm/resnet18"
    assert by_id(page, upload.ID_MODEL_PARENT).value == 1
    # a URL that already says so is left alone: no history entry per render
    assert upload.update_model_url("timm/resnet18", 1, None, search) is dash.no_update
    assert upload.update_model_url(None, None, None, search) == "?x=y"


def test_parent_and_dataset_choices_come_from_the_api(api: UploadApi) -> None:
    page = upload.layout(parent="1", dataset="1")
    parent = by_id(page, upload.ID_MODEL_PARENT)
    assert [o["value"] for o in parent.options] == [1, 2, 3, 4]
    assert parent.options[0]["label"] == "#1 resnet8-cifar5 · resnet8 · 1M params · original"
    assert parent.options[2]["label"] == "#3 resnet8-gm90 · resnet8 · 1M params · 90% sparse"
    assert parent.value == 1
    dataset = by_id(page, upload.ID_MODEL_DATASET)
    assert dataset.options == [{"label": "#1 cifar5-mini · 5 classes, 3×32×32", "value": 1}]
    assert dataset.value == 1
    assert by_id(page, upload.ID_DATASET_CORRUPTION).options == CORRUPTIONS
    formats = [o["value"] for o in by_id(page, upload.ID_DATASET_FORMAT).options]
    assert formats == ["auto", "npz", "cifar10", "cifar10c", "mnist", "imagefolder"]


def test_models_are_listed_with_architecture_size_and_input_shape(api: UploadApi) -> None:
    api.fake.models[0].update(
        architecture="timm/resnet18", n_params=11_181_642, input_shape=[3, 32, 32], num_classes=5
    )
    label = by_id(upload.layout(), upload.ID_MODEL_PARENT).options[0]["label"]
    assert label == "#1 resnet8-cifar5 · timm/resnet18 · 11.2M params · 3×32×32 · original"
    card = upload.model_result(None, api.fake.models[0])
    assert "resnet8-cifar5 · timm/resnet18 · 11.2M params · 3×32×32" in text(card)
    # a row of an older API, or a model whose input is not known, says what it knows
    assert forms.model_architecture_summary({"architecture": "mlp"}) == "mlp"
    assert forms.model_architecture_summary({"n_params": 950, "input_shape": None}) == (
        "— · 950 params"
    )


def test_unknown_query_ids_are_not_preselected(api: UploadApi) -> None:
    page = upload.layout(parent="99", dataset="x")
    assert by_id(page, upload.ID_MODEL_PARENT).value is None
    assert by_id(page, upload.ID_MODEL_DATASET).value is None


def test_an_unreachable_api_is_explained(down_api: FakeApi) -> None:
    words = text(upload.layout())
    assert "Cannot reach the PruneScope API" in words


# form values -> fields ---------------------------------------------------------------------------


def test_model_fields_leave_blanks_out_and_send_kwargs_as_a_json_object() -> None:
    assert upload.model_fields() == {}
    assert upload.model_fields(
        architecture=" mlp ",
        arch_kwargs='{"input_shape": [64], "num_classes": 10}',
        name=" my net ",
        parent_id=3,
        dataset_id="1",
    ) == {
        "architecture": "mlp",
        "arch_kwargs": '{"input_shape": [64], "num_classes": 10}',
        "name": "my net",
        "parent_id": "3",
        "dataset_id": "1",
    }
    assert upload.model_fields(arch_kwargs=" {} ", name="  ") == {}


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"arch_kwargs": "{num_classes: 10}"}, "arch_kwargs", "not JSON"),
        ({"arch_kwargs": "[10]"}, "arch_kwargs", "dictionary"),
        ({"parent_id": "abc"}, "parent_id", "integer"),
        ({"dataset_id": 0}, "dataset_id", "greater than or equal to 1"),
        ({"parent_id": 7}, "parent_id", "parent model 7 does not exist"),
    ],
)
def test_the_server_names_what_is_wrong_with_a_checkpoints_fields(
    server: Any, form: dict[str, Any], field: str, words: str
) -> None:
    errors = forms.dry_run("import_model", upload.model_fields(**form)).errors
    assert list(errors) == [field]
    assert words in errors[field]


def test_dataset_fields_leave_auto_and_blanks_out() -> None:
    assert upload.dataset_fields() == {}
    assert upload.dataset_fields(fmt="auto", test_fraction="", seed=None) == {}
    assert upload.dataset_fields(
        fmt="cifar10c",
        name="c10c",
        test_fraction=0.25,
        seed=3,
        corruption="fog",
        severity=2,
    ) == {
        "format": "cifar10c",
        "name": "c10c",
        "test_fraction": "0.25",
        "seed": "3",
        "corruption": "fog",
        "severity": "2",
    }


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"fmt": "hdf5"}, "format", "'npz', 'cifar10'"),
        ({"test_fraction": 1}, "test_fraction", "less than 1"),
        ({"test_fraction": "half"}, "test_fraction", "valid number"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"seed": 1.5}, "seed", "integer"),
        ({"severity": 6}, "severity", "less than or equal to 5"),
    ],
)
def test_the_server_names_what_is_wrong_with_a_datasets_fields(
    server: Any, form: dict[str, Any], field: str, words: str
) -> None:
    errors = forms.dry_run("import_dataset", upload.dataset_fields(**form)).errors
    assert list(errors) == [field]
    assert words in errors[field]


def test_prepare_model_upload_writes_the_request_upload_js_sends(server: Any) -> None:
    server.post("/api/datasets", json={"builtin": "digits"})
    selected = {"name": "net.safetensors", "size": 4620}
    out = upload.prepare_model_upload(2, selected, "mlp", '{"num_classes": 4}', None, None, 1)
    assert out["request"] == {
        "fields": {"architecture": "mlp", "arch_kwargs": '{"num_classes": 4}', "dataset_id": "1"},
        "filename": "net.safetensors",
        "nonce": 2,
    }
    assert out["form_error"] is None and out["kwargs_error"] == ""


def test_prepare_model_upload_puts_errors_next_to_their_field(server: Any) -> None:
    out = upload.prepare_model_upload(1, {"name": "a.pt"}, "mlp", "[1]")
    assert out["request"] is dash.no_update
    assert "dictionary" in out["kwargs_error"]
    out = upload.prepare_model_upload(1, None, "mlp", "")
    assert out["request"] is dash.no_update
    assert "No file chosen" in text(out["form_error"])
    assert upload.prepare_model_upload(0)["request"] is dash.no_update
    # as the form is filled in, the same checks
    checked = upload.check_model_form(arch_kwargs="{x}")
    assert "not JSON" in checked["kwargs_error"] and checked["form_error"] is None
    checked = upload.check_model_form(parent_id=3)
    assert "parent model 3 does not exist" in text(checked["form_error"])


def test_pruned_from_without_an_architecture_passes_the_servers_check(server: Any) -> None:
    """Issue 18, bug 6: the server takes the original's architecture and its arguments; the
    form does not ask for one."""
    ds = server.post("/api/datasets", json={"builtin": "digits"}).json()
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
    job = server.post("/api/jobs", json={"kind": "train", "spec": spec}).json()
    parent = server.get(f"/api/models/{job['result']['model_id']}").json()
    assert upload.check_model_form(parent_id=parent["id"]) == {
        "form_error": None,
        "kwargs_error": "",
    }
    fields = upload.model_fields(parent_id=parent["id"])
    assert fields == {"parent_id": str(parent["id"])}  # no architecture sent
    filled = forms.dry_run("import_model", fields).spec
    assert filled is not None
    assert filled["architecture"] == "digits_cnn"
    assert filled["arch_kwargs"] == parent["arch_kwargs"]
    out = upload.prepare_model_upload(1, {"name": "p.pt"}, None, None, None, parent["id"])
    assert out["request"]["fields"] == fields and out["form_error"] is None


def test_pruned_from_says_the_architecture_is_the_originals(api: UploadApi) -> None:
    def said(node: Any) -> str:
        return " ".join(text(node).split())

    # (text() puts a space between the line's parts, the browser only where they have one)
    sentence = "Architecture from resnet8-cifar5 : resnet8 (its arguments too)"
    page = upload.layout(parent="1")
    assert said(by_id(page, upload.ID_MODEL_ARCH_FROM)) == sentence
    assert by_id(page, upload.ID_MODEL_ARCH).placeholder == "from the original: resnet8"
    page = upload.layout()
    assert text(by_id(page, upload.ID_MODEL_ARCH_FROM)) == ""
    assert by_id(page, upload.ID_MODEL_ARCH).placeholder == upload.ARCH_PLACEHOLDER
    # as "Pruned from" and the architecture change
    line, placeholder = upload.show_parent_architecture(1, None)
    assert said(line) == sentence and placeholder == "from the original: resnet8"
    assert '{"num_classes": 5}' in line.title  # its arguments, on hover
    assert said(upload.show_parent_architecture(1, "resnet8")[0]) == sentence
    assert upload.show_parent_architecture(None, None) == (None, upload.ARCH_PLACEHOLDER)
    assert upload.show_parent_architecture(None, "mlp") == (None, upload.ARCH_PLACEHOLDER)
    other = text(upload.show_parent_architecture(1, "mlp")[0])
    assert "resnet8-cifar5 is a resnet8" in other and "clear the architecture" in other
    failed, placeholder = upload.show_parent_architecture(99, None)
    assert "The architecture of model #99 could not be read" in text(failed)
    assert placeholder == upload.ARCH_PLACEHOLDER


def test_prepare_dataset_upload(server: Any) -> None:
    out = upload.prepare_dataset_upload(1, {"name": "d.npz"}, "npz", None, "0.3", 2, None, None)
    assert out["request"]["fields"] == {"format": "npz", "test_fraction": "0.3", "seed": "2"}
    assert out["test_fraction_error"] == "" and out["seed_error"] == ""
    out = upload.prepare_dataset_upload(1, {"name": "d.npz"}, "auto", None, 2, -1, None, 9)
    assert out["request"] is dash.no_update
    assert "less than 1" in out["test_fraction_error"]
    assert "greater than or equal to 0" in out["seed_error"]
    assert "severity" in text(out["form_error"])
    out = upload.prepare_dataset_upload(1, {}, "auto")
    assert "No file chosen" in text(out["form_error"])
    assert upload.check_dataset_form(test_fraction=0, seed=1)["test_fraction_error"] != ""


# renderers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0 B"), (999, "999 B"), (4620, "4.6 kB"), (2_900_000, "2.9 MB"), (3e9, "3.0 GB")],
)
def test_format_bytes(n: float, shown: str) -> None:
    assert upload.format_bytes(n) == shown


def test_selected_file_shows_name_and_size() -> None:
    assert text(upload.show_selected(None)) == "No file chosen yet."
    assert text(upload.show_selected({"name": "big.pt", "size": 2_900_000})) == ("big.pt  · 2.9 MB")


def test_architecture_info() -> None:
    from models.registry import model_info

    known = [model_info(name) for name in ("digits_cnn", "mlp", "resnet20")]
    words = text(components.architecture_about("mlp", known))
    assert "Needs input_shape, num_classes" in words and "hidden=[128, 64]" in words
    assert components.architecture_about("", known) == []
    assert components.architecture_about(None, known) == []
    assert "not a listed architecture" in text(components.architecture_about("vgg", known))


def test_layer_sparsity_figure_values_equal_the_input() -> None:
    fig = layer_sparsity_bars(LAYERS)
    (bar,) = fig.data
    assert list(bar.y) == ["conv1", "layer1.0.conv1", "fc"]
    assert list(bar.x) == [layer["sparsity"] for layer in LAYERS]
    assert [list(c) for c in bar.customdata] == [
        ["16×3×3×3", 0, 432],
        ["16×16×3×3", 2073, 2304],
        ["5×64", 160, 320],
    ]
    assert bar.orientation == "h"
    assert tuple(fig.layout.xaxis.range) == (0, 1)


def test_layer_sparsity_figure_without_layers_says_so() -> None:
    fig = layer_sparsity_bars([])
    assert not fig.data
    assert "no prunable" in fig.layout.annotations[0].text


def test_class_balance_figure_values_equal_the_input() -> None:
    fig = class_balance_bars(SUMMARY["class_names"], SUMMARY["class_counts"])
    assert [t.name for t in fig.data] == ["train", "test"]
    assert list(fig.data[0].y) == [8, 8, 8, 8, 8]
    assert list(fig.data[1].y) == [1, 2, 3, 4, 0]
    assert list(fig.data[1].x) == SUMMARY["class_names"]
    # an evaluation-only set (CIFAR-10-C) has no train bars
    only_test = class_balance_bars(["a", "b"], {"train": [], "test": [5, 5]})
    assert [t.name for t in only_test.data] == ["test"]
    with pytest.raises(ValueError, match="one test count per class"):
        class_balance_bars(["a", "b"], {"test": [1]})


# following the import job ------------------------------------------------------------------------


def test_poll_without_an_answer_is_idle(api: UploadApi) -> None:
    assert upload.poll_model_upload(None, None) == ([], True, dash.no_update)
    assert api.fake.requests == []


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (413, "The file is too large"),
        (422, "The file was refused"),
        (503, "The job queue is down"),
        (0, "The upload did not reach the server"),
        (500, "The upload failed (500)"),
    ],
)
def test_a_refused_upload_shows_the_apis_detail_verbatim(
    api: UploadApi, status: int, title: str
) -> None:
    detail = "Upload too large: the limit is 100 bytes (0 MiB); set PRUNESCOPE_MAX_UPLOAD_BYTES"
    panel, stop, options = upload.poll_model_upload(
        None, {"ok": False, "status": status, "detail": detail}
    )
    assert stop is True and options is dash.no_update
    box = by_id(panel, upload.ID_MODEL_ERROR)
    assert title in text(box) and detail in text(box)


def test_no_file_chosen_in_the_browser(api: UploadApi) -> None:
    response = {"ok": False, "status": 0, "reason": "no-file", "detail": "Drop a file."}
    panel, _, _ = upload.poll_dataset_upload(None, response)
    assert "No file chosen" in text(by_id(panel, upload.ID_DATASET_ERROR))


def test_a_running_import_shows_progress_and_keeps_polling(api: UploadApi) -> None:
    job_id = api.add_model_import("running")
    panel, stop, options = upload.poll_model_upload(None, answer("model", job_id=job_id))
    assert stop is False and options is dash.no_update
    assert by_id(panel, upload.ID_MODEL_STATUS).children == "running"
    assert "checking keys and shapes" in text(panel)
    assert "/api/jobs/10" in api.fake.paths()


def test_a_failed_import_shows_the_jobs_error_verbatim(api: UploadApi) -> None:
    error = "CheckpointError: the weights do not fit mlp with {}: 2 missing keys: 'fc.weight'"
    job_id = api.add_model_import("failed", error=error)
    panel, stop, options = upload.poll_model_upload(3, answer("model", job_id=job_id))
    assert stop is True and options is dash.no_update
    box = by_id(panel, upload.ID_MODEL_ERROR)
    assert "The checkpoint was not accepted" in text(box)
    assert error in text(box)
    assert not [c for c in walk(panel) if getattr(c, "id", None) == upload.ID_MODEL_SUCCESS]


def test_a_succeeded_import_shows_the_model_and_its_layers(api: UploadApi) -> None:
    job_id = api.add_model_import("succeeded")
    panel, stop, options = upload.poll_model_upload(5, answer("model", job_id=job_id))
    assert stop is True
    card = by_id(panel, upload.ID_MODEL_SUCCESS)
    words = text(card)
    for expected in ("Model #9 registered", "safetensors", "explicit", "80.0%", "71.0%"):
        assert expected in words
    assert "converted float64 tensors to float32" in words  # the import's warnings
    graph = by_id(card, upload.ID_MODEL_SPARSITY)
    assert list(graph.figure.data[0].x) == [layer["sparsity"] for layer in LAYERS]
    assert by_id(card, upload.ID_MODEL_PRUNE_LINK).href == "/prune?model=9"
    assert "model #1" in by_id(card, upload.ID_MODEL_COMPARE).children
    # the new model can now be picked as a parent
    assert 9 in [o["value"] for o in options]


def test_an_original_offers_no_comparison(api: UploadApi) -> None:
    job_id = api.add_model_import("succeeded")
    api.fake.models[-1]["parent_id"] = None
    panel, _, _ = upload.poll_model_upload(5, answer("model", job_id=job_id))
    assert upload.ID_MODEL_COMPARE not in ids(panel)


def test_a_duplicate_names_the_existing_model_and_shows_its_first_import(api: UploadApi) -> None:
    api.add_model_import("succeeded")
    panel, stop, _ = upload.poll_model_upload(None, answer("model", model_id=9, deduplicated=True))
    assert stop is True
    assert "Already uploaded as model #9" in text(by_id(panel, upload.ID_MODEL_DEDUP))
    card = by_id(panel, upload.ID_MODEL_SUCCESS)
    # the layers come from the import job that registered it first
    assert list(by_id(card, upload.ID_MODEL_SPARSITY).figure.data[0].y)[-1] == "fc"
    assert not [r for r in api.fake.requests if r.method == "POST"]


def test_a_duplicate_without_its_first_import_shows_the_row(api: UploadApi) -> None:
    panel, _, _ = upload.poll_model_upload(None, answer("model", model_id=2, deduplicated=True))
    card = by_id(panel, upload.ID_MODEL_SUCCESS)
    assert "Model #2 registered" in text(card) and "50.0%" in text(card)
    assert "Per-layer sparsity is not known" in text(card)


def test_a_succeeded_dataset_import_shows_sizes_and_class_balance(api: UploadApi) -> None:
    job_id = api.add_dataset_import("succeeded")
    panel, stop, options = upload.poll_dataset_upload(2, answer("dataset", job_id=job_id))
    assert stop is True
    card = by_id(panel, upload.ID_DATASET_SUCCESS)
    words = text(card)
    for expected in ("Dataset #2 registered", "tiny.npz", "npz", "40 / 10", "3×32×32"):
        assert expected in words
    assert "no test samples: deer" in words
    balance = by_id(card, upload.ID_DATASET_BALANCE).figure
    assert [list(t.y) for t in balance.data] == [[8, 8, 8, 8, 8], [1, 2, 3, 4, 0]]
    # the model panel can now name it as a checkpoint's dataset
    assert [o["value"] for o in options] == [1, 2]


def test_a_failed_dataset_import_and_a_duplicate(api: UploadApi) -> None:
    job_id = api.add_dataset_import("failed", error="DatasetFormatError: the npz has X but not y")
    panel, _, _ = upload.poll_dataset_upload(None, answer("dataset", job_id=job_id))
    box = by_id(panel, upload.ID_DATASET_ERROR)
    assert "The dataset was not accepted" in text(box)
    assert "DatasetFormatError: the npz has X but not y" in text(box)

    api.fake.datasets[0]["params"] = {"summary": SUMMARY}
    panel, stop, _ = upload.poll_dataset_upload(
        None, answer("dataset", dataset_id=1, deduplicated=True)
    )
    assert stop is True
    assert "Already uploaded as dataset #1" in text(panel)
    balance = by_id(panel, upload.ID_DATASET_BALANCE).figure  # from the row's stored summary
    assert list(balance.data[1].y) == [1, 2, 3, 4, 0]


def test_an_unreachable_api_while_polling_keeps_polling(api: UploadApi) -> None:
    job_id = api.add_model_import("running")
    api.fake.down = True
    panel, stop, _ = upload.poll_model_upload(1, answer("model", job_id=job_id))
    assert stop is False
    assert "Cannot reach the PruneScope API" in text(panel)


# Issue 18: the upload joins its original's latest comparison (it used to get one of its own).
def test_compare_with_parent_adds_the_upload_to_the_originals_comparison(api: UploadApi) -> None:
    job_id = api.add_model_import("succeeded")
    link, disabled = upload.compare_with_parent(1, answer("model", job_id=job_id))
    assert api.comparisons_created[0]["id"] == 1  # the original's comparison
    assert api.comparisons_created[0]["model_a_id"] == 1
    assert api.comparisons_created[0]["model_b_ids"] == [2, 3, 9]
    assert disabled is True
    assert by_id(link, f"{upload.ID_MODEL_COMPARE}-link").href == "/compare?id=1&b=9"
    assert upload.compare_with_parent(0, None) == (dash.no_update, dash.no_update)


def test_compare_with_parent_creates_a_comparison_when_the_original_has_none(
    api: UploadApi,
) -> None:
    api.fake.comparisons.clear()
    job_id = api.add_model_import("succeeded")
    link, _ = upload.compare_with_parent(1, answer("model", job_id=job_id))
    assert api.comparisons_created[0]["model_b_ids"] == [9]
    assert by_id(link, f"{upload.ID_MODEL_COMPARE}-link").href == "/compare?id=77&b=9"


def test_compare_shows_the_apis_refusal(api: UploadApi) -> None:
    api.add_model_import("succeeded")
    api.fake.errors["/api/comparisons/1/models"] = (422, "Model 9 has no analysis yet")
    box, disabled = upload.compare_with_parent(1, answer("model", model_id=9, deduplicated=True))
    assert "Model 9 has no analysis yet" in text(box) and disabled is False


# client helpers ----------------------------------------------------------------------------------


def test_client_upload_helpers(api: UploadApi) -> None:
    assert ApiClient.upload_path("model") == "/api/models/upload"
    assert ApiClient.upload_path("dataset") == "/api/datasets/upload"
    with pytest.raises(ValueError, match="kind='checkpoint'"):
        ApiClient.upload_path("checkpoint")  # type: ignore[arg-type]
    client = client_module.get_client()
    assert client.list_corruptions() == CORRUPTIONS
    with pytest.raises(ApiError) as exc:
        client.list_architectures()
    assert exc.value.status == 404
    # an older API lists them all, some as bare names: searched and paged here
    api.architectures = ["mlp", {"name": "vit", "doc": "ViT"}, "vit_small"]
    assert client.list_architectures() == {
        "data": [{"name": "mlp"}, {"name": "vit", "doc": "ViT"}, {"name": "vit_small"}],
        "count": 3,
        "total": 3,
    }
    assert client.list_architectures(q="VIT", limit=1, offset=1) == {
        "data": [{"name": "vit_small"}],
        "count": 1,
        "total": 2,
    }
    # the API's own search and paging, asked with q, limit and offset
    api.architectures, api.searchable = [dict(a) for a in SEARCHABLE], True
    page = client.list_architectures(q="resnet", limit=2, offset=1)
    assert [a["name"] for a in page["data"]] == ["torchvision/resnet18", "timm/resnet18"]
    assert (page["count"], page["total"]) == (2, 4)
    params = api.fake.requests[-1].url.params
    assert dict(params) == {"q": "resnet", "limit": "2", "offset": "1"}
    assert client.list_architectures()["total"] == len(SEARCHABLE)
    assert "q" not in api.fake.requests[-1].url.params  # nothing typed: no q at all


# through the app ---------------------------------------------------------------------------------


def test_upload_page_is_routed_linked_and_wired(api: UploadApi) -> None:
    app = create_dash_app("http://testserver", transport=httpx.MockTransport(api.handle))
    assert "/upload" in [page["path"] for page in dash.page_registry.values()]
    layout = app.layout() if callable(app.layout) else app.layout
    links = [c for c in walk(layout) if isinstance(c, dcc.Link)]
    assert ("Upload", "/upload") in [(link.children, link.href) for link in links]
    client = app.server.test_client()
    assert client.get("/upload").status_code == 200
    deps = client.get("/_dash-dependencies").get_json()
    clientside = {
        d["output"]: d["clientside_function"] for d in deps if d.get("clientside_function")
    }
    for kind in ("model", "dataset"):
        assert clientside[f"upload-{kind}-response.data"] == {
            "namespace": upload.CLIENTSIDE_NAMESPACE,
            "function_name": kind,
        }
    outputs = " ".join(d["output"] for d in deps)
    for out in (upload.ID_MODEL_RESULT, upload.ID_DATASET_RESULT, upload.ID_MODEL_REQUEST):
        assert out in outputs
    # the picker's search and about line, and the URL, each written by one callback
    for out in (
        f"{upload.ID_MODEL_ARCH}.options",
        f"{upload.ID_MODEL_ARCHS}.data",
        f"{upload.ID_MODEL_ARCH_INFO}.children",
        f"{upload.ID_URL}.search",
    ):
        assert outputs.count(out) == 1, out
    inputs = [i for d in deps for i in d["inputs"]]
    assert {"id": upload.ID_MODEL_ARCH, "property": "search_value"} in inputs
    # the script that sends the files is served with the page
    script = client.get("/assets/upload.js")
    assert script.status_code == 200
    assert b"upload-" in script.data


def test_upload_js_implements_the_names_the_page_relies_on() -> None:
    source = (Path(ASSETS_FOLDER) / "upload.js").read_text()
    assert f"dc.{upload.CLIENTSIDE_NAMESPACE} = {{" in source
    assert re.search(r"\bmodel: function", source) and re.search(r"\bdataset: function", source)
    for part in ("file", "file-slot", "selected", "response", "progress", "progress-text",
                 "progress-row", "submit", "panel"):  # fmt: skip
        assert f'idOf(kind, "{part}")' in source or f'"{part}"' in source, part
    assert "xhr.upload.onprogress" in source and "new FormData()" in source
    assert "dcc.Upload" not in source and "readAsDataURL" not in source
