"""What the new-job page and its two forms share: the page's ids, and one kind's form (its ids,
fields, submit row and wiring: the server's check as the user types, then the job itself)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import dash
from dash import Input, Output, State, dcc, html

from frontend import forms
from frontend.client import ApiError, JobKind, get_client
from frontend.components import job_kind_links, notice, result_card, search_with
from frontend.jobs import follow_ids, refusal_notice, start_job

PREFIX = "new"  # of the followed job's ids (frontend.jobs.follow_ids)
URL_ID = "url"  # the shell's Location (frontend/app.py): writing it re-renders the page
ID_URL = "new-url"  # the page's own Location (refresh=False): view state only
ID_VIEW = "new-view"
ID_KIND_TABS = "new-kind-tabs"
ID_EMPTY = "new-empty"
ID_RESULT = "new-result"
ID_RESULT_LINK = "new-result-link"  # the main "what next" link of a finished job
FOLLOW_IDS = follow_ids(PREFIX)


class Form(NamedTuple):
    """What the page shows of one kind's form: what the kind strip carries (``dataset`` or
    ``model``), warnings about the URL, and the form itself."""

    tabs: dict[str, Any]
    warnings: list[Any]
    children: list[Any]


class FormIds(NamedTuple):
    """The ids of one kind's form, ``new-<kind>-<part>``."""

    form: str
    submit: str  # the button; also the prefix of the check's stores
    summary: str  # how many fields to fix
    plan: str  # what will run: the server's normalised spec
    submit_error: str  # a refusal on submit
    error_type: str  # of the message slots {"type": error_type, "field": <spec path>}


def form_ids(kind: str) -> FormIds:
    """The ids of the ``kind`` form."""
    parts = ("form", "submit", "summary", "plan", "submit-error", "error")
    return FormIds._make(f"{PREFIX}-{kind}-{part}" for part in parts)


def input_ids(kind: str, keys: Sequence[str]) -> dict[str, str]:
    """Form keyword -> the id of its input, ``new-<kind>-<keyword, dashed>``."""
    return {key: f"{PREFIX}-{kind}-{key.replace('_', '-')}" for key in keys}


def field(ids: FormIds, help_text: Mapping[str, str], label: str, key: str, *inputs: Any) -> Any:
    """A labelled field of the spec path ``key``: its help under it and as its tooltip, then
    its message slot."""
    error = forms.field_error(ids.error_type, key)
    return forms.control(label, *inputs, hint=help_text[key], error=error, title=help_text[key])


def plan_text(spec: Mapping[str, Any] | None) -> str:
    """What the server will run, every default filled in: ``"Will run with: dataset_id 2 ·
    architecture mlp · epochs 15 · …"`` (empty values left out); empty for a refused spec."""
    if spec is None:
        return ""
    shown = [
        f"{key} {value if isinstance(value, str) else json.dumps(value)}"
        for key, value in spec.items()
        if value not in (None, [], {})
    ]
    return "Will run with: " + " · ".join(shown)


def nearest_slots(errors: Mapping[str, str], fields: Sequence[str]) -> dict[str, str]:
    """``errors`` by the slot each is shown in: its own field's, else the nearest enclosing one
    (``"severities.0"`` under ``"severities"``, ``"arch_kwargs.depth"`` under ``"arch_kwargs"``);
    a path with neither is kept, for the slot of the whole spec."""
    out: dict[str, str] = {}
    for path, msg in errors.items():
        slot = path
        while slot and slot not in fields:
            slot = slot.rpartition(".")[0]
        key = slot if slot else path
        if msg not in out.get(key, "").split("; "):
            out[key] = f"{out[key]}; {msg}" if key in out else msg
    return out


def check(kind: str, spec: Mapping[str, Any], error_ids: Any) -> dict[str, Any]:
    """The server's verdict on a form's spec (``POST /api/jobs?dry_run=true``):
    ``{"errors": [message per slot of error_ids], "disabled": whether submitting is refused,
    "summary": how many fields to fix, "plan": the normalised spec as text}``."""
    verdict = forms.dry_run(kind, spec)
    errors = nearest_slots(verdict.errors, [str(e.get("field")) for e in error_ids or []])
    n = len([path for path in errors if path != forms.WHOLE])
    return {
        "errors": forms.slot_messages(error_ids, errors),
        "disabled": bool(verdict.errors),
        "summary": f"{n} field{'' if n == 1 else 's'} to fix before submitting." if n else "",
        "plan": plan_text(verdict.spec),
    }


