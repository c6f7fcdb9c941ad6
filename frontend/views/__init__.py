"""Sections of the compare page, one module per view (embedding, geometry, robustness, ...).

The contract every view module follows, so the compare page composes them and they link:

- ``section() -> html.Section``: the view's static skeleton (titles, controls, empty
  ``dcc.Graph``s / containers). Component ids are prefixed ``compare-<view>-``. Nothing is
  fetched here: the page renders at once and each view fills itself.
- ``register(app)``: the view's callbacks, attached with ``app.callback``. They take
  ``Input(CONTEXT, "data")`` (which comparison, which B, the URL query) and may take
  ``Input(SELECTION, "data")`` (the linked selection) to fill the section through the REST
  client (:func:`frontend.client.get_client`), never the database.
- A view that lets the user select samples writes ``Output(SELECTION, "data",
  allow_duplicate=True)`` with :func:`selection` (the dataset indices of the test samples,
  i.e. the ``index`` column of the per-sample tables), and highlights ``SELECTION`` when it
  changes. The compare page mirrors the selection into the URL query (``sel``, see
  :func:`encode_ids`), so a copied link restores it; on load SELECTION starts from ``sel``.
- View settings (colour-by, class filter, mode) live in the URL query under keys prefixed by
  the view's name (``emb_color``, ``geo_mode``, ...). Read them from ``CONTEXT["query"]`` at
  load; write them with ``Output(QUERY, "data", allow_duplicate=True)`` +
  ``State(QUERY, "data")`` and :func:`merge_settings`. The page mirrors QUERY and SELECTION
  into the address bar with ``history.replaceState`` (a clientside callback), which changes
  the URL without re-rendering the page: never write ``url.search`` for view settings (that
  navigates and rebuilds every view).
- Every view but the embedding is lazy: its callbacks take ``Input(view_context(name), "data")``
  instead of CONTEXT. Until the view nears the viewport or the page has had time to load its
  top (see :data:`LAZY_JS`), the page holds only a placeholder of the view's size: its
  ``section()`` is not in the page at all, so none of its graphs is plotted while the
  embeddings load. Woken, the section is inserted, then the store gets the same value as
  CONTEXT, so the view's callbacks run exactly as if the section had been there all along.
  A callback may be called with None there: render empty.
- Figures are pure functions in ``frontend/figures/`` (data in, plotly Figure out), unit tested
  without a browser; callbacks only fetch and route. At most 4 WebGL (``Scattergl``) traces'
  figures on the page in total: the embeddings own two.

What every view is built from (section frame, graphs, controls, callback outputs, writers of
the shared stores) is in ``frontend/views/parts.py``; a job a view runs on demand is a
:class:`frontend.jobs.CompactFollower`; a view too big for one module is a package
(``samples/``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

CONTEXT = "compare-context"  # dcc.Store: {"id": int, "b": int, "cls": int | None, "query": {}}
SELECTION = "compare-selection"  # dcc.Store: {"ids": [int, ...], "source": str} or None
QUERY = "compare-query"  # dcc.Store: the URL query as a dict (str -> str)
URL = "url"
MAX_URL_SELECTION = 2000  # beyond this many samples a selection is not written to the URL


def selection(ids: Iterable[int], source: str) -> dict[str, Any]:
    """The SELECTION store's value: sorted unique sample indices and which view made it."""
    return {"ids": sorted({int(i) for i in ids}), "source": source}


# what status lines say about where a SELECTION came from (its ``source``): the views' own
# sources (embedding.SOURCE_A / SOURCE_B, geometry.SOURCE) and the page's "url" (``sel``)
SELECTION_ORIGINS = {
    "embedding-a": "in embedding A",
    "embedding-b": "in embedding B",
    "geometry": "in the geometry view",
    "url": "from the link",
    "robustness": "by a robustness cell (broken in B, not in A)",
    "confusion-a": "in A's confusion matrix",
    "confusion-b": "in B's confusion matrix",
    "confusion-shift": "in the confusion shift",
}


def selection_origin(source: str | None, here: str | None = None) -> str:
    """Where a SELECTION came from, in words for a status line ("in embedding A", "from the
    link"; "here" when ``source`` is ``here``, the view asking). Never the source id itself:
    an unknown source reads "in another view"."""
    if source and source == here:
        return "here"
    return SELECTION_ORIGINS.get(source or "", "in another view")


def selected_ids(value: Mapping[str, Any] | None) -> list[int]:
    """The sample indices in a SELECTION value ([] for none)."""
    if not value:
        return []
    return [int(i) for i in value.get("ids") or []]


