"""Prune page ("/prune?model=&method=&sparsity=&job="): submit a prune job or a sweep, follow it.

The form is generated from ``GET /api/methods`` (one input per hyper-parameter, typed from its
default) and turned into a job spec by the pure :func:`build_spec`. The server checks it as it is
filled in (its dry run, :func:`validate_form`), each message next to its field; nothing here
repeats the server's rules. After submission the followed-job section
(:class:`frontend.jobs.JobFollower`) polls the job until it is final, then shows the pruned
model's figures and offers a comparison with the model it was pruned from; while the job is
queued or running, "Cancel job" stops it (a sweep stops all its prune jobs).

View state lives in the URL (``model``, ``method``, ``sparsity`` and the followed ``job``), so a
link such as ``/prune?model=3&method=rigl`` opens the form filled in. The choices are written to a
page-level Location with ``refresh=False``: the address changes but the page is not rendered
again, which would throw away whatever else the user has typed. Back and reload still render the
page from the URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiClient, ApiError, JobPublic, MethodPublic, ModelPublic, get_client
from frontend.components import (
    api_error_notice,
    comparison_link,
    data_table,
    download_link,
    empty_state,
    job_kind_links,
    job_kind_tabs,
    notice,
    result_card,
    search_with,
)
from frontend.figures.formatting import MISSING, format_delta_pp, format_percent, format_ratio
from frontend.forms import (
    LR_SCHEDULES,
    OPTIMIZERS,
    WHOLE,
    as_number,
    blank,
    checkbox,
    choice,
    control,
    field_error,
    is_on,
    model_options,
    number_input,
    parse_param,
    query_float,
    query_int,
    register_validation,
    search_of,
    slot_messages,
    split_list,
    text_input,
)
from frontend.forms import dry_run as server_check
from frontend.jobs import JobFollower, start_job

PATH = "/prune"
TITLE = "Prune a model"
DEFAULT_METHOD = "global_magnitude"
DEFAULT_SPARSITY = 0.5
MAX_SPARSITY = 0.99  # the slider's end; the API accepts anything below 1
DEFAULT_OPTIMIZER, DEFAULT_LR_SCHEDULE = OPTIMIZERS[0], LR_SCHEDULES[0]
# The backend's training defaults (backend.jobs.specs / backend.jobs.kinds.prune), for the hint
# of what a blank epochs field means; the tests check them against the backend.
ONE_SHOT_DEFAULT_EPOCHS = 3
API_DEFAULT_EPOCHS = 15
API_DEFAULT_LR = 1e-3

ID_URL = "prune-url"
ID_VIEW = "prune-view"
ID_METHODS = "prune-methods"
ID_MODEL = "prune-model"
ID_METHOD = "prune-method"
ID_METHOD_INFO = "prune-method-info"
ID_SPARSITY = "prune-sparsity"
ID_SPARSITY_INFO = "prune-sparsity-info"
ID_PARAMS = "prune-params"
ID_EPOCHS = "prune-epochs"
ID_EPOCHS_HINT = "prune-epochs-hint"
ID_LR = "prune-lr"
ID_OPTIMIZER = "prune-optimizer"
ID_LR_SCHEDULE = "prune-lr-schedule"
ID_SEED = "prune-seed"
ID_ANALYZE = "prune-analyze"
ID_SWEEP = "prune-sweep"
ID_SWEEP_FIELDS = "prune-sweep-fields"
ID_SWEEP_SPARSITIES = "prune-sweep-sparsities"
ID_SWEEP_SEEDS = "prune-sweep-seeds"
ID_SUBMIT = "prune-submit"
ID_SUBMIT_ERROR = "prune-submit-error"
ID_API_ERROR = "prune-api-error"
ID_RESULT = "prune-result"
ID_COMPARE = "prune-compare"
ID_COMPARE_RESULT = "prune-compare-result"
ID_EMPTY = "prune-empty"
ID_KIND_TABS = "prune-kind-tabs"  # the shared Train | Prune | Sweep | Analyze strip
KIND_SWEEP = "sweep"  # ?kind=sweep opens the form with the Sweep box ticked
PARAM_TYPE = "prune-param"  # pattern-matching ids {"type": PARAM_TYPE, "name": <param>}
ERROR_TYPE = "prune-field-error"  # {"type": ERROR_TYPE, "field": <spec path, e.g. "sparsity">}

# Spec paths that have a message slot next to their field (parameters add "params.<name>");
# "" is the slot under the form for what concerns the spec as a whole or has no field.
FORM_FIELDS = (
    "model_id",
    "method",
    "sparsity",
    "finetune.epochs",
    "finetune.lr",
    "seed",
    "sweep.sparsities",
    "sweep.seeds",
    WHOLE,
)
# a sweep's spec paths -> the prune form's fields they come from
SWEEP_PATHS = {"sparsities": "sweep.sparsities", "seeds": "sweep.seeds", "methods": "method"}
SCHEDULE_LABELS: dict[str, str] = {
    "one_shot": "one-shot",
    "at_init": "at init",
    "during_training": "during training",
    "iterative": "iterative",
}
SCHEDULE_TEXT: dict[str, str] = {
    "one_shot": "Prunes the trained model once, then fine-tunes it.",
    "at_init": "Prunes a freshly initialised network, then trains it from scratch.",
    "during_training": "Changes the masks while the network trains.",
    "iterative": "Prunes and retrains in rounds; every round is kept as a model.",
}
SCOPE_TEXT: dict[str, str] = {
    "global": "Sparsity counts all prunable weights together: one global ranking, so layers end "
    "up with different sparsities.",
    "layer": "Sparsity is met in every prunable layer separately.",
    "structured": "Sparsity is the fraction of output channels removed from each prunable layer "
    "(the network becomes physically smaller).",
}
SCOPE_SHORT: dict[str, str] = {
    "global": "of all prunable weights together",
    "layer": "in every prunable layer",
    "structured": "of the output channels of every prunable layer",
}
# form keyword -> component id: the dry run takes them as Inputs, the submission as States
FORM_INPUTS: dict[str, str] = {
    "model": ID_MODEL,
    "method": ID_METHOD,
    "sparsity": ID_SPARSITY,
    "epochs": ID_EPOCHS,
    "lr": ID_LR,
    "optimizer": ID_OPTIMIZER,
    "lr_schedule": ID_LR_SCHEDULE,
    "seed": ID_SEED,
    "analyze": ID_ANALYZE,
    "sweep": ID_SWEEP,
    "sweep_sparsities": ID_SWEEP_SPARSITIES,
    "sweep_seeds": ID_SWEEP_SEEDS,
}


FOLLOW = JobFollower(
    "prune",
    render_result=lambda client, job: job_result(client, job),
    cancel_title="Stop the job; a sweep stops all its prune jobs",
)
(
    ID_JOB,
    ID_POLL,
    ID_PANEL,  # the job's section: the polled panel, then the cancel row
    ID_PROGRESS,
    ID_STATUS,
    ID_PROGRESS_BAR,
    ID_STAGE,
    ID_JOB_ERROR,
    ID_STOPPING,
    ID_CANCEL,
    ID_CANCEL_NOTICE,
) = FOLLOW.ids
poll_job = FOLLOW.poll
cancel_followed_job = FOLLOW.cancel
job_panel = FOLLOW.panel


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Prune", layout=layout)
    app.callback(
        Output(ID_METHOD_INFO, "children"),
        Output(ID_PARAMS, "children"),
        Input(ID_METHOD, "value"),
        State(ID_METHODS, "data"),
        prevent_initial_call=True,
    )(describe_method)
    app.callback(
        Output(ID_SPARSITY_INFO, "children"),
        Input(ID_SPARSITY, "value"),
        Input(ID_METHOD, "value"),
        State(ID_METHODS, "data"),
        prevent_initial_call=True,
    )(describe_sparsity)
    app.callback(
        Output(ID_EPOCHS_HINT, "children"),
        Input(ID_METHOD, "value"),
        Input(ID_MODEL, "value"),
        State(ID_METHODS, "data"),
        prevent_initial_call=True,
    )(describe_training)
    app.callback(
        Output(ID_LR, "disabled"),
        Output(ID_OPTIMIZER, "disabled"),
        Output(ID_LR_SCHEDULE, "disabled"),
        Input(ID_EPOCHS, "value"),
    )(toggle_training)
    app.callback(
        Output(ID_SWEEP_FIELDS, "style"),
        Output(ID_SUBMIT, "children"),
        Input(ID_SWEEP, "value"),
    )(toggle_sweep)
    app.callback(
        Output(ID_KIND_TABS, "children"),
        Output(ID_URL, "search", allow_duplicate=True),
        Input(ID_SWEEP, "value"),
        Input(ID_MODEL, "value"),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(follow_sweep)
    app.callback(
        Output(ID_URL, "search"),
        Input(ID_MODEL, "value"),
        Input(ID_METHOD, "value"),
        Input(ID_SPARSITY, "value"),
        Input(ID_JOB, "data"),
        State(ID_URL, "search"),
        State(ID_VIEW, "data"),
        prevent_initial_call=True,
    )(update_url)
    params = {
        "param_values": Input({"type": PARAM_TYPE, "name": ALL}, "value"),
        "param_ids": State({"type": PARAM_TYPE, "name": ALL}, "id"),
        "methods": State(ID_METHODS, "data"),
    }
    register_validation(
        app,
        validate_form,
        error_type=ERROR_TYPE,
        inputs={**{k: Input(cid, "value") for k, cid in FORM_INPUTS.items()}, **params},
    )
    app.callback(
        output={
            "errors": Output({"type": ERROR_TYPE, "field": ALL}, "children", allow_duplicate=True),
            "submit_error": Output(ID_SUBMIT_ERROR, "children"),
            "job": Output(ID_JOB, "data"),
            "cancel_notice": Output(ID_CANCEL_NOTICE, "children", allow_duplicate=True),
        },
        inputs={
            "n_clicks": Input(ID_SUBMIT, "n_clicks"),
            **{k: State(cid, "value") for k, cid in FORM_INPUTS.items()},
            **params,
            "param_values": State({"type": PARAM_TYPE, "name": ALL}, "value"),
            "error_ids": State({"type": ERROR_TYPE, "field": ALL}, "id"),
        },
        prevent_initial_call=True,
    )(submit_job)
    FOLLOW.register(app)
    app.callback(
        Output(ID_COMPARE_RESULT, "children"),
        Output(ID_COMPARE, "disabled"),
        Input(ID_COMPARE, "n_clicks"),
        State(ID_JOB, "data"),
        prevent_initial_call=True,
    )(compare_with_original)


# the job spec --------------------------------------------------------------------------------


def build_spec(
    *, defaults: Mapping[str, Any], params: Mapping[str, Any] | None = None, **form: Any
) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` for the form's values: a conversion only, the
    server checks it (see :func:`validate_form`).

    A prune spec is ``{model_id, method, sparsity, params, finetune, analyze[, seed]}``; with
    ``sweep`` on it is a sweep spec ``{model_id, methods, sparsities, seeds, finetune, analyze}``
    (post it with kind "sweep", see :func:`job_kind`). A blank field is left out, so that the
    server's or the method's default applies.

    ``params`` keeps only the values that differ from the method's ``defaults`` (the rest are
    the method's own, and a sweep's per-child seed still reaches methods that take one). Blank
    ``epochs`` means ``finetune: null``, the method's default training; ``lr``, ``optimizer``
    and ``lr_schedule`` are then not used.

    Args:
        defaults: the method's ``defaults`` from ``GET /api/methods``; they type ``params``.
        params: raw parameter values by name (checkbox lists, numbers or text).
        **form: ``model_id``, ``method``, ``sparsity`` (a sweep's when ``sweep_sparsities`` is
            blank), ``epochs``, ``lr``, ``optimizer``, ``lr_schedule``, ``seed`` (overrides
            the training seed and the method's own), ``analyze`` (analyse the pruned models
            afterwards; default on), ``sweep`` (a bool or a Checklist value), and the sweep's
            comma-separated ``sweep_sparsities`` and ``sweep_seeds`` (blank: ``seed``, or 0).
    """
    get = form.get
    method_params: dict[str, Any] = {}
    for name, raw in (params or {}).items():
        value = parse_param(raw, defaults.get(name))
        if value is not None and not (name in defaults and _same(value, defaults[name])):
            method_params[name] = value
    finetune: dict[str, Any] | None = None
    if not blank(get("epochs")):
        finetune = {"epochs": as_number(get("epochs"))}
        if not blank(get("lr")):
            finetune["lr"] = as_number(get("lr"))
        finetune["optimizer"] = get("optimizer", DEFAULT_OPTIMIZER)
        finetune["lr_schedule"] = get("lr_schedule", DEFAULT_LR_SCHEDULE)
    model_id, method, seed = get("model_id"), get("method"), get("seed")
    spec: dict[str, Any] = {} if blank(model_id) else {"model_id": as_number(model_id)}
    tail = {"finetune": finetune, "analyze": is_on(get("analyze", True))}
    if is_on(get("sweep")):
        choice_: Any = "" if blank(method) else str(method)
        if method_params:
            choice_ = {"method": choice_, "params": method_params}
        return spec | {
            "methods": [choice_] if choice_ else [],
            "sparsities": split_list(get("sweep_sparsities")) or split_list(get("sparsity")),
            "seeds": split_list(get("sweep_seeds")) or [0 if blank(seed) else as_number(seed)],
            **tail,
        }
    if not blank(method):
        spec["method"] = str(method)
    if not blank(get("sparsity")):
        spec["sparsity"] = as_number(get("sparsity"))
    spec |= {"params": method_params, **tail}
    return spec if blank(seed) else spec | {"seed": as_number(seed)}


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool) and value == default
    return bool(value == default)


