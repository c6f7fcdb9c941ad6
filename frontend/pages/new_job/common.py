"""What the new-job page and its two forms share: the page's ids, the followed job's ids, the
submit row, and asking the server about a form's spec (its dry run as the user types, then the
job itself on submit)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiError, JobKind, get_client
from frontend.components import notice, result_card
from frontend.forms import (
    WHOLE,
    DryRun,
    dry_run,
    field_error,
    query_int,
    slot_messages,
)
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


def find_by_id(items: Sequence[Mapping[str, Any]] | None, item_id: Any) -> Mapping[str, Any] | None:
    """The entry of ``items`` whose ``id`` is ``item_id`` (an int or its text), or None."""
    wanted = query_int(item_id)
    return next((item for item in items or [] if item.get("id") == wanted), None)


def dropdown(
    component_id: str, options: list[dict[str, Any]], value: Any, placeholder: str, **kw: Any
) -> dcc.Dropdown:
    """A searchable dropdown of rows (models, datasets), not clearable unless ``kw`` says."""
    kw.setdefault("clearable", False)
    return dcc.Dropdown(
        id=component_id, options=options, value=value, placeholder=placeholder, **kw
    )


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
    """The server's verdict on a form's spec (``POST /api/jobs?dry_run=true``), for the
    form's validation callback.

    Returns:
        ``{"errors": [message per slot of error_ids], "disabled": whether submitting is
        refused, "summary": how many fields to fix, "plan": the normalised spec as text}``.
    """
    verdict = dry_run(kind, spec)
    errors = nearest_slots(verdict.errors, [str(e.get("field")) for e in error_ids or []])
    n = len([path for path in errors if path != WHOLE])
    return {
        "errors": slot_messages(error_ids, errors),
        "disabled": bool(verdict.errors),
        "summary": f"{n} field{'' if n == 1 else 's'} to fix before submitting." if n else "",
        "plan": plan_text(verdict.spec),
    }


def submit(kind: str, spec: Mapping[str, Any], n_clicks: int | None) -> dict[str, Any]:
    """Submit callback body: check ``spec`` with the server's dry run again, then ``POST
    /api/jobs``; a refusal is shown, field by field or verbatim, and nothing is followed.

    Returns:
        ``{"submit_error": <box> or None, "job": {"id", "kind"} or no_update,
        "cancel_notice": None or no_update}``.
    """
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


# The server's verdict is shown only while it is about the form as it is: every change stamps
# the form in the browser, the verdict carries its stamp back, and one that comes back after a
# newer change (a slow check, a large model to build) is dropped, not shown over the newer one.
STAMP_JS = "function() { return window.performance.now(); }"
SHOW_JS = """function(verdict, stamp, slots) {
    if (!verdict || verdict.stamp !== stamp || verdict.errors.length !== slots.length) {
        throw window.dash_clientside.PreventUpdate;
    }
    return [verdict.errors, verdict.disabled, verdict.summary, verdict.plan];
}"""


def register_form(
    app: dash.Dash,
    ids: Sequence[str],
    error_type: str,
    fields: Callable[[Any], dict[str, Any]],
    callbacks: tuple[Callable[..., Any], Callable[..., Any]],
) -> None:
    """Attach a form's check as the user types (the ``validate`` callback: :func:`check` of
    its spec, shown only while it is the latest) and its submission (:func:`submit`).

    Args:
        ids: the submit row's ids (button, summary, plan, refusal); see :func:`submit_section`.
        error_type: the type of the form's message slots.
        fields: ``Input`` or ``State`` -> the form's fields by keyword, as its callbacks take them.
        callbacks: the form's validate and submit callbacks.
    """
    button, summary, plan, refusal = ids
    validate, submitted = callbacks
    stamp, verdict, slots = (
        f"{button}-stamp",
        f"{button}-verdict",
        {"type": error_type, "field": ALL},
    )
    changes = [dep for dep in fields(Input).values() if isinstance(dep, Input)]
    app.clientside_callback(STAMP_JS, Output(stamp, "data"), *changes)

    def stamped(stamp: float | None, **form: Any) -> dict[str, Any]:
        return {"stamp": stamp, **validate(**form)}

    app.callback(
        output=Output(verdict, "data"),
        inputs={"stamp": Input(stamp, "data"), **fields(State), "error_ids": State(slots, "id")},
    )(stamped)
    app.clientside_callback(
        SHOW_JS,
        Output(slots, "children"),
        Output(button, "disabled"),
        Output(summary, "children"),
        Output(plan, "children"),
        Input(verdict, "data"),
        State(stamp, "data"),
        State(slots, "id"),
    )
    app.callback(
        output={
            "submit_error": Output(refusal, "children"),
            "job": Output(FOLLOW_IDS.job, "data", allow_duplicate=True),
            "cancel_notice": Output(FOLLOW_IDS.cancel_notice, "children", allow_duplicate=True),
        },
        inputs={"n_clicks": Input(button, "n_clicks"), **fields(State)},
        prevent_initial_call=True,
    )(submitted)


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


def submit_section(
    label: str, kind: str, ids: Sequence[str], error_type: str, verdict: DryRun
) -> html.Section:
    """A form's submit row: the button (disabled while the server refuses the form), how many
    fields to fix, the slot of messages about the whole spec, what will run, and where a
    refusal on submit is shown.

    Args:
        ids: the button's, the summary's, the plan's and the refusal's ids.
        verdict: the server's dry run of the form as first shown.
    """
    button_id, summary_id, plan_id, error_id = ids
    button = html.Button(
        label,
        id=button_id,
        n_clicks=0,
        disabled=bool(verdict.errors),
        className="btn btn-primary",
        title=f"Submit the {kind} job; this page then follows its progress",
    )
    return html.Section(
        [
            html.Div(
                [button, html.Span(id=summary_id, className="field-error")], className="actions"
            ),
            field_error(error_type, WHOLE),
            html.Div(plan_text(verdict.spec), id=plan_id, className="muted hint"),
            html.Div(id=error_id),
            dcc.Store(id=f"{button_id}-stamp"),
            dcc.Store(id=f"{button_id}-verdict"),
        ],
        className="section",
    )


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