def merge_settings(query: Mapping[str, Any] | None, **updates: Any) -> dict[str, str]:
    """The QUERY store's new value: ``query`` with keys set (None or "" removes a key)."""
    out = {str(k): str(v) for k, v in (query or {}).items()}
    for key, value in updates.items():
        if value is None or value == "":
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def encode_ids(ids: Sequence[int]) -> str:
    """Compact URL form of sample indices: runs as ranges, "3-7,12,20-21"."""
    out: list[str] = []
    values = sorted(set(int(i) for i in ids))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(out)


def decode_ids(text: str | None, limit: int = 1_000_000) -> list[int]:
    """Inverse of :func:`encode_ids`; malformed parts are skipped (a hand-edited URL)."""
    ids: list[int] = []
    for part in (text or "").split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            continue
        start, stop = int(lo), int(hi or lo)
        if stop < start or stop - start > limit:
            continue
        ids.extend(range(start, stop + 1))
        if len(ids) > limit:
            break
    return sorted(set(ids))[:limit]


def view_query(
    query: Mapping[str, Any] | None, current_selection: Mapping[str, Any] | None
) -> dict[str, str]:
    """The compare page's view as its URL holds it, without ``id``: ``b``, ``cls`` and the
    views' settings from QUERY, and ``sel`` from SELECTION (left out past
    :data:`MAX_URL_SELECTION` samples). What a share link stores and reopens."""
    out = {str(k): str(v) for k, v in (query or {}).items() if k not in ("id", "sel")}
    ids = selected_ids(current_selection)
    if ids and len(ids) <= MAX_URL_SELECTION:
        out["sel"] = encode_ids(ids)
    return out


class FetchCache(Generic[T]):
    """The last few ``fetch(client, comparison_id, b)`` results, most recent last.

    Views call back on every selection and setting change, and what they read (analyses,
    comparison tables and results) does not change once written, so each (client, comparison,
    B) is fetched once. The callbacks of one page load ask at the same moment: one fetch per
    key runs, the others wait for it. A fetch that raises is not cached (e.g. "not ready").
    """

    def __init__(self, fetch: Callable[[Any, int, int | None], T], size: int) -> None:
        self.fetch, self.size = fetch, size
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._fetching: dict[Hashable, threading.Lock] = {}

    def get(self, client: Any, comparison_id: int, b: int | None) -> T:
        comparison_id = int(comparison_id)
        # per user too: another user's cached data must not answer a request they may not make
        who = getattr(client, "credential_key", None)
        key = (id(client), getattr(client, "base_url", ""), who() if who else "", comparison_id, b)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            fetching = self._fetching.setdefault(key, threading.Lock())
        with fetching:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                data = self.fetch(client, comparison_id, b)
            finally:
                with self._lock:
                    self._fetching.pop(key, None)
            with self._lock:
                self._items[key] = data
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return data

    def load(self, context: Mapping[str, Any]) -> T:
        """The data of a CONTEXT's comparison and B, for this request's user."""
        from frontend.client import get_client
        from frontend.forms import query_int

        return self.get(get_client(), int(context["id"]), query_int(context.get("b")))

    def clear(self) -> None:
        """Forget everything fetched (tests isolate themselves with this)."""
        with self._lock:
            self._items.clear()


# lazy views ---------------------------------------------------------------------------------
# A lazy view's section is not in the page until the view is woken: the browser (a clientside
# callback, ``LAZY_JS``) wakes it when its placeholder scrolls near the viewport or, failing
# that, in the background once the top of the page has had LAZY_IDLE_MS to load, one view every
# LAZY_STAGGER_MS in page order. Waking writes the view's *wake* store; the server answers with
# the section (:func:`lazy_body`'s children, see frontend/pages/compare.py); the section carries
# a *ready* store whose arrival copies the wake store into the view's context store, which is
# what the view's callbacks listen to. On 2 cores, rendering every view at once made the
# embeddings (what the page is for) wait ~5 s for CPU, and even the lazy views' empty
# "Loading" graphs cost ~0.3 s of plotting on load, so they are not in the page either.
LAZY_IDLE_MS = 2500
LAZY_STAGGER_MS = 400
LAZY_MARGIN_PX = 300


def _lazy_id(suffix: str, what: str) -> Callable[[str], str]:
    def lazy_id(name: str) -> str:
        return f"compare-{name}-{suffix}"

    lazy_id.__doc__ = f"Id of {what} of lazy view ``name``."
    return lazy_id


view_context = _lazy_id("context", "the context store (CONTEXT's value once it is awake)")
lazy_holder = _lazy_id("lazy", "the element wrapping the section (what is watched)")
lazy_body = _lazy_id("lazy-body", "the element holding the placeholder, then the section")
lazy_wake = _lazy_id("wake", "the store the browser writes (CONTEXT's value) to wake it")
lazy_ready = _lazy_id("ready", "the store that arrives with the section (see READY_JS)")


