"""Compare page ("/compare?id=&b=&cls="): an original model A next to one pruned model B.

The view state lives in the URL: ``id`` (comparison), ``b`` (pruned model id, default the
comparison's first) and ``cls`` (selected true class, absent = all). The selectors do not update
the figures themselves: :func:`update_url` writes the selection into the URL and the page is
rendered again from it, so a copied link reopens the same view.
"""

from __future__ import annotations

import csv
import importlib
import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import (
    ApiClient,
    ApiError,
    ComparisonView,
    JobPublic,
    ModelPublic,
    SessionInfo,
    acting_as,
    current_credential,
    get_client,
)
from frontend.components import (
    api_error_notice,
    comparison_job,
    download_link,
    job_line,
    notice,
    stat_card,
)
from frontend.figures import (
    confusion_heatmap,
    confusion_shift_heatmap,
    format_count,
    format_delta_pp,
    format_percent,
    format_ratio,
    model_label,
    recall_bars,
)
from frontend.figures._common import plot_texts
from frontend.figures.confusion import SHIFT_LABEL
from frontend.forms import model_architecture_summary, query_int
from frontend.jobs import is_active
from frontend.session import can_write, current_user
from frontend.views import (
    CONTEXT,
    MAX_URL_SELECTION,
    QUERY,
    READY_JS,
    SELECTION,
    decode_ids,
    lazy_body,
    lazy_ready,
    lazy_script,
    lazy_section,
    lazy_wake,
    selected_ids,
    selection,
    sharing,
    view_context,
    view_query,
    woken_section,
)
from frontend.views.parts import STATIC, register_writer

PATH = "/compare"
TITLE = "Compare · PruneScope"
ALL_CLASSES = "all"

ID_HEADER = "compare-header"
ID_B_SELECT = "compare-b-select"
ID_CLASS_SELECT = "compare-class-select"
ID_HEADLINE = "compare-headline"
ID_RECALL = "compare-recall-bars"
ID_CONF_A = "compare-confusion-a"
ID_CONF_B = "compare-confusion-b"
ID_CONF_SHIFT = "compare-confusion-shift"
ID_MESSAGE = "compare-message"
ID_PENDING = "compare-pending"
ID_PENDING_POLL = "compare-pending-poll"
ID_PENDING_JOB = "compare-pending-job"
ID_PENDING_DONE = "compare-pending-done"
PENDING_POLL_MS = 1000
# the compare job has finished: render the page again with everything it made
RELOAD_JS = """
function(status) {
    if (status === "succeeded") { window.location.reload(); }
    return window.dash_clientside.no_update;
}
"""
# writes QUERY and SELECTION into the address bar with replaceState (no navigation, no
# re-render) and into Location "url"'s props, so that they keep agreeing with the address bar
MIRROR_URL_JS = """
function(query, sel) {
            const params = new URLSearchParams();
            Object.entries(query || {}).forEach(([k, v]) => { if (k !== "sel") params.set(k, v); });
            const ids = (sel && sel.ids) || [];
            if (ids.length && ids.length <= MAX_SELECTION) {
                const runs = []; let i = 0;
                while (i < ids.length) {
                    let j = i;
                    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) { j++; }
                    runs.push(i === j ? String(ids[i]) : ids[i] + "-" + ids[j]);
                    i = j + 1;
                }
                params.set("sel", runs.join(","));
            }
            const search = params.toString() ? "?" + params.toString() : "";
            if (search === window.location.search) { return window.dash_clientside.no_update; }
            window.history.replaceState(
                window.history.state, "", window.location.pathname + search + window.location.hash
            );
            // Location "url" learns the new address too: a Location whose props disagree with
            // the address bar pushes its stale URL back when it next re-renders (issue 18)
            return [search, window.location.href];
        }
""".replace("MAX_SELECTION", str(MAX_URL_SELECTION))
# view sections below the confusion matrices, in page order (frontend/views/<name>.py)
VIEW_ORDER = (
    "samples",
    "embedding",
    "geometry",
    "robustness",
    "regions",
    "layers",
    "fourier",
    "limit",
    "instability",
)
# views loaded with the page; the others wait until they near the viewport or the page is idle
EAGER_VIEWS = ("embedding",)
# about each lazy view's height once drawn on an image dataset (px, docs/screenshots): what its
# placeholder takes until then, so the page moves little when the view arrives
LAZY_HEIGHTS = {
    "samples": 1060,
    "geometry": 1520,
    "robustness": 1250,
    "regions": 1540,
    "layers": 1000,
    "fourier": 560,
    "limit": 720,
    "instability": 740,
}
ID_LAZY = "compare-lazy"

