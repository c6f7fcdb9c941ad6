"""Prune page ("/prune?model=&method=&sparsity=&job="): submit a prune job or a sweep, follow it.

The form is generated from ``GET /api/methods`` (one input per hyper-parameter, typed from its
default) and turned into a job spec by the pure :func:`build_spec`, which validates every field
before anything is posted. After submission a progress panel polls ``GET /api/jobs/{id}`` once a
second until the job is final, then shows the pruned model's figures and offers a comparison with
the model it was pruned from. While the job is queued or running, "Cancel job" stops it
(``POST /api/jobs/{id}/cancel``; a sweep stops all its prune jobs).

View state lives in the URL (``model``, ``method``, ``sparsity`` and the followed ``job``), so a
link such as ``/prune?model=3&method=rigl`` opens the form filled in. Unlike the compare page, the
choices are written to a page-level Location with ``refresh=False``: the address changes but the
page is not rendered again, which would throw away whatever else the user has typed into the form.
Back and reload still render the page from the URL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import (
    ApiError,
    ApiUnreachableError,
    JobPublic,
    MethodPublic,
    ModelPublic,
    get_client,
)
from frontend.components import (
    api_error_notice,
    data_table,
    download_link,
    empty_state,
    job_follow_section,
    job_kind_links,
    job_kind_tabs,
    job_status,
    model_architecture_summary,
    notice,
)
from frontend.figures.formatting import (
    MISSING,
    format_delta_pp,
    format_percent,
    format_ratio,
)

PATH = "/prune"
TITLE = "Prune a model"
POLL_INTERVAL_MS = 1000
DEFAULT_METHOD = "global_magnitude"
DEFAULT_SPARSITY = 0.5
MAX_SPARSITY = 0.99  # the slider's end; the API accepts anything below 1
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR_SCHEDULE = "constant"
# Mirrors of the backend's defaults (backend.jobs.specs / backend.jobs.kinds.prune), for hints.
ONE_SHOT_DEFAULT_EPOCHS = 3
API_DEFAULT_EPOCHS = 15
API_DEFAULT_LR = 1e-3
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
CANCELLABLE_STATUSES = ("queued", "running")  # "cancelling" was already asked to stop
ON = "on"  # the value of a ticked single-option Checklist

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
ID_JOB = "prune-job"
ID_POLL = "prune-poll"
ID_PANEL = "prune-panel"  # the job's section: the polled panel, then the cancel row
ID_PROGRESS = "prune-progress"
PREFIX = "prune"  # of the job panel's ids (components.job_status)
ID_STATUS = f"{PREFIX}-status"
ID_PROGRESS_BAR = f"{PREFIX}-progress-bar"
ID_STAGE = f"{PREFIX}-stage"
ID_JOB_ERROR = f"{PREFIX}-job-error"
ID_STOPPING = "prune-job-stopping"
ID_CANCEL = "prune-job-cancel"
ID_CANCEL_NOTICE = "prune-job-cancel-notice"
ID_RESULT = "prune-result"
ID_COMPARE = "prune-compare"
ID_COMPARE_RESULT = "prune-compare-result"
ID_EMPTY = "prune-empty"
ID_KIND_TABS = "prune-kind-tabs"  # the shared Train | Prune | Sweep | Analyze strip
KIND_SWEEP = "sweep"  # ?kind=sweep opens the form with the Sweep box ticked
PARAM_TYPE = "prune-param"  # pattern-matching ids {"type": PARAM_TYPE, "name": <param>}
ERROR_TYPE = "prune-field-error"  # {"type": ERROR_TYPE, "field": <spec path, e.g. "sparsity">}

# Spec paths that have a message slot next to their field (parameters add "params.<name>").
FORM_FIELDS = (
    "model_id",
    "method",
    "sparsity",
    "finetune.epochs",
    "finetune.lr",
    "seed",
    "sweep.sparsities",
    "sweep.seeds",
)
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
        Input(ID_SWEEP, "value"),
        Input(ID_MODEL, "value"),
        prevent_initial_call=True,
    )(follow_kind)
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Input(ID_SWEEP, "value"),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(update_kind_url)
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
    app.callback(
        output={
            "errors": Output({"type": ERROR_TYPE, "field": ALL}, "children"),
            "submit_error": Output(ID_SUBMIT_ERROR, "children"),
            "job": Output(ID_JOB, "data"),
            "cancel_notice": Output(ID_CANCEL_NOTICE, "children", allow_duplicate=True),
        },
        inputs={
            "n_clicks": Input(ID_SUBMIT, "n_clicks"),
            "model": State(ID_MODEL, "value"),
            "method": State(ID_METHOD, "value"),
            "sparsity": State(ID_SPARSITY, "value"),
            "param_values": State({"type": PARAM_TYPE, "name": ALL}, "value"),
            "param_ids": State({"type": PARAM_TYPE, "name": ALL}, "id"),
            "epochs": State(ID_EPOCHS, "value"),
            "lr": State(ID_LR, "value"),
            "optimizer": State(ID_OPTIMIZER, "value"),
            "lr_schedule": State(ID_LR_SCHEDULE, "value"),
            "seed": State(ID_SEED, "value"),
            "analyze": State(ID_ANALYZE, "value"),
            "sweep": State(ID_SWEEP, "value"),
            "sweep_sparsities": State(ID_SWEEP_SPARSITIES, "value"),
            "sweep_seeds": State(ID_SWEEP_SEEDS, "value"),
            "error_ids": State({"type": ERROR_TYPE, "field": ALL}, "id"),
            "methods": State(ID_METHODS, "data"),
        },
        prevent_initial_call=True,
    )(submit_job)
    app.callback(
        Output(ID_PROGRESS, "children"),
        Output(ID_POLL, "disabled"),
        Output(ID_CANCEL, "hidden"),
        Input(ID_POLL, "n_intervals"),
        Input(ID_JOB, "data"),
    )(poll_job)
    # The button is in the layout from the start (hidden), outside the re-rendered panel, so
    # this Input always exists; the poll and this callback both write the panel and the button.
    app.callback(
        output={
            "panel": Output(ID_PROGRESS, "children", allow_duplicate=True),
            "hidden": Output(ID_CANCEL, "hidden", allow_duplicate=True),
            "notice": Output(ID_CANCEL_NOTICE, "children"),
        },
        inputs={"n_clicks": Input(ID_CANCEL, "n_clicks"), "job_state": State(ID_JOB, "data")},
        prevent_initial_call=True,
    )(cancel_followed_job)
    app.callback(
        Output(ID_COMPARE_RESULT, "children"),
        Output(ID_COMPARE, "disabled"),
        Input(ID_COMPARE, "n_clicks"),
        State(ID_JOB, "data"),
        prevent_initial_call=True,
    )(compare_with_original)


# parsing and the job spec --------------------------------------------------------------------


class FormError(ValueError):
    """The form cannot be turned into a job spec.

    Attributes:
        errors: spec path of each bad field (``"sparsity"``, ``"finetune.epochs"``,
            ``"params.gamma"``) -> what is wrong with it, worded to sit next to the field.
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in self.errors.items()))


