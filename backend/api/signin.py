"""The dashboard's sign-in page, sign-out, and share links (``/s/<token>``).

Plain HTML served by FastAPI, not Dash pages: setting an http-only cookie needs a real HTTP
response, and the sign-in page must work before the dashboard may load. The cookies are
http-only (no script can read them), SameSite=Lax (a cross-site POST does not carry them, a
link someone follows does) and Secure over https (``cookie_secure``). Nothing secret ever goes
into a URL except the share link itself, which is the point of a share link.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backend.api import security
from backend.config import Settings
from backend.db.session import session_factory, session_scope

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

TOKEN_COOKIE_DAYS = 30


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def secure_cookie(request: Request, settings: Settings) -> bool:
    if settings.cookie_secure != "auto":
        return settings.cookie_secure == "always"
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip() == "https"


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page in the dashboard's style; ``body`` is trusted HTML built here, every
    user-supplied value in it passed through html.escape."""
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · PruneScope</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/style.css"></head>
<body><div class="app"><nav class="navbar"><a class="brand" href="/">PruneScope</a></nav>
<main class="container signin">{body}</main></div></body></html>"""
    return HTMLResponse(
        text,
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "same-origin"},
    )


def signin_form(target: str, message: str = "") -> str:
    why = f'<div class="notice notice-error" role="alert"><p>{html.escape(message)}</p></div>'
    return f"""<h1>Sign in</h1>
<p>This PruneScope server asks for an API token. Ask whoever runs it for one (they create it
with <code>prunescope token create --name YOUR-NAME</code>). It is kept in an http-only cookie
of this browser, never in the address bar.</p>
{why if message else ""}
<form method="post" action="/login" class="signin-form">
<input type="hidden" name="next" value="{html.escape(target)}">
<label for="signin-token">API token</label>
<input id="signin-token" name="token" type="password" autocomplete="current-password"
 placeholder="psk_..." required autofocus>
<button type="submit" id="signin-submit">Sign in</button>
</form>"""


def dead_link_page(why: str) -> HTMLResponse:
    """What someone holding a revoked, expired or wrong share link sees."""
    body = (
        "<h1>This link does not open anything</h1>"
        f'<div class="notice notice-error" role="alert"><p>{html.escape(why)}</p>'
        "<p>Ask whoever sent it for a new one.</p></div>"
    )
    return page("Share link", body, status=404)


def _resolve(settings: Settings, secret: str) -> security.Principal:
    with session_factory(settings.database_url)() as session:
        return security.resolve(session, secret)


def _audit(
    settings: Settings,
    principal: security.Principal,
    action: str,
    target: str,
    status: int,
    client: str,
) -> None:
    try:
        with session_scope(settings.database_url) as session:
            security.record(session, principal, action, target, status, client)
    except Exception:  # noqa: BLE001 - never fail the answer over its audit line
        log.exception("could not write the audit event %s %s", action, status)


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get("/login")
async def read_login(request: Request, next: str = "/") -> Response:
    """The sign-in form (or straight on when this server needs no sign-in). A token cookie
    that no longer works is the reason shown (the reason never comes from the URL, so nobody
    can put words on this page with a link)."""
    settings = _settings(request)
    if not settings.auth_enabled:
        return RedirectResponse(safe_next(next), status_code=303)
    why = ""
    stale = request.cookies.get(security.TOKEN_COOKIE)
    if stale:
        try:
            await anyio.to_thread.run_sync(_resolve, settings, stale)
        except security.CredentialError as exc:
            why = f"{exc} Sign in with another token."
    return page("Sign in", signin_form(safe_next(next), why))


@router.post("/login")
async def create_login(request: Request) -> Response:
    """Check the token; on success keep it in an http-only cookie and go on."""
    settings = _settings(request)
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        return page("Sign in", signin_form("/", "Sign in from this server's own page."), 403)
    form = await request.form()
    target = safe_next(str(form.get("next") or "/"))
    secret = str(form.get("token") or "").strip()
    if not settings.auth_enabled:
        return RedirectResponse(target, status_code=303)
    try:
        if not secret.startswith(security.TOKEN_PREFIX):
            raise security.CredentialError(
                "That is not an API token (they start with psk_)."
                + (" A share link is opened by visiting it." if secret.startswith("pss_") else "")
            )
        principal = await anyio.to_thread.run_sync(_resolve, settings, secret)
    except security.CredentialError as exc:
        await anyio.to_thread.run_sync(
            _audit, settings, security.ANONYMOUS, "login", "/login", 401, _client(request)
        )
        return page("Sign in", signin_form(target, str(exc)), status=401)
    await anyio.to_thread.run_sync(
        _audit, settings, principal, "login", "/login", 303, _client(request)
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        security.TOKEN_COOKIE,
        secret,
        max_age=TOKEN_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(request, settings),
        path="/",
    )
    response.delete_cookie(security.SHARE_COOKIE, path="/")
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(request: Request) -> Response:
    """Forget this browser's token and share link."""
    settings = _settings(request)
    response: Response = (
        RedirectResponse("/login", status_code=303)
        if settings.auth_enabled
        else RedirectResponse("/", status_code=303)
    )
    for name in (security.TOKEN_COOKIE, security.SHARE_COOKIE):
        response.delete_cookie(name, path="/")
    return response


@router.get("/s/{secret}")
async def open_share(request: Request, secret: str) -> Response:
    """Open a share link: keep it in an http-only cookie and show its comparison."""
    settings = _settings(request)
    target = f"/s/{secret[: security.SHOWN_PREFIX]}..."
    try:
        if not secret.startswith(security.SHARE_PREFIX):
            raise security.CredentialError("This is not a share link.")
        principal = await anyio.to_thread.run_sync(_resolve, settings, secret)
    except security.CredentialError as exc:
        await anyio.to_thread.run_sync(
            _audit, settings, security.ANONYMOUS, "share.open", target, 404, _client(request)
        )
        return dead_link_page(str(exc))
    await anyio.to_thread.run_sync(
        _audit, settings, principal, "share.open", target, 303, _client(request)
    )
    view, expires = await anyio.to_thread.run_sync(_share_link, settings, principal)
    query = urlencode([("id", str(principal.comparison_id)), *view.items()])
    response = RedirectResponse(f"/compare?{query}", status_code=303)
    has_token = bool(request.cookies.get(security.TOKEN_COOKIE))
    if not has_token:  # someone signed in keeps their own rights
        response.set_cookie(
            security.SHARE_COOKIE,
            secret,
            max_age=_share_max_age(expires),
            httponly=True,
            samesite="lax",
            secure=secure_cookie(request, settings),
            path="/",
        )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _share_link(
    settings: Settings, principal: security.Principal
) -> tuple[dict[str, str], datetime | None]:
    """The view a share link was made from (the compare page's query; {} for links made
    before links kept it) and when the link expires."""
    from backend.db.tables import ShareLinkRow

    with session_factory(settings.database_url)() as session:
        row = session.get(ShareLinkRow, principal.share_id)
        if row is None:
            return {}, None
        return dict(row.view or {}), security.aware(row.expires_at)


def _share_max_age(expires: datetime | None) -> int:
    """Keep the cookie as long as the link lives (30 days at most; the server checks the link
    on every request anyway)."""
    horizon = TOKEN_COOKIE_DAYS * 86400
    if expires is None:
        return horizon
    return max(1, min(horizon, int((expires - security.utcnow()).total_seconds())))


def login_url(target: str) -> str:
    return f"/login?next={quote(target)}"
