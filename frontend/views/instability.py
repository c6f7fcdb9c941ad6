"""Compare-page view "Instability of B" (issue 20; SCIENCE.md sections 4 and 7).

For the current B, when it has a rewind point (the start weights its prune job stored: a
lottery ticket's rewind point, a one-shot method's masked parent, SNIP's or RigL's
initialisation): the test error along the linear path between two copies of B trained from
that point with different data orders, the endpoints' line, and the error barrier of Frankle
et al. (ICML 2020) marked (:func:`frontend.figures.instability.instability_figure`).

Without a result (``GET /api/models/{id}/instability`` answers 404): what the view shows, and a
button that submits an ``instability`` job on B and follows it
(:class:`frontend.jobs.CompactFollower`); the button is hidden for share-link viewers. A B
without a rewind point (an upload, an original) gets a sentence saying why the view does not
apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dash
from dash import Input, State, dcc, html

from frontend.client import ApiError, get_client
from frontend.components import api_error_notice
from frontend.figures.instability import HEIGHT_PX, instability_figure, instability_summary
from frontend.forms import query_int
from frontend.jobs import CompactFollower
from frontend.views import view_context
from frontend.views.parts import (
    HIDDEN,
    SHOWN,
    Outputs,
    graph,
    has_context,
    hint,
    number_card,
    view_section,
)

NAME = "instability"
CTX = view_context(NAME)

ID_SECTION = "compare-instability"
JOB = CompactFollower(ID_SECTION, "instability", announce=True)
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_instability_job = JOB.follow, JOB.poll  # the callbacks
ID_MESSAGE = "compare-instability-message"
ID_NA = "compare-instability-na"
ID_INTRO = "compare-instability-intro"
ID_BODY = "compare-instability-body"
ID_CARDS = "compare-instability-cards"
ID_NOTE = "compare-instability-note"
ID_FIGURE = "compare-instability-figure"
ID_MODEL = "compare-instability-model"  # B's id, for the button

TITLE = "Instability of B"
LEAD = (
    "Whether B's sparse network is stable to SGD noise (Frankle et al., ICML 2020): two copies "
    "trained from B's rewind point with different data orders, the test error along the "
    "straight line between them, and the error barrier (the highest error on the path above "
    "the mean of the two copies' errors)."
)
EMPTY_TITLE = "No instability measured for this B yet"
WHAT = (
    "The job sets B's kept weights back to its rewind point (the weights its last training "
    "began from), trains two copies with B's own training settings and two data orders, then "
    "measures the test error at 30 evenly spaced points between them. A barrier below 2 % is "
    "what the paper calls stable (linearly mode connected)."
)
NOT_APPLICABLE = (
    "Instability does not apply to this B: it has no rewind point. The view needs the weights "
    "B's training began from, which a prune job stores (a lottery ticket's rewind point, the "
    "masked parent of a one-shot method, the initialisation of SNIP or RigL); an uploaded or "
    "original model does not have them."
)
BUTTON = "Measure instability"
JOB_NOTE: list[Any] = [
    "Runs one instability job on B (two trainings). From a script: ",
    html.Code('POST /api/jobs {"kind": "instability", "spec": {"model_id": …}}'),
    ".",
]


def has_rewind_point(model: Mapping[str, Any]) -> bool:
    """Whether a model (``GET /api/models/{id}``) records the start weights of its training
    (``pruning_params["learning"]["start_sha"]``), which the instability job starts from."""
    params = model.get("pruning_params")
    learning = params.get("learning") if isinstance(params, Mapping) else None
    return isinstance(learning, Mapping) and bool(learning.get("start_sha"))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def instability_cards(result: Mapping[str, Any]) -> list[html.Div]:
    """The headline numbers: the barrier (and stable or not), the two copies' errors, the
    highest point of the path."""
    summary = instability_summary(result)
    barrier, ends = summary["barrier"], summary["endpoint_errors"] or [None, None]
    verdict = (
        ""
        if summary["stable"] is None
        else ("stable" if summary["stable"] else "unstable")
        + f" (threshold {100 * summary['stable_below']:.0f} pp)"
    )
    peak = summary["max_alpha"]
    return [
        number_card(
            "Error barrier",
            "—" if barrier is None else f"{100 * barrier:.1f} pp",
            f"max error on the path − mean of the copies' errors; {verdict}".rstrip("; "),
        ),
        number_card("Copy 1 error", _pct(ends[0]), "test error at a = 0"),
        number_card("Copy 2 error", _pct(ends[1]), "test error at a = 1"),
        number_card(
            "Highest error",
            _pct(summary["max_error"]),
            "on the path" if peak is None else f"at a = {peak:.2f}",
        ),
    ]


def results_note(result: Mapping[str, Any]) -> str:
    """How the measurement was made, in one line."""
    seeds = result.get("seeds") or []
    seed_text = " and ".join(str(s) for s in seeds) or "?"
    rewind = result.get("rewind_step")
    rewind_text = "" if rewind is None else f" (rewind step {rewind})"
    rest = (result.get("start") or {}).get("rest")
    rest_text = f"; biases and normalisation from {rest}" if rest else ""
    return (
        f"Job #{result.get('job_id')}: two copies trained {result.get('epochs', '?')} epochs "
        f"from B's rewind point{rewind_text} with seeds {seed_text}{rest_text}; test error at "
        f"{len(result.get('alphas') or [])} points. Barrier = max E(a) − (E(0) + E(1)) / 2 "
        "(SCIENCE.md §4)."
    )


def fetch_instability(context: Mapping[str, Any]) -> dict[str, Any]:
    """``{"state": "results", "result", "model_id"}``, ``{"state": "empty", "model_id"}``
    (404: no job has succeeded for B), ``{"state": "na", "model_id"}`` (B has no rewind
    point) or ``{"state": "error", "message"}``."""
    client = get_client()
    try:
        comparison = client.get_comparison(int(context["id"]))
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "the comparison")}
    b_ids = [int(i) for i in comparison.get("model_b_ids") or []]
    b = query_int(context.get("b"))
    b = b if b is not None else (b_ids[0] if b_ids else None)
    if b is None:
        return {"state": "error", "message": "This comparison has no pruned model."}
    try:
        model = client.get_model(b)
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "model B")}
    if not has_rewind_point(model):
        return {"state": "na", "model_id": b}
    try:
        result = client.get_instability(b)
    except ApiError as exc:
        if exc.status == 404:
            return {"state": "empty", "model_id": b}
        return {"state": "error", "message": api_error_notice(exc, "the instability")}
    return {"state": "results", "result": dict(result), "model_id": b}


def section() -> html.Section:
    """The view's skeleton: the not-applicable sentence, the empty state with its button, and
    the results (all hidden)."""
    write_note = html.Span(
        "Measuring it needs a write token (this link is read-only).",
        className="muted needs-write-note",
    )
    not_applicable = html.P(NOT_APPLICABLE, id=ID_NA, className="notice", style=HIDDEN)
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
            html.Div(id=ID_CARDS, className="card-row"),
            hint("", ID_NOTE),
            graph(ID_FIGURE, None, HEIGHT_PX),
        ],
        id=ID_BODY,
        style=HIDDEN,
    )
    stores = [*JOB.stores(), dcc.Store(id=ID_MODEL)]
    return view_section(
        ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), not_applicable, intro, body, *stores
    )


LOADED = Outputs(
    message=(ID_MESSAGE, "children", None),
    na=(ID_NA, "style", HIDDEN),
    intro=(ID_INTRO, "style", HIDDEN),
    body=(ID_BODY, "style", HIDDEN),
    model=(ID_MODEL, "data", None),
    cards=(ID_CARDS, "children", []),
    note=(ID_NOTE, "children", ""),
    figure=(ID_FIGURE, "figure", dash.no_update),
)


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    LOADED.register(app, load_instability, Input(CTX, "data"), Input(ID_DONE, "data"), lazy=True)
    JOB.register(app, start_instability_job, State(ID_MODEL, "data"))


def load_instability(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: B's instability, the empty state with its button, or why it does not apply;
    again when a followed job has succeeded (``done``).

    Returns:
        The values of :data:`LOADED`'s outputs, in its order.
    """
    if not has_context(context):
        return LOADED()
    found = fetch_instability(context)
    if found["state"] == "error":
        return LOADED(message=found["message"])
    if found["state"] == "na":
        return LOADED(na=SHOWN)
    if found["state"] == "empty":
        return LOADED(intro=SHOWN, model=found["model_id"])
    result = found["result"]
    return LOADED(
        body=SHOWN,
        model=found["model_id"],
        cards=instability_cards(result),
        note=results_note(result),
        figure=instability_figure(result),
    )


def start_instability_job(n_clicks: int | None, model_id: Any) -> tuple[Any, Any]:
    """Callback: submit an ``instability`` job on B (followed as ``{"id", "model_id"}``) and
    its first progress line, or the API's refusal."""
    if not n_clicks or model_id is None:
        return dash.no_update, dash.no_update
    return JOB.start({"model_id": int(model_id)}, model_id=int(model_id))