def job_kind(sweep: Any) -> str:
    """``"sweep"`` when the Sweep box is ticked, else ``"prune"``."""
    return KIND_SWEEP if is_on(sweep) else "prune"


def form_spec(form: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, spec)`` of the form's callback arguments (see :func:`submit_job`)."""
    chosen = find_method(form.get("methods"), form.get("method")) or {}
    params = {
        str(pid.get("name")): value
        for pid, value in zip(
            form.get("param_ids") or [], form.get("param_values") or [], strict=False
        )
    }
    values = {k: v for k, v in form.items() if k in FORM_INPUTS and k != "model"}
    spec = build_spec(
        defaults=chosen.get("defaults") or {}, params=params, model_id=form.get("model"), **values
    )
    return job_kind(form.get("sweep")), spec


def form_errors(kind: str, errors: Mapping[str, str]) -> dict[str, str]:
    """The server's errors by the form's own spec paths: a sweep's ``sparsities.1`` is the
    ``sweep.sparsities`` field, its ``methods.0.params.alpha`` the parameter ``params.alpha``."""
    if kind != KIND_SWEEP:
        return dict(errors)
    out: dict[str, str] = {}
    for path, msg in errors.items():
        head, _, rest = path.partition(".")
        if head == "methods" and ".params." in f".{rest}":
            path = "params." + rest.split("params.", 1)[1]
        elif head in SWEEP_PATHS:
            path = SWEEP_PATHS[head]
        out.setdefault(path, msg)
    return out


