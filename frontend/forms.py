"""Shared form pieces: controls, query-string parsing, model and dataset options, and checking
a form's spec with the server's dry run as the user types.

A form never re-implements the server's rules (ranges, names, what exists): it turns its values
into JSON (:func:`blank`, :func:`split_list`, :func:`as_number`) and asks the server
(:func:`dry_run`), showing each message in the slot of its field
(:func:`field_error` ``{"type": "<page>-field-error", "field": <spec path>}``). Every form is
checked as it is filled in through :func:`register_validation`, which shows only the answer
about the form as it is now.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast
from urllib.parse import urlencode

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiError, ApiUnreachableError, JobKind, ModelPublic, get_client
from frontend.figures.formatting import MISSING, format_percent

ON = "on"  # the value of a ticked single-option Checklist
# a text or number input reports its value when the user leaves it or presses Enter (not every
# key, which would ask the server each time; a delay in seconds would lose what was typed just
# before a click on the submit button, since leaving the field does not flush it)
DEBOUNCE = True
# The choices of the training settings' dropdowns (backend.jobs.specs.TrainSettings; the tests
# check them against the API's schema): a dropdown needs them before the server is asked.
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
WHOLE = ""  # the spec path of a message about the spec as a whole, and of its slot


# values ------------------------------------------------------------------------------------------


def blank(value: Any) -> bool:
    """Whether a field is empty: None, or text of only spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


def is_on(value: Any) -> bool:
    """Whether a checkbox value is ticked: a bool, or a Checklist's list of ticked values."""
    if isinstance(value, list | tuple | set):
        return len(value) > 0
    return bool(value)


def _first(value: Any) -> Any:
    # Dash passes a repeated query parameter as a list
    return (value[0] if value else None) if isinstance(value, list) else value