def submit(kind: str, spec: Mapping[str, Any], n_clicks: int | None) -> dict[str, Any]:
    """Check ``spec`` with the server's dry run again, then ``POST /api/jobs``; a refusal is
    shown, field by field or verbatim, and nothing is followed: ``{"submit_error": <box> or
    None, "job": {"id", "kind"} or no_update, "cancel_notice": None or no_update}``."""
    keep = {"job": dash.no_update, "cancel_notice": dash.no_update}
    if not n_clicks:
        return {"submit_error": None, **keep}
    try:
        get_client().validate_job(cast(JobKind, kind), dict(spec))
    except ApiError as exc:
        if not exc.field_errors:
            return {"submit_error": refusal_notice(exc), **keep}
        fields = "; ".join(
            f"{path}: {msg}" if path else msg for path, msg in exc.field_errors.items()
        )
        return {"submit_error": notice("Check the form", fields, kind="warning"), **keep}
    started = start_job(kind, spec)
    if started.job is None:
        return {"submit_error": started.notice, **keep}
    return {"submit_error": None, "job": started.job, "cancel_notice": None}


def register_form(
    app: dash.Dash,
    ids: FormIds,
    inputs: Mapping[str, Any],
    validate: Callable[..., Any],
    submitted: Callable[..., Any],
) -> None:
    """Attach a form's check as the user types (``validate``, shown only while it is the
    latest: :func:`frontend.forms.register_validation`) and its submission (``submitted``);
    ``inputs`` are the form's fields by keyword, as both take them."""
    shown = {"disabled": (ids.submit, "disabled"), "summary": (ids.summary, "children")}
    shown["plan"] = (ids.plan, "children")
    forms.register_validation(
        app,
        validate,
        prefix=ids.submit,
        inputs=inputs,
        outputs={key: Output(*target) for key, target in shown.items()},
        error_type=ids.error_type,
    )
    app.callback(
        output={
            "submit_error": Output(ids.submit_error, "children"),
            "job": Output(FOLLOW_IDS.job, "data", allow_duplicate=True),
            "cancel_notice": Output(FOLLOW_IDS.cancel_notice, "children", allow_duplicate=True),
        },
        inputs={"n_clicks": Input(ids.submit, "n_clicks"), **forms.as_states(inputs)},
        prevent_initial_call=True,
    )(submitted)


def update_url(kind: str, search: str | None, chosen: Mapping[str, Any], carried: str) -> Any:
    """A form's URL callback: ``kind`` and the ``chosen`` values into the URL (other keys kept),
    and the kind strip's tabs carrying the ``carried`` one; ``no_update`` for both when the URL
    already says so."""
    new = search_with(search, {"kind": kind, **chosen})
    if new is None:
        return dash.no_update, dash.no_update
    return new, job_kind_links(kind, **{carried: chosen[carried]})


def register_url(app: dash.Dash, update: Callable[..., Any], *chosen: str) -> None:
    """Attach a form's ``update(*values of chosen, search)``, which writes the page's URL and
    the kind strip's tabs."""
    app.callback(
        Output(ID_URL, "search", allow_duplicate=True),
        Output(ID_KIND_TABS, "children", allow_duplicate=True),
        *(Input(component_id, "value") for component_id in chosen),
        State(ID_URL, "search"),
        prevent_initial_call=True,
    )(update)


def form_layout(
    ids: FormIds,
    label: str,
    kind: str,
    verdict: forms.DryRun,
    sections: Sequence[Sequence[Any]],
    stores: Mapping[str, Any],
) -> list[Any]:
    """A form: the ``stores`` (id -> data), its ``sections``, then the submit row: the button
    (disabled while the server refuses the form as first shown, ``verdict``), how many fields to
    fix, the slot of messages about the whole spec, what will run, and where a refusal on
    submit is shown."""
    button = html.Button(
        label,
        id=ids.submit,
        n_clicks=0,
        disabled=bool(verdict.errors),
        className="btn btn-primary",
        title=f"Submit the {kind} job; this page then follows its progress",
    )
    submit_row = [
        html.Div([button, html.Span(id=ids.summary, className="field-error")], className="actions"),
        forms.field_error(ids.error_type, forms.WHOLE),
        html.Div(plan_text(verdict.spec), id=ids.plan, className="muted hint"),
        html.Div(id=ids.submit_error),
        *forms.validation_stores(ids.submit),
    ]
    shown = [html.Section(list(parts), className="section") for parts in [*sections, submit_row]]
    return [
        *(dcc.Store(id=store_id, data=data) for store_id, data in stores.items()),
        html.Div(shown, id=ids.form),
    ]


def result_block(
    cards: Sequence[tuple[str, str, str | None, str]], links: Sequence[Any]
) -> html.Div:
    """What a succeeded job made (id ``new-result``): a card per ``(title, value, detail,
    key)`` (id ``new-result-<key>``), then where to go next (see :func:`result_links`)."""
    row = [result_card(t, v, d, card_id=f"{ID_RESULT}-{key}") for t, v, d, key in cards]
    return html.Div(
        [html.Div(row, className="card-row"), html.Div(list(links), className="actions")],
        id=ID_RESULT,
    )


def result_links(targets: Sequence[tuple[str, str]]) -> list[dcc.Link]:
    """Links of ``(label, href)``; the first is the main one (id ``new-result-link``)."""
    (label, href), rest = targets[0], targets[1:]
    main = dcc.Link(label, href=href, id=ID_RESULT_LINK, className="btn btn-primary")
    return [main, *(dcc.Link(label, href=href, className="btn") for label, href in rest)]