# pure renderers -----------------------------------------------------------------------------


def _percent(fraction: Any) -> str:
    """A fraction as a short percentage: 0.9 -> "90%", 0.955 -> "95.5%"."""
    try:
        return f"{100 * float(fraction):.3g}%"
    except (TypeError, ValueError):
        return MISSING


def pruning_ratio(sparsity: float) -> float:
    """The pruning ratio t = 1 / (1 - s) of the recall-distortion paper: 0.9 -> 10."""
    return math.inf if sparsity >= 1 else 1.0 / (1.0 - sparsity)


def sparsity_text(sparsity: Any, scope: str | None = None) -> str:
    """``"90% sparsity · pruning ratio t = 10× (of all prunable weights together)"``."""
    s = query_float(sparsity)
    if s is None or not 0 <= s < 1:
        return "Enter a sparsity in [0, 1), e.g. 0.9 for 90%."
    text = f"{_percent(s)} sparsity · pruning ratio t = {pruning_ratio(s):.3g}×"
    return f"{text} ({SCOPE_SHORT[scope]})" if scope in SCOPE_SHORT else text


def method_label(method: Mapping[str, Any]) -> str:
    """``"layer_magnitude · one-shot"``: the name and when the method prunes."""
    schedule = str(method.get("schedule") or "")
    return f"{method['name']} · {SCHEDULE_LABELS.get(schedule, schedule)}"


