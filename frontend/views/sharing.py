"""The compare page's "Share" panel: create read-only links to this comparison, see its live
links, revoke them (``/api/comparisons/{id}/shares``; README, Access and sharing).

A link opens this one comparison read-only (its views and its samples' images) and nothing
else on the server. The secret is shown once, when the link is made; the list shows only each
link's first characters. Creating and revoking need a write token; a share link's own viewer
never sees this panel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html

from frontend.client import ApiError, SessionInfo, SharePublic, get_client
from frontend.components import api_error_notice, notice
from frontend.views import QUERY, SELECTION, decode_ids, view_query

ID_PANEL = "compare-share"
ID_COMPARISON = "compare-share-comparison"
ID_LABEL = "compare-share-label"
ID_EXPIRY = "compare-share-expiry"
ID_CREATE = "compare-share-create"
ID_CREATED = "compare-share-created"
ID_LIST = "compare-share-list"
ID_REFRESH = "compare-share-refresh"
REVOKE = "compare-share-revoke"

NEVER = "never"
EXPIRY_OPTIONS = [
    {"label": "Expires in 1 day", "value": "24"},
    {"label": "Expires in 7 days", "value": "168"},
    {"label": "Expires in 30 days", "value": "720"},
    {"label": "Never expires", "value": NEVER},
]
DEFAULT_EXPIRY = "168"


def expiry_hours(value: Any) -> float | None:
    """The dropdown's value as ``expires_in_hours`` (None = never)."""
    if value in (None, "", NEVER):
        return None
    hours = float(value)
    if hours <= 0:
        raise ValueError(f"expiry {value!r} should be a positive number of hours")
    return hours


def describe_view(view: dict[str, str]) -> str:
    """What a link opens, in words: "the default view", or e.g. "B = model 3, class 2,
    12 selected samples, sample #125 open, 2 view settings"."""
    parts = []
    if view.get("b"):
        parts.append(f"B = model {view['b']}")
    if view.get("cls"):
        parts.append(f"class {view['cls']}")
    if view.get("sel"):
        n = len(decode_ids(view["sel"]))
        parts.append(f"{n} selected sample{'s' if n != 1 else ''}")
    if view.get("smp"):
        parts.append(f"sample #{view['smp']} open")
    settings = [k for k in view if k not in ("b", "cls", "sel", "smp")]
    if settings:
        parts.append(f"{len(settings)} view setting{'s' if len(settings) != 1 else ''}")
    return ", ".join(parts) if parts else "the default view"


def _when(text: str | None) -> str:
    if not text:
        return "never"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def share_table(shares: list[SharePublic], can_write: bool) -> Any:
    """The live links: who for, prefix, made by, when, expiry, last use, and Revoke."""
    if not shares:
        return html.P(
            "No live links. Create one above; it can be revoked at any time.",
            className="muted",
            id="compare-share-empty",
        )
    head = ["For", "Link", "Opens", "Created by", "Created", "Expires", "Last opened", ""]
    rows = [
        html.Tr(
            [
                html.Td(s["label"] or "—"),  # shown as text, whatever was typed
                html.Td(html.Code(f"/s/{s['prefix']}…")),
                html.Td(describe_view(s.get("view") or {})),
                html.Td(s["created_by"]),
                html.Td(_when(s["created_at"])),
                html.Td(_when(s["expires_at"])),
                html.Td(_when(s["last_used_at"]) if s["last_used_at"] else "not yet"),
                html.Td(
                    html.Button(
                        "Revoke",
                        id={"type": REVOKE, "index": s["id"]},
                        className="btn btn-danger",
                        disabled=not can_write,
                        title="" if can_write else "Revoking needs a write token",
                    )
                ),
            ]
        )
        for s in shares
    ]
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)],
        className="share-table",
    )


def panel(comparison_id: int, user: SessionInfo) -> html.Details | None:
    """The Share panel for this user, or None for a share link's viewer."""
    if user.get("kind") == "share":
        return None
    can_write = user.get("scope") == "write"
    hint = (
        "This server runs without authentication (it listens on 127.0.0.1 only), so a link "
        "works for people on this machine; on a team server (--host) it is the only way in "
        "for someone without a token."
        if not user.get("auth")
        else "Anyone with the link can open this comparison read-only: its views and its "
        "samples' images, nothing else on this server. Revoking a link stops it at its next "
        "request."
    )
    controls = (
        [
            dcc.Input(
                id=ID_LABEL,
                type="text",
                placeholder="For whom (optional)",
                maxLength=200,
                debounce=False,
            ),
            dcc.Dropdown(
                id=ID_EXPIRY,
                options=EXPIRY_OPTIONS,
                value=DEFAULT_EXPIRY,
                clearable=False,
                searchable=False,
                className="share-expiry",
            ),
            html.Button("Create link", id=ID_CREATE, className="btn btn-primary"),
        ]
        if can_write
        else [html.P("Creating links needs a write token.", className="muted")]
    )
    return html.Details(
        [
            html.Summary("Share this comparison"),
            html.P(hint, className="muted"),
            html.Div(controls, className="share-form"),
            html.Div(id=ID_CREATED),
            html.Div(id=ID_LIST),
            dcc.Store(id=ID_COMPARISON, data=comparison_id),
            dcc.Store(id=ID_REFRESH, data=0),
        ],
        id=ID_PANEL,
        className="share-panel card",
    )


