"""Compare-page view "Layers: where pruning acted" (issue 20; SCIENCE.md section 7).

Per prunable layer of A and the shown B, in network order: B's sparsity, the output channels B
keeps, the relative weight change, linear CKA between A's and B's layer outputs and the
dead-ReLU rate of A and B, as small multiples sharing the layer axis
(:func:`frontend.figures.layers.layer_metrics_figure`). Clicking a layer shows its weight
magnitudes in A and B (:func:`frontend.figures.layers.layer_histogram_figure`).

Without results (``GET /api/comparisons/{id}/layers`` answers 404, or its results do not cover
the shown B): what the view shows, and a button that submits a ``layers`` job for every B and
follows it (:class:`frontend.jobs.CompactFollower`); a job already running for the comparison
is picked up when the view opens. URL setting: ``lay_layer`` (the chosen layer's name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from frontend.client import ApiClient, ApiError, get_client, get_comparison_layers
from frontend.components import api_error_notice, notice
from frontend.figures._common import empty_figure
from frontend.figures.formatting import model_label
from frontend.figures.layers import (
    clicked_layer,
    layer_height,
    layer_histogram_figure,
    layer_metrics_figure,
)
from frontend.forms import query_int
from frontend.jobs import CompactFollower, is_active
from frontend.views import view_context
from frontend.views.parts import (
    HIDDEN,
    SHOWN,
    Outputs,
    graph,
    graph_config,
    has_context,
    hint,
    register_settings,
    view_section,
    write_settings,
)

NAME = "layers"
KEY_LAYER = "lay_layer"
CTX = view_context(NAME)

ID_SECTION = "compare-layers"
# the layers job the button submits; once it has succeeded, ID_DONE reloads the view
JOB = CompactFollower(ID_SECTION, "layers", announce=True)
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_layers_job = JOB.follow, JOB.poll  # the callbacks
ID_MESSAGE = "compare-layers-message"
ID_INTRO = "compare-layers-intro"
ID_BODY = "compare-layers-body"
ID_NOTE = "compare-layers-note"
ID_FIGURE = "compare-layers-figure"
ID_HIST = "compare-layers-hist"
ID_HIST_NOTE = "compare-layers-hist-note"
ID_DATA = "compare-layers-data"
ID_LAYER = "compare-layers-layer"

TITLE = "Layers: where pruning acted"
LEAD = (
    "Per prunable layer of A and B, in network order: how much of it B pruned, the channels "
    "it kept, how far its weights moved, how similar its outputs stay (linear CKA) and how "
    "many of its ReLUs are dead. Click a layer for its weight magnitudes."
)
EMPTY_TITLE = "No layer comparison yet"
WHAT = (
    "This view compares A and each B layer by layer: sparsity, kept channels, relative weight "
    "change ‖W_B − W_A‖ / ‖W_A‖, linear CKA between the layers' outputs on up to 1,000 test "
    "samples (Kornblith et al., 2019) and dead-ReLU rates, with each layer's weight histograms."
)
BUTTON = "Compute layer comparison"
JOB_NOTE: list[Any] = [
    "Runs one layers job for A and every B of this comparison. From a script: ",
    html.Code('POST /api/jobs {"kind": "layers", "spec": {"comparison_id": …}}'),
    ".",
]
CLICK_HINT = "Click a layer's row in the chart to see its weight magnitudes in A and B."
HIST_HEIGHT_PX = 380
GRAPH_CONFIG = graph_config("select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "pan2d", "zoom2d")


# pure helpers -------------------------------------------------------------------------------


def active_job(jobs: Sequence[Mapping[str, Any]], comparison_id: int) -> Mapping[str, Any] | None:
    """The latest queued or running layers job of the comparison, if any."""
    found = [
        j
        for j in jobs
        if j.get("kind") == NAME
        and (j.get("spec") or {}).get("comparison_id") == comparison_id
        and is_active(j)
    ]
    return max(found, key=lambda j: int(j["id"])) if found else None


def result_for(results: Sequence[Mapping[str, Any]], b: int) -> Mapping[str, Any] | None:
    """The entry of ``results`` for model B ``b``, if any."""
    return next((r for r in results if query_int(r.get("model_b_id")) == b), None)


def layer_names(data: Mapping[str, Any] | None) -> list[str]:
    """The names of the layers in the view's data store."""
    return [str(layer.get("name")) for layer in (data or {}).get("layers") or []]