def find_method(methods: Sequence[Mapping[str, Any]] | None, name: Any) -> Mapping[str, Any] | None:
    """The method named ``name`` in the ``GET /api/methods`` list, or None."""
    return next((m for m in methods or [] if m.get("name") == name), None)


def method_info(method: Mapping[str, Any] | None) -> list[Any]:
    """The method's one-line doc, when it prunes and what its sparsity counts."""
    if method is None:
        return [html.P("Choose a pruning method.", className="muted")]
    schedule, scope = str(method.get("schedule")), str(method.get("scope"))
    notes = [SCHEDULE_TEXT.get(schedule, f"Schedule: {schedule}.")]
    if method.get("needs_batch"):
        notes.append("Scores weights on one training batch.")
    if method.get("revives"):
        notes.append("May revive pruned weights.")
    return [
        html.P([html.Strong(method["name"]), " — ", method.get("doc") or ""], className="doc"),
        html.P(" ".join(notes), className="muted hint"),
        html.P(SCOPE_TEXT.get(scope, f"Scope: {scope}."), className="muted hint"),
    ]


def _default_text(default: Any) -> str:
    if default is None:
        return "default: computed by the method"
    if isinstance(default, bool):
        return f"default: {'on' if default else 'off'}"
    return f"default: {json.dumps(default)}"


def param_input(name: str, default: Any) -> Any:
    """The input of one parameter: a checkbox for bools, a number input for numbers, else text."""
    pid = {"type": PARAM_TYPE, "name": name}
    if isinstance(default, bool):
        return checkbox(pid, name, default)
    if isinstance(default, int | float):
        return number_input(pid, value=default)
    if default is None:
        return text_input(pid, "blank = default", "")
    return text_input(pid, None, default if isinstance(default, str) else json.dumps(default))


def params_editor(method: Mapping[str, Any] | None) -> list[Any]:
    """One labelled input per hyper-parameter of ``method``, filled with its default."""
    if method is None:
        return []
    defaults: Mapping[str, Any] = method.get("defaults") or {}
    if not defaults:
        return [html.P("This method has no parameters besides the sparsity.", className="muted")]
    return [
        html.Div(
            [
                html.Span("" if isinstance(default, bool) else name, className="control-label"),
                param_input(name, default),
                html.Span(_default_text(default), className="muted hint"),
                field_error(ERROR_TYPE, f"params.{name}"),
            ],
            className="field param-field",
        )
        for name, default in defaults.items()
    ]


def training_hint(
    method: Mapping[str, Any] | None, parent_training: Mapping[str, Any] | None
) -> str:
    """What a blank epochs field means for ``method``.

    Args:
        method: the chosen method (its ``schedule`` decides the default).
        parent_training: the spec of the train job that produced the chosen model, if any.
    """
    if method is None:
        return "Blank: the method's default training."
    if method.get("schedule") == "one_shot":
        return (
            f"Blank: the method's default, {ONE_SHOT_DEFAULT_EPOCHS} epochs of fine-tuning "
            "after pruning. Other training fields apply when epochs is set."
        )
    if parent_training is not None:
        epochs = parent_training.get("epochs", API_DEFAULT_EPOCHS)
        lr = parent_training.get("lr", API_DEFAULT_LR)
        optimizer = parent_training.get("optimizer", DEFAULT_OPTIMIZER)
        return (
            f"Blank: the method's default, the parent's own training ({epochs} epochs, lr {lr}, "
            f"{optimizer}). Other training fields apply when epochs is set."
        )
    return (
        f"Blank: the method's default, the API's default training ({API_DEFAULT_EPOCHS} epochs, "
        f"lr {API_DEFAULT_LR}), since the chosen model was not trained by a train job."
    )