GRAPH_CONFIG = STATIC  # a short modebar (no select, zoom or hover buttons) clears the titles
# a clicked confusion cell selects its samples in every view: the SELECTION source of each
CONFUSION_SOURCES = {
    ID_CONF_A: "confusion-a",
    ID_CONF_B: "confusion-b",
    ID_CONF_SHIFT: "confusion-shift",
}
ID_EXPORT = "compare-export-selection"
ID_DOWNLOAD = "compare-export-download"


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Compare", layout=layout)
    app.callback(
        Output("url", "search"),
        Input(ID_B_SELECT, "value"),
        Input(ID_CLASS_SELECT, "value"),
        State("url", "search"),
        State(ID_B_SELECT, "options"),
        State(QUERY, "data"),
        State(SELECTION, "data"),
        prevent_initial_call=True,
    )(update_url)
    app.callback(
        Output(ID_CLASS_SELECT, "value"),
        Input(ID_RECALL, "clickData"),
        State(ID_CLASS_SELECT, "value"),
        prevent_initial_call=True,
    )(select_class_from_click)
    app.callback(
        Output(ID_PENDING, "children"),
        Output(ID_PENDING_POLL, "disabled"),
        Output(ID_PENDING_DONE, "data"),
        Input(ID_PENDING_POLL, "n_intervals"),
        State(ID_PENDING_JOB, "data"),
        prevent_initial_call=True,
    )(poll_pending)
    app.clientside_callback(
        RELOAD_JS, Output(ID_PENDING_POLL, "max_intervals"), Input(ID_PENDING_DONE, "data")
    )
    for module in view_modules():
        module.register(app)
        name = view_name(module)
        if name not in EAGER_VIEWS:
            app.callback(
                Output(lazy_body(name), "children"),
                Input(lazy_wake(name), "data"),
                prevent_initial_call=True,
            )(section_when_woken(module))
            app.clientside_callback(
                READY_JS,
                Output(view_context(name), "data"),
                Input(lazy_ready(name), "data"),
                State(lazy_wake(name), "data"),
            )
    for graph_id in CONFUSION_SOURCES:
        register_writer(
            app,
            SELECTION,
            select_confusion_cell(graph_id),
            Input(graph_id, "clickData"),
            State(CONTEXT, "data"),
            State(SELECTION, "data"),
        )
    app.callback(
        Output(ID_EXPORT, "children"),
        Output(ID_EXPORT, "disabled"),
        Input(SELECTION, "data"),
    )(export_label)
    app.callback(
        Output(ID_DOWNLOAD, "data"),
        Input(ID_EXPORT, "n_clicks"),
        State(SELECTION, "data"),
        State(CONTEXT, "data"),
        prevent_initial_call=True,
    )(export_selection)
    sharing.register(app)
    # the views below the fold load when they near the viewport, or once the page is idle
    app.clientside_callback(
        lazy_script(lazy_views()), Output(ID_LAZY, "data"), Input(CONTEXT, "data")
    )
    # selection and view settings go to the address bar without navigating (no re-render)
    app.clientside_callback(
        MIRROR_URL_JS,
        Output("url", "search", allow_duplicate=True),
        Output("url", "href", allow_duplicate=True),
        Input(QUERY, "data"),
        Input(SELECTION, "data"),
        prevent_initial_call=True,
    )


def parse_class(value: Any, num_classes: int) -> int | None:
    """The selected class index, or None for "all classes" and anything out of range."""
    idx = query_int(value)
    if idx is None or not 0 <= idx < num_classes:
        return None
    return idx