def parse_layer(value: Any, names: Sequence[str]) -> str | None:
    """``lay_layer``: a layer of ``names``, else None (none chosen)."""
    return str(value) if value is not None and str(value) in names else None


def _labels(client: ApiClient, comparison: Mapping[str, Any], b: int) -> tuple[str, str]:
    try:
        a = client.get_model(int(comparison["model_a_id"]))
        label_a = f"A: {a.get('name') or 'model ' + str(a.get('id'))}"
    except ApiError:
        label_a = "A"
    try:
        label_b = f"B: {model_label(client.get_model(b))}"
    except ApiError:
        label_b = "B"
    return label_a, label_b


# data ---------------------------------------------------------------------------------------


def fetch_layers(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the view shows for the CONTEXT's comparison and B.

    Returns:
        ``{"state": "results", "data": {"layers", "n_samples", "label_a", "label_b"}}``;
        ``{"state": "empty", "job": ..., "covered": [B ids with results]}`` before a layers job
        has covered this B; ``{"state": "error", "message": ...}``.
    """
    client, comparison_id = get_client(), int(context["id"])
    try:
        comparison = client.get_comparison(comparison_id)
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "the comparison")}
    b_ids = [int(i) for i in comparison.get("model_b_ids") or []]
    b = query_int(context.get("b"))
    b = b if b is not None else (b_ids[0] if b_ids else None)
    if b is None:
        return {"state": "error", "message": notice("This comparison has no pruned model", None)}
    try:
        results = list(get_comparison_layers(client, comparison_id).get("results") or [])
    except ApiError as exc:
        if exc.status != 404:
            return {"state": "error", "message": api_error_notice(exc, "the layer comparison")}
        results = []
    found = result_for(results, b)
    if found is None:
        try:
            job = active_job(client.list_jobs(), comparison_id)
        except ApiError:
            job = None  # a share-link viewer may not list jobs
        covered = [int(r["model_b_id"]) for r in results if r.get("model_b_id") is not None]
        return {"state": "empty", "job": job, "covered": covered}
    label_a, label_b = _labels(client, comparison, b)
    data = {
        "layers": list(found.get("layers") or []),
        "n_samples": query_int(found.get("n_samples")),
        "label_a": label_a,
        "label_b": label_b,
    }
    return {"state": "results", "data": data}


def results_note(data: Mapping[str, Any]) -> str:
    """What the chart measured, in one line."""
    n, n_samples = len(data.get("layers") or []), data.get("n_samples")
    on = "" if not n_samples else f"; CKA and dead ReLUs on {int(n_samples):,} test samples"
    return (
        f"{n} prunable layer{'s' if n != 1 else ''}, first at the top{on}. Bars are B, "
        "circles A; “n/a” marks a value that cannot be measured (hover for why)."
    )


# layout -------------------------------------------------------------------------------------


def section() -> html.Section:
    """The view's skeleton: the empty state with its button, and the results (hidden)."""
    write_note = html.Span(
        "Computing it needs a write token (this link is read-only).",
        className="muted needs-write-note",
    )
    intro = html.Div(
        [
            html.Strong(EMPTY_TITLE),
            html.P(WHAT),
            html.Div([JOB.button(BUTTON), write_note], className="actions"),
            html.P(JOB_NOTE, className="muted hint needs-write"),
            html.Div(id=ID_PROGRESS, style={"marginTop": "0.75rem"}),
        ],
        id=ID_INTRO,
        className="notice notice-info",
        style=HIDDEN,
    )
    body = html.Div(
        [
            hint("", ID_NOTE),
            graph(ID_FIGURE, None, layer_height(8), GRAPH_CONFIG),
            html.H3("Weight magnitudes of the chosen layer"),
            hint(CLICK_HINT, ID_HIST_NOTE),
            graph(ID_HIST, None, HIST_HEIGHT_PX, GRAPH_CONFIG, loading=CLICK_HINT),
        ],
        id=ID_BODY,
        style=HIDDEN,
    )
    stores = [*JOB.stores(), dcc.Store(id=ID_DATA), dcc.Store(id=ID_LAYER)]
    return view_section(ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), intro, body, *stores)


# callbacks ----------------------------------------------------------------------------------