def prune_result(
    result: Mapping[str, Any],
    parent: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
) -> html.Div:
    """The pruned model's accuracy, sparsity, compression and speed-ups (id ``prune-result``).

    Args:
        result: the prune job's ``result``.
        parent: the model that was pruned, for the accuracy change.
        model: the new model, for the compression report's note on the speed-ups.
    """
    acc, sparsity = result.get("accuracy"), result.get("sparsity")
    parent_acc = parent.get("accuracy") if parent else None
    acc_detail = None
    if parent_acc is not None and acc is not None:
        acc_detail = f"{format_delta_pp(parent_acc, acc)} vs {format_percent(parent_acc)}"
    measured = result.get("measured_speedup")
    t = None if sparsity is None else pruning_ratio(float(sparsity))
    cards = [
        ("accuracy", "Accuracy", format_percent(acc), acc_detail),
        (
            "sparsity",
            "Sparsity",
            format_percent(sparsity),
            None if t is None or math.isinf(t) else f"t = {t:.3g}×",
        ),
        (
            "compression",
            "Compression",
            format_ratio(result.get("compression_ratio")),
            "parameters, dense / nonzero",
        ),
        (
            "theoretical-speedup",
            "Theoretical speed-up",
            format_ratio(result.get("theoretical_speedup")),
            "from FLOPs",
        ),
        (
            "measured-speedup",
            "Measured speed-up",
            format_ratio(measured),
            "not measured" if measured is None else "latency on the job's device",
        ),
    ]
    note = (model or {}).get("report_note")
    model_id = (model or {}).get("id") or result.get("model_id")
    return html.Div(
        [
            html.Div(
                [result_card(*card[1:], card_id=f"{ID_RESULT}-{card[0]}") for card in cards],
                className="card-row",
            ),
            html.P(note, className="muted hint") if note else None,
            None if model_id is None else html.P(["Pruned model: ", download_link(model_id)]),
        ],
        id=ID_RESULT,
    )


def sweep_result(model_ids: Sequence[int], models: Sequence[ModelPublic]) -> html.Div:
    """The models a sweep produced, with their seed and figures."""
    by_id = {m["id"]: m for m in models}
    rows: list[list[Any]] = []
    for mid in model_ids:
        m = by_id.get(mid)
        if m is None:
            rows.append([f"#{mid}", *[MISSING] * 5])
            continue
        seed = ((m.get("pruning_params") or {}).get("training") or {}).get("seed")
        rows.append(
            [
                html.Span([f"#{mid} {m['name']} ", download_link(mid)]),
                MISSING if seed is None else str(seed),
                format_percent(m.get("sparsity")),
                format_percent(m.get("accuracy")),
                format_ratio(m.get("compression_ratio")),
                format_ratio(m.get("measured_speedup")),  # type: ignore[arg-type]
            ]
        )
    header = ["Model", "Seed", "Sparsity", "Accuracy", "Compression", "Measured speed-up"]
    return html.Div(
        [html.P(f"{len(model_ids)} pruned models.", className="muted"), data_table(header, rows)],
        id=ID_RESULT,
        className="table-scroll",
    )


def compare_targets(job: Mapping[str, Any]) -> tuple[int, list[int]] | None:
    """``(model A, models B)`` of the comparison a finished job offers; None when none."""
    spec, result = job.get("spec") or {}, job.get("result") or {}
    parent = query_int(spec.get("model_id"))
    if job.get("kind") == KIND_SWEEP:
        b_ids = [int(i) for i in result.get("model_ids") or []]
    else:
        b_ids = [int(result["model_id"])] if result.get("model_id") is not None else []
    return (parent, b_ids) if parent is not None and b_ids else None


def job_result(client: ApiClient, job: JobPublic) -> list[Any]:
    """What a succeeded prune job or sweep made, and the "Compare with the original" button."""
    spec, result = job.get("spec") or {}, job.get("result") or {}
    parent: Mapping[str, Any] | None = None
    model: Mapping[str, Any] | None = None
    models: list[ModelPublic] = []
    parent_id, model_id = query_int(spec.get("model_id")), query_int(result.get("model_id"))
    try:
        if job.get("kind") == KIND_SWEEP:
            models = client.list_models()
            parent = next((m for m in models if m["id"] == parent_id), None)
        else:
            parent = client.get_model(parent_id) if parent_id is not None else None
            model = client.get_model(model_id) if model_id is not None else None
    except ApiError:
        pass  # the figures come from the job's result; the models only add context
    children: list[Any] = [
        sweep_result(result.get("model_ids") or [], models)
        if job.get("kind") == KIND_SWEEP
        else prune_result(result, parent, model)
    ]
    targets = compare_targets(job)
    if targets is not None:
        parent_name = (parent or {}).get("name") or f"model {targets[0]}"
        button = html.Button(
            "Compare with the original",
            id=ID_COMPARE,
            n_clicks=0,
            className="btn btn-primary",
            title=f"A = {parent_name}, B = the pruned model(s)",
        )
        children.append(
            html.Div(
                [button, html.Div(id=ID_COMPARE_RESULT, className="compare-result")],
                className="actions",
            )
        )
    return children


# layout -------------------------------------------------------------------------------------