LAZY_JS = """
function(ctx) {
    const views = VIEWS;
    const L = window.__prunescopeLazy || (window.__prunescopeLazy = {});
    L.ctx = ctx;
    (L.timers || []).forEach(clearTimeout);
    L.timers = [];
    if (L.observer) { L.observer.disconnect(); }
    if (!ctx) { return window.dash_clientside.no_update; }
    const wake = (el) => {
        if (el.dataset.awake === "1") { return; }
        el.dataset.awake = "1";
        if (L.observer) { L.observer.unobserve(el); }
        window.dash_clientside.set_props(el.dataset.wake, {data: L.ctx});
    };
    const holders = () => views.map((v) => document.getElementById("compare-" + v + "-lazy"))
        .filter((el) => el);
    let tries = 0;
    const start = () => {
        const els = holders();
        if (els.length < views.length && tries++ < 50) {
            L.timers.push(setTimeout(start, 20));
            return;
        }
        els.forEach((el) => {
            el.dataset.context = "compare-" + el.dataset.view + "-context";
            el.dataset.wake = "compare-" + el.dataset.view + "-wake";
        });
        els.filter((el) => el.dataset.awake === "1").forEach((el) => {
            window.dash_clientside.set_props(el.dataset.context, {data: L.ctx});
        });
        // graphs have no height until plotly.js has loaded, so until then every view looks
        // near the top: watch positions only once a plot exists
        let waits = 0;
        const observe = () => {
            if (!document.querySelector(".js-plotly-plot") && waits++ < 100) {
                L.timers.push(setTimeout(observe, 50));
                return;
            }
            L.observer = new IntersectionObserver((entries) => {
                entries.forEach((e) => { if (e.isIntersecting) { wake(e.target); } });
            }, {rootMargin: "MARGINpx 0px"});
            els.forEach((el) => { if (el.dataset.awake !== "1") { L.observer.observe(el); } });
        };
        if ("IntersectionObserver" in window) { observe(); }
        els.forEach((el, i) => {
            L.timers.push(setTimeout(() => wake(el), IDLE + i * STAGGER));
        });
    };
    start();
    return window.dash_clientside.no_update;
}
"""

# Input: the ready store (it arrives with the section); State: the wake store. Writing the
# context only now, once the section is in the page, runs the view's callbacks (they take the
# context store as Input with prevent_initial_call) against components that exist.
READY_JS = """
function(ready, ctx) {
    if (!ready || !ctx) { return window.dash_clientside.no_update; }
    return ctx;
}
"""


def lazy_script(names: Sequence[str]) -> str:
    """The clientside callback (Input CONTEXT) that wakes the lazy views ``names``."""
    import json

    return (
        LAZY_JS.replace("VIEWS", json.dumps(list(names)))
        .replace("MARGIN", str(LAZY_MARGIN_PX))
        .replace("IDLE", str(LAZY_IDLE_MS))
        .replace("STAGGER", str(LAZY_STAGGER_MS))
    )


def lazy_placeholder(title: str, height_px: int) -> Any:
    """What a lazy view shows until it is woken: its title and a note, at about the section's
    height (so the page does not jump when it arrives, and the views further down stay out of
    the viewport, asleep)."""
    from dash import html

    return html.Section(
        [html.H2(title), html.P("Loading this view…", className="muted hint")],
        className="section card lazy-placeholder",
        style={"minHeight": f"{int(height_px)}px"},
    )


def lazy_section(name: str, title: str, height_px: int) -> Any:
    """Lazy view ``name`` as the page lays it out before it is woken: the wrapper that
    :data:`LAZY_JS` watches (and marks ``data-awake``), the placeholder in :func:`lazy_body`,
    and the view's wake and context stores."""
    from dash import dcc, html

    data_attributes: dict[str, Any] = {"data-view": name}  # Dash passes data-* through
    return html.Div(
        [
            html.Div(lazy_placeholder(title, height_px), id=lazy_body(name)),
            dcc.Store(id=lazy_wake(name)),
            dcc.Store(id=view_context(name)),
        ],
        id=lazy_holder(name),
        className="lazy-view",
        **data_attributes,
    )


def woken_section(section: Any, name: str) -> list[Any]:
    """The children of :func:`lazy_body` once view ``name`` is woken: its section and the
    ready store that hands the context on (:data:`READY_JS`)."""
    from dash import dcc

    return [section, dcc.Store(id=lazy_ready(name), data=True)]