def largest_recall_drop(
    class_names: Sequence[str], recall_a: Sequence[float | None], recall_b: Sequence[float | None]
) -> tuple[int, float] | None:
    """``(class index, recall_b - recall_a)`` of the class whose recall fell most from A to B;
    None when no class lost recall."""
    pairs = enumerate(zip(recall_a[: len(class_names)], recall_b, strict=False))
    drops = [(b - a, i) for i, (a, b) in pairs if a is not None and b is not None and b < a]
    if not drops:
        return None
    delta, i = min(drops)
    return i, delta


def headline_cards(view: ComparisonView, selected_class: int | None) -> list[html.Div]:
    """Cards of A vs B: accuracy, sparsity, compression, nonzero params, and the recall of
    ``selected_class`` (or, with none selected, of the class that lost most)."""
    a, b = view["model_a"], view["model_b"]
    an_a, an_b = view["analysis_a"], view["analysis_b"]
    class_names = view["dataset"]["class_names"]
    acc_a = an_a.get("accuracy", a.get("accuracy"))
    acc_b = an_b.get("accuracy", b.get("accuracy"))
    accuracy = [format_percent(acc_a), format_percent(acc_b), format_delta_pp(acc_a, acc_b)]
    cards = [stat_card(f"Accuracy ({an_a.get('split', 'test')})", *accuracy)]
    columns: list[tuple[str, str, Callable[[Any], str], str | None]] = [
        ("Sparsity", "sparsity", format_percent, None),
        ("Compression", "compression_ratio", format_ratio, None),
        ("Nonzero params", "n_nonzero", format_count, f"of {format_count(a.get('n_params'))}"),
    ]
    for title, key, fmt, note in columns:
        cards.append(stat_card(title, fmt(a.get(key)), fmt(b.get(key)), note))
    recall_a, recall_b = an_a.get("recall") or [], an_b.get("recall") or []
    if selected_class is not None and selected_class < min(len(recall_a), len(recall_b)):
        i, title, card_id = selected_class, "Recall of class {}", "compare-class-recall"
    elif (worst := largest_recall_drop(class_names, recall_a, recall_b)) is not None:
        i, title, card_id = worst[0], "Largest recall drop: class {}", "compare-worst-recall"
    else:
        return cards
    name = str(class_names[i]) if i < len(class_names) else f"class {i}"
    ra, rb = recall_a[i], recall_b[i]
    recall = [format_percent(ra), format_percent(rb), format_delta_pp(ra, rb)]
    return [*cards, stat_card(title.format(name), *recall, card_id=card_id)]


def _graph(graph_id: str, figure: Any, height: int) -> dcc.Graph:
    return dcc.Graph(
        id=graph_id, figure=figure, config=GRAPH_CONFIG, style={"height": f"{height}px"}
    )


def compare_job(client: ApiClient, comparison_id: int) -> JobPublic | None:
    """The comparison's compare job (None when it has none or it cannot be read)."""
    try:
        return comparison_job(client, client.get_comparison(comparison_id))
    except ApiError:
        return None


def pending_body(job: JobPublic) -> list[Any]:
    """What the pending panel says about the compare job: progress while it runs, the error
    when it failed."""
    status = str(job.get("status") or "")
    if status == "failed":
        return [
            notice(
                "The compare job failed",
                f"{job.get('error') or 'no error was recorded'}. The views that need its "
                "results stay empty; submit the comparison again once the cause is fixed.",
                kind="error",
            )
        ]
    if status == "cancelled":
        return [notice("The compare job was cancelled", "Its results were never made.")]
    if status == "succeeded":
        return [html.P("The compare job has finished; reloading…", className="muted")]
    return [
        html.P(
            "The compare job is still running: what exists is shown below, the rest (the "
            "embedding, flags, robustness) fills in when it finishes; the page reloads itself.",
            className="muted",
        ),
        job_line(job),
    ]