def _message_page(*children: Any) -> html.Div:
    return html.Div(
        [job_kind_tabs("prune", tabs_id=ID_KIND_TABS), html.H1(TITLE), *children],
        className="page page-prune",
    )


def _slot(field: str) -> html.Div:
    return field_error(ERROR_TYPE, field)


def _target_section(
    models: Sequence[ModelPublic],
    methods: Sequence[MethodPublic],
    model_id: int | None,
    method: Mapping[str, Any] | None,
    sparsity: float,
) -> html.Section:
    model_dropdown = dcc.Dropdown(
        id=ID_MODEL,
        options=model_options(models),
        value=model_id,
        clearable=False,
        placeholder="Choose a model",
    )
    method_dropdown = dcc.Dropdown(
        id=ID_METHOD,
        options=[{"label": method_label(m), "value": m["name"]} for m in methods],
        value=None if method is None else method["name"],
        clearable=False,
        placeholder="Choose a method",
    )
    slider = dcc.Slider(
        id=ID_SPARSITY,
        min=0,
        max=MAX_SPARSITY,
        step=0.001,
        value=sparsity,
        marks={v: f"{100 * v:.0f}%" for v in (0, 0.5, 0.8, 0.9, 0.95, 0.99)},
        allow_direct_input=True,
        updatemode="mouseup",
    )
    return html.Section(
        [
            html.H2("What to prune"),
            html.Div(
                [
                    control("Model", model_dropdown, error=_slot("model_id")),
                    control("Pruning method", method_dropdown, error=_slot("method")),
                ],
                className="form-grid",
            ),
            html.Div(method_info(method), id=ID_METHOD_INFO, className="method-info"),
            control(
                "Sparsity (fraction of prunable weights set to zero)",
                slider,
                html.Div(
                    sparsity_text(sparsity, (method or {}).get("scope")),
                    id=ID_SPARSITY_INFO,
                    className="sparsity-info",
                ),
                error=_slot("sparsity"),
            ),
        ],
        className="section",
    )


def _training_section(method: Mapping[str, Any] | None, model_id: int | None) -> html.Section:
    name = None if method is None else method["name"]
    hint = describe_training(name, model_id, [] if method is None else [method])
    # optimizer and schedule are disabled until epochs is set: without it the method's default
    # training applies
    return html.Section(
        [
            html.H2("Training"),
            html.Div(
                [
                    control(
                        "Epochs",
                        # not debounced: the training fields below follow it at once
                        number_input(ID_EPOCHS, "method default", debounce=False),
                        html.Div(hint, id=ID_EPOCHS_HINT, className="muted hint"),
                        error=_slot("finetune.epochs"),
                    ),
                    control(
                        "Learning rate",
                        number_input(ID_LR, f"{API_DEFAULT_LR:g}", disabled=True),
                        error=_slot("finetune.lr"),
                    ),
                    control("Optimizer", choice(ID_OPTIMIZER, OPTIMIZERS, "adam", disabled=True)),
                    control(
                        "Learning-rate schedule",
                        choice(ID_LR_SCHEDULE, LR_SCHEDULES, "constant", disabled=True),
                    ),
                    control(
                        "Seed",
                        number_input(ID_SEED, "default"),
                        hint="Seeds the training, and methods that draw at random.",
                        error=_slot("seed"),
                    ),
                ],
                className="form-grid",
            ),
        ],
        className="section",
    )


def _submit_section(sweep: bool = False) -> html.Section:
    analyze = "Analyse afterwards (per-class metrics on the test split, for comparisons)"
    sparsities = "e.g. 0.5, 0.8, 0.9 (blank: the sparsity above)"
    return html.Section(
        [
            checkbox(ID_ANALYZE, analyze, True),
            checkbox(ID_SWEEP, "Sweep: one prune job per sparsity × seed", sweep),
            html.Div(
                [
                    control(
                        "Sweep sparsities",
                        text_input(ID_SWEEP_SPARSITIES, sparsities),
                        error=_slot("sweep.sparsities"),
                    ),
                    control(
                        "Sweep seeds",
                        text_input(ID_SWEEP_SEEDS, "e.g. 0, 1, 2 (blank: the seed above, or 0)"),
                        error=_slot("sweep.seeds"),
                    ),
                ],
                id=ID_SWEEP_FIELDS,
                className="form-grid",
                style={"display": "none"},
            ),
            _slot(WHOLE),
            html.Div(
                html.Button("Prune", id=ID_SUBMIT, n_clicks=0, className="btn btn-primary"),
                className="actions",
            ),
            html.Div(id=ID_SUBMIT_ERROR),
        ],
        className="section",
    )


