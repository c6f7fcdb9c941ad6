"""Dash shell of the PruneScope dashboard: navbar, page container and the one Location.

The backend mounts ``create_dash_app(api_url).server`` (a Flask app) at "/" next to the FastAPI
routes under /api. The dashboard is deliberately a WSGI (Flask) app: its callbacks are
synchronous and call our own REST API, which would deadlock inside the ASGI event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import httpx
from dash import dcc, html

from frontend import client
from frontend.client import SessionInfo
from frontend.figures import confusion_heatmap, confusion_shift_heatmap, recall_bars
from frontend.pages import (
    compare,
    experiments,
    home,
    new_comparison,
    new_job,
    overview,
    prune,
    similarity,
    upload,
)
from frontend.session import (
    LOCAL_USER,
    browser_origin,
    cookie_credential,
    current_user,
    is_share,
)

ASSETS_FOLDER = Path(__file__).parent / "assets"
TITLE = "PruneScope"
URL_ID = "url"
PAGES = (home, experiments, overview, similarity, compare, new_job, new_comparison, prune, upload)


NAV_LINKS = (
    ("Home", "/"),
    ("Experiments", "/experiments"),
    ("Overview", "/overview"),
    ("Similarity", "/similarity"),
    ("New job", "/new"),
    ("Prune", "/prune"),
    ("Upload", "/upload"),
)


def navbar(user: SessionInfo | None = None) -> html.Nav:
    """The top bar: brand and links; for a share link's viewer only the shared comparison's
    pages, for a signed-in user their name and "Sign out"."""
    user = user or LOCAL_USER
    if is_share(user):
        cid = user["comparison_id"]
        home = f"/compare?id={cid}"
        # the shared comparison's three pages, read-only (backend/api/access.py SHARED_PAGES)
        pages = [("Compare", home), ("Overview", f"/overview?id={cid}")]
        pages.append(("Similarity map", f"/similarity?id={cid}"))
        return html.Nav(
            [
                html.A("PruneScope", href=home, className="brand"),
                html.Div(
                    [html.A(text, href=href, className="nav-link") for text, href in pages],
                    className="nav-links",
                ),
                html.Span(
                    "Shared comparison · read-only", className="nav-user", id="nav-share-badge"
                ),
            ],
            className="navbar",
        )
    right = []
    if user.get("kind") == "token":
        scope = "" if user.get("scope") == "write" else " (read-only)"
        right = [
            html.Span(
                [f"Signed in as {user.get('name')}{scope} · ", html.A("Sign out", href="/logout")],
                className="nav-user",
                id="nav-user",
            )
        ]
    return html.Nav(
        [
            dcc.Link("PruneScope", href="/", className="brand"),
            html.Div(
                [dcc.Link(text, href=href, className="nav-link") for text, href in NAV_LINKS],
                className="nav-links",
            ),
            *right,
        ],
        className="navbar",
    )


def shell() -> html.Div:
    """The layout around every page; ``url`` is the Location callbacks write view state to."""
    return html.Div(
        [
            dcc.Location(id=URL_ID, refresh="callback-nav"),
            navbar(current_user()),
            html.Main(dash.page_container, className="container"),
        ],
        className="app",
    )


# pages that open with plots: their index asks the browser for plotly.js at once (it is 4.8 MB;
# dcc.Graph would only ask once the page's layout has arrived from its callback)
PLOT_PAGES = ("/compare", "/overview", "/similarity", "/experiments")
PLOTLY_JS = "/_dash-component-suites/plotly/package_data/plotly.min.js"


class Dashboard(dash.Dash):
    """Dash with a ``<link rel="preload">`` of plotly.js in the index of :data:`PLOT_PAGES`, so
    the browser fetches (and compiles, off its main thread) plotly.js while the page's layout
    and first callbacks are on their way, instead of after them."""

    def interpolate_index(
        self,
        metas: Any = "",
        title: Any = "",
        css: Any = "",
        config: Any = "",
        scripts: Any = "",
        app_entry: Any = "",
        favicon: Any = "",
        renderer: Any = "",
    ) -> Any:
        import flask

        if flask.has_request_context() and flask.request.path.rstrip("/") in PLOT_PAGES:
            href = self.get_relative_path(PLOTLY_JS)
            css = f'<link rel="preload" href="{href}" as="script">\n{css}'
        return super().interpolate_index(
            metas=metas,
            title=title,
            css=css,
            config=config,
            scripts=scripts,
            app_entry=app_entry,
            favicon=favicon,
            renderer=renderer,
        )


def create_dash_app(api_url: str, *, transport: httpx.BaseTransport | None = None) -> dash.Dash:
    """Build the dashboard; callable several times in one process (tests build several).

    Pages are registered in the global ``dash.page_registry`` (re-registering a module replaces
    its entry), and each page's callbacks are attached with ``app.callback`` to this app only,
    so a second app neither duplicates nor loses them.

    Args:
        api_url: where the REST API is, e.g. ``http://127.0.0.1:8050`` (``.../api`` works too).
        transport: optional ``httpx`` transport for the API client (tests pass a mock).

    Returns:
        A Flask-based Dash app; serve ``app.server`` as WSGI.
    """
    client.configure(api_url, transport=transport)
    client.set_credential_source(cookie_credential)
    client.set_forwarded_source(browser_origin)
    app = Dashboard(
        __name__,
        server=True,
        use_pages=True,
        pages_folder="",
        assets_folder=str(ASSETS_FOLDER),
        requests_pathname_prefix="/",
        routes_pathname_prefix="/",
        # Pages render their components on demand; the shell alone lacks their ids.
        suppress_callback_exceptions=True,
        use_async=False,
        title=TITLE,
        update_title="",  # the jobs refresh would otherwise blink the tab title
    )
    for page in PAGES:
        page.register(app)
    app.layout = shell
    add_server_timing(app.server)
    return app


def warm_up(app: dash.Dash) -> None:
    """Do once, as the server starts (the backend calls this in a thread), what the first
    visitor of the compare page would otherwise wait for: plotly.py sets up each trace type's
    validators on first use (~0.15 s for the recall bars and the confusion heatmaps), and Dash
    builds its index page on the first request (~0.15 s)."""
    from dash._utils import to_json

    names = ["a", "b"]
    to_json(
        [
            recall_bars(names, [1.0, 0.5], [0.5, 1.0], "A", "B", 0),
            confusion_heatmap([[1, 0], [0, 1]], names, "A", 0),
            confusion_shift_heatmap([[0, 1], [-1, 0]], names, "shift", 0),
        ]
    )
    with app.server.test_client() as c:
        c.get("/")


def add_server_timing(server: Any) -> None:
    """Answer each callback request with a ``Server-Timing: callback;dur=<ms>`` header: the
    time the server spent on it, as browser devtools (and bench/bench_compare_page.py) read
    it, apart from network and page rendering."""
    import time

    import flask

    @server.before_request
    def _start() -> None:
        flask.g.prunescope_t0 = time.perf_counter()

    @server.after_request
    def _timing(response: Any) -> Any:
        t0 = getattr(flask.g, "prunescope_t0", None)
        if t0 is not None and flask.request.path.endswith("_dash-update-component"):
            ms = (time.perf_counter() - t0) * 1000
            response.headers["Server-Timing"] = f"callback;dur={ms:.1f}"
        return response
