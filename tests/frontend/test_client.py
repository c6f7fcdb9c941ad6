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


# dry runs and field errors ----------------------------------------------------------------
DRY_RUN_422 = {
    "detail": [
        {"loc": ["body", "spec", "sparsity"], "msg": "should be in [0, 1)", "type": "value_error"},
        {"loc": ["body", "spec", "sparsity"], "msg": "a second message", "type": "value_error"},
        {"loc": ["body", "spec", "finetune", "epochs"], "msg": "too many", "type": "value_error"},
        {"loc": ["body", "spec"], "msg": "unknown method 'x'", "type": "value_error"},
        {"loc": ["body", "model_b_ids", 0], "msg": "not a pruned model", "type": "value_error"},
        "not a dict",
    ]
}


def test_field_errors_map_each_spec_path_to_its_first_message() -> None:
    response = httpx.Response(422, json=DRY_RUN_422)
    assert client_module.field_errors(response) == {
        "sparsity": "should be in [0, 1)",
        "finetune.epochs": "too many",
        "": "unknown method 'x'",
        "model_b_ids.0": "not a pruned model",
    }
    assert client_module.field_errors(httpx.Response(404, json={"detail": "Not found"})) == {}
    assert client_module.field_errors(httpx.Response(500, text="oops")) == {}
    assert client_module.field_errors(httpx.Response(422, json=["a", "list"])) == {}


def test_validate_job_posts_a_dry_run_and_a_refusal_carries_field_errors() -> None:
    normalised = {"kind": "prune", "spec": {"model_id": 1, "sparsity": 0.5, "seed": 0}}
    api, seen = make(ok(normalised))
    assert api.validate_job("prune", {"model_id": 1, "sparsity": 0.5}) == normalised
    assert (seen[0].method, seen[0].url.path) == ("POST", "/api/jobs")
    assert dict(seen[0].url.params) == {"dry_run": "true"}
    assert json.loads(seen[0].content) == {
        "kind": "prune",
        "spec": {"model_id": 1, "sparsity": 0.5},
    }
    api, _ = make(ok(DRY_RUN_422, 422))
    with pytest.raises(ApiError) as info:
        api.validate_job("prune", {"model_id": 1, "sparsity": 2})
    assert info.value.status == 422
    assert info.value.field_errors["sparsity"] == "should be in [0, 1)"
    assert info.value.detail.startswith("body.spec.sparsity: should be in [0, 1)")


def test_validate_comparison_sends_the_body_create_comparison_sends() -> None:
    api, seen = make(ok({"id": 4, "model_a_id": 1, "model_b_ids": [2, 3]}))
    options = {"name": "n", "corruptions": ["fog"], "embedding": "pca", "severities": None}
    api.create_comparison(1, [2, 3], 7, **options)
    api.validate_comparison(1, [2, 3], 7, **options)
    api.validate_comparison(1, [2])
    create, dry, bare = seen
    assert create.url.params.get("dry_run") is None and dict(dry.url.params) == {"dry_run": "true"}
    assert dry.url.path == create.url.path == "/api/comparisons"
    assert (
        json.loads(dry.content)
        == json.loads(create.content)
        == {
            "model_a_id": 1,
            "model_b_ids": [2, 3],
            "dataset_id": 7,
            "name": "n",
            "corruptions": ["fog"],
            "embedding": "pca",
        }
    )
    assert json.loads(bare.content) == {"model_a_id": 1, "model_b_ids": [2]}
    api, _ = make(ok(DRY_RUN_422, 422))
    with pytest.raises(ApiError) as info:
        api.validate_comparison(1, [1])
    assert info.value.field_errors["model_b_ids.0"] == "not a pruned model"


def test_scripts_clients_carry_field_errors_too() -> None:
    from frontend.client import RestClient

    api = RestClient("http://t", transport=httpx.MockTransport(ok(DRY_RUN_422, 422)))
    with pytest.raises(ApiError) as info:
        api.validate_job("train", {})
    assert info.value.field_errors[""] == "unknown method 'x'"


# paging ----------------------------------------------------------------------------------------
def test_pages_follow_offset_until_the_count_or_an_empty_page() -> None:
    rows = list(range(5))

    def serve(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        short = request.url.params.get("short") == "1"  # a page short of the count, then none
        data = [] if short and offset else rows[offset : offset + limit]
        return httpx.Response(200, json={"data": data, "count": len(rows) + 10 * short})

    api, seen = make(serve)
    got = [r for page in api.pages("/api/x", {"label": 1}, limit=2) for r in page["data"]]
    assert got == rows
    assert [(r.url.params["offset"], r.url.params["label"]) for r in seen] == [
        ("0", "1"),
        ("2", "1"),
        ("4", "1"),
    ]
    seen.clear()
    assert [len(p["data"]) for p in api.pages("/api/x", {"short": 1}, limit=2)] == [2, 0]
    assert len(seen) == 2


def test_pages_of_architectures_stop_at_their_total() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        names = [{"name": f"a{i}"} for i in range(offset, min(offset + 2, 3))]
        return httpx.Response(200, json={"data": names, "count": len(names), "total": 3})

    api, seen = make(serve)
    pages = list(api.pages("/api/architectures", {"q": "a"}, limit=2))
    assert [a["name"] for p in pages for a in p["data"]] == ["a0", "a1", "a2"] and len(seen) == 2


def test_table_columns_are_merged_over_pages_and_the_functions_are_the_methods() -> None:
    n = 25_000

    def serve(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        assert request.url.params["format"] == "columns"
        part = list(range(n))[offset : offset + limit]
        names = request.url.params.get_list("columns") or ["index", "label"]
        return httpx.Response(
            200,
            json={
                "count": n,
                "offset": offset,
                "limit": limit,
                "column_names": names,
                "columns": {c: part for c in names},
            },
        )

    api, seen = make(serve)
    table = client_module.get_analysis_table_columns(api, 3, columns=["index"], label=2)
    assert table == api.get_analysis_table_columns(3, columns=["index"], label=2)
    assert table == {"index": list(range(n))}
    assert [r.url.params["offset"] for r in seen[:3]] == ["0", "10000", "20000"]
    assert seen[0].url.params["label"] == "2" and seen[0].url.path == "/api/analyses/3/table"
    regions = api.get_region_table_columns(1, 2, "segments")
    assert set(regions) == {"index", "label"} and len(regions["label"]) == n
    assert seen[-1].url.path == "/api/comparisons/1/regions/2/table"
    assert seen[-1].url.params["which"] == "segments"
    with pytest.raises(ValueError, match="which='x'"):
        api.get_region_table_columns(1, 2, "x")  # type: ignore[arg-type]


def test_dry_runs_against_the_real_api(client) -> None:
    api = ApiClient("http://testserver")
    api._http.close()
    api._http = client  # the TestClient is an httpx.Client bound to the app
    with pytest.raises(ApiError) as refused:
        api.validate_comparison(999, [998], name="x")
    assert refused.value.status == 422
    assert refused.value.field_errors == {
        "model_a_id": "model 999 does not exist",
        "model_b_ids.0": "model 998 does not exist",
    }
    ds = client.post("/api/datasets", json={"builtin": "blobs"}).json()
    answer = api.validate_job("train", {"dataset_id": ds["id"], "architecture": "mlp"})
    assert (answer["kind"], answer["jobs"], answer["spec"]["dataset_id"]) == ("train", 1, ds["id"])
    assert api.list_jobs() == []  # nothing was written