def layout(**query: Any) -> html.Div:
    """The prune form for ``?model=<id>&method=<name>&sparsity=<s>&job=<id>``: the model to
    preselect (the first original when absent), the method (global magnitude), the sparsity
    (0.5) and a job to follow in the progress panel. Other query parameters are kept in the URL;
    ``kind=sweep`` ticks the Sweep box."""
    model, method, sparsity, job = (query.get(k) for k in ("model", "method", "sparsity", "job"))
    client = get_client()
    try:
        models = client.list_models()
        methods = client.list_methods()
    except ApiError as exc:
        return _message_page(api_error_notice(exc, "the models and pruning methods"))
    if not models:
        return _message_page(
            html.Div(
                empty_state(
                    "No models yet — run ",
                    html.Code("prunescope demo"),
                    " or train a model first (a train job), then come back to prune it.",
                ),
                id=ID_EMPTY,
            )
        )
    if not methods:
        return _message_page(
            notice("No pruning methods", "The API lists no pruning methods.", kind="error")
        )

    warnings: list[Any] = []
    default_model = model_options(models)[0]["value"]
    model_id = query_int(model)
    if model is not None and model_id not in {m["id"] for m in models}:
        warnings.append(
            notice(f"Model '{model}' not found", "Choose a model below.", kind="warning")
        )
        model_id = None
    elif model_id is None:
        model_id = default_model

    names = [m["name"] for m in methods]
    default_method = DEFAULT_METHOD if DEFAULT_METHOD in names else names[0]
    if method is not None and method not in names:
        warnings.append(
            notice(
                f"Unknown pruning method '{method}'",
                f"Known methods: {', '.join(names)}.",
                kind="warning",
            )
        )
    chosen = find_method(methods, method if method in names else default_method)
    sparsity_value = query_float(sparsity)
    if sparsity_value is None:
        sparsity_value = DEFAULT_SPARSITY
    sweep_on = query.get("kind") == KIND_SWEEP
    view = {
        "search": search_of(query),
        "defaults": {
            "model": default_model,
            "method": default_method,
            "sparsity": DEFAULT_SPARSITY,
        },
    }
    return html.Div(
        [
            dcc.Location(id=ID_URL, refresh=False),
            dcc.Store(id=ID_VIEW, data=view),
            dcc.Store(id=ID_METHODS, data=methods),
            job_kind_tabs(
                KIND_SWEEP if sweep_on else "prune", model=model_id, tabs_id=ID_KIND_TABS
            ),
            html.H1(TITLE),
            html.P(
                "Choose a model and a pruning method. The job runs in the background; this page "
                "follows it and then offers a comparison with the model you pruned.",
                className="lead",
            ),
            *warnings,
            _target_section(models, methods, model_id, chosen, sparsity_value),
            html.Section(
                [
                    html.H2("Method parameters"),
                    html.Div(params_editor(chosen), id=ID_PARAMS, className="params-grid"),
                ],
                className="section",
            ),
            _training_section(chosen, model_id),
            _submit_section(sweep_on),
            FOLLOW.layout(query_int(job)),
        ],
        className="page page-prune",
    )


# callbacks ----------------------------------------------------------------------------------


def describe_method(method: Any, methods: Sequence[Mapping[str, Any]] | None) -> tuple[Any, Any]:
    """Callback: the chosen method's description and a parameters editor from its defaults."""
    chosen = find_method(methods, method)
    return method_info(chosen), params_editor(chosen)


def describe_sparsity(
    sparsity: Any, method: Any, methods: Sequence[Mapping[str, Any]] | None
) -> str:
    """Callback: "90% sparsity · pruning ratio t = 10×" and what the method's sparsity counts."""
    chosen = find_method(methods, method)
    return sparsity_text(sparsity, (chosen or {}).get("scope"))


def parent_training(model_id: Any) -> Mapping[str, Any] | None:
    """The spec of the train job that produced model ``model_id``; None if there is none.

    Methods that train from scratch or in rounds reuse that training by default.
    """
    mid = query_int(model_id)
    if mid is None:
        return None
    client = get_client()
    try:
        job_id = client.get_model(mid).get("job_id")
        if job_id is None:
            return None
        job = client.get_job(int(job_id))
    except ApiError:
        return None  # the hint falls back to the API's defaults
    return (job.get("spec") or {}) if job.get("kind") == "train" else None


def describe_training(method: Any, model: Any, methods: Sequence[Mapping[str, Any]] | None) -> str:
    """Callback: what a blank epochs field means for the chosen method and model."""
    chosen = find_method(methods, method)
    if chosen is None or chosen.get("schedule") == "one_shot":
        return training_hint(chosen, None)
    return training_hint(chosen, parent_training(model))


def toggle_training(epochs: Any) -> tuple[bool, bool, bool]:
    """Callback: learning rate, optimizer and schedule only apply when epochs is set."""
    disabled = blank(epochs)
    return disabled, disabled, disabled


def toggle_sweep(sweep: Any) -> tuple[dict[str, str], str]:
    """Callback: show the sweep's sparsities and seeds, and name the submit button."""
    return ({}, "Run sweep") if is_on(sweep) else ({"display": "none"}, "Prune")


def follow_kind(sweep: Any, model: Any) -> list[Any]:
    """Callback: the job-kind strip highlights Sweep while the Sweep box is ticked, and its
    other tabs carry the chosen model."""
    return job_kind_links(job_kind(sweep), model=model)


