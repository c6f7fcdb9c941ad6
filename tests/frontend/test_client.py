"""ApiClient against an httpx.MockTransport: URLs, params, bodies and errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from frontend import client as client_module
from frontend.client import ApiClient, ApiError, ApiUnreachableError

Handler = Callable[[httpx.Request], httpx.Response]


def make(handler: Handler, base_url: str = "http://testserver") -> tuple[ApiClient, list]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return ApiClient(base_url, transport=httpx.MockTransport(record)), seen


def ok(body: object, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize(
    "base_url", ["http://testserver", "http://testserver/", "http://testserver/api"]
)
def test_base_url_with_or_without_api_suffix(base_url: str) -> None:
    api, seen = make(
        ok({"status": "ok", "version": "0.1", "database": "x", "executor": "y"}), base_url
    )
    assert api.health()["status"] == "ok"
    assert str(seen[0].url) == "http://testserver/api/health"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("list_datasets", "/api/datasets"),
        ("list_models", "/api/models"),
        ("list_jobs", "/api/jobs"),
        ("list_comparisons", "/api/comparisons"),
    ],
)
def test_lists_unwrap_data(method: str, path: str) -> None:
    api, seen = make(ok({"data": [{"id": 1}, {"id": 2}], "count": 2}))
    assert getattr(api, method)() == [{"id": 1}, {"id": 2}]
    assert seen[0].method == "GET" and seen[0].url.path == path


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get_dataset", "/api/datasets/7"),
        ("get_model", "/api/models/7"),
        ("get_job", "/api/jobs/7"),
        ("get_analysis", "/api/analyses/7"),
        ("get_comparison", "/api/comparisons/7"),
    ],
)
def test_getters_use_the_id_in_the_path(method: str, path: str) -> None:
    api, seen = make(ok({"id": 7}))
    assert getattr(api, method)(7) == {"id": 7}
    assert seen[0].url.path == path


def test_list_analyses_filters_are_query_params_and_none_is_omitted() -> None:
    api, seen = make(ok({"data": [], "count": 0}))
    api.list_analyses(model_id=3)
    api.list_analyses(model_id=3, dataset_id=1)
    api.list_analyses()
    assert dict(seen[0].url.params) == {"model_id": "3"}
    assert dict(seen[1].url.params) == {"model_id": "3", "dataset_id": "1"}
    assert dict(seen[2].url.params) == {}


def test_analysis_samples_page() -> None:
    page = {"data": [], "count": 0, "offset": 100, "limit": 100}
    api, seen = make(ok(page))
    assert api.list_analysis_samples(5, offset=100) == page
    assert seen[0].url.path == "/api/analyses/5/samples"
    assert dict(seen[0].url.params) == {"offset": "100", "limit": "100"}


def test_comparison_view_passes_b_only_when_given() -> None:
    api, seen = make(ok({"comparison": {"id": 1}}))
    api.get_comparison_view(1)
    api.get_comparison_view(1, b=3)
    assert seen[0].url.path == "/api/comparisons/1/view"
    assert dict(seen[0].url.params) == {}
    assert dict(seen[1].url.params) == {"b": "3"}


def test_flips_params() -> None:
    api, seen = make(ok({"data": [], "count": 0, "offset": 50, "limit": 50}))
    api.list_comparison_flips(1, b=3, category="correct_to_wrong", label=4, offset=50)
    assert seen[0].url.path == "/api/comparisons/1/flips"
    assert dict(seen[0].url.params) == {
        "b": "3",
        "category": "correct_to_wrong",
        "label": "4",
        "offset": "50",
        "limit": "50",
    }
    api.list_comparison_flips(1)
    assert dict(seen[1].url.params) == {"offset": "0", "limit": "50"}


def test_flips_label_zero_is_sent() -> None:
    api, seen = make(ok({"data": [], "count": 0, "offset": 0, "limit": 50}))
    api.list_comparison_flips(1, label=0)
    assert seen[0].url.params["label"] == "0"


def test_flips_rejects_unknown_category() -> None:
    api, seen = make(ok({}))
    with pytest.raises(ValueError, match="category='flipped'"):
        api.list_comparison_flips(1, category="flipped")  # type: ignore[arg-type]
    assert seen == []


def test_create_job_posts_kind_and_spec() -> None:
    job = {"id": 9, "kind": "prune", "status": "queued"}
    api, seen = make(ok(job, 201))
    assert api.create_job("prune", {"model_id": 1, "method": "global_magnitude"}) == job
    assert seen[0].method == "POST" and seen[0].url.path == "/api/jobs"
    assert json.loads(seen[0].content) == {
        "kind": "prune",
        "spec": {"model_id": 1, "method": "global_magnitude"},
    }


def test_404_raises_api_error_with_detail() -> None:
    api, _ = make(ok({"detail": "Comparison not found"}, 404))
    with pytest.raises(ApiError) as info:
        api.get_comparison_view(99)
    assert info.value.status == 404
    assert info.value.detail == "Comparison not found"
    assert "404" in str(info.value)


def test_422_validation_list_detail_is_flattened() -> None:
    body = {"detail": [{"loc": ["query", "b"], "msg": "Input should be a valid integer"}]}
    api, _ = make(ok(body, 422))
    with pytest.raises(ApiError) as info:
        api.get_comparison_view(1, b=3)
    assert info.value.status == 422
    assert info.value.detail == "query.b: Input should be a valid integer"


def test_non_json_error_body() -> None:
    api, _ = make(lambda request: httpx.Response(500, text="Internal Server Error"))
    with pytest.raises(ApiError) as info:
        api.list_models()
    assert (info.value.status, info.value.detail) == (500, "Internal Server Error")


def test_connection_refused_is_an_unreachable_api_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    api, _ = make(refuse)
    with pytest.raises(ApiUnreachableError) as info:
        api.list_models()
    assert isinstance(info.value, ApiError)
    assert info.value.status == 0
    assert "http://testserver" in info.value.detail


def test_dataset_image_path() -> None:
    assert ApiClient.dataset_image_path(1, "test", 42) == "/api/datasets/1/images/test/42.png"
    with pytest.raises(ValueError, match="split='val'"):
        ApiClient.dataset_image_path(1, "val", 0)  # type: ignore[arg-type]


def test_configure_and_get_client() -> None:
    client_module.reset()
    with pytest.raises(RuntimeError, match="configure"):
        client_module.get_client()
    first = client_module.configure("http://a")
    second = client_module.configure("http://b", transport=httpx.MockTransport(ok({})))
    assert client_module.get_client() is second is not first
    assert second.base_url == "http://b"
    client_module.reset()


def _keys(typed: type) -> set[str]:
    return set(typed.__required_keys__) | set(typed.__optional_keys__)  # type: ignore[attr-defined]


def test_architecture_and_model_types_are_the_apis(client) -> None:
    """The TypedDicts the picker and the model lists read, against /api/openapi.json."""
    from frontend.client import ArchitecturePublic, ArchitecturesPage, ModelPublic

    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert _keys(ArchitecturePublic) == set(schemas["ArchitecturePublic"]["properties"])
    assert _keys(ArchitecturesPage) == set(schemas["ArchitecturesPublic"]["properties"])
    assert {"input_shape", "num_classes", "n_params"} <= _keys(ModelPublic)
    assert {"input_shape", "num_classes", "n_params"} <= set(schemas["ModelPublic"]["properties"])


def test_list_architectures_searches_the_real_registry(client) -> None:
    api = ApiClient("http://testserver")
    api._http.close()
    api._http = client  # the TestClient is an httpx.Client bound to the app
    page = api.list_architectures(q="ResNet 18", limit=3)
    assert page["count"] == len(page["data"]) == 3 and page["total"] > 3
    names = [a["name"] for a in page["data"]]
    assert names[0] == "torchvision/resnet18"  # torchvision's before timm's
    assert all("resnet" in n and "18" in n for n in names)
    first = api.list_architectures()
    assert [a["name"] for a in first["data"][:3]] == ["digits_cnn", "mlp", "resnet20"]
    assert first["data"][0]["source"] == "builtin" and first["count"] == 50
    timm = api.list_architectures(q="timm/resnet18", limit=200)["data"]
    entry = next(a for a in timm if a["name"] == "timm/resnet18")
    assert entry["source"] == "timm" and entry["doc"]