# load_layers' outputs, and what they say when the view shows nothing
LOADED = Outputs(
    message=(ID_MESSAGE, "children", None),
    intro=(ID_INTRO, "style", HIDDEN),
    body=(ID_BODY, "style", HIDDEN),
    job=(ID_JOB, "data", None),
    data=(ID_DATA, "data", None),
    note=(ID_NOTE, "children", ""),
    layer=(ID_LAYER, "data", dash.no_update),
)


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    LOADED.register(app, load_layers, Input(CTX, "data"), Input(ID_DONE, "data"), lazy=True)
    app.callback(
        Output(ID_LAYER, "data", allow_duplicate=True),
        Input(ID_FIGURE, "clickData"),
        State(ID_DATA, "data"),
        State(ID_LAYER, "data"),
        prevent_initial_call=True,
    )(choose_layer)
    app.callback(
        Output(ID_FIGURE, "figure"),
        Output(ID_FIGURE, "style"),
        Output(ID_HIST, "figure"),
        Output(ID_HIST_NOTE, "children"),
        Input(ID_DATA, "data"),
        Input(ID_LAYER, "data"),
        prevent_initial_call=True,  # lazy: runs once woken (CTX)
    )(render_layers)
    register_settings(app, store_layer, Input(ID_LAYER, "data"))
    JOB.register(app, start_layers_job, State(CTX, "data"))


def load_layers(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: the CONTEXT's B's layers, or the empty state with its button; again when a
    followed job has succeeded (``done``).

    Returns:
        The values of :data:`LOADED`'s outputs, in its order.
    """
    if not has_context(context):
        return LOADED()
    found = fetch_layers(context)
    if found["state"] == "error":
        return LOADED(message=found["message"])
    if found["state"] == "empty":
        job, message = found.get("job"), None
        covered = found.get("covered") or []
        if covered:
            which = ", ".join(f"#{b}" for b in covered)
            message = notice(
                "These layer results do not cover this B",
                f"They were computed for model{'s' if len(covered) > 1 else ''} {which} "
                "only (this B was added later). Compute them again to include it.",
                kind="warning",
            )
        followed = (
            None if job is None else {"id": int(job["id"]), "comparison_id": int(context["id"])}
        )
        return LOADED(message=message, intro=SHOWN, job=followed)
    data = found["data"]
    query = context.get("query") or {}
    layer = parse_layer(query.get(KEY_LAYER), layer_names(data))
    return LOADED(body=SHOWN, data=data, note=results_note(data), layer=layer)


def render_layers(data: Mapping[str, Any] | None, layer: Any) -> tuple[Any, Any, Any, Any]:
    """Callback: the chart (the chosen layer highlighted) and the chosen layer's histograms."""
    if not data:
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    layers = list(data.get("layers") or [])
    label_a, label_b = str(data.get("label_a", "A")), str(data.get("label_b", "B"))
    names = layer_names(data)
    chosen = parse_layer(layer, names)
    fig = layer_metrics_figure(layers, label_a, label_b, chosen, data.get("n_samples"))
    style = {"height": f"{layer_height(len(layers))}px"}
    if chosen is None:
        return fig, style, empty_figure(CLICK_HINT), CLICK_HINT
    entry = layers[names.index(chosen)]
    note = (
        f"Layer {chosen}: |w| on a log axis, A and B overlaid; the exact zeros (pruned "
        "weights) cannot sit on a log axis and are counted in the title. Click another layer "
        "to switch."
    )
    return fig, style, layer_histogram_figure(entry, label_a, label_b), note


def choose_layer(
    click_data: Mapping[str, Any] | None, data: Mapping[str, Any] | None, current: Any
) -> Any:
    """Callback: a click on a layer's row chooses that layer (its name)."""
    names = layer_names(data)
    i = clicked_layer(click_data, len(names))
    if i is None or names[i] == current:
        return dash.no_update
    return names[i]


def store_layer(layer: Any, query: Mapping[str, Any] | None) -> Any:
    """Callback: the chosen layer into the URL query (``lay_layer``; absent for none)."""
    return write_settings(query, **{KEY_LAYER: layer or None})


def start_layers_job(n_clicks: int | None, context: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """Callback: submit the comparison's layers job (``{"id", "comparison_id"}`` followed) and
    its first progress line, or the API's refusal."""
    if not n_clicks or not has_context(context):
        return dash.no_update, dash.no_update
    comparison_id = int(context["id"])
    return JOB.start({"comparison_id": comparison_id}, comparison_id=comparison_id)
