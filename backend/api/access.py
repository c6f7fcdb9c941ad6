"""The access middleware: body-size limit, authentication, the route policy, the job-submission
rate limit and the audit log, in front of both the REST API and the dashboard.

It is plain ASGI (not a FastAPI dependency) so that it runs before anything reads the request
body: a request without the right credential is refused before a byte of its upload is
spooled, and a malformed JSON body cannot turn a 401 into a 422. The policy itself lives in
:mod:`backend.api.security`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
from sqlalchemy.engine import make_url
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import security, signin
from backend.api.security import (
    ANONYMOUS,
    LOCAL,
    Access,
    CredentialError,
    Principal,
    RateLimiter,
)
from backend.config import Settings
from backend.db.session import get_engine, session_factory, session_scope

log = logging.getLogger(__name__)

# The dashboard pages a share link's viewer may open, each for the shared comparison only
# (?id=); every other page sends them back to its compare page.
SHARED_PAGES = ("/compare", "/overview", "/similarity")
# Dashboard paths anyone may fetch: the sign-in page, share links, and static files.
OPEN_PREFIXES = ("/login", "/logout", "/s/", "/assets/", "/_dash-component-suites/")
OPEN_PATHS = frozenset({"/favicon.ico", "/_favicon.ico"})
UPLOAD_PATHS = frozenset({"/api/models/upload", "/api/datasets/upload"})
REFUSALS = frozenset({401, 403, 413, 429})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"Request body too large: the limit is {limit} bytes "
            "(PRUNESCOPE_MAX_BODY_BYTES; uploads have PRUNESCOPE_MAX_UPLOAD_BYTES).",
        )


class RouteTable:
    """Path templates of every API operation (from the app's OpenAPI schema, so exactly the
    routes people can see), matched against request paths."""

    def __init__(self, paths: dict[str, dict[str, Any]]) -> None:
        self.entries = [
            (template, compile_path(template)[0], {m.upper() for m in ops})
            for template, ops in paths.items()
        ]

    def match(self, method: str, path: str) -> tuple[str | None, dict[str, Any]]:
        """The template and path parameters a request is for. When several templates fit
        ("/api/models/upload" and "/api/models/{model_id}"), one with this method and the
        fewest parameters wins, as a route with a literal segment is meant to."""
        best: tuple[int, int, str, dict[str, Any]] | None = None
        for template, regex, methods in self.entries:
            found = regex.match(path)
            if found is None:
                continue
            rank = (0 if method in methods else 1, template.count("{"))
            if best is None or rank < best[:2]:
                best = (*rank, template, found.groupdict())
        return (best[2], best[3]) if best is not None else (None, {})


async def send_json(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


class AccessMiddleware:
    """See the module docstring. ``paths`` gives the OpenAPI schema's paths (read once, at the
    first request, when every route is in place)."""

    def __init__(
        self, app: ASGIApp, *, paths: Callable[[], dict[str, Any]], settings: Settings
    ) -> None:
        self.app, self.paths, self.settings = app, paths, settings
        self._routes: RouteTable | None = None
        self.enabled = settings.auth_enabled
        # a file database: looked up right on the event loop (see _principal)
        url = make_url(settings.database_url)
        self.inline_lookup = url.get_backend_name() == "sqlite" and url.database not in (
            None,
            "",
            ":memory:",
        )
        self._sqlite: security.SqliteTokenLookup | None = None
        self.limiter = RateLimiter(settings.job_rate_limit, settings.job_rate_window)

    # ------------------------------------------------------------------------------ helpers
    def _resolve(self, secret: str) -> Principal:
        with session_factory(self.settings.database_url)() as session:
            return security.resolve(session, secret)

    def _token(self, secret: str) -> Principal:
        with get_engine(self.settings.database_url).connect() as conn:
            return security.resolve_token(conn, secret)

    def _touch(self, token_id: int) -> None:
        with get_engine(self.settings.database_url).begin() as conn:
            security.touch_token(conn, token_id)

    def _share_allows(self, principal: Principal, rule: str, params: dict[str, Any]) -> bool:
        with session_factory(self.settings.database_url)() as session:
            return security.share_allows(session, principal, rule, params)

    def _audit(self, principal: Principal, action: str, target: str, status: int, client: str):  # type: ignore[no-untyped-def]
        try:
            with session_scope(self.settings.database_url) as session:
                security.record(session, principal, action, target, status, client)
        except Exception:  # noqa: BLE001 - the answer is already sent; say so in the log
            log.exception("could not write the audit event %s %s %s", action, target, status)

    async def _principal(self, conn: HTTPConnection) -> tuple[Principal, str | None, str]:
        """The request's principal, or ANONYMOUS and why its credential was refused; and
        where the credential came from ("header", "cookie", "share-cookie" or "")."""
        if not self.enabled:
            return LOCAL, None, ""
        source = ""
        try:
            found = security.credential_from(dict(conn.headers), dict(conn.cookies))
            if found is None:
                return ANONYMOUS, None, ""
            secret, source = found
            if not secret.startswith(security.TOKEN_PREFIX):
                return await anyio.to_thread.run_sync(self._resolve, secret), None, source
            # A token: one indexed read. On SQLite (a local file, WAL: readers do not wait for
            # writers) it runs right here, which costs less than the hop to a thread; a server
            # database is a network round trip, so that goes to a thread.
            if self.inline_lookup:
                if self._sqlite is None:
                    database = make_url(self.settings.database_url).database or ""
                    self._sqlite = security.SqliteTokenLookup(database)
                principal = self._sqlite.resolve(secret)
            else:
                principal = await anyio.to_thread.run_sync(self._token, secret)
            if security.USAGE.due("token", principal.token_id or 0):
                await anyio.to_thread.run_sync(self._touch, principal.token_id or 0)
            return principal, None, source
        except CredentialError as exc:
            return ANONYMOUS, str(exc), source

    # ---------------------------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        path: str = scope["path"]
        method: str = scope["method"]
        client = (scope.get("client") or ("", 0))[0] or ""

        limit = self.settings.max_body_bytes
        if path not in UPLOAD_PATHS:
            declared = conn.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                await send_json(send, 413, BodyTooLarge(limit).detail)
                return
            receive = _limited(receive, limit)

        principal, refused, source = await self._principal(conn)
        scope.setdefault("state", {})["principal"] = principal
        is_api = path == "/api" or path.startswith("/api/")
        dry_run = is_api and is_dry_run(conn)

        if is_api:
            if self._routes is None:
                self._routes = RouteTable(self.paths())
            template, params = self._routes.match(method, path)
            # outside the schema (its own document, the docs page): the path is the template
            template = template or path
            status = await self._check_api(principal, refused, method, template, params, dry_run)
            if status is None and source.endswith("cookie") and cross_site(conn, method):
                # a browser's cookie rides along on other sites' requests; SameSite=Lax keeps
                # it off their POSTs, and this refuses any that still arrive
                status = 403, "Cross-site request refused: its Origin is not this server.", {}
            if status is not None:
                code, detail, headers = status
                await send_json(send, code, detail, headers)
                await self._after(principal, method, path, code, client, is_api=True)
                return
        elif self.enabled and not self._dashboard_open(path):
            if await self._gate_dashboard(principal, refused, source, conn, send):
                return

        status_box: dict[str, int] = {}

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BodyTooLarge as exc:
            if "status" in status_box:
                raise
            await send_json(send_status, 413, str(exc.detail))
        answered = status_box.get("status", 500)
        if dry_run and answered not in REFUSALS:
            return  # a dry run changes nothing: no audit event (refusals are still recorded)
        await self._after(principal, method, path, answered, client, is_api)

    async def _after(
        self, principal: Principal, method: str, path: str, status: int, client: str, is_api: bool
    ) -> None:
        """Audit: every write to the API, and every refused API request (written in a thread:
        a database write must never hold up the event loop)."""
        if is_api and (method not in security.READ_METHODS or status in REFUSALS):
            await anyio.to_thread.run_sync(self._audit, principal, method, path, status, client)

    async def _check_api(
        self,
        principal: Principal,
        refused: str | None,
        method: str,
        template: str | None,
        params: dict[str, Any],
        dry_run: bool = False,
    ) -> tuple[int, str, dict[str, str]] | None:
        """None when the request may go on, else (status, detail, headers). A dry run of a
        submission needs the same access but does not count against the rate limit."""
        need = security.route_access(method, template)
        if self.enabled and need is not Access.PUBLIC:
            challenge = {"WWW-Authenticate": 'Bearer realm="prunescope"'}
            if refused is not None:
                return 401, refused, challenge
            if principal.kind == "anonymous":
                return 401, "Not authenticated: send 'Authorization: Bearer <token>'.", challenge
            if principal.kind == "share":
                rule = security.share_rule(method, template)
                allowed = rule is not None and await anyio.to_thread.run_sync(
                    self._share_allows, principal, rule, params
                )
                if not allowed:
                    return (
                        403,
                        (
                            "This share link opens comparison "
                            f"{principal.comparison_id} read-only, and nothing else."
                        ),
                        {},
                    )
            elif need is Access.WRITE and principal.scope != "write":
                return (
                    403,
                    f"Token {principal.token_id} is read-only; this needs a write token.",
                    {},
                )
        if self.enabled and not dry_run and (method, template) in security.SUBMIT_ROUTES:
            wait = self.limiter.hit(f"{principal.kind}:{principal.token_id}")
            if wait > 0:
                return (
                    429,
                    (
                        f"Too many job submissions: at most {self.limiter.limit} per "
                        f"{self.limiter.window:g} s per token (PRUNESCOPE_JOB_RATE_LIMIT). "
                        f"Try again in {math.ceil(wait)} s."
                    ),
                    {"Retry-After": str(math.ceil(wait))},
                )
        return None

    @staticmethod
    def _dashboard_open(path: str) -> bool:
        return path in OPEN_PATHS or any(
            path == p.rstrip("/") or path.startswith(p) for p in OPEN_PREFIXES
        )

    async def _gate_dashboard(
        self,
        principal: Principal,
        refused: str | None,
        source: str,
        conn: HTTPConnection,
        send: Send,
    ) -> bool:
        """Keep the dashboard's pages and callbacks behind sign-in; True when answered."""
        path = conn.url.path
        is_page = conn.scope["method"] == "GET" and not path.startswith("/_")
        if principal.kind == "anonymous":
            if is_page and refused is not None and source == "share-cookie":
                # someone who only ever had a link: say the link is dead, not "sign in"
                response = signin.dead_link_page(refused)
                response.delete_cookie(security.SHARE_COOKIE, path="/")
                await response(conn.scope, _no_body, send)
            elif is_page:
                target = path + (f"?{conn.url.query}" if conn.url.query else "")
                await send_redirect(send, f"/login?next={quote(target)}")
            else:
                await send_json(send, 401, refused or "Not signed in.")
            return True
        if principal.kind == "share" and is_page:
            wanted = parse_qs(conn.url.query).get("id", [""])[0]
            if path not in SHARED_PAGES or wanted != str(principal.comparison_id):
                await send_redirect(send, f"/compare?id={principal.comparison_id}")
                return True
        return False


def is_dry_run(conn: HTTPConnection) -> bool:
    """A request with ``dry_run=true`` (as FastAPI reads a bool: true/1/yes/on): it validates
    and writes nothing."""
    return conn.query_params.get("dry_run", "").lower() in ("1", "true", "yes", "on")


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def cross_site(conn: HTTPConnection, method: str) -> bool:
    """Whether a write names, in its Origin header, another site than the one it was sent to
    (no Origin: not a cross-site browser request)."""
    origin = conn.headers.get("origin")
    if method in security.READ_METHODS or not origin:
        return False
    return urlsplit(origin).netloc != conn.headers.get("host", "")


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped
