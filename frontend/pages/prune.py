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

from frontend import components, forms, jobs
from frontend.client import ApiClient, ApiError, JobPublic, MethodPublic, ModelPublic, get_client
from frontend.figures.formatting import MISSING, format_delta_pp, format_percent, format_ratio
from frontend.forms import blank, control, is_on, query_float, query_int
from frontend.jobs import JobFollower, start_job

PATH = "/prune"
TITLE = "Prune a model"
DEFAULT_METHOD = "global_magnitude"
DEFAULT_SPARSITY = 0.5
MAX_SPARSITY = 0.99  # the slider's end; the API accepts anything below 1
DEFAULT_OPTIMIZER, DEFAULT_LR_SCHEDULE = forms.OPTIMIZERS[0], forms.LR_SCHEDULES[0]
# The backend's training defaults (backend.jobs.specs / backend.jobs.kinds.prune), for the hint
# of what a blank epochs field means; the tests check them against the backend.
ONE_SHOT_DEFAULT_EPOCHS = 3
API_DEFAULT_EPOCHS = 15
API_DEFAULT_LR = 1e-3

# form keyword -> component id (prune-<keyword>): the check takes them as Inputs
FORM_INPUTS = {
    key: f"prune-{key.replace('_', '-')}"
    for key in ("model", "method", "sparsity", "epochs", "lr", "optimizer", "lr_schedule")
    + ("seed", "analyze", "sweep", "sweep_sparsities", "sweep_seeds")
}
(ID_MODEL, ID_METHOD, ID_SPARSITY, ID_EPOCHS, ID_LR, ID_OPTIMIZER, ID_LR_SCHEDULE, ID_SEED) = (
    FORM_INPUTS[k]
    for k in ("model", "method", "sparsity", "epochs", "lr", "optimizer") + ("lr_schedule", "seed")
)
ID_ANALYZE, ID_SWEEP = FORM_INPUTS["analyze"], FORM_INPUTS["sweep"]
ID_URL = "prune-url"
ID_VIEW = "prune-view"
ID_METHODS = "prune-methods"
ID_METHOD_INFO = "prune-method-info"
ID_SPARSITY_INFO = "prune-sparsity-info"
ID_PARAMS = "prune-params"
ID_EPOCHS_HINT = "prune-epochs-hint"
ID_SWEEP_FIELDS = "prune-sweep-fields"
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
FORM_FIELDS: tuple[str, ...] = ("model_id", "method", "sparsity", "finetune.epochs", "finetune.lr")
FORM_FIELDS += ("seed", "sweep.sparsities", "sweep.seeds", forms.WHOLE)
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

FOLLOW = JobFollower(
    "prune",
    render_result=lambda client, job: job_result(client, job),
    cancel_title="Stop the job; a sweep stops all its prune jobs",
)
# the followed job's callbacks and panel, by their names on this page
poll_job, cancel_followed_job, job_panel = FOLLOW.poll, FOLLOW.cancel, FOLLOW.panel


def register(app: dash.Dash) -> None:
    """Register this page in ``dash.page_registry`` and attach its callbacks to ``app``."""
    dash.register_page(__name__, path=PATH, title=TITLE, name="Prune", layout=layout)
    methods = State(ID_METHODS, "data")
    app.callback(
        Output(ID_METHOD_INFO, "children"),
        Output(ID_PARAMS, "children"),
        Input(ID_METHOD, "value"),
        methods,
        prevent_initial_call=True,
    )(describe_method)
    for output, first, second, describe in (
        (ID_SPARSITY_INFO, ID_SPARSITY, ID_METHOD, describe_sparsity),
        (ID_EPOCHS_HINT, ID_METHOD, ID_MODEL, describe_training),
    ):
        app.callback(
            Output(output, "children"),
            Input(first, "value"),
            Input(second, "value"),
            methods,
            prevent_initial_call=True,
        )(describe)
    app.callback(
        [Output(cid, "disabled") for cid in (ID_LR, ID_OPTIMIZER, ID_LR_SCHEDULE)],
        Input(ID_EPOCHS, "value"),
    )(toggle_training)
    app.callback(
        Output(ID_SWEEP_FIELDS, "style"), Output(ID_SUBMIT, "children"), Input(ID_SWEEP, "value")
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
        *(Input(cid, "value") for cid in (ID_MODEL, ID_METHOD, ID_SPARSITY)),
        Input(FOLLOW.ids.job, "data"),
        State(ID_URL, "search"),
        State(ID_VIEW, "data"),
        prevent_initial_call=True,
    )(update_url)
    params = {"type": PARAM_TYPE, "name": ALL}
    inputs: dict[str, Any] = {key: Input(cid, "value") for key, cid in FORM_INPUTS.items()}
    inputs |= {"param_values": Input(params, "value"), "param_ids": State(params, "id")}
    inputs["methods"] = methods
    forms.register_validation(
        app, validate_form, prefix=ID_SUBMIT, inputs=inputs, error_type=ERROR_TYPE
    )
    FOLLOW.register_form(
        app,
        submit_job,
        submit_id=ID_SUBMIT,
        submit_error_id=ID_SUBMIT_ERROR,
        error_type=ERROR_TYPE,
        inputs=inputs,
    )
    app.callback(
        Output(ID_COMPARE_RESULT, "children"),
        Output(ID_COMPARE, "disabled"),
        Input(ID_COMPARE, "n_clicks"),
        State(FOLLOW.ids.job, "data"),
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
    server's or the method's default applies. ``params`` (raw values by name) keeps only the
    values that differ from the method's ``defaults``, which type them; blank ``epochs`` means
    ``finetune: null``, the method's default training (``lr``, ``optimizer`` and
    ``lr_schedule`` are then not used). A sweep's ``sweep_sparsities`` and ``sweep_seeds`` are
    comma-separated (blank: the ``sparsity``, the ``seed`` or 0); ``analyze`` is on by default.
    """
    get = form.get
    method_params: dict[str, Any] = {}
    for name, raw in (params or {}).items():
        value = forms.parse_param(raw, defaults.get(name))
        if value is not None and not (name in defaults and _same(value, defaults[name])):
            method_params[name] = value
    finetune: dict[str, Any] | None = None
    if not blank(get("epochs")):
        finetune = {"epochs": forms.as_number(get("epochs"))}
        if not blank(get("lr")):
            finetune["lr"] = forms.as_number(get("lr"))
        finetune["optimizer"] = get("optimizer", DEFAULT_OPTIMIZER)
        finetune["lr_schedule"] = get("lr_schedule", DEFAULT_LR_SCHEDULE)
    model_id, method, seed = get("model_id"), get("method"), get("seed")
    spec: dict[str, Any] = {} if blank(model_id) else {"model_id": forms.as_number(model_id)}
    tail = {"finetune": finetune, "analyze": is_on(get("analyze", True))}
    if is_on(get("sweep")):
        choice: Any = "" if blank(method) else str(method)
        if method_params:
            choice = {"method": choice, "params": method_params}
        seeds = [0 if blank(seed) else forms.as_number(seed)]
        return spec | {
            "methods": [choice] if choice else [],
            "sparsities": forms.split_list(get("sweep_sparsities"))
            or forms.split_list(get("sparsity")),
            "seeds": forms.split_list(get("sweep_seeds")) or seeds,
            **tail,
        }
    if not blank(method):
        spec["method"] = str(method)
    if not blank(get("sparsity")):
        spec["sparsity"] = forms.as_number(get("sparsity"))
    spec |= {"params": method_params, **tail}
    return spec if blank(seed) else spec | {"seed": forms.as_number(seed)}


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
    pids, values = form.get("param_ids") or [], form.get("param_values") or []
    params = {str(pid.get("name")): value for pid, value in zip(pids, values, strict=False)}
    fields = {k: v for k, v in form.items() if k in FORM_INPUTS and k != "model"}
    defaults = chosen.get("defaults") or {}
    spec = build_spec(defaults=defaults, params=params, model_id=form.get("model"), **fields)
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


def pruning_ratio(sparsity: float) -> float:
    """The pruning ratio t = 1 / (1 - s) of the recall-distortion paper: 0.9 -> 10."""
    return math.inf if sparsity >= 1 else 1.0 / (1.0 - sparsity)


def sparsity_text(sparsity: Any, scope: str | None = None) -> str:
    """``"90% sparsity · pruning ratio t = 10× (of all prunable weights together)"``."""
    s = query_float(sparsity)
    if s is None or not 0 <= s < 1:
        return "Enter a sparsity in [0, 1), e.g. 0.9 for 90%."
    text = f"{100 * s:.3g}% sparsity · pruning ratio t = {pruning_ratio(s):.3g}×"
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


def params_editor(method: Mapping[str, Any] | None) -> list[Any]:
    """One labelled input per hyper-parameter of ``method``, filled with its default (a
    checkbox for a bool, a number input for a number, else text)."""
    if method is None:
        return []
    defaults: Mapping[str, Any] = method.get("defaults") or {}
    if not defaults:
        return [html.P("This method has no parameters besides the sparsity.", className="muted")]
    return [
        forms.param_field(
            "" if isinstance(default, bool) else name,
            forms.param_input({"type": PARAM_TYPE, "name": name}, name, default, "blank = default"),
            _default_text(default),
            _slot(f"params.{name}"),
        )
        for name, default in defaults.items()
    ]


def training_hint(
    method: Mapping[str, Any] | None, parent_training: Mapping[str, Any] | None
) -> str:
    """What a blank epochs field means for ``method`` (its ``schedule`` decides), given the
    spec of the train job that produced the chosen model, if any."""
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
    """The pruned model's accuracy, sparsity, compression and speed-ups (id ``prune-result``),
    the accuracy change against the ``parent`` it was pruned from, and the compression
    report's note on the speed-ups of the new ``model``."""
    acc, sparsity = result.get("accuracy"), result.get("sparsity")
    parent_acc = parent.get("accuracy") if parent else None
    acc_detail = None
    if parent_acc is not None and acc is not None:
        acc_detail = f"{format_delta_pp(parent_acc, acc)} vs {format_percent(parent_acc)}"
    measured = result.get("measured_speedup")
    t = None if sparsity is None else pruning_ratio(float(sparsity))
    t_text = None if t is None or math.isinf(t) else f"t = {t:.3g}×"
    ratio = format_ratio(result.get("compression_ratio"))
    theory = format_ratio(result.get("theoretical_speedup"))
    latency = "not measured" if measured is None else "latency on the job's device"
    cards = [
        ("accuracy", "Accuracy", format_percent(acc), acc_detail),
        ("sparsity", "Sparsity", format_percent(sparsity), t_text),
        ("compression", "Compression", ratio, "parameters, dense / nonzero"),
        ("theoretical-speedup", "Theoretical speed-up", theory, "from FLOPs"),
        ("measured-speedup", "Measured speed-up", format_ratio(measured), latency),
    ]
    note = (model or {}).get("report_note")
    model_id = (model or {}).get("id") or result.get("model_id")
    row = [
        components.result_card(title, value, detail, card_id=f"{ID_RESULT}-{key}")
        for key, title, value, detail in cards
    ]
    return html.Div(
        [
            html.Div(row, className="card-row"),
            html.P(note, className="muted hint") if note else None,
            None
            if model_id is None
            else html.P(["Pruned model: ", components.download_link(model_id)]),
        ],
        id=ID_RESULT,
    )


