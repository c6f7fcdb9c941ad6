"""The Dash shell: built twice in one process, one Location, pages routed from the URL."""

from __future__ import annotations

from typing import Any

import dash
import httpx
from dash import dcc
from dash.development.base_component import Component

from frontend.app import create_dash_app

FakeApi = Any  # the fake_api fixture of conftest.py


def _components(node: Any) -> list[Component]:
    out: list[Component] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, Component):
            out.append(item)
            stack.append(getattr(item, "children", None))
    return out


def _app(api: FakeApi) -> dash.Dash:
    return create_dash_app("http://testserver", transport=httpx.MockTransport(api.handle))


def _route(app: dash.Dash, pathname: str, search: str) -> dict[str, Any]:
    client = app.server.test_client()
    assert client.get(pathname + search).status_code == 200  # also sets up the router
    response = client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": pathname},
                {"id": "_pages_location", "property": "search", "value": search},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
    )
    assert response.status_code == 200
    return response.get_json()["response"]


def test_shell_has_exactly_one_own_location(fake_api: FakeApi) -> None:
    app = _app(fake_api)
    layout = app.layout() if callable(app.layout) else app.layout
    locations = [c for c in _components(layout) if isinstance(c, dcc.Location)]
    ours = [loc for loc in locations if not str(loc.id).startswith("_pages")]
    assert [(loc.id, loc.refresh) for loc in ours] == [("url", "callback-nav")]
    assert "PruneScope" in [c.children for c in _components(layout) if isinstance(c, dcc.Link)]


def test_can_be_created_twice_with_callbacks_on_both(fake_api: FakeApi) -> None:
    first, second = _app(fake_api), _app(fake_api)
    paths = sorted(page["path"] for page in dash.page_registry.values())
    assert paths == [
        "/",
        "/compare",
        "/comparisons/new",
        "/experiments",
        "/new",
        "/overview",
        "/prune",
        "/similarity",
        "/upload",
    ]
    for app in (first, second):
        client = app.server.test_client()
        assert client.get("/").status_code == 200
        outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
        assert "url.search" in outputs
        assert "home-jobs.children" in outputs


def test_compare_url_is_rendered_from_its_query(fake_api: FakeApi) -> None:
    response = _route(_app(fake_api), "/compare", "?id=1&b=3&cls=2")
    assert response["_pages_store"]["data"]["title"] == "Compare · PruneScope"
    page = str(response["_pages_content"]["children"])
    assert "compare-confusion-shift" in page
    view = [r for r in fake_api.requests if r.url.path == "/api/comparisons/1/view"]
    assert dict(view[-1].url.params) == {"b": "3"}
    assert "compare-samples" in page  # the flagged samples, with the page's class
    assert "'cls': 2" in page


def test_home_url_is_rendered(fake_api: FakeApi) -> None:
    page = str(_route(_app(fake_api), "/", "")["_pages_content"]["children"])
    for section in ("home-models", "home-datasets", "home-jobs", "home-comparisons"):
        assert section in page


def test_update_url_through_the_callback_endpoint(fake_api: FakeApi) -> None:
    client = _app(fake_api).server.test_client()
    client.get("/")
    response = client.post(
        "/_dash-update-component",
        json={
            "output": "url.search",
            "outputs": {"id": "url", "property": "search"},
            "inputs": [
                {"id": "compare-b-select", "property": "value", "value": 3},
                {"id": "compare-class-select", "property": "value", "value": 4},
            ],
            "state": [
                {"id": "url", "property": "search", "value": "?id=1"},
                {
                    "id": "compare-b-select",
                    "property": "options",
                    "value": [{"label": "x", "value": 2}, {"label": "y", "value": 3}],
                },
                {
                    "id": "compare-query",
                    "property": "data",
                    "value": {"id": "1", "geo_mode": "diff"},
                },
                {"id": "compare-selection", "property": "data", "value": None},
            ],
            "changedPropIds": ["compare-class-select.value"],
        },
    )
    assert response.get_json()["response"] == {"url": {"search": "?id=1&b=3&cls=4&geo_mode=diff"}}


def test_callback_answers_carry_their_server_time(fake_api: FakeApi) -> None:
    import time

    app = _app(fake_api)

    def slow(value: Any) -> str:
        time.sleep(0.05)
        return f"got {value}"

    app.callback(dash.Output("t-out", "children"), dash.Input("t-in", "value"))(slow)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert "Server-Timing" not in client.get("/").headers  # pages themselves: not timed
    response = client.post(
        "/_dash-update-component",
        json={
            "output": "t-out.children",
            "outputs": {"id": "t-out", "property": "children"},
            "inputs": [{"id": "t-in", "property": "value", "value": 3}],
            "changedPropIds": ["t-in.value"],
            "state": [],
        },
    )
    assert response.status_code == 200 and "got 3" in response.get_data(as_text=True)
    name, _, dur = response.headers["Server-Timing"].partition(";dur=")
    assert name == "callback" and 50 <= float(dur) < 5000


def test_warm_up_loads_what_the_first_compare_page_needs() -> None:
    """In a fresh interpreter: plotly.py loads the heatmap's colour bar and the legend on first
    use, and Dash builds its index on the first request; warm_up does both ahead."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import sys
from frontend.app import create_dash_app, warm_up
app = create_dash_app("http://127.0.0.1:9")
lazy = ("plotly.graph_objs.heatmap.colorbar", "plotly.graph_objs.layout._legend")
assert not [m for m in lazy if m in sys.modules], "already loaded: the test proves nothing"
seen = []
app.server.before_request(lambda: seen.append(__import__("flask").request.path))
warm_up(app)
assert [m for m in lazy if m in sys.modules] == list(lazy), [m for m in lazy if m in sys.modules]
assert seen == ["/"], seen
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_pages_with_plots_preload_plotly_and_the_script_is_served(fake_api: FakeApi) -> None:
    from frontend.app import PLOT_PAGES, PLOTLY_JS

    client = _app(fake_api).server.test_client()
    link = f'<link rel="preload" href="{PLOTLY_JS}" as="script">'
    for path in PLOT_PAGES:
        assert link in client.get(f"{path}?id=1").get_data(as_text=True), path
    for path in ("/", "/new", "/upload"):
        assert 'rel="preload"' not in client.get(path).get_data(as_text=True), path
    # the preloaded URL is the one dcc.Graph loads (else the browser would fetch it twice)
    served = client.get(PLOTLY_JS)
    assert served.status_code == 200 and b"plotly" in served.get_data()[:2000].lower()