_OMIT = object()  # a blank field: the API's or the method's default applies


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def is_on(value: Any) -> bool:
    """Whether a checkbox value is ticked: a bool, or a Checklist's list of ticked values."""
    if isinstance(value, list | tuple | set):
        return len(value) > 0
    return bool(value)


def parse_float(value: Any) -> float:
    """A finite real number from a number input (int/float) or a text input (str).

    Raises:
        ValueError: for anything else, naming the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"should be a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"should be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"should be a finite number, got {value!r}")
    return number


def parse_whole(value: Any, minimum: int | None = None) -> int:
    """A whole number (``3``, ``"3"``, ``3.0``), at least ``minimum`` when given.

    Raises:
        ValueError: for a fraction, text or a number below ``minimum``, naming the value.
    """
    what = "a whole number" if minimum is None else f"a whole number >= {minimum}"
    try:
        number = parse_float(value)
    except ValueError:
        raise ValueError(f"should be {what}, got {value!r}") from None
    if not number.is_integer() or (minimum is not None and number < minimum):
        raise ValueError(f"should be {what}, got {value!r}")
    return int(number)


def parse_sparsity(value: Any) -> float:
    """A sparsity in [0, 1).

    Raises:
        ValueError: when blank, not a number or out of range, naming the value.
    """
    if _blank(value):
        raise ValueError("required: a number in [0, 1), e.g. 0.9 for 90% sparsity")
    try:
        number = parse_float(value)
    except ValueError:
        raise ValueError(f"should be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= number < 1.0:
        raise ValueError(f"should be in [0, 1), got {value!r}")
    return number


def split_list(text: Any) -> list[str]:
    """The items of a comma- (or space-) separated list; empty for a blank field."""
    if _blank(text):
        return []
    if isinstance(text, int | float) and not isinstance(text, bool):
        return [str(text)]
    return [item for item in re.split(r"[,;\s]+", str(text).strip()) if item]


def _dedupe(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def parse_param(value: Any, default: Any) -> Any:
    """One method parameter, typed after its default.

    Bool defaults take a checkbox value; int defaults a whole number; float defaults any number;
    str defaults text; a None default ("computed by the method") takes a number, true/false or
    text. A blank field returns the module's ``_OMIT`` marker: the method's default applies.

    Raises:
        ValueError: when the value does not fit the default's type, naming the value.
    """
    if isinstance(default, bool):
        return is_on(value)
    if _blank(value):
        return _OMIT
    if isinstance(default, int):
        return parse_whole(value)
    if isinstance(default, float):
        return parse_float(value)
    if isinstance(default, str):
        return str(value).strip() if isinstance(value, str) else str(value)
    if default is None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        try:
            return parse_whole(text)
        except ValueError:
            pass
        try:
            return parse_float(text)
        except ValueError:
            return text
    # lists and dicts are edited as JSON
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"should be JSON like {json.dumps(default)}, got {value!r}") from None
    return value


def build_spec(
    *,
    model_id: Any,
    method: Any,
    sparsity: Any,
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    epochs: Any = None,
    lr: Any = None,
    optimizer: Any = DEFAULT_OPTIMIZER,
    lr_schedule: Any = DEFAULT_LR_SCHEDULE,
    seed: Any = None,
    analyze: Any = True,
    sweep: Any = False,
    sweep_sparsities: Any = None,
    sweep_seeds: Any = None,
) -> dict[str, Any]:
    """The ``spec`` of a ``POST /api/jobs`` for the form's values, validated field by field.

    A prune spec is ``{model_id, method, sparsity, params, finetune, analyze[, seed]}``; with
    ``sweep`` on it is a sweep spec ``{model_id, methods, sparsities, seeds, finetune, analyze}``
    (post it with kind "sweep", see :func:`job_kind`).

    ``params`` keeps only the values that differ from the method's ``defaults``: the rest are the
    method's own, and a sweep's per-child seed can still reach methods that take a seed.
    Blank ``epochs`` means ``finetune: null``, the method's default training; ``lr``,
    ``optimizer`` and ``lr_schedule`` are then not used. A blank ``lr`` or ``seed`` is left to
    the API's default.

    Args:
        model_id: the model to prune (an id).
        method: a pruning method's name.
        sparsity: target sparsity in [0, 1); a sweep uses it when ``sweep_sparsities`` is blank.
        defaults: the method's ``defaults`` from ``GET /api/methods``; they type ``params``.
        params: raw parameter values by name (checkbox lists, numbers or text).
        epochs: training epochs, a whole number >= 0; blank for the method's default.
        lr: learning rate > 0; blank for the API's default.
        optimizer: "adam" or "sgd".
        lr_schedule: "constant", "cosine" or "step".
        seed: overrides the training seed (and the method's own seed); blank for the default.
        analyze: analyse the pruned model(s) afterwards (a bool or a Checklist value).
        sweep: submit a sweep instead of one prune job (a bool or a Checklist value).
        sweep_sparsities: comma-separated sparsities of the sweep.
        sweep_seeds: comma-separated seeds of the sweep; blank for ``seed`` (or 0).

    Returns:
        The JSON-ready spec.

    Raises:
        FormError: a ``ValueError`` naming every bad field by its spec path, e.g.
            ``"sparsity: should be in [0, 1), got 1.2; finetune.epochs: ..."``.
    """
    errors: dict[str, str] = {}

    def check(field: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as exc:
            errors[field] = str(exc)
            return _OMIT

    model = _OMIT
    if _blank(model_id):
        errors["model_id"] = "choose a model to prune"
    else:
        model = check("model_id", parse_whole, model_id, 0)
    if _blank(method):
        errors["method"] = "choose a pruning method"

    is_sweep = is_on(sweep)
    sparsities: list[float] = []
    if is_sweep and not _blank(sweep_sparsities):
        for item in split_list(sweep_sparsities):
            value = check("sweep.sparsities", parse_sparsity, item)
            if value is _OMIT:
                break
            sparsities.append(value)
        sparsities = _dedupe(sparsities)
    else:
        value = check("sparsity", parse_sparsity, sparsity)
        if value is not _OMIT:
            sparsities = [value]

    method_params: dict[str, Any] = {}
    for name, raw in (params or {}).items():
        default = defaults.get(name)
        value = check(f"params.{name}", parse_param, raw, default)
        if value is _OMIT or (name in defaults and _same_value(value, default)):
            continue
        method_params[name] = value

    finetune: dict[str, Any] | None = None
    if not _blank(epochs):
        finetune = {"epochs": check("finetune.epochs", parse_whole, epochs, 0)}
        if not _blank(lr):
            rate = check("finetune.lr", parse_float, lr)
            if rate is not _OMIT and rate <= 0:
                errors["finetune.lr"] = f"should be a number > 0, got {lr!r}"
            finetune["lr"] = rate
        if optimizer not in OPTIMIZERS:
            errors["finetune.optimizer"] = f"should be one of {', '.join(OPTIMIZERS)}"
        if lr_schedule not in LR_SCHEDULES:
            errors["finetune.lr_schedule"] = f"should be one of {', '.join(LR_SCHEDULES)}"
        finetune["optimizer"] = optimizer
        finetune["lr_schedule"] = lr_schedule

    seed_value = _OMIT if _blank(seed) else check("seed", parse_whole, seed)
    seeds: list[int] = []
    if is_sweep:
        for item in split_list(sweep_seeds):
            value = check("sweep.seeds", parse_whole, item)
            if value is _OMIT:
                break
            seeds.append(value)
        seeds = _dedupe(seeds) or [0 if seed_value is _OMIT else seed_value]

    if errors:
        raise FormError(errors)
    if is_sweep:
        choice: str | dict[str, Any] = str(method)
        if method_params:
            choice = {"method": str(method), "params": method_params}
        return {
            "model_id": model,
            "methods": [choice],
            "sparsities": sparsities,
            "seeds": seeds,
            "finetune": finetune,
            "analyze": is_on(analyze),
        }
    spec: dict[str, Any] = {
        "model_id": model,
        "method": str(method),
        "sparsity": sparsities[0],
        "params": method_params,
        "finetune": finetune,
        "analyze": is_on(analyze),
    }
    if seed_value is not _OMIT:
        spec["seed"] = seed_value
    return spec


def _same_value(value: Any, default: Any) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool) and value == default
    return bool(value == default)


def job_kind(sweep: Any) -> str:
    """``"sweep"`` when the Sweep box is ticked, else ``"prune"``."""
    return "sweep" if is_on(sweep) else "prune"


def parse_int(value: Any) -> int | None:
    """A query-string value as an int; None when absent or not an integer."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _query_float(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


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
    try:
        s = parse_sparsity(sparsity)
    except ValueError:
        return "Enter a sparsity in [0, 1), e.g. 0.9 for 90%."
    text = f"{_percent(s)} sparsity · pruning ratio t = {pruning_ratio(s):.3g}×"
    if scope in SCOPE_SHORT:
        text += f" ({SCOPE_SHORT[scope]})"
    return text


def model_option_label(model: ModelPublic) -> str:
    """``"#1 cnn · digits_cnn · 27.4k params · 1×8×8 · original · acc 97.2%"``,
    ``"#3 … · 90% sparse · acc 95.1%"``."""
    acc = f"acc {format_percent(model.get('accuracy'))}"
    what = model_architecture_summary(model)
    if model.get("parent_id") is None and not model.get("pruning_method"):
        return f"#{model['id']} {model['name']} · {what} · original · {acc}"
    sparse = f"{format_percent(model.get('sparsity'), 0)} sparse"
    return f"#{model['id']} {model['name']} · {what} · {sparse} · {acc}"


def model_options(models: Sequence[ModelPublic]) -> list[dict[str, Any]]:
    """Dropdown options: originals first (by id), then pruned models (by id)."""
    ordered = sorted(models, key=lambda m: (m.get("parent_id") is not None, m["id"]))
    return [{"label": model_option_label(m), "value": m["id"]} for m in ordered]


def method_label(method: Mapping[str, Any]) -> str:
    """``"layer_magnitude · one-shot"``: the name and when the method prunes."""
    schedule = str(method.get("schedule") or "")
    return f"{method['name']} · {SCHEDULE_LABELS.get(schedule, schedule)}"


def method_options(methods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dropdown option per method, in the API's order."""
    return [{"label": method_label(m), "value": m["name"]} for m in methods]


def find_method(methods: Sequence[Mapping[str, Any]] | None, name: Any) -> Mapping[str, Any] | None:
    """The method named ``name`` in the ``GET /api/methods`` list, or None."""
    for m in methods or []:
        if m.get("name") == name:
            return m
    return None


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


def field_error(field: str) -> html.Div:
    """The message slot next to a field; ``submit_job`` fills it."""
    return html.Div(id={"type": ERROR_TYPE, "field": field}, className="field-error")


def param_input(name: str, default: Any) -> Any:
    """The input of one parameter: a checkbox for bools, a number input for numbers, else text."""
    pid = {"type": PARAM_TYPE, "name": name}
    if isinstance(default, bool):
        return dcc.Checklist(
            id=pid,
            options=[{"label": name, "value": ON}],
            value=[ON] if default else [],
            className="checkbox",
        )
    if isinstance(default, int | float):
        return dcc.Input(id=pid, type="number", value=default, step="any", className="input")
    if default is None:
        return dcc.Input(
            id=pid, type="text", value="", placeholder="blank = default", className="input"
        )
    value = default if isinstance(default, str) else json.dumps(default)
    return dcc.Input(id=pid, type="text", value=value, className="input")


def params_editor(method: Mapping[str, Any] | None) -> list[Any]:
    """One labelled input per hyper-parameter of ``method``, filled with its default."""
    if method is None:
        return []
    defaults: Mapping[str, Any] = method.get("defaults") or {}
    if not defaults:
        return [html.P("This method has no parameters besides the sparsity.", className="muted")]
    rows = []
    for name, default in defaults.items():
        label = (
            html.Span("", className="control-label")
            if isinstance(default, bool)
            else html.Span(name, className="control-label")
        )
        rows.append(
            html.Div(
                [
                    label,
                    param_input(name, default),
                    html.Span(_default_text(default), className="muted hint"),
                    field_error(f"params.{name}"),
                ],
                className="field param-field",
            )
        )
    return rows


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


def result_card(title: str, value: str, detail: str | None = None, *, card_id: str) -> html.Div:
    """A card with one figure of the pruned model."""
    children: list[Any] = [
        html.Div(title, className="card-title"),
        html.Div(value, className="card-number"),
    ]
    if detail:
        children.append(html.Div(detail, className="card-delta"))
    return html.Div(children, id=card_id, className="card result-card")


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
    acc = result.get("accuracy")
    parent_acc = parent.get("accuracy") if parent else None
    acc_detail = None
    if parent_acc is not None and acc is not None:
        acc_detail = f"{format_delta_pp(parent_acc, acc)} vs {format_percent(parent_acc)}"
    measured = result.get("measured_speedup")
    sparsity = result.get("sparsity")
    t = None if sparsity is None else pruning_ratio(float(sparsity))
    cards = html.Div(
        [
            result_card(
                "Accuracy", format_percent(acc), acc_detail, card_id=f"{ID_RESULT}-accuracy"
            ),
            result_card(
                "Sparsity",
                format_percent(sparsity),
                None if t is None or math.isinf(t) else f"t = {t:.3g}×",
                card_id=f"{ID_RESULT}-sparsity",
            ),
            result_card(
                "Compression",
                format_ratio(result.get("compression_ratio")),
                "parameters, dense / nonzero",
                card_id=f"{ID_RESULT}-compression",
            ),
            result_card(
                "Theoretical speed-up",
                format_ratio(result.get("theoretical_speedup")),
                "from FLOPs",
                card_id=f"{ID_RESULT}-theoretical-speedup",
            ),
            result_card(
                "Measured speed-up",
                format_ratio(measured),
                "not measured" if measured is None else "latency on the job's device",
                card_id=f"{ID_RESULT}-measured-speedup",
            ),
        ],
        className="card-row",
    )
    note = (model or {}).get("report_note")
    model_id = (model or {}).get("id") or result.get("model_id")
    return html.Div(
        [
            cards,
            html.P(note, className="muted hint") if note else None,
            None if model_id is None else html.P(["Pruned model: ", download_link(model_id)]),
        ],
        id=ID_RESULT,
    )


def _training_seed(model: Mapping[str, Any]) -> str:
    training = (model.get("pruning_params") or {}).get("training") or {}
    seed = training.get("seed")
    return MISSING if seed is None else str(seed)


def sweep_result(model_ids: Sequence[int], models: Sequence[ModelPublic]) -> html.Div:
    """The models a sweep produced, with their seed and figures."""
    by_id = {m["id"]: m for m in models}
    rows: list[list[Any]] = []
    for mid in model_ids:
        m = by_id.get(mid)
        if m is None:
            rows.append([f"#{mid}", MISSING, MISSING, MISSING, MISSING, MISSING])
            continue
        rows.append(
            [
                html.Span([f"#{mid} {m['name']} ", download_link(mid)]),
                _training_seed(m),
                format_percent(m.get("sparsity")),
                format_percent(m.get("accuracy")),
                format_ratio(m.get("compression_ratio")),
                format_ratio(m.get("measured_speedup")),  # type: ignore[arg-type]
            ]
        )
    return html.Div(
        [
            html.P(f"{len(model_ids)} pruned models.", className="muted"),
            data_table(
                ["Model", "Seed", "Sparsity", "Accuracy", "Compression", "Measured speed-up"], rows
            ),
        ],
        id=ID_RESULT,
        className="table-scroll",
    )


def job_title(job: Mapping[str, Any]) -> str:
    """``"layer_magnitude at 50%"`` for a prune job, ``"sweep of rigl: 3 sparsities × 2 seeds"``."""
    spec = job.get("spec") or {}
    if job.get("kind") == "prune" and spec.get("method"):
        return f"{spec['method']} at {_percent(spec.get('sparsity'))}"
    if job.get("kind") == "sweep" and spec.get("methods"):
        names = [m if isinstance(m, str) else str(m.get("method")) for m in spec["methods"]]
        n_s, n_seeds = len(spec.get("sparsities") or []), len(spec.get("seeds") or [])
        return (
            f"sweep of {', '.join(names)}: {n_s} sparsit{'y' if n_s == 1 else 'ies'} × "
            f"{n_seeds} seed{'' if n_seeds == 1 else 's'}"
        )
    return str(job.get("kind"))


def compare_targets(job: Mapping[str, Any]) -> tuple[int, list[int]] | None:
    """``(model A, models B)`` of the comparison a finished job offers; None when none."""
    spec, result = job.get("spec") or {}, job.get("result") or {}
    parent = parse_int(spec.get("model_id"))
    if parent is None:
        return None
    if job.get("kind") == "sweep":
        b_ids = [int(i) for i in result.get("model_ids") or []]
    else:
        b_ids = [int(result["model_id"])] if result.get("model_id") is not None else []
    return (parent, b_ids) if b_ids else None


def can_cancel(job: Mapping[str, Any] | None) -> bool:
    """Whether the "Cancel job" button is offered: only while the job is queued or running.

    A cancelling job was already asked to stop, and a final one has nothing left to cancel.
    """
    return job is not None and job.get("status") in CANCELLABLE_STATUSES


def stopping_notice(job: Mapping[str, Any]) -> html.Div:
    """What a cancelling job's panel says until its worker has stopped it."""
    what = (
        "The sweep's prune jobs stop"
        if job.get("kind") == "sweep"
        else "The job stops at its next check"
    )
    return notice(
        "Stopping…",
        f"Cancellation was requested. {what}; then this panel shows it as cancelled.",
        kind="info",
        notice_id=ID_STOPPING,
    )


def job_panel(
    job: JobPublic,
    parent: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    models: Sequence[ModelPublic] = (),
) -> list[Any]:
    """The progress panel of one job: status, progress bar and stage, then result or error.

    Args:
        job: the job as ``GET /api/jobs/{id}`` returns it.
        parent: the model that was pruned (for a finished job).
        model: the new model (for a finished prune job).
        models: all models (for a finished sweep's table).
    """
    status = str(job.get("status"))
    kind = str(job.get("kind"))
    stopping = stopping_notice(job) if status == "cancelling" else None
    children = job_status(job, job_title(job), PREFIX, stopping)
    if status == "succeeded":
        result = job.get("result") or {}
        if kind == "sweep":
            children.append(sweep_result(result.get("model_ids") or [], models))
        else:
            children.append(prune_result(result, parent, model))
        targets = compare_targets(job)
        if targets is not None:
            parent_name = (parent or {}).get("name") or f"model {targets[0]}"
            children.append(
                html.Div(
                    [
                        html.Button(
                            "Compare with the original",
                            id=ID_COMPARE,
                            n_clicks=0,
                            className="btn btn-primary",
                            title=f"A = {parent_name}, B = the pruned model(s)",
                        ),
                        html.Div(id=ID_COMPARE_RESULT, className="compare-result"),
                    ],
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


def _control(label: str, *children: Any, hint: Any = None, field: str | None = None) -> html.Div:
    parts: list[Any] = [html.Span(label, className="control-label"), *children]
    if hint is not None:
        parts.append(html.Div(hint, className="muted hint"))
    if field is not None:
        parts.append(field_error(field))
    return html.Div(parts, className="field")


def _search_of(query: Mapping[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                pairs.append((key, str(v)))
    return f"?{urlencode(pairs)}" if pairs else ""


def _number_input(component_id: str, placeholder: str, *, disabled: bool = False) -> dcc.Input:
    # no min/max/step constraints: the browser would blank an out-of-range value, and
    # build_spec's messages say more than the browser's
    return dcc.Input(
        id=component_id,
        type="number",
        step="any",
        placeholder=placeholder,
        disabled=disabled,
        className="input",
    )


def _choice(component_id: str, options: Sequence[str], value: str) -> dcc.Dropdown:
    # disabled until epochs is set: without epochs the method's default training applies
    return dcc.Dropdown(
        id=component_id,
        options=list(options),
        value=value,
        clearable=False,
        searchable=False,
        disabled=True,
    )


def _checkbox(component_id: str, label: str, on: bool) -> dcc.Checklist:
    return dcc.Checklist(
        id=component_id,
        options=[{"label": label, "value": ON}],
        value=[ON] if on else [],
        className="checkbox",
    )


def _target_section(
    models: Sequence[ModelPublic],
    methods: Sequence[MethodPublic],
    model_id: int | None,
    method: Mapping[str, Any] | None,
    sparsity: float,
) -> html.Section:
    return html.Section(
        [
            html.H2("What to prune"),
            html.Div(
                [
                    _control(
                        "Model",
                        dcc.Dropdown(
                            id=ID_MODEL,
                            options=model_options(models),
                            value=model_id,
                            clearable=False,
                            placeholder="Choose a model",
                        ),
                        field="model_id",
                    ),
                    _control(
                        "Pruning method",
                        dcc.Dropdown(
                            id=ID_METHOD,
                            options=method_options(methods),
                            value=None if method is None else method["name"],
                            clearable=False,
                            placeholder="Choose a method",
                        ),
                        field="method",
                    ),
                ],
                className="form-grid",
            ),
            html.Div(method_info(method), id=ID_METHOD_INFO, className="method-info"),
            _control(
                "Sparsity (fraction of prunable weights set to zero)",
                dcc.Slider(
                    id=ID_SPARSITY,
                    min=0,
                    max=MAX_SPARSITY,
                    step=0.001,
                    value=sparsity,
                    marks={v: f"{100 * v:.0f}%" for v in (0, 0.5, 0.8, 0.9, 0.95, 0.99)},
                    allow_direct_input=True,
                    updatemode="mouseup",
                ),
                html.Div(
                    sparsity_text(sparsity, (method or {}).get("scope")),
                    id=ID_SPARSITY_INFO,
                    className="sparsity-info",
                ),
                field="sparsity",
            ),
        ],
        className="section",
    )


def _training_section(method: Mapping[str, Any] | None, model_id: int | None) -> html.Section:
    return html.Section(
        [
            html.H2("Training"),
            html.Div(
                [
                    _control(
                        "Epochs",
                        _number_input(ID_EPOCHS, "method default"),
                        html.Div(
                            describe_training(
                                None if method is None else method["name"],
                                model_id,
                                [] if method is None else [method],
                            ),
                            id=ID_EPOCHS_HINT,
                            className="muted hint",
                        ),
                        field="finetune.epochs",
                    ),
                    _control(
                        "Learning rate",
                        _number_input(ID_LR, f"{API_DEFAULT_LR:g}", disabled=True),
                        field="finetune.lr",
                    ),
                    _control(
                        "Optimizer",
                        _choice(ID_OPTIMIZER, OPTIMIZERS, DEFAULT_OPTIMIZER),
                    ),
                    _control(
                        "Learning-rate schedule",
                        _choice(ID_LR_SCHEDULE, LR_SCHEDULES, DEFAULT_LR_SCHEDULE),
                    ),
                    _control(
                        "Seed",
                        _number_input(ID_SEED, "default"),
                        hint="Seeds the training, and methods that draw at random.",
                        field="seed",
                    ),
                ],
                className="form-grid",
            ),
        ],
        className="section",
    )


def _submit_section(sweep: bool = False) -> html.Section:
    return html.Section(
        [
            _checkbox(
                ID_ANALYZE,
                "Analyse afterwards (per-class metrics on the test split, for comparisons)",
                True,
            ),
            _checkbox(ID_SWEEP, "Sweep: one prune job per sparsity × seed", sweep),
            html.Div(
                [
                    _control(
                        "Sweep sparsities",
                        dcc.Input(
                            id=ID_SWEEP_SPARSITIES,
                            type="text",
                            placeholder="e.g. 0.5, 0.8, 0.9 (blank: the sparsity above)",
                            className="input",
                        ),
                        field="sweep.sparsities",
                    ),
                    _control(
                        "Sweep seeds",
                        dcc.Input(
                            id=ID_SWEEP_SEEDS,
                            type="text",
                            placeholder="e.g. 0, 1, 2 (blank: the seed above, or 0)",
                            className="input",
                        ),
                        field="sweep.seeds",
                    ),
                ],
                id=ID_SWEEP_FIELDS,
                className="form-grid",
                style={"display": "none"},
            ),
            html.Div(
                html.Button("Prune", id=ID_SUBMIT, n_clicks=0, className="btn btn-primary"),
                className="actions",
            ),
            html.Div(id=ID_SUBMIT_ERROR),
        ],
        className="section",
    )


def job_section() -> html.Section:
    """The followed job's section: the panel :func:`poll_job` renders, then the cancel row
    (shown by the poll while the job can be cancelled, see :func:`can_cancel`)."""
    return html.Section(
        job_follow_section(
            progress_id=ID_PROGRESS,
            cancel_id=ID_CANCEL,
            cancel_notice_id=ID_CANCEL_NOTICE,
            cancel_title="Stop the job; a sweep stops all its prune jobs",
        ),
        id=ID_PANEL,
        className="section progress-panel",
    )


def layout(
    model: str | None = None,
    method: str | None = None,
    sparsity: str | None = None,
    job: str | None = None,
    **query: Any,
) -> html.Div:
    """The prune form for ``?model=<id>&method=<name>&sparsity=<s>&job=<id>``.

    Args:
        model: id of the model to preselect; the first original when absent.
        method: name of the method to preselect; global magnitude when absent.
        sparsity: sparsity to preselect; 0.5 when absent.
        job: id of a job to follow in the progress panel.
        **query: other query parameters, kept in the URL; ``kind=sweep`` ticks the Sweep box.
    """
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
    model_id = parse_int(model)
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

    sparsity_value = _query_float(sparsity)
    if sparsity_value is None:
        sparsity_value = DEFAULT_SPARSITY
    job_id = parse_int(job)
    sweep_on = query.get("kind") == KIND_SWEEP
    view = {
        "search": _search_of(
            {"model": model, "method": method, "sparsity": sparsity, "job": job, **query}
        ),
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
            dcc.Store(id=ID_JOB, data=None if job_id is None else {"id": job_id}),
            dcc.Interval(id=ID_POLL, interval=POLL_INTERVAL_MS, disabled=job_id is None),
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
            job_section(),
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
    mid = parse_int(model_id)
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
    disabled = _blank(epochs)
    return disabled, disabled, disabled


def toggle_sweep(sweep: Any) -> tuple[dict[str, str], str]:
    """Callback: show the sweep's sparsities and seeds, and name the submit button."""
    if is_on(sweep):
        return {}, "Run sweep"
    return {"display": "none"}, "Prune"


def follow_kind(sweep: Any, model: Any) -> list[Any]:
    """Callback: the job-kind strip highlights Sweep while the Sweep box is ticked, and its
    other tabs carry the chosen model."""
    return job_kind_links(KIND_SWEEP if is_on(sweep) else "prune", model=model)


def update_kind_url(sweep: Any, search: str | None) -> str | dash.NoUpdate:
    """Callback: ``kind=sweep`` in the URL while the Sweep box is ticked, absent otherwise.

    Other query parameters are kept; a URL that already says so is left alone.
    """
    current = parse_qsl((search or "").lstrip("?"), keep_blank_values=True)
    was_sweep = (dict(current).get("kind") == KIND_SWEEP) if current else False
    if was_sweep == is_on(sweep):
        return dash.no_update
    params = [(k, v) for k, v in current if k != "kind"]
    if is_on(sweep):
        params.append(("kind", KIND_SWEEP))
    return f"?{urlencode(params)}" if params else ""


def _url_value(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if key == "sparsity":
        number = _query_float(value)
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
    current = parse_qsl(search.lstrip("?"), keep_blank_values=True)
    first: dict[str, str] = {}
    for key, value in current:
        first.setdefault(key, value)
    defaults: Mapping[str, Any] = view.get("defaults") or {}
    job_id = (job_state or {}).get("id")
    wanted = {
        "model": _url_value("model", model),
        "method": _url_value("method", method),
        "sparsity": _url_value("sparsity", sparsity),
        "job": _url_value("job", job_id),
    }
    meant = {
        key: _url_value(key, first[key]) if key in first else _url_value(key, defaults.get(key))
        for key in wanted
    }
    if meant == wanted:
        return dash.no_update
    params = [(key, value) for key, value in wanted.items() if value is not None]
    params += [(k, v) for k, v in current if k not in wanted]
    return f"?{urlencode(params)}" if params else ""


def _field_messages(
    error_ids: Sequence[Mapping[str, Any]] | None, errors: Mapping[str, str]
) -> list[str]:
    return [errors.get(str(eid.get("field")), "") for eid in error_ids or []]


def submit_job(
    n_clicks: int | None,
    model: Any = None,
    method: Any = None,
    sparsity: Any = None,
    param_values: Sequence[Any] | None = None,
    param_ids: Sequence[Mapping[str, Any]] | None = None,
    epochs: Any = None,
    lr: Any = None,
    optimizer: Any = DEFAULT_OPTIMIZER,
    lr_schedule: Any = DEFAULT_LR_SCHEDULE,
    seed: Any = None,
    analyze: Any = None,
    sweep: Any = None,
    sweep_sparsities: Any = None,
    sweep_seeds: Any = None,
    error_ids: Sequence[Mapping[str, Any]] | None = None,
    methods: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Callback: validate the form, then ``POST /api/jobs`` a prune job or a sweep.

    Args:
        n_clicks: clicks on ``prune-submit``.
        model, method, sparsity: the chosen model id, method name and sparsity.
        param_values: values of the parameter inputs, in the order of ``param_ids``.
        param_ids: ids ``{"type": "prune-param", "name": <param>}`` of those inputs.
        epochs, lr, optimizer, lr_schedule, seed: the training fields.
        analyze: ``prune-analyze`` Checklist value.
        sweep: ``prune-sweep`` Checklist value.
        sweep_sparsities, sweep_seeds: the sweep's comma-separated lists.
        error_ids: ids ``{"type": "prune-field-error", "field": <spec path>}`` of the message
            slots, in the order their messages are returned.
        methods: ``GET /api/methods`` list (``prune-methods`` data).

    Returns:
        ``{"errors": [message per slot], "submit_error": <box>, "job": {"id", "kind"} or
        no_update, "cancel_notice": None or no_update}``. Field errors and a refusal of the API
        (its detail verbatim) leave the followed job, and what cancelling it said, as they are.
    """
    no_errors = _field_messages(error_ids, {})
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not n_clicks:
        return {"errors": no_errors, "submit_error": None, **keep}
    chosen = find_method(methods, method)
    params = {
        str(pid.get("name")): value
        for pid, value in zip(param_ids or [], param_values or [], strict=False)
    }
    try:
        if chosen is None and not _blank(method):
            raise FormError({"method": f"unknown pruning method {method!r}"})
        spec = build_spec(
            model_id=model,
            method=method,
            sparsity=sparsity,
            defaults=(chosen or {}).get("defaults") or {},
            params=params,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            seed=seed,
            analyze=analyze,
            sweep=sweep,
            sweep_sparsities=sweep_sparsities,
            sweep_seeds=sweep_seeds,
        )
    except FormError as exc:
        slots = {str(eid.get("field")) for eid in error_ids or []}
        unplaced = [f"{f}: {m}" for f, m in exc.errors.items() if f not in slots]
        box = notice(
            "Check the form",
            "; ".join(unplaced) if unplaced else "The marked fields need attention.",
            kind="warning",
            notice_id=ID_API_ERROR,
        )
        return {"errors": _field_messages(error_ids, exc.errors), "submit_error": box, **keep}
    kind = job_kind(sweep)
    client = get_client()
    try:
        job = client.create_sweep(spec) if kind == "sweep" else client.create_job("prune", spec)
    except ApiError as exc:
        if isinstance(exc, ApiUnreachableError):
            title = "Cannot reach the PruneScope API"
        elif 400 <= exc.status < 500:
            title = "The API refused the job"
        else:
            title = f"The API answered {exc.status}"
        return {
            "errors": no_errors,
            "submit_error": notice(title, exc.detail, kind="error", notice_id=ID_API_ERROR),
            **keep,
        }
    return {
        "errors": no_errors,
        "submit_error": None,
        "job": {"id": job["id"], "kind": kind},
        "cancel_notice": None,
    }


def poll_job(
    n_intervals: int | None, job_state: Mapping[str, Any] | None
) -> tuple[Any, bool, bool]:
    """Callback: re-fetch the followed job and render the progress panel.

    Runs when a job is submitted (or named in the URL) and then every ``POLL_INTERVAL_MS``
    until the job is final.

    Returns:
        The panel's children, whether polling stops (``prune-poll`` disabled) and whether the
        "Cancel job" button is hidden (it is shown only while :func:`can_cancel`).
    """
    job_id = parse_int((job_state or {}).get("id"))
    if job_id is None:
        return [], True, True
    client = get_client()
    try:
        job = client.get_job(job_id)
    except ApiError as exc:
        if exc.status == 404:
            return [notice(f"Job {job_id} not found", exc.detail, kind="warning")], True, True
        # a restarting server is not the job's end: keep polling
        return [api_error_notice(exc, f"job {job_id}")], False, True
    if job.get("status") not in FINAL_STATUSES:
        return job_panel(job), False, not can_cancel(job)
    parent: Mapping[str, Any] | None = None
    model: Mapping[str, Any] | None = None
    models: list[ModelPublic] = []
    if job.get("status") == "succeeded":
        spec, result = job.get("spec") or {}, job.get("result") or {}
        try:
            if job.get("kind") == "sweep":
                models = client.list_models()
                by_id = {m["id"]: m for m in models}
                parent = by_id.get(parse_int(spec.get("model_id")) or -1)
            else:
                parent_id = parse_int(spec.get("model_id"))
                parent = client.get_model(parent_id) if parent_id is not None else None
                model_id = parse_int(result.get("model_id"))
                model = client.get_model(model_id) if model_id is not None else None
        except ApiError:
            pass  # the figures come from the job's result; the models only add context
    return job_panel(job, parent, model, models), True, True


def cancel_followed_job(
    n_clicks: int | None, job_state: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Callback: ``POST /api/jobs/{id}/cancel`` for the followed job ("Cancel job" clicked).

    A queued job is cancelled at once; a running one turns "cancelling" ("Stopping…") until its
    worker stops it, which the poll then shows. A job that ended meanwhile (409) is not an error:
    a notice says so and the poll shows how it ended.

    Returns:
        ``{"panel": <panel children> or no_update, "hidden": whether the button is hidden (or
        no_update), "notice": <what the cancel row says> or None}``.
    """
    job_id = parse_int((job_state or {}).get("id"))
    if not n_clicks or job_id is None:
        return {"panel": dash.no_update, "hidden": dash.no_update, "notice": dash.no_update}
    client = get_client()
    try:
        job = client.cancel_job(job_id)
    except ApiError as exc:
        if exc.status == 409:
            box = notice(
                f"Job #{job_id} had already finished",
                "There was nothing left to cancel; the panel above shows how it ended.",
                kind="info",
            )
            return {"panel": dash.no_update, "hidden": True, "notice": box}
        if exc.status == 404:
            box = notice(f"Job #{job_id} not found", exc.detail, kind="warning")
            return {"panel": dash.no_update, "hidden": True, "notice": box}
        # unreachable or a server error: the button stays, to try again
        title = (
            "Cannot reach the PruneScope API"
            if isinstance(exc, ApiUnreachableError)
            else f"Could not cancel job #{job_id}"
        )
        box = notice(title, exc.detail, kind="error")
        return {"panel": dash.no_update, "hidden": False, "notice": box}
    return {"panel": job_panel(job), "hidden": not can_cancel(job), "notice": None}


def compare_with_original(
    n_clicks: int | None, job_state: Mapping[str, Any] | None
) -> tuple[Any, bool]:
    """Callback: ``POST /api/comparisons`` with A = the pruned model's parent, B = the new model(s).

    Returns:
        A link to ``/compare?id=N`` (or the API's refusal) and whether the button is disabled.
    """
    job_id = parse_int((job_state or {}).get("id"))
    if not n_clicks or job_id is None:
        return dash.no_update, dash.no_update  # type: ignore[return-value]
    client = get_client()
    try:
        targets = compare_targets(client.get_job(job_id))
        if targets is None:
            return notice("Nothing to compare", "The job produced no model.", kind="warning"), True
        comparison = client.create_comparison(targets[0], targets[1])
    except ApiError as exc:
        return notice("Could not create the comparison", exc.detail, kind="error"), False
    href = f"/compare?id={comparison['id']}"
    return (
        html.P(
            [
                dcc.Link(
                    f"Open comparison #{comparison['id']} →", href=href, id=f"{ID_COMPARE}-link"
                ),
                html.Span(
                    " Models without an analysis are analysed first; until then the comparison "
                    "page says so.",
                    className="muted",
                ),
            ]
        ),
        True,
    )