def pending_panel(job: JobPublic | None) -> html.Div | None:
    """A panel following an unfinished or failed compare job (None when it succeeded)."""
    if job is None or job.get("status") == "succeeded":
        return None
    return html.Div(
        [
            html.Div(pending_body(job), id=ID_PENDING),
            dcc.Interval(id=ID_PENDING_POLL, interval=PENDING_POLL_MS, disabled=not is_active(job)),
            dcc.Store(id=ID_PENDING_JOB, data=job.get("id")),
            dcc.Store(id=ID_PENDING_DONE),
        ],
        className="section card pending-job",
    )


def poll_pending(_n: Any, job_id: Any) -> tuple[Any, bool, Any]:
    """Callback: the compare job's progress; stops polling, and reloads the page on success,
    once it has finished."""
    if query_int(job_id) is None:
        return dash.no_update, True, dash.no_update
    try:
        job = get_client().get_job(int(job_id))
    except ApiError as exc:
        return [api_error_notice(exc, "the compare job")], False, dash.no_update
    final = not is_active(job)
    return pending_body(job), final, str(job.get("status") or "") if final else dash.no_update


def _message_page(*children: Any) -> html.Div:
    return html.Div(list(children), id=ID_MESSAGE, className="page page-compare")


def _warning_page(title: str, body: Any) -> html.Div:
    return _message_page(notice(title, body, kind="warning", link_home=True))


def _dropdown(label: str, **dropdown: Any) -> html.Label:
    """A labelled selector of the controls row."""
    control = [
        html.Span(label, className="control-label"),
        dcc.Dropdown(clearable=False, **dropdown),
    ]
    return html.Label(control, className="control")


def _selectors(
    view: ComparisonView, models: Sequence[ModelPublic], selected_class: int | None
) -> html.Div:
    comparison, model_b = view["comparison"], view["model_b"]
    by_id = {m["id"]: m for m in models} | {model_b["id"]: model_b}
    b_options = [
        {"label": model_label(by_id[mid]) if mid in by_id else f"model {mid}", "value": mid}
        for mid in comparison["model_b_ids"]
    ]
    class_options: list[dict[str, Any]] = [{"label": "All classes", "value": ALL_CLASSES}]
    class_options += [
        {"label": f"{i}: {name}", "value": i}
        for i, name in enumerate(view["dataset"]["class_names"])
    ]
    cls = ALL_CLASSES if selected_class is None else selected_class
    return html.Div(
        [
            _dropdown(
                "Pruned model (B)",
                id=ID_B_SELECT,
                options=b_options,
                value=model_b["id"],
                searchable=False,
            ),
            _dropdown("Class", id=ID_CLASS_SELECT, options=class_options, value=cls),
            html.Div(
                [
                    html.Button(
                        export_label(None)[0],
                        id=ID_EXPORT,
                        className="btn",
                        disabled=True,
                        title="The selected samples' rows (index, label, predictions, "
                        "geometry, flags) as CSV",
                    ),
                    dcc.Download(id=ID_DOWNLOAD),
                ],
                className="control control-button",
            ),
        ],
        className="controls",
    )


def _header(view: ComparisonView) -> html.Div:
    comparison, dataset = view["comparison"], view["dataset"]
    a, b = view["model_a"], view["model_b"]
    split = view["analysis_a"].get("split", "test")
    n = view["analysis_a"].get("n_samples")
    samples = f"{n:,} samples, " if isinstance(n, int) else ""
    dot = html.Span(" · ", className="muted")
    return html.Div(
        [
            html.H1(comparison["name"] or f"Comparison {comparison['id']}"),
            html.P(
                [
                    html.Span("Dataset ", className="muted"),
                    html.Strong(dataset["name"]),
                    f" ({split} split, {samples}{dataset['num_classes']} classes)",
                    dot,
                    html.Span("A", className="tag tag-a"),
                    f"{a['name']} ({model_architecture_summary(a)}) ",
                    download_link(a["id"]),
                    dot,
                    html.Span("B", className="tag tag-b"),
                    f"{b['name']} ({model_label(b)}) ",
                    download_link(b["id"]),
                ],
                className="subtitle",
            ),
        ],
        id=ID_HEADER,
    )


