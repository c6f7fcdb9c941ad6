"""Compare-page view "Fourier sensitivity" (issue 20; SCIENCE.md section 7).

Yin et al. (NeurIPS 2019): A's and the shown B's test error when a single 2-D Fourier basis
image of norm v is added to every test sample (with a random sign per channel), per frequency,
and B − A (:func:`frontend.figures.fourier.fourier_figure`); the zero frequency is at the
centre. A line states v, n and whether the inputs were clipped to [0, 1].

Without results (``GET /api/comparisons/{id}/fourier`` answers 404, or its results do not cover
the shown B): what the view shows, and a button that submits a ``fourier`` job for A and every
B and follows it (:class:`frontend.jobs.CompactFollower`; hidden for share-link viewers); a
job already running for the comparison is picked up when the view opens. On a dataset whose
inputs are not images, a sentence saying the view does not apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, State, html

from frontend.client import ApiClient, ApiError, get_client, get_comparison_fourier
from frontend.components import api_error_notice, notice
from frontend.figures.formatting import model_label
from frontend.figures.fourier import HEIGHT_PX, fourier_figure, model_entry
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
    view_section,
)

NAME = "fourier"
CTX = view_context(NAME)

ID_SECTION = "compare-fourier"
JOB = CompactFollower(ID_SECTION, "fourier", announce=True)
ID_COMPUTE, ID_JOB, ID_POLL, ID_PROGRESS, ID_DONE = JOB.ids
follow_job, poll_fourier_job = JOB.follow, JOB.poll  # the callbacks
ID_MESSAGE = "compare-fourier-message"
ID_INTRO = "compare-fourier-intro"
ID_BODY = "compare-fourier-body"
ID_NOTE = "compare-fourier-note"
ID_FIGURE = "compare-fourier-figure"

TITLE = "Fourier sensitivity"
LEAD = (
    "Which image frequencies A and B are sensitive to (Yin et al., NeurIPS 2019): the test "
    "error when one Fourier basis image of fixed norm is added to every sample, per 2-D "
    "frequency, the lowest at the centre and the highest at the corners; and where B errs "
    "more than A."
)
EMPTY_TITLE = "No Fourier heat maps yet"
WHAT = (
    "The job adds each real Fourier basis image U_ij (unit norm) of the image size, times v "
    "and a random sign per channel, to n test samples and measures the error rate of A and "
    "every B on the same perturbed images: one forward pass per frequency and sample."
)
BUTTON = "Compute Fourier sensitivity"
JOB_NOTE: list[Any] = [
    "Runs one fourier job for A and every B of this comparison (200 samples, v = 4 √(D / 3072)"
    " by default). From a script: ",
    html.Code('POST /api/jobs {"kind": "fourier", "spec": {"comparison_id": …}}'),
    ".",
]
NOT_IMAGES = (
    "Fourier sensitivity applies to image datasets (inputs of shape C × H × W); this "
    "comparison's dataset has inputs of shape {shape}, so there is nothing to show here."
)
GRAPH_CONFIG = graph_config("select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "pan2d")


# pure helpers -------------------------------------------------------------------------------


def is_image_shape(shape: Sequence[Any] | None) -> bool:
    """Whether a dataset's ``input_shape`` is an image the job takes: (C, H, W), H, W >= 2."""
    dims = [query_int(d) for d in shape or []]
    sides = [d for d in dims[1:] if d is not None]
    return len(dims) == 3 and len(sides) == 2 and min(sides) >= 2


def active_job(jobs: Sequence[Mapping[str, Any]], comparison_id: int) -> Mapping[str, Any] | None:
    """The latest queued or running fourier job of the comparison, if any."""
    found = [
        j
        for j in jobs
        if j.get("kind") == NAME
        and (j.get("spec") or {}).get("comparison_id") == comparison_id
        and is_active(j)
    ]
    return max(found, key=lambda j: int(j["id"])) if found else None


def results_note(result: Mapping[str, Any]) -> str:
    """What the maps measured, in one line: v, n, clipping, the frequencies."""
    v = result.get("v")
    v_text = "?" if v is None else f"{float(v):.3g}"
    default = " (the default, 4 √(D / 3072))" if result.get("v_default") else ""
    n = query_int(result.get("n_samples")) or 0
    h, w = result.get("height", "?"), result.get("width", "?")
    clipped = "clipped to [0, 1]" if result.get("clipped") else "not clipped"
    return (
        f"v = {v_text}{default}, n = {n:,} test samples, {h} × {w} frequencies "
        f"({result.get('frequencies', '?')} distinct basis images, a frequency and its mirror "
        f"image share one), perturbed inputs {clipped}, signs seeded {result.get('seed', 0)}; "
        f"job #{result.get('job_id')}."
    )


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


