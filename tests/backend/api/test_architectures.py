"""GET /api/architectures: the architecture registry as the dashboard's train form reads it."""

from __future__ import annotations

import subprocess
import sys

from frontend.client import ApiClient
from models import list_models, model_info


def test_architectures_endpoint_lists_the_registry(client):
    response = client.get("/api/architectures")
    assert response.status_code == 200
    body = response.json()
    assert [a["name"] for a in body["data"]] == list_models()
    assert body["count"] == len(list_models())
    for entry in body["data"]:
        assert set(entry) == {"name", "doc", "defaults", "required"}
        # the registry's own description, JSON-ready (tuples became lists)
        assert entry == model_info(entry["name"])
        assert entry["doc"] and "\n" not in entry["doc"]


def test_architectures_describe_their_keyword_arguments(client):
    by_name = {a["name"]: a for a in client.get("/api/architectures").json()["data"]}
    assert by_name["digits_cnn"]["defaults"] == {"num_classes": 10, "in_channels": 1}
    assert by_name["digits_cnn"]["required"] == []
    assert by_name["mlp"]["required"] == ["input_shape", "num_classes"]
    assert by_name["mlp"]["defaults"] == {"hidden": [128, 64]}


def test_architectures_are_in_the_openapi_schema_under_their_tag(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    operation = paths["/api/architectures"]["get"]
    assert operation["tags"] == ["architectures"]
    assert operation["operationId"].startswith("list_architectures")


def test_the_dashboard_client_reads_the_listing(client):
    api = ApiClient("http://testserver")
    api._http.close()
    api._http = client  # the TestClient is an httpx.Client bound to the app
    listed = api.list_architectures()
    assert [a["name"] for a in listed] == list_models()
    assert all(a.get("doc") for a in listed)


def test_importing_the_router_does_not_import_torch():
    code = (
        "import sys\n"
        "import backend.api.routes.architectures\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