# layout and callbacks -----------------------------------------------------------------------


def layout(
    id: str | None = None,  # named after the query parameter, shadowing the builtin
    b: str | None = None,
    cls: str | None = None,
    **_query: Any,
) -> html.Div:
    """The compare page for ``?id=<comparison>&b=<pruned model>&cls=<class index>``; ``b``
    defaults to the comparison's first pruned model, ``cls`` to all classes; other query
    parameters are the views' settings, restored into their stores."""
    comparison_id = query_int(id)
    if comparison_id is None:
        return _message_page(
            notice(
                "No comparison selected",
                "Pick a comparison on the home page; its link looks like /compare?id=1."
                if id is None
                else f"'{id}' is not a comparison id; links look like /compare?id=1.",
                link_home=True,
            )
        )
    b_id = query_int(b)
    client = get_client()
    try:
        view = client.get_comparison_view(comparison_id, b=b_id)
    except ApiError as exc:
        if exc.status == 404:
            return _warning_page(
                f"Comparison {comparison_id} not found",
                f"{exc.detail}. It may have been deleted, or the link is mistyped.",
            )
        if exc.status == 422 and b_id is not None:
            default = dcc.Link(
                "Open the comparison's default view", href=f"{PATH}?id={comparison_id}"
            )
            return _warning_page(
                f"Model {b_id} is not part of comparison {comparison_id}",
                [f"{exc.detail}. ", default, "."],
            )
        panel = pending_panel(compare_job(client, comparison_id)) if exc.status == 409 else None
        if panel is not None:
            return _message_page(html.H1(f"Comparison {comparison_id} is being computed"), panel)
        return _message_page(api_error_notice(exc, "the comparison", link_home=True))

    if not view.get("analysis_a") or not view.get("analysis_b"):
        return _warning_page(
            f"Comparison {comparison_id} is not analysed yet",
            "Its analyses are missing; an analyze job may still be running (see Jobs on "
            "the home page). Reload this page when it has finished.",
        )
    try:
        models = list(client.comparison_models(view["comparison"]).values())
    except ApiError:
        models = []  # only used for selector labels; the ids still work
    selected_class = parse_class(cls, len(view["dataset"]["class_names"]))
    try:
        query = {k: v for k, v in (("id", id), ("b", b), ("cls", cls)) if v is not None}
        query |= {k: v for k, v in _query.items() if isinstance(v, str)}
        prefetch_eager_views(
            {"id": comparison_id, "b": view["model_b"]["id"], "cls": selected_class}
        )
        pending = pending_panel(compare_job(client, comparison_id))
        return render_view(view, models, selected_class, cls, query, pending, current_user())
    except (KeyError, TypeError, ValueError) as exc:
        # A view that breaks the contract is a backend bug; say so instead of a traceback.
        return _message_page(
            notice(
                f"Comparison {comparison_id} could not be displayed",
                f"The API returned data this page does not understand ({type(exc).__name__}: "
                f"{exc}).",
                kind="error",
                link_home=True,
            )
        )