def fetch_fourier(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the view shows for the CONTEXT's comparison and B.

    Returns:
        ``{"state": "results", "result", "a", "b", "label_a", "label_b"}``;
        ``{"state": "empty", "job", "covered"}`` before a fourier job has covered this B;
        ``{"state": "not_images", "shape"}``; ``{"state": "error", "message"}``.
    """
    client, comparison_id = get_client(), int(context["id"])
    try:
        comparison = client.get_comparison(comparison_id)
    except ApiError as exc:
        return {"state": "error", "message": api_error_notice(exc, "the comparison")}
    try:
        shape = client.get_dataset(int(comparison["dataset_id"])).get("input_shape")
    except ApiError:
        shape = None  # unknown: the job's own check answers
    if shape is not None and not is_image_shape(shape):
        return {"state": "not_images", "shape": list(shape)}
    b_ids = [int(i) for i in comparison.get("model_b_ids") or []]
    b = query_int(context.get("b"))
    b = b if b is not None else (b_ids[0] if b_ids else None)
    if b is None:
        return {"state": "error", "message": notice("This comparison has no pruned model", None)}
    try:
        result: dict[str, Any] | None = dict(get_comparison_fourier(client, comparison_id))
    except ApiError as exc:
        if exc.status != 404:
            return {"state": "error", "message": api_error_notice(exc, "the Fourier heat maps")}
        result = None
    models = list((result or {}).get("models") or [])
    entry_b = model_entry(models, b)
    if result is None or not entry_b:
        try:
            job = active_job(client.list_jobs(), comparison_id)
        except ApiError:
            job = None  # a share-link viewer may not list jobs
        covered = [int(m["model_id"]) for m in models if m.get("role") == "b"]
        return {"state": "empty", "job": job, "covered": covered}
    label_a, label_b = _labels(client, comparison, b)
    entry_a: Mapping[str, Any] = next((m for m in models if m.get("role") == "a"), {})
    return {
        "state": "results",
        "result": result,
        "a": dict(entry_a),
        "b": dict(entry_b),
        "label_a": label_a,
        "label_b": label_b,
    }


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
        [hint("", ID_NOTE), graph(ID_FIGURE, None, HEIGHT_PX, GRAPH_CONFIG)],
        id=ID_BODY,
        style=HIDDEN,
    )
    return view_section(
        ID_SECTION, TITLE, LEAD, html.Div(id=ID_MESSAGE), intro, body, *JOB.stores()
    )


# callbacks ----------------------------------------------------------------------------------

LOADED = Outputs(
    message=(ID_MESSAGE, "children", None),
    intro=(ID_INTRO, "style", HIDDEN),
    body=(ID_BODY, "style", HIDDEN),
    job=(ID_JOB, "data", None),
    note=(ID_NOTE, "children", ""),
    figure=(ID_FIGURE, "figure", dash.no_update),
)


def register(app: dash.Dash) -> None:
    """Attach the view's callbacks to ``app``."""
    LOADED.register(app, load_fourier, Input(CTX, "data"), Input(ID_DONE, "data"), lazy=True)
    JOB.register(app, start_fourier_job, State(CTX, "data"))


def load_fourier(context: Mapping[str, Any] | None, done: Any = None) -> tuple[Any, ...]:
    """Callback: the CONTEXT's B's heat maps with A's, or the empty state with its button, or
    why the view does not apply; again when a followed job has succeeded (``done``).

    Returns:
        The values of :data:`LOADED`'s outputs, in its order.
    """
    if not has_context(context):
        return LOADED()
    found = fetch_fourier(context)
    if found["state"] == "error":
        return LOADED(message=found["message"])
    if found["state"] == "not_images":
        shape = " × ".join(str(d) for d in found["shape"]) or "?"
        return LOADED(message=html.P(NOT_IMAGES.format(shape=shape), className="muted"))
    if found["state"] == "empty":
        job, message = found.get("job"), None
        covered = found.get("covered") or []
        if covered:
            which = ", ".join(f"#{b}" for b in covered)
            message = notice(
                "These Fourier heat maps do not cover this B",
                f"They were computed for model{'s' if len(covered) > 1 else ''} {which} "
                "only (this B was added later). Compute them again to include it.",
                kind="warning",
            )
        followed = (
            None if job is None else {"id": int(job["id"]), "comparison_id": int(context["id"])}
        )
        return LOADED(message=message, intro=SHOWN, job=followed)
    figure = fourier_figure(found["a"], found["b"], found["label_a"], found["label_b"])
    return LOADED(body=SHOWN, note=results_note(found["result"]), figure=figure)


def start_fourier_job(n_clicks: int | None, context: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """Callback: submit the comparison's fourier job (``{"id", "comparison_id"}`` followed)
    and its first progress line, or the API's refusal."""
    if not n_clicks or not has_context(context):
        return dash.no_update, dash.no_update
    comparison_id = int(context["id"])
    return JOB.start({"comparison_id": comparison_id}, comparison_id=comparison_id)
