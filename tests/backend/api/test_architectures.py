"""GET /api/architectures: the architecture registry as the dashboard's pickers read it."""

from __future__ import annotations

import json
import subprocess
import sys

from models import list_models, model_info
from models.registry import search


def test_architectures_endpoint_lists_builtins_first(client):
    response = client.get("/api/architectures")
    assert response.status_code == 200
    body = response.json()
    builtins = [n for n in list_models() if n != "onnx"]
    names = [a["name"] for a in body["data"]]
    assert names[: len(builtins)] == builtins
    assert body["count"] == len(body["data"]) == 50  # the default page
    assert body["total"] == search("", limit=1)[1] > 1000  # timm alone has ~1,300
    for entry in body["data"]:
        assert set(entry) == {"name", "doc", "defaults", "required", "source"}
        # the registry's own description, JSON-ready (tuples became lists)
        assert entry == model_info(entry["name"])
        assert entry["doc"] and "\n" not in entry["doc"]


def test_search_and_paging(client):
    body = client.get("/api/architectures", params={"q": "resnet18", "limit": 200}).json()
    names = [a["name"] for a in body["data"]]
    assert "timm/resnet18" in names and "torchvision/resnet18" in names
    assert all("resnet18" in n for n in names)
    assert body["total"] == len(names)
    by_name = {a["name"]: a for a in body["data"]}
    assert by_name["timm/resnet18"]["source"] == "timm"
    assert by_name["torchvision/resnet18"]["source"] == "torchvision"
    page1 = client.get("/api/architectures", params={"q": "vit", "limit": 3}).json()
    page2 = client.get("/api/architectures", params={"q": "vit", "limit": 3, "offset": 3}).json()
    assert page1["total"] == page2["total"] > 6
    assert not {a["name"] for a in page1["data"]} & {a["name"] for a in page2["data"]}
    none = client.get("/api/architectures", params={"q": "no such network"}).json()
    assert none == {"data": [], "count": 0, "total": 0}


def test_paging_limits_are_validated(client):
    assert client.get("/api/architectures", params={"limit": 0}).status_code == 422
    assert client.get("/api/architectures", params={"limit": 201}).status_code == 422
    assert client.get("/api/architectures", params={"offset": -1}).status_code == 422


def test_architectures_describe_their_keyword_arguments(client):
    body = client.get("/api/architectures", params={"q": "digits_cnn"}).json()
    by_name = {a["name"]: a for a in body["data"]}
    assert by_name["digits_cnn"]["defaults"] == {"num_classes": 10, "in_channels": 1}
    assert by_name["digits_cnn"]["required"] == []
    mlp = client.get("/api/architectures", params={"q": "mlp"}).json()["data"][0]
    assert mlp["name"] == "mlp" and mlp["source"] == "builtin"
    assert mlp["required"] == ["input_shape", "num_classes"]
    assert mlp["defaults"] == {"hidden": [128, 64]}


def test_architectures_are_in_the_openapi_schema_under_their_tag(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    operation = paths["/api/architectures"]["get"]
    assert operation["tags"] == ["architectures"]
    assert operation["operationId"].startswith("list_architectures")
    params = {p["name"] for p in operation["parameters"]}
    assert params == {"q", "limit", "offset"}


def test_importing_the_router_does_not_import_torch():
    code = (
        "import sys\n"
        "import backend.api.routes.architectures\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_listing_is_built_outside_the_api_process_and_cached_on_disk(client, settings):
    from backend.api.catalogue import catalogue_key
    from backend.api.routes import architectures as route

    client.get("/api/architectures")
    assert catalogue_key() in route._cache
    # one file per installation, shared by every data folder of this machine
    cached = settings.cache_dir / f"architectures-{catalogue_key()}.json"
    assert cached.is_file()
    assert [e["name"] for e in json.loads(cached.read_text())][:3] == [
        "digits_cnn",
        "mlp",
        "resnet20",
    ]


def test_a_listing_that_cannot_be_built_is_a_503_not_a_500(client, monkeypatch):
    from backend.api.routes import architectures as route

    monkeypatch.setattr(route, "_cache", {})

    def fail(folder):
        raise RuntimeError("listing the architectures failed: ImportError: timm")

    monkeypatch.setattr(route, "load_or_build", fail)
    resp = client.get("/api/architectures")
    assert resp.status_code == 503
    assert resp.json()["detail"] == route.UNAVAILABLE  # no traceback, no server path


def test_search_entries_matches_the_registry_search():
    from backend.api.catalogue import search_entries
    from models.catalogue import build_catalogue

    entries = build_catalogue()
    for query in ("", "resnet 18", "VIT tiny", "nothing like this"):
        for limit, offset in ((5, 0), (50, 3)):
            page, total = search_entries(entries, query, limit, offset)
            names, expected_total = search(query, limit, offset)
            assert [e["name"] for e in page] == names and total == expected_total