def view_modules() -> list[Any]:
    """The compare page's view sections (frontend/views/*), in page order; a module that is
    not there yet is skipped."""
    found = []
    for name in VIEW_ORDER:
        try:
            found.append(importlib.import_module(f"frontend.views.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"frontend.views.{name}":
                raise
    return found


PREFETCH = True  # the unit tests turn it off: a fake API answers them in order


def prefetch_eager_views(context: dict[str, Any]) -> list[Any]:
    """Start fetching what the eager views will ask for, in the background, while the browser
    takes in the layout: their callbacks then find it in their cache (it is single-flight, so
    a callback arriving mid-fetch waits for this fetch rather than starting another). Errors
    are left for the callbacks, which report them. Returns the started threads."""
    credential = current_credential()  # the thread works for this page's user

    def fetch(load: Any) -> None:
        try:
            with acting_as(credential):
                load(context)
        except Exception:  # noqa: BLE001 - the view's callback fetches again and says why
            pass

    threads = []
    for module in view_modules():
        load = getattr(module, "load_data", None)
        if PREFETCH and view_name(module) in EAGER_VIEWS and callable(load):
            threads.append(threading.Thread(target=fetch, args=(load,), daemon=True))
            threads[-1].start()
    return threads


def view_name(module: Any) -> str:
    """``frontend.views.geometry`` -> "geometry"."""
    return str(module.__name__).rsplit(".", 1)[-1]


def lazy_views() -> list[str]:
    """The views that wait to be woken (every view but :data:`EAGER_VIEWS`), in page order."""
    return [view_name(m) for m in view_modules() if view_name(m) not in EAGER_VIEWS]


def view_section(module: Any) -> Any:
    """A view's section as laid out: eager ones whole, lazy ones as their placeholder with
    their stores (:func:`frontend.views.lazy_section`)."""
    name = view_name(module)
    if name in EAGER_VIEWS:
        return module.section()
    return lazy_section(name, str(module.TITLE), LAZY_HEIGHTS.get(name, 400))


def section_when_woken(module: Any) -> Any:
    """The callback that answers lazy view ``module``'s wake store with its section."""
    name = view_name(module)

    def render_section(wake: Any) -> Any:
        """Callback: once the view is woken (its wake store set), its section and ready
        store replace the placeholder; the ready store then hands the context on."""
        if not wake:
            return dash.no_update
        return woken_section(module.section(), name)

    render_section.__name__ = f"render_{name}_section"
    return render_section


def view_stores(view: ComparisonView, selected_class: int | None, query: dict[str, Any]) -> list:
    """The stores the view sections share (frontend/views/__init__.py): context, query, and
    the linked selection restored from the URL's ``sel``."""
    ids = decode_ids(query.get("sel"))
    context = {
        "id": view["comparison"]["id"],
        "b": view["model_b"]["id"],
        "cls": selected_class,
        "query": query,
    }
    return [
        dcc.Store(id=CONTEXT, data=context),
        dcc.Store(id=QUERY, data=query),
        dcc.Store(id=SELECTION, data=selection(ids, "url") if ids else None),
    ]


def render_view(
    view: ComparisonView,
    models: Sequence[ModelPublic],
    selected_class: int | None,
    requested_class: Any = None,
    query: dict[str, Any] | None = None,
    pending: html.Div | None = None,
    user: SessionInfo | None = None,
) -> html.Div:
    """The compare page body for one fetched ``/comparisons/{id}/view`` (no HTTP).

    Args:
        models: all models, for the B selector's labels (may be empty).
        selected_class: validated class index, or None for all classes.
        requested_class: the raw ``cls`` of the URL, to warn when it named no class.
        query: the URL query, restored into the views' stores.
        pending: :func:`pending_panel` of a compare job that has not succeeded, shown on top.
        user: the current user (``GET /api/session``): who gets the Share panel; None = none.
    """
    class_names = view["dataset"]["class_names"]
    an_a, an_b = view["analysis_a"], view["analysis_b"]
    label_a = f"A: {view['model_a']['name']}"
    label_b = f"B: {model_label(view['model_b'])}"
    warning = None
    if requested_class not in (None, "", ALL_CLASSES) and selected_class is None:
        warning = notice(
            f"Unknown class '{requested_class}'",
            f"This dataset has classes 0–{len(class_names) - 1}; showing all classes.",
            kind="warning",
        )
    recall = recall_bars(
        class_names, an_a["recall"], an_b["recall"], label_a, label_b, selected_class
    )
    shift = f"Shift ({SHIFT_LABEL})"
    confusions = [
        (ID_CONF_A, confusion_heatmap(an_a["confusion"], class_names, label_a, selected_class)),
        (ID_CONF_B, confusion_heatmap(an_b["confusion"], class_names, label_b, selected_class)),
        (
            ID_CONF_SHIFT,
            confusion_shift_heatmap(view["confusion_shift"], class_names, shift, selected_class),
        ),
    ]
    hint = html.P("Click a class's bars to select it.", className="muted hint")
    cell_hint = html.P(
        "Click a cell to select its samples in every view (the shift: the samples that "
        "entered or left the cell).",
        className="muted hint",
    )
    confusion = [_graph(graph_id, figure, 460) for graph_id, figure in confusions]
    return html.Div(
        [
            _header(view),
            None if user is None else sharing.panel(int(view["comparison"]["id"]), user),
            pending,
            _selectors(view, models, selected_class),
            warning,
            html.Div(headline_cards(view, selected_class), id=ID_HEADLINE, className="card-row"),
            html.Section([_graph(ID_RECALL, recall, 380), hint], className="section card"),
            html.Section(
                [html.H2("Confusion"), html.Div(confusion, className="grid-3"), cell_hint],
                className="section card",
            ),
            *[view_section(module) for module in view_modules()],
            *view_stores(view, selected_class, dict(query or {})),
            dcc.Store(id=ID_LAZY),
        ],
        # a user who may not write (share link, read-only token) gets no buttons that submit
        className="page page-compare" + ("" if user is None or can_write(user) else " read-only"),
    )


def update_url(
    b: Any,
    cls: Any,
    search: str | None,
    b_options: Sequence[dict[str, Any]] | None = None,
    query: dict[str, Any] | None = None,
    current_selection: dict[str, Any] | None = None,
) -> str | dash.NoUpdate:
    """Callback: write the selected B model (``compare-b-select``) and class
    (``compare-class-select``: an index, or "all", dropped) into the URL's query string, e.g.
    ``"?id=1&b=3&cls=4"``; the page's router then renders the page again from it.

    Dash calls this once whenever the page is rendered (its output, Location ``url``, lives in
    the shell, so ``prevent_initial_call`` cannot hold for inputs inserted later). That call
    must not push a new history entry, or Back would bounce straight forward again: so a URL
    that already means the current selection is left alone (``dash.no_update``), including one
    without ``b`` while the comparison's default B (the first of ``b_options``) is selected.

    The views' settings come from ``query`` (the QUERY store), not from ``search``: the
    address bar shows them (``history.replaceState``) but Location ``url`` does not know of
    them; they survive a change of B or class, as does the SELECTION store
    (``current_selection``), kept as ``sel`` up to ``MAX_URL_SELECTION`` samples.
    """
    current = parse_qsl((search or "").lstrip("?"), keep_blank_values=True)
    current_keys = {k for k, _ in current}
    kept = [(k, v) for k, v in current if k not in ("id", "b", "cls")]
    if query is not None:
        view = view_query(query, current_selection)
        kept = [(k, v) for k, v in view.items() if k not in ("b", "cls")]
    ids = [v for k, v in current if k == "id"]
    default_b = b_options[0].get("value") if b_options else None
    params: list[tuple[str, str]] = [("id", ids[0])] if ids else []
    if b is not None and b != "" and ("b" in current_keys or str(b) != str(default_b)):
        params.append(("b", str(b)))
    if cls is not None and cls != "" and cls != ALL_CLASSES:
        params.append(("cls", str(cls)))
    params += kept
    if sorted(params) == sorted(current):
        return dash.no_update
    return f"?{urlencode(params)}" if params else ""


def select_class_from_click(click_data: dict[str, Any] | None, current: Any) -> Any:
    """Callback: clicking a class's bars (``clickData`` of ``compare-recall-bars``) selects
    that class in ``compare-class-select``; clicking it again selects all."""
    points = (click_data or {}).get("points") or []
    if not points:
        return dash.no_update
    idx = query_int(points[0].get("pointIndex", points[0].get("pointNumber")))
    if idx is None:
        return dash.no_update
    if query_int(current) == idx:
        return ALL_CLASSES
    return idx


def confusion_cell(
    click_data: dict[str, Any] | None, class_names: Sequence[str]
) -> tuple[int, int] | None:
    """``(true class, predicted class)`` of a confusion heatmap's ``clickData`` (rows are the
    true class): from ``pointNumber`` ``[row, column]``, else from the axis names."""
    points = (click_data or {}).get("points") or []
    if not points:
        return None
    number = points[0].get("pointNumber")
    if isinstance(number, list | tuple) and len(number) == 2:
        true, pred = query_int(number[0]), query_int(number[1])
    else:
        names = plot_texts(class_names)
        x, y = points[0].get("x"), points[0].get("y")
        true = names.index(y) if y in names else None
        pred = names.index(x) if x in names else None
    n = len(class_names)
    if true is None or pred is None or not (0 <= true < n and 0 <= pred < n):
        return None
    return true, pred


def confusion_members(
    table: Mapping[str, Sequence[Any]], true: int, pred: int, source: str
) -> list[int]:
    """The samples of cell (``true``, ``pred``) in A's matrix ("confusion-a"), in B's
    ("confusion-b"), or those that entered or left it from A to B ("confusion-shift"),
    from the comparison table's ``index``, ``label``, ``pred_a`` and ``pred_b``."""
    rows = zip(table["index"], table["label"], table["pred_a"], table["pred_b"], strict=True)
    members = []
    for index, label, pred_a, pred_b in rows:
        if int(label) != true:
            continue
        in_a, in_b = int(pred_a) == pred, int(pred_b) == pred
        keep = {"confusion-a": in_a, "confusion-b": in_b}.get(source, in_a != in_b)
        if keep:
            members.append(int(index))
    return members


TABLE_COLUMNS = ["index", "label", "pred_a", "pred_b"]


def select_confusion_cell(graph_id: str) -> Callable[..., Any]:
    """The callback that turns a click on confusion heatmap ``graph_id`` into a SELECTION of
    that cell's samples (:func:`confusion_members`); clicking the cell that made the
    current selection again clears it."""
    source = CONFUSION_SOURCES[graph_id]

    def select_cell_samples(
        click_data: dict[str, Any] | None,
        context: dict[str, Any] | None,
        current: dict[str, Any] | None,
    ) -> Any:
        """Callback: the clicked confusion cell's samples become the linked selection."""
        if not context or context.get("id") is None:
            return dash.no_update
        client = get_client()
        try:
            view = client.get_comparison_view(int(context["id"]), b=context.get("b"))
            cell = confusion_cell(click_data, view["dataset"]["class_names"])
            if cell is None:
                return dash.no_update
            table = client.get_comparison_table_columns(
                int(context["id"]), b=context.get("b"), columns=TABLE_COLUMNS
            )
        except ApiError:
            return dash.no_update
        members = confusion_members(table["columns"], cell[0], cell[1], source)
        if (current or {}).get("source") == source and selected_ids(current) == sorted(members):
            return None  # the same cell again: clear
        return selection(members, source)

    select_cell_samples.__name__ = f"select_{source.replace('-', '_')}_cell"
    return select_cell_samples


def export_label(current: dict[str, Any] | None) -> tuple[str, bool]:
    """Callback: the export button's text and whether it is disabled (no selection)."""
    n = len(selected_ids(current))
    if not n:
        return "Export selection (CSV)", True
    return f"Export {n:,} selected sample{'s' if n != 1 else ''} (CSV)", False


def export_selection(
    n_clicks: Any, current: dict[str, Any] | None, context: dict[str, Any] | None
) -> Any:
    """Callback: the selected samples' rows of the comparison table (A vs the shown B: index,
    label, both predictions, flip category, PIE, margins and geometric shifts, fragility) as
    a CSV download."""
    ids = set(selected_ids(current))
    if not n_clicks or not ids or not context or context.get("id") is None:
        return dash.no_update
    try:
        table = get_client().get_comparison_table_columns(int(context["id"]), b=context.get("b"))
    except ApiError:
        return dash.no_update
    values, columns = table["columns"], list(table["column_names"])
    keep = [i for i, index in enumerate(values["index"]) if int(index) in ids]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for i in keep:
        writer.writerow([values[c][i] for c in columns])
    name = f"comparison-{context['id']}-b{context.get('b')}-selection.csv"
    return {"content": out.getvalue(), "filename": name, "type": "text/csv"}