def _can_write() -> bool:
    from frontend.session import current_user

    return current_user().get("scope") == "write"


def list_links(_refresh: Any, comparison_id: Any) -> Any:
    """Callback: the live links (again after each create or revoke)."""
    if comparison_id is None:
        return dash.no_update
    try:
        shares = get_client().list_shares(int(comparison_id))
    except ApiError as exc:
        return api_error_notice(exc, "the share links")
    return share_table(shares, _can_write())


def create_link(
    n_clicks: Any,
    label: Any,
    expiry: Any,
    comparison_id: Any,
    refresh: Any,
    query: dict[str, Any] | None = None,
    current_selection: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Callback: create a link to the view as it is now (B, class, selection, the views'
    settings: :func:`frontend.views.view_query`) and show it once, with a copy button."""
    if not n_clicks or comparison_id is None:
        return dash.no_update, dash.no_update
    try:
        created = get_client().create_share(
            int(comparison_id),
            label=str(label or "").strip(),
            expires_in_hours=expiry_hours(expiry),
            view=view_query(query, current_selection),
        )
    except ApiError as exc:
        return api_error_notice(exc, "the share link"), dash.no_update
    except ValueError as exc:
        return notice("Could not create the link", str(exc), kind="error"), dash.no_update
    body = html.Div(
        [
            html.P(
                [
                    html.Strong("New link. "),
                    "Copy it now: it is shown only this once (the server keeps only a hash). "
                    f"It opens {describe_view(created.get('view') or {})}. "
                    f"Expires: {_when(created['expires_at'])}.",
                ]
            ),
            html.Div(
                [
                    dcc.Input(
                        id="compare-share-url",
                        value=created["url"],
                        readOnly=True,
                        type="text",
                    ),
                    dcc.Clipboard(target_id="compare-share-url", title="Copy the link"),
                ],
                className="share-url",
            ),
        ],
        className="notice",
    )
    return body, int(refresh or 0) + 1


def revoke_link(clicks: list[Any], comparison_id: Any, refresh: Any) -> tuple[Any, Any]:
    """Callback: revoke the link whose button was clicked."""
    triggered = dash.ctx.triggered_id
    if not isinstance(triggered, dict) or not any(clicks or []):
        return dash.no_update, dash.no_update
    return revoke(triggered.get("index"), comparison_id, refresh)


def revoke(share_id: Any, comparison_id: Any, refresh: Any) -> tuple[Any, Any]:
    """Revoke one link; returns (message, new refresh count)."""
    if share_id is None or comparison_id is None:
        return dash.no_update, dash.no_update
    try:
        get_client().revoke_share(int(comparison_id), int(share_id))
    except ApiError as exc:
        return api_error_notice(exc, "the share link"), dash.no_update
    return None, int(refresh or 0) + 1


def register(app: dash.Dash) -> None:
    """Attach the panel's callbacks to ``app``."""
    app.callback(
        Output(ID_LIST, "children"),
        Input(ID_REFRESH, "data"),
        State(ID_COMPARISON, "data"),
    )(list_links)
    app.callback(
        Output(ID_CREATED, "children"),
        Output(ID_REFRESH, "data", allow_duplicate=True),
        Input(ID_CREATE, "n_clicks"),
        State(ID_LABEL, "value"),
        State(ID_EXPIRY, "value"),
        State(ID_COMPARISON, "data"),
        State(ID_REFRESH, "data"),
        State(QUERY, "data"),
        State(SELECTION, "data"),
        prevent_initial_call=True,
    )(create_link)
    app.callback(
        Output(ID_CREATED, "children", allow_duplicate=True),
        Output(ID_REFRESH, "data", allow_duplicate=True),
        Input({"type": REVOKE, "index": ALL}, "n_clicks"),
        State(ID_COMPARISON, "data"),
        State(ID_REFRESH, "data"),
        prevent_initial_call=True,
    )(revoke_link)