def query_int(value: Any) -> int | None:
    """A query-string (or store) value as an int: the first of a repeated one; None when
    absent or not an integer."""
    value = _first(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def query_float(value: Any) -> float | None:
    """A query-string value as a finite float; None when absent or not a number."""
    value = _first(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def search_of(query: Mapping[str, Any]) -> str:
    """``?k=v&...`` of a page's query parameters (a list value repeats its key; None is left
    out)."""
    pairs = [
        (key, str(v))
        for key, value in query.items()
        for v in (value if isinstance(value, list) else [value])
        if v is not None
    ]
    return f"?{urlencode(pairs)}" if pairs else ""


def as_number(value: Any) -> Any:
    """A field's value as JSON: numbers as they are, numeric text as an int or a float, other
    text stripped (the server names what is wrong with it)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def split_list(text: Any) -> list[Any]:
    """The items of a comma- (or space-) separated list, each :func:`as_number`; empty for a
    blank field."""
    if blank(text):
        return []
    if isinstance(text, int | float) and not isinstance(text, bool):
        return [text]
    items = [as_number(item) for item in re.split(r"[,;\s]+", str(text).strip()) if item]
    return list(dict.fromkeys(items))  # in order, without repeats


def parse_param(value: Any, default: Any) -> Any:
    """A method's or an architecture's parameter, typed after its default, or None when blank
    (the default applies).

    Bool defaults take a checkbox value, numbers :func:`as_number`, str defaults text, lists
    and dicts JSON; a None default ("computed") takes a number, true/false or text. What does
    not convert is sent as typed: the server names what is wrong with it.
    """
    if isinstance(default, bool):
        return is_on(value)
    if blank(value):
        return None
    if isinstance(default, str):
        return str(value).strip()
    if isinstance(default, int | float) or not isinstance(value, str):
        number = as_number(value)
        if isinstance(default, float) and isinstance(number, int):
            return float(number)
        if isinstance(default, int) and isinstance(number, float) and number.is_integer():
            return int(number)
        return number
    text = value.strip()
    if default is None and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if default is None:
        return as_number(text)
    try:
        return json.loads(text)  # a list or dict default is edited as JSON
    except ValueError:
        return text


def _compact_count(n: int) -> str:
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= threshold:
            return f"{n / threshold:.3g}{suffix}"
    return str(n)


def model_architecture_summary(model: Mapping[str, Any]) -> str:
    """``"timm/resnet18 · 11.2M params · 3×32×32"``: a model's architecture, its parameter
    count and the input shape it was proven to accept; what is not known is left out."""
    parts = [str(model.get("architecture") or MISSING)]
    n_params = model.get("n_params")
    if isinstance(n_params, int | float) and not isinstance(n_params, bool):
        parts.append(f"{_compact_count(int(n_params))} params")
    shape = model.get("input_shape")
    if shape:
        parts.append("×".join(str(s) for s in shape))
    return " · ".join(parts)


# controls ----------------------------------------------------------------------------------------


def field_error(error_type: str, field: str) -> html.Div:
    """The message slot of a field (its spec path); the page's checks fill it."""
    return html.Div(id={"type": error_type, "field": field}, className="field-error")


def control(
    label: str,
    *children: Any,
    hint: Any = None,
    error: Any = None,
    title: str | None = None,
) -> html.Div:
    """A labelled field: label (``title`` as its tooltip), the inputs, a hint, then the
    message slot (``error``: a :func:`field_error`, or the plain id of one)."""
    parts: list[Any] = [html.Span(label, className="control-label", title=title), *children]
    if hint is not None:
        parts.append(html.Div(hint, className="muted hint"))
    if isinstance(error, str):
        error = html.Div(id=error, className="field-error")
    if error is not None:
        parts.append(error)
    return html.Div(parts, className="field")


def number_input(
    component_id: Any,
    placeholder: str | None = None,
    *,
    value: Any = None,
    disabled: bool = False,
    step: Any = "any",
    debounce: bool = DEBOUNCE,
) -> dcc.Input:
    """A number input without min/max (the browser would blank an out-of-range value, and the
    server's message says more than the browser's), debounced (:data:`DEBOUNCE`)."""
    return text_input(
        component_id,
        placeholder,
        value,
        type="number",
        step=step,
        disabled=disabled,
        debounce=debounce,
    )


def text_input(
    component_id: Any, placeholder: str | None = None, value: Any = None, **extra: Any
) -> dcc.Input:
    """A text input (``extra`` are more of ``dcc.Input``'s properties), debounced by
    :data:`DEBOUNCE`."""
    extra = {"type": "text", "debounce": DEBOUNCE, **extra}
    return dcc.Input(
        id=component_id, value=value, placeholder=placeholder, className="input", **extra
    )


def choice(
    component_id: Any,
    options: Sequence[Any],
    value: Any = None,
    *,
    disabled: bool = False,
    clearable: bool = False,
    placeholder: str | None = None,
) -> dcc.Dropdown:
    """A dropdown of fixed choices (not searchable)."""
    return dcc.Dropdown(
        id=component_id,
        options=list(options),
        value=value,
        clearable=clearable,
        searchable=False,
        disabled=disabled,
        placeholder=placeholder,
    )


def param_input(component_id: Any, name: str, default: Any, blank_hint: str | None) -> Any:
    """The input of a method's or an architecture's parameter ``name``, filled with its
    ``default``: a checkbox for a bool, a number input for a number, a blank text input (with
    ``blank_hint``) for None, else text (lists and dicts as JSON)."""
    if isinstance(default, bool):
        return checkbox(component_id, name, default)
    if default is None:
        return text_input(component_id, blank_hint, "")
    if isinstance(default, int | float):
        return number_input(component_id, value=default)
    text = default if isinstance(default, str) else json.dumps(default)
    return text_input(component_id, None, text)


def param_field(label: str, component: Any, hint: str, error: Any) -> html.Div:
    """One argument of a method or an architecture: its name, input, default and message slot."""
    parts = [html.Span(label, className="control-label"), component]
    return html.Div(
        [*parts, html.Span(hint, className="muted hint"), error], className="field param-field"
    )


def dropdown(
    component_id: Any, options: Sequence[Any], value: Any, placeholder: str, **kw: Any
) -> dcc.Dropdown:
    """A searchable dropdown of rows (models, datasets), not clearable unless ``kw`` says."""
    kw.setdefault("clearable", False)
    return dcc.Dropdown(
        id=component_id, options=list(options), value=value, placeholder=placeholder, **kw
    )


def checkbox(component_id: Any, label: str, on: bool) -> dcc.Checklist:
    """A single checkbox; its value is ``[ON]`` when ticked (see :func:`is_on`)."""
    return dcc.Checklist(
        id=component_id,
        options=[{"label": label, "value": ON}],
        value=[ON] if on else [],
        className="checkbox",
    )


# models and datasets -----------------------------------------------------------------------------


def lineage_order(models: Sequence[ModelPublic]) -> list[tuple[int, ModelPublic]]:
    """Order models as a forest: each original followed by its pruned descendants.

    Returns:
        ``(depth, model)`` pairs; depth 0 for originals (and for models whose parent is not in
        the list), depth d + 1 for a child of a depth-d model. Siblings are sorted by sparsity
        then id; models caught in a parent cycle come last, flat.
    """
    by_id = {m["id"]: m for m in models}
    children: dict[int, list[ModelPublic]] = {}
    roots: list[ModelPublic] = []
    for m in models:
        parent = m.get("parent_id")
        if parent is not None and parent in by_id and parent != m["id"]:
            children.setdefault(parent, []).append(m)
        else:
            roots.append(m)
    out: list[tuple[int, ModelPublic]] = []
    seen: set[int] = set()
    stack = [(0, m) for m in sorted(roots, key=lambda m: m["id"], reverse=True)]
    while stack:
        depth, m = stack.pop()
        if m["id"] in seen:  # a parent cycle in bad data must not loop forever
            continue
        seen.add(m["id"])
        out.append((depth, m))
        kids = sorted(children.get(m["id"], []), key=lambda k: (k.get("sparsity") or 0.0, k["id"]))
        stack.extend((depth + 1, k) for k in reversed(kids))
    out.extend((0, m) for m in models if m["id"] not in seen)
    return out


def find_by_id(items: Sequence[Mapping[str, Any]] | None, item_id: Any) -> Mapping[str, Any] | None:
    """The entry of ``items`` whose ``id`` is ``item_id`` (an int or its text), or None."""
    wanted = query_int(item_id)
    return next((item for item in items or [] if item.get("id") == wanted), None)


def _is_original(model: Mapping[str, Any]) -> bool:
    return model.get("parent_id") is None and not model.get("pruning_method")


def model_option_label(
    model: Mapping[str, Any], depth: int = 0, *, lineage: bool = True, accuracy: bool = True
) -> str:
    """``"#1 cnn · digits_cnn · 27.4k params · 1×8×8 · original · acc 97.2%"``; a pruned model
    with its method and sparsity, indented under its original in ``lineage`` style
    (``"↳ #3 … · global_magnitude 90% sparse · acc 95.1%"``), else ``"#3 … · 90% sparse"``."""
    indent = "\u2003" * max(depth - 1, 0) + ("↳ " if depth else "")
    label = f"{indent}#{model['id']} {model.get('name')} · {model_architecture_summary(model)}"
    if _is_original(model):
        label += " · original"
    else:
        method = f"{model.get('pruning_method') or 'pruned'} " if lineage else ""
        label += f" · {method}{format_percent(model.get('sparsity'), 0)} sparse"
    return f"{label} · acc {format_percent(model.get('accuracy'))}" if accuracy else label


def model_options(
    models: Sequence[ModelPublic], *, lineage: bool = True, accuracy: bool = True
) -> list[dict[str, Any]]:
    """Dropdown options: in lineage order (each original followed by its pruned descendants),
    or by id; see :func:`model_option_label`."""
    ordered = lineage_order(models) if lineage else [(0, m) for m in sorted(models, key=_id)]
    return [
        {
            "label": model_option_label(m, depth, lineage=lineage, accuracy=accuracy),
            "value": m["id"],
        }
        for depth, m in ordered
    ]


def _id(item: Mapping[str, Any]) -> int:
    return int(item["id"])


def dataset_label(dataset: Mapping[str, Any], *, sizes: bool = True) -> str:
    """``"#1 digits · 10 classes, 1×8×8 · 1,347 train / 450 test"`` (the sizes optional)."""
    shape = "×".join(str(s) for s in dataset.get("input_shape") or []) or MISSING
    label = (
        f"#{dataset['id']} {dataset.get('name')} · {dataset.get('num_classes')} classes, {shape}"
    )
    if not sizes:
        return label
    n_train, n_test = int(dataset.get("n_train") or 0), int(dataset.get("n_test") or 0)
    return f"{label} · {n_train:,} train / {n_test:,} test"


def dataset_options(
    datasets: Sequence[Mapping[str, Any]], *, sizes: bool = True
) -> list[dict[str, Any]]:
    """One dropdown option per dataset, by id (see :func:`dataset_label`)."""
    return [
        {"label": dataset_label(d, sizes=sizes), "value": d["id"]}
        for d in sorted(datasets, key=_id)
    ]


# the server's dry run ----------------------------------------------------------------------------


class DryRun(NamedTuple):
    """The server's verdict on a spec it was only asked to check (``POST /api/jobs?dry_run``).

    ``spec`` is the normalised spec (defaults filled in), None when refused; ``errors`` maps
    each bad field's spec path (``"sparsity"``, ``"finetune.epochs"``, ``"params.gamma"``;
    ``""`` for the spec as a whole) to the server's message.
    """

    spec: dict[str, Any] | None
    errors: dict[str, str]


def api_errors(exc: ApiError) -> dict[str, str]:
    """The field errors of a refusal (see :class:`DryRun`); an unreachable or failing server,
    or a refusal without fields, under ``""``."""
    if isinstance(exc, ApiUnreachableError):
        return {WHOLE: f"Cannot reach the PruneScope API: {exc.detail}"}
    return dict(exc.field_errors) or {WHOLE: exc.detail}


def dry_run(kind: str, spec: Mapping[str, Any]) -> DryRun:
    """Ask the server whether it would accept ``spec`` as a ``kind`` job (kinds include
    ``import_model`` and ``import_dataset``: an upload's fields); nothing is written."""
    try:
        answer = get_client().validate_job(cast(JobKind, kind), dict(spec))
    except ApiError as exc:
        return DryRun(None, api_errors(exc))
    return DryRun(dict(answer.get("spec") or {}), {})


def slot_messages(
    error_ids: Sequence[Mapping[str, Any]] | None, errors: Mapping[str, str]
) -> list[str]:
    """One message per slot, in the order of ``error_ids``: the error of the slot's field, and
    in the ``""`` slot (the spec as a whole) every error whose field has no slot of its own."""
    fields = [str(eid.get("field")) for eid in error_ids or []]
    rest = "; ".join(
        msg if not path else f"{path}: {msg}" for path, msg in errors.items() if path not in fields
    )
    return [
        "; ".join(m for m in (errors.get(f, ""), rest) if m) if f == WHOLE else errors.get(f, "")
        for f in fields
    ]


# checking a form as it is filled in --------------------------------------------------------------

# Dash shows callback answers in the order they arrive, so a slow answer about an older state of
# the form could overwrite a newer one. Each change stamps the form in the browser, the server's
# verdict carries its stamp back, and it is shown only while no newer change has stamped it.
STAMP_JS = "function() { return window.performance.now(); }"
SHOW_JS = """function(verdict, stamp, slots) {
    const answer = verdict && verdict.stamp === stamp ? verdict.answer : null;
    if (!answer || (slots && answer.errors.length !== slots.length)) {
        throw window.dash_clientside.PreventUpdate;
    }
    // a key the check left out (it answered dash.no_update) leaves its output alone
    return KEYS.map((key) => key in answer ? answer[key] : window.dash_clientside.no_update);
}"""


def validation_stores(prefix: str) -> list[dcc.Store]:
    """The stamp and verdict stores of a form's check (:func:`register_validation`)."""
    return [dcc.Store(id=f"{prefix}-stamp"), dcc.Store(id=f"{prefix}-verdict")]


def as_states(deps: Mapping[str, Any]) -> dict[str, State]:
    """The same dependencies, as States."""
    return {key: State(dep.component_id, dep.component_property) for key, dep in deps.items()}


def register_validation(
    app: dash.Dash,
    validate: Callable[..., Mapping[str, Any]],
    *,
    prefix: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Output] | None = None,
    error_type: str | None = None,
    prevent_initial_call: bool = False,
) -> Callable[..., dict[str, Any]]:
    """Wire a form's check as the user types: the one way every form asks the server.

    A change of any ``Input`` among ``inputs`` stamps the form (``<prefix>-stamp``, see
    :func:`validation_stores`); the server then runs ``validate(**form)`` with the values of
    all of ``inputs`` (and ``error_ids``, the ids of the message slots, with ``error_type``),
    and the answer is shown only while its stamp is the latest: each of its keys in its
    output, ``"errors"`` (a message per slot, see :func:`slot_messages`) in the slots of
    ``error_type``. Text and number inputs are debounced (:data:`DEBOUNCE`).

    Returns:
        The server-side callback, ``(stamp, **form) -> {"stamp", "answer"}``.
    """
    stamp, verdict = f"{prefix}-stamp", f"{prefix}-verdict"
    shown, states, slots = dict(outputs or {}), as_states(inputs), []
    if error_type is not None:
        pattern = {"type": error_type, "field": ALL}
        shown = {"errors": Output(pattern, "children"), **shown}
        states["error_ids"] = State(pattern, "id")
        slots = [states["error_ids"]]
    changes = [dep for dep in inputs.values() if isinstance(dep, Input)]
    app.clientside_callback(
        STAMP_JS, Output(stamp, "data"), *changes, prevent_initial_call=prevent_initial_call
    )

    def stamped(stamp: float | None, **form: Any) -> dict[str, Any]:
        # dash.no_update would travel as {} and be shown as "[object Object]": leave it out
        answer = {k: v for k, v in validate(**form).items() if v is not dash.no_update}
        return {"stamp": stamp, "answer": answer}

    app.callback(
        output=Output(verdict, "data"),
        inputs={"stamp": Input(stamp, "data"), **states},
        prevent_initial_call=prevent_initial_call,
    )(stamped)
    app.clientside_callback(
        SHOW_JS.replace("KEYS", json.dumps(list(shown))),
        list(shown.values()),
        Input(verdict, "data"),
        State(stamp, "data"),
        *slots,
    )
    return stamped
