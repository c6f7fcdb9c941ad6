"""Compare-page view "Pruning limit of A" (issue 20; SCIENCE.md section 7).

For the comparison's A: the theory curve w(R(s)) of Zhang et al. (NeurIPS 2024) from its loss
Hessian's eigenvalue density, the sparsity s it is compared with and their crossing (the
predicted limit), and the observed test accuracy of one-shot global magnitude pruning over s
(no fine-tuning) with the dense accuracy - 1 pp line (:func:`frontend.figures.limit.limit_figure`).

Without a result (``GET /api/models/{id}/pruning-limit`` answers 404): what the view shows,
and a button that submits a ``pruning_limit`` job on A and follows it
(:class:`frontend.jobs.CompactFollower`); the button is hidden for share-link viewers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dash
from dash import Input, State, dcc, html

from frontend.client import ApiError, get_client
from frontend.components import api_error_notice
from frontend.figures.limit import HEIGHT_PX, limit_figure, limit_summary
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

NAME = "limit"
CTX = view_context(NAME)

ID_SECTION = "compare-limit"
JOB = CompactFollower(ID_SECTION, "pruning_limit", announce=True)
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_limit_job = JOB.follow, JOB.poll  # the callbacks
ID_MESSAGE = "compare-limit-message"
ID_INTRO = "compare-limit-intro"
ID_BODY = "compare-limit-body"
ID_CARDS = "compare-limit-cards"
ID_NOTE = "compare-limit-note"
ID_FIGURE = "compare-limit-figure"
ID_MODEL = "compare-limit-model"  # A's id, for the button

TITLE = "Pruning limit of A"
LEAD = (
    "How sparse A can be pruned in theory (Zhang et al., NeurIPS 2024): the theory curve "
    "w(R(s)) from A's loss Hessian against the sparsity s, their crossing the predicted limit, "
    "and the observed accuracy of one-shot global magnitude pruning without fine-tuning."
)
EMPTY_TITLE = "No pruning-limit estimate for A yet"
WHAT = (
    "The job estimates the Hessian eigenvalue density of A's training loss by stochastic "
    "Lanczos quadrature (Hessian-vector products only), the loss tolerance eps (the spread of "
    "per-batch losses) and R(s), the distance global magnitude pruning moves the weights, "
    "then prunes A one-shot at 20 sparsities to measure its accuracy."
)
BUTTON = "Estimate the pruning limit"
JOB_NOTE: list[Any] = [
    "Runs one pruning_limit job on A. From a script: ",
    html.Code('POST /api/jobs {"kind": "pruning_limit", "spec": {"model_id": …}}'),
    ".",
]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def limit_cards(result: Mapping[str, Any]) -> list[html.Div]:
    """The headline numbers: predicted and observed limit, dense accuracy, eps."""
    summary = limit_summary(result)
    eps = summary["eps"]
    return [
        number_card(
            "Predicted limit",
            _pct(summary["predicted"]),
            "Sparsity where the theory curve w(R(s)) crosses s",
        ),
        number_card(
            "Observed limit (one-shot)",
            _pct(summary["observed"]),
            "Largest sparsity before one-shot accuracy falls below dense − 1 pp",
        ),
        number_card("Dense accuracy", _pct(summary["dense_accuracy"]), "A on the test split"),
        number_card(
            "eps", "—" if eps is None else f"{eps:.3g}", "Std of the per-batch training loss"
        ),
    ]


def results_note(result: Mapping[str, Any]) -> str:
    """How the estimate was made, in one line."""
    spec = result.get("spec") or {}
    density = result.get("density") or {}
    zero = density.get("near_zero_mass")
    zero_text = "" if zero is None else f"; near-zero eigenvalue mass {float(zero):.1%}"
    return (
        f"Job #{result.get('job_id')}: {spec.get('vectors', '?')} vectors × "
        f"{spec.get('iterations', '?')} Lanczos steps on {result.get('hessian_batches', '?')} "
        f"training batches{zero_text}. The limit is where w(R(s)) = s (SCIENCE.md §7)."
    )


def fetch_limit(context: Mapping[str, Any]) -> dict[str, Any]:
    """``{"state": "results", "result", "model_id"}``, ``{"state": "empty", "model_id"}``
    (404: no job has succeeded for A) or ``{"state": "error", "message"}``."""
    client = get_client()
    try:
        comparison = client.get_comparison(int(context["id"]))
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "the comparison")}
    model_id = int(comparison["model_a_id"])
    try:
        result = client.get_pruning_limit(model_id)
    except ApiError as exc:
        if exc.status == 404:
            return {"state": "empty", "model_id": model_id}
        return {"state": "error", "message": api_error_notice(exc, "the pruning limit")}
    return {"state": "results", "result": dict(result), "model_id": model_id}


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
            html.Div(id=ID_CARDS, className="card-row"),
            hint("", ID_NOTE),
            graph(ID_FIGURE, None, HEIGHT_PX),
        ],
        id=ID_BODY,
        style=HIDDEN,
    )
    stores = [*JOB.stores(), dcc.Store(id=ID_MODEL)]
    return view_section(ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), intro, body, *stores)


LOADED = Outputs(
    message=(ID_MESSAGE, "children", None),
    intro=(ID_INTRO, "style", HIDDEN),
    body=(ID_BODY, "style", HIDDEN),
    model=(ID_MODEL, "data", None),
    cards=(ID_CARDS, "children", []),
    note=(ID_NOTE, "children", ""),
    figure=(ID_FIGURE, "figure", dash.no_update),
)


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    LOADED.register(app, load_limit, Input(CTX, "data"), Input(ID_DONE, "data"), lazy=True)
    JOB.register(app, start_limit_job, State(ID_MODEL, "data"))


def load_limit(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: A's pruning limit, or the empty state with its button; again when a followed
    job has succeeded (``done``).

    Returns:
        The values of :data:`LOADED`'s outputs, in its order.
    """
    if not has_context(context):
        return LOADED()
    found = fetch_limit(context)
    if found["state"] == "error":
        return LOADED(message=found["message"])
    if found["state"] == "empty":
        return LOADED(intro=SHOWN, model=found["model_id"])
    result = found["result"]
    return LOADED(
        body=SHOWN,
        model=found["model_id"],
        cards=limit_cards(result),
        note=results_note(result),
        figure=limit_figure(result),
    )


def start_limit_job(n_clicks: int | None, model_id: Any) -> tuple[Any, Any]:
    """Callback: submit a ``pruning_limit`` job on A (followed as ``{"id", "model_id"}``) and
    its first progress line, or the API's refusal."""
    if not n_clicks or model_id is None:
        return dash.no_update, dash.no_update
    return JOB.start({"model_id": int(model_id)}, model_id=int(model_id))