def sweep_result(model_ids: Sequence[int], models: Sequence[ModelPublic]) -> html.Div:
    """The models a sweep produced, with their seed and figures."""
    by_id: dict[int, Mapping[str, Any]] = {m["id"]: m for m in models}
    rows: list[list[Any]] = []
    for mid in model_ids:
        m = by_id.get(mid)
        if m is None:
            rows.append([f"#{mid}", *[MISSING] * 5])
            continue
        seed = ((m.get("pruning_params") or {}).get("training") or {}).get("seed")
        name = html.Span([f"#{mid} {m['name']} ", components.download_link(mid)])
        figures = [format_percent(m.get(key)) for key in ("sparsity", "accuracy")]
        figures += [format_ratio(m.get(key)) for key in ("compression_ratio", "measured_speedup")]
        rows.append([name, MISSING if seed is None else str(seed), *figures])
    header = ["Model", "Seed", "Sparsity", "Accuracy", "Compression", "Measured speed-up"]
    return html.Div(
        [
            html.P(f"{len(model_ids)} pruned models.", className="muted"),
            components.data_table(header, rows),
        ],
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
    sweep = job.get("kind") == KIND_SWEEP
    parent: Mapping[str, Any] | None = None
    model: Mapping[str, Any] | None = None
    models: list[ModelPublic] = []
    parent_id, model_id = query_int(spec.get("model_id")), query_int(result.get("model_id"))
    try:
        if sweep:
            models = client.list_models()
            parent = forms.find_by_id(models, parent_id)
        else:
            parent = client.get_model(parent_id) if parent_id is not None else None
            model = client.get_model(model_id) if model_id is not None else None
    except ApiError:
        pass  # the figures come from the job's result; the models only add context
    made = sweep_result(result.get("model_ids") or [], models) if sweep else None
    children: list[Any] = [prune_result(result, parent, model) if made is None else made]
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
        compared = html.Div(id=ID_COMPARE_RESULT, className="compare-result")
        children.append(html.Div([button, compared], className="actions"))
    return children


# layout -------------------------------------------------------------------------------------


def _message_page(*children: Any) -> html.Div:
    tabs = components.job_kind_tabs("prune", tabs_id=ID_KIND_TABS)
    return html.Div([tabs, html.H1(TITLE), *children], className="page page-prune")


def _slot(field: str) -> html.Div:
    return forms.field_error(ERROR_TYPE, field)


def _field(label: str, field: str, *inputs: Any, **kw: Any) -> html.Div:
    return control(label, *inputs, error=_slot(field), **kw)


def _target_section(
    models: Sequence[ModelPublic],
    methods: Sequence[MethodPublic],
    model_id: int | None,
    method: Mapping[str, Any] | None,
    sparsity: float,
) -> html.Section:
    methods_list = [{"label": method_label(m), "value": m["name"]} for m in methods]
    method_name = None if method is None else method["name"]
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
    info = sparsity_text(sparsity, (method or {}).get("scope"))
    models_list = forms.model_options(models)
    choices = [
        _field(
            "Model", "model_id", forms.dropdown(ID_MODEL, models_list, model_id, "Choose a model")
        ),
        _field(
            "Pruning method",
            "method",
            forms.dropdown(ID_METHOD, methods_list, method_name, "Choose a method"),
        ),
    ]
    return html.Section(
        [
            html.H2("What to prune"),
            html.Div(choices, className="form-grid"),
            html.Div(method_info(method), id=ID_METHOD_INFO, className="method-info"),
            _field(
                "Sparsity (fraction of prunable weights set to zero)",
                "sparsity",
                slider,
                html.Div(info, id=ID_SPARSITY_INFO, className="sparsity-info"),
            ),
        ],
        className="section",
    )


def _training_section(method: Mapping[str, Any] | None, model_id: int | None) -> html.Section:
    name = None if method is None else method["name"]
    hint = describe_training(name, model_id, [] if method is None else [method])
    # optimizer and schedule are disabled until epochs is set: without it the method's default
    # training applies; epochs is not debounced, since the fields below follow it at once
    epochs = forms.number_input(ID_EPOCHS, "method default", debounce=False)
    lr = forms.number_input(ID_LR, f"{API_DEFAULT_LR:g}", disabled=True)
    optimizer = forms.choice(ID_OPTIMIZER, forms.OPTIMIZERS, "adam", disabled=True)
    schedule = forms.choice(ID_LR_SCHEDULE, forms.LR_SCHEDULES, "constant", disabled=True)
    seed_hint = "Seeds the training, and methods that draw at random."
    fields = [
        _field(
            "Epochs",
            "finetune.epochs",
            epochs,
            html.Div(hint, id=ID_EPOCHS_HINT, className="muted hint"),
        ),
        _field("Learning rate", "finetune.lr", lr),
        control("Optimizer", optimizer),
        control("Learning-rate schedule", schedule),
        _field("Seed", "seed", forms.number_input(ID_SEED, "default"), hint=seed_hint),
    ]
    grid = html.Div(fields, className="form-grid")
    return html.Section([html.H2("Training"), grid], className="section")


def _submit_section(sweep: bool = False) -> html.Section:
    analyze = "Analyse afterwards (per-class metrics on the test split, for comparisons)"
    sparsities = "e.g. 0.5, 0.8, 0.9 (blank: the sparsity above)"
    seeds = "e.g. 0, 1, 2 (blank: the seed above, or 0)"
    sweep_fields = [
        _field(label, f"sweep.{key}", forms.text_input(FORM_INPUTS[f"sweep_{key}"], placeholder))
        for label, key, placeholder in (
            ("Sweep sparsities", "sparsities", sparsities),
            ("Sweep seeds", "seeds", seeds),
        )
    ]
    button = html.Button("Prune", id=ID_SUBMIT, n_clicks=0, className="btn btn-primary")
    return html.Section(
        [
            forms.checkbox(ID_ANALYZE, analyze, True),
            forms.checkbox(ID_SWEEP, "Sweep: one prune job per sparsity × seed", sweep),
            html.Div(
                sweep_fields,
                id=ID_SWEEP_FIELDS,
                className="form-grid",
                style={"display": "none"},
            ),
            _slot(forms.WHOLE),
            html.Div(button, className="actions"),
            html.Div(id=ID_SUBMIT_ERROR),
            *forms.validation_stores(ID_SUBMIT),
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
        return _message_page(components.api_error_notice(exc, "the models and pruning methods"))
    if not models:
        empty = components.empty_state(
            "No models yet — run ",
            html.Code("prunescope demo"),
            " or train a model first (a train job), then come back to prune it.",
        )
        return _message_page(html.Div(empty, id=ID_EMPTY))
    if not methods:
        nothing = "The API lists no pruning methods."
        return _message_page(components.notice("No pruning methods", nothing, kind="error"))
    default_model = forms.model_options(models)[0]["value"]
    model_id, warnings = components.chosen_id(models, model, "model", default_model)
    names = [m["name"] for m in methods]
    default_method = DEFAULT_METHOD if DEFAULT_METHOD in names else names[0]
    if method is not None and method not in names:
        known = f"Known methods: {', '.join(names)}."
        unknown = components.notice(f"Unknown pruning method '{method}'", known, kind="warning")
        warnings.append(unknown)
    chosen = find_method(methods, method if method in names else default_method)
    sparsity_value = query_float(sparsity)
    sparsity_value = DEFAULT_SPARSITY if sparsity_value is None else sparsity_value
    sweep_on = query.get("kind") == KIND_SWEEP
    defaults = {"model": default_model, "method": default_method, "sparsity": DEFAULT_SPARSITY}
    tabs = components.job_kind_tabs(
        KIND_SWEEP if sweep_on else "prune", model=model_id, tabs_id=ID_KIND_TABS
    )
    return html.Div(
        [
            dcc.Location(id=ID_URL, refresh=False),
            dcc.Store(id=ID_VIEW, data={"search": forms.search_of(query), "defaults": defaults}),
            dcc.Store(id=ID_METHODS, data=methods),
            tabs,
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
    return sparsity_text(sparsity, (find_method(methods, method) or {}).get("scope"))


def parent_training(model_id: Any) -> Mapping[str, Any] | None:
    """The spec of the train job that produced model ``model_id``, whose training methods that
    train from scratch or in rounds reuse by default; None if there is none."""
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
    return components.job_kind_links(job_kind(sweep), model=model)


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
    """Callback: write the chosen model, method, sparsity and followed job into the URL, e.g.
    ``"?model=1&method=rigl&sparsity=0.9"`` (other keys kept). Dash also calls this when the
    page is rendered (``search`` None until the Location has mounted: ``view``'s); a URL that
    already means the current choices (a missing key meaning its default, from ``view``) is
    left alone, so rendering adds no history entry. Otherwise all of model, method and sparsity
    are written, so the link does not depend on which model happens to be listed first."""
    view = view or {}
    if search is None:
        search = str(view.get("search") or "")
    defaults: Mapping[str, Any] = view.get("defaults") or {}
    chosen = {"model": model, "method": method, "sparsity": sparsity}
    chosen["job"] = (job_state or {}).get("id")
    wanted = {key: _url_value(key, value) for key, value in chosen.items()}
    first: dict[str, str] = {}
    for key, value in parse_qsl(search.lstrip("?"), keep_blank_values=True):
        first.setdefault(key, value)
    meant = {k: _url_value(k, first[k] if k in first else defaults.get(k)) for k in wanted}
    new = None if meant == wanted else components.search_with(search, wanted)
    return dash.no_update if new is None else new


def validate_form(
    error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: the server's dry run of the form as it is filled in (the fields of
    :data:`FORM_INPUTS`, the method's ``param_values`` / ``param_ids`` and the API's
    ``methods``): ``{"errors": [message per slot of error_ids]}``, each in the slot of its
    field (see :func:`frontend.forms.slot_messages`)."""
    kind, spec = form_spec(form)
    errors = form_errors(kind, forms.dry_run(kind, spec).errors)
    return {"errors": forms.slot_messages(error_ids, errors)}


def submit_job(
    n_clicks: int | None, error_ids: Sequence[Mapping[str, Any]] | None = None, **form: Any
) -> dict[str, Any]:
    """Callback: ``POST /api/jobs`` a prune job or a sweep (``prune-submit`` clicked; ``form``
    as :func:`validate_form` takes it): ``{"errors": [message per slot], "submit_error": <box>
    or None, "job": {"id", "kind"} or no_update, "cancel_notice": None or no_update}``. A
    refusal (its detail verbatim, its field errors in their slots) leaves the followed job, and
    what cancelling it said, as they are."""
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not n_clicks:
        return {"errors": forms.slot_messages(error_ids, {}), "submit_error": None, **keep}
    kind, spec = form_spec(form)
    started = start_job(kind, spec, notice_id=ID_API_ERROR)
    fields = {k: v for k, v in form_errors(kind, started.errors).items() if k != forms.WHOLE}
    out = {"errors": forms.slot_messages(error_ids, fields), "submit_error": started.notice}
    if started.job is None:
        return out | keep
    return out | {"job": started.job, "cancel_notice": None}


def compare_with_original(
    n_clicks: int | None, job_state: Mapping[str, Any] | None
) -> tuple[Any, Any]:
    """Callback: add the new model(s) to the latest comparison of the pruned model's parent,
    or create one (:func:`frontend.jobs.compare_with_original`): a link to it with the new
    model selected (or the API's refusal), and whether the button is disabled."""
    job_id = query_int((job_state or {}).get("id"))
    if not n_clicks or job_id is None:
        return dash.no_update, dash.no_update
    client = get_client()
    try:
        targets = compare_targets(client.get_job(job_id))
        if targets is None:
            nothing = "The job produced no model."
            return components.notice("Nothing to compare", nothing, kind="warning"), True
        made = jobs.compare_with_original(client, targets[0], targets[1])
    except ApiError as exc:
        refused = components.notice("Could not compare", exc.detail, kind="error")
        return refused, False
    return jobs.original_comparison_link(made, targets[1][0], f"{ID_COMPARE}-link"), True
