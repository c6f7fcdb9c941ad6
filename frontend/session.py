"""The dashboard's current user, as the API sees them (``GET /api/session``).

The browser keeps the user's API token or share link in an http-only cookie; the callbacks
run on the server and forward it to the API (:mod:`frontend.client`). Pages ask
:func:`current_user` what to offer: a share link's viewer gets one comparison and no controls
that write, a read-only token gets no buttons that would be refused.
"""

from __future__ import annotations

from typing import cast

from frontend.client import (
    SHARE_COOKIE,
    TOKEN_COOKIE,
    ApiError,
    ApiUnreachableError,
    SessionInfo,
    get_client,
)

# What a server with authentication off says; also assumed when the API cannot be asked (the
# page then shows that error itself, and the API still refuses whatever is not allowed).
LOCAL_USER: SessionInfo = {
    "auth": False,
    "kind": "local",
    "scope": "write",
    "name": "local",
    "token_id": None,
    "share_id": None,
    "comparison_id": None,
}


def cookie_credential() -> str | None:
    """The credential in the current Flask request's cookies: the API token, else the share
    link; "" when there is none; None outside a request (see client.set_credential_source)."""
    import flask

    if not flask.has_request_context():
        return None
    cookies = flask.request.cookies
    return cookies.get(TOKEN_COOKIE) or cookies.get(SHARE_COOKIE) or ""


def browser_origin() -> dict[str, str]:
    """X-Forwarded-Host/-Proto naming the address the user's browser reached (as a proxy in
    front already said, else this request's host); {} outside a request."""
    import flask

    if not flask.has_request_context():
        return {}
    headers = flask.request.headers
    return {
        "X-Forwarded-Host": headers.get("X-Forwarded-Host") or flask.request.host,
        "X-Forwarded-Proto": headers.get("X-Forwarded-Proto") or flask.request.scheme,
    }


def current_user() -> SessionInfo:
    """``GET /api/session`` for the current request (asked once per request)."""
    import flask

    cached = flask.g.get("prunescope_user") if flask.has_request_context() else None
    if cached is not None:
        return cast(SessionInfo, cached)
    try:
        user = get_client().get_session()
    except (ApiError, ApiUnreachableError):
        user = LOCAL_USER
    if flask.has_request_context():
        flask.g.prunescope_user = user
    return user


def can_write(user: SessionInfo) -> bool:
    """Whether ``user`` may submit: a write token or the local user (no authentication)."""
    return user.get("scope") == "write"


def is_share(user: SessionInfo) -> bool:
    return user.get("kind") == "share"