def update_kind_url(sweep: Any, search: str | None) -> str | dash.NoUpdate:
    """Callback: ``kind=sweep`` at the end of the URL while the Sweep box is ticked, absent
    otherwise (other query parameters kept; a URL that already says so is left alone)."""
    current = parse_qsl((search or "").lstrip("?"), keep_blank_values=True)
    if (dict(current).get("kind") == KIND_SWEEP) == is_on(sweep):
        return dash.no_update
    params = [(k, v) for k, v in current if k != "kind"]
    params += [("kind", KIND_SWEEP)] if is_on(sweep) else []
    return f"?{urlencode(params)}" if params else ""


def follow_sweep(sweep: Any, model: Any, search: str | None) -> tuple[list[Any], Any]:
    """Callback: the Sweep box or the model changed: :func:`follow_kind` and
    :func:`update_kind_url`."""
    return follow_kind(sweep, model), update_kind_url(sweep, search)


def _url_value(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if key == "sparsity":
        number = query_float(value)
        return None if number is None else f"{number:g}"
    return str(value)


def update_url(
    model: Any,
    method: Any,
    sparsity: Any,
    job_state: Mapping[str, Any] | None,
    search: str | None,
    view: Mapping[str, Any] | None = None,
) -> str | dash.NoUpdate:
    """Callback: write the chosen model, method, sparsity and followed job into the URL.

    Dash also calls this when the page is rendered; a URL that already means the current
    choices (a missing key meaning its default) is left alone, so rendering never adds a history
    entry. Otherwise all of model, method and sparsity are written, so the link does not depend
    on which model happens to be listed first. Other query parameters are kept.

    Args:
        model: value of ``prune-model``.
        method: value of ``prune-method``.
        sparsity: value of ``prune-sparsity``.
        job_state: ``prune-job`` data, ``{"id": <job id>}`` or None.
        search: the current ``?...`` of the page's Location (None before it has mounted).
        view: ``prune-view`` data: the search the page was rendered from and the defaults.

    Returns:
        The new search string, e.g. ``"?model=1&method=rigl&sparsity=0.9"``, or
        ``dash.no_update``.
    """
    view = view or {}
    if search is None:
        search = str(view.get("search") or "")
    defaults: Mapping[str, Any] = view.get("defaults") or {}
    wanted = {
        "model": _url_value("model", model),
        "method": _url_value("method", method),
        "sparsity": _url_value("sparsity", sparsity),
        "job": _url_value("job", (job_state or {}).get("id")),
    }
    first: dict[str, str] = {}
    for key, value in parse_qsl(search.lstrip("?"), keep_blank_values=True):
        first.setdefault(key, value)
    meant = {k: _url_value(k, first[k] if k in first else defaults.get(k)) for k in wanted}
    new = None if meant == wanted else search_with(search, wanted)
    return dash.no_update if new is None else new


def validate_form(
    error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: the server's dry run of the form as it is filled in, each message in the slot
    of its field (see :func:`frontend.forms.slot_messages`).

    Args:
        error_ids: ids ``{"type": "prune-field-error", "field": <spec path>}`` of the message
            slots, in the order their messages are returned.
        **form: the fields of :data:`FORM_INPUTS`, ``param_values`` / ``param_ids`` (the
            method's parameters) and ``methods`` (the API's list).

    Returns:
        ``{"errors": [message per slot]}``.
    """
    kind, spec = form_spec(form)
    return {"errors": slot_messages(error_ids, form_errors(kind, server_check(kind, spec).errors))}


def submit_job(
    n_clicks: int | None, error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: ``POST /api/jobs`` a prune job or a sweep (``prune-submit`` clicked).

    Args:
        n_clicks: clicks on ``prune-submit``.
        error_ids: see :func:`validate_form`.
        **form: see :func:`validate_form`.

    Returns:
        ``{"errors": [message per slot], "submit_error": <box> or None, "job": {"id", "kind"}
        or no_update, "cancel_notice": None or no_update}``. A refusal of the API (its detail
        verbatim, its field errors in their slots) leaves the followed job, and what cancelling
        it said, as they are.
    """
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not n_clicks:
        return {"errors": slot_messages(error_ids, {}), "submit_error": None, **keep}
    kind, spec = form_spec(form)
    started = start_job(kind, spec, notice_id=ID_API_ERROR)
    fields = {k: v for k, v in form_errors(kind, started.errors).items() if k != WHOLE}
    out = {"errors": slot_messages(error_ids, fields), "submit_error": started.notice}
    if started.job is None:
        return out | keep
    return out | {"job": started.job, "cancel_notice": None}


def compare_with_original(
    n_clicks: int | None, job_state: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: ``POST /api/comparisons`` with A = the pruned model's parent, B = the new model(s).

    Returns:
        A link to ``/compare?id=N`` (or the API's refusal) and whether the button is disabled.
    """
    job_id = query_int((job_state or {}).get("id"))
    if not n_clicks or job_id is None:
        return dash.no_update, dash.no_update
    client = get_client()
    try:
        targets = compare_targets(client.get_job(job_id))
        if targets is None:
            return notice("Nothing to compare", "The job produced no model.", kind="warning"), True
        comparison = client.create_comparison(targets[0], targets[1])
    except ApiError as exc:
        return notice("Could not create the comparison", exc.detail, kind="error"), False
    return comparison_link(comparison["id"], f"{ID_COMPARE}-link"), True
