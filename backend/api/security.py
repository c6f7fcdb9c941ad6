"""Who may do what: API tokens, share links, the access policy of every route, and the audit log.

Credentials (README, Access and sharing):

- API tokens ``psk_...`` (``prunescope token create --name NAME [--read-only]``): a *read* token
  may call every GET route; a *write* token may also call every other route.
- Share links ``/s/pss_...`` (``POST /api/comparisons/{id}/shares``): open one comparison
  read-only: its GET routes, the models and analyses it is made of (the models' downloads
  too), its dataset's description and test images; nothing else.

Both are 256-bit random strings (``secrets.token_urlsafe(32)``); only their sha256 is stored,
and the stored digest is compared with :func:`hmac.compare_digest`. A plain sha256 (not a slow
password hash) is right here: the secret has 256 bits of entropy, so there is nothing to
brute-force, and every request checks one.

They arrive as ``Authorization: Bearer <secret>`` (scripts), or as the dashboard's http-only
cookies: ``prunescope_token`` (set by the sign-in page) and ``prunescope_share`` (set by opening
a share link). The first credential present decides; an invalid one is refused, never skipped.

The policy is a function of the method and the route's path template (:func:`route_access`),
so a new route is covered the day it is added: GET is *read*, everything else *write*, a short
list is public, and the share scope is a list of path templates whose ids must belong to the
shared comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from backend.db.tables import (
    AnalysisRow,
    ApiTokenRow,
    AuditEventRow,
    ComparisonRow,
    ShareLinkRow,
)
from backend.jobs.specs import MAX_ID

TOKEN_PREFIX = "psk_"
SHARE_PREFIX = "pss_"
TOKEN_COOKIE = "prunescope_token"
SHARE_COOKIE = "prunescope_share"
SECRET_BYTES = 32  # 256 bits; the issue asks for at least 128
SHOWN_PREFIX = 10  # characters of a secret kept to tell secrets apart ("psk_AbC123")
LAST_USED_EVERY_S = 60.0  # write last_used_at at most this often per credential

Scope = Literal["none", "read", "write"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def new_secret(prefix: str) -> str:
    """A fresh credential: ``prefix`` + 256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The stored form of a credential: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# principals ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is asking.

    ``kind``: "local" (authentication is off: the embedded default, all rights), "token",
    "share" (read-only, one comparison) or "anonymous" (no credential while auth is on).
    """

    kind: Literal["local", "token", "share", "anonymous"]
    scope: Scope
    name: str = ""
    token_id: int | None = None
    share_id: int | None = None
    comparison_id: int | None = None
    dataset_id: int | None = None
    model_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.kind == "token":
            return f"token {self.token_id} ({self.name})"
        if self.kind == "share":
            return f"share {self.share_id} (comparison {self.comparison_id})"
        return self.kind

    def public(self) -> dict[str, Any]:
        """What ``GET /api/session`` tells the dashboard about its user."""
        return {
            "kind": self.kind,
            "scope": self.scope,
            "name": self.name,
            "token_id": self.token_id,
            "share_id": self.share_id,
            "comparison_id": self.comparison_id,
        }


LOCAL = Principal(kind="local", scope="write", name="local")
ANONYMOUS = Principal(kind="anonymous", scope="none")


class CredentialError(Exception):
    """A credential was presented and is not valid; the message says why (401)."""


def credential_from(headers: dict[str, str], cookies: dict[str, str]) -> tuple[str, str] | None:
    """The credential a request carries and where it came from, or None.

    Args:
        headers: lower-case header names.
        cookies: the request's cookies.
    """
    auth = headers.get("authorization", "")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise CredentialError("The Authorization header should be 'Bearer <token>'.")
        return value.strip(), "header"
    if cookies.get(TOKEN_COOKIE):
        return cookies[TOKEN_COOKIE], "cookie"
    if cookies.get(SHARE_COOKIE):
        return cookies[SHARE_COOKIE], "share-cookie"
    return None


class UsageClock:
    """Remembers when each credential's ``last_used_at`` was last written, so a busy client
    costs one UPDATE a minute instead of one per request."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def due(self, kind: str, ident: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get((kind, ident), -1e9) < LAST_USED_EVERY_S:
                return False
            self._last[(kind, ident)] = now
            return True


USAGE = UsageClock()


def _matches(row_hash: str, digest: str) -> bool:
    return hmac.compare_digest(row_hash.encode(), digest.encode())


def resolve(session: Session, secret: str) -> Principal:
    """The principal a secret stands for.

    Raises:
        CredentialError: unknown, revoked or expired (the message says which).
    """
    digest = hash_secret(secret)
    now = utcnow()
    if secret.startswith(SHARE_PREFIX):
        link = session.scalars(
            select(ShareLinkRow).where(ShareLinkRow.token_hash == digest)
        ).one_or_none()
        if link is None or not _matches(link.token_hash, digest):
            raise CredentialError("This share link is not valid.")
        if link.revoked_at is not None:
            raise CredentialError("This share link was revoked.")
        expires = aware(link.expires_at)
        if expires is not None and expires <= now:
            raise CredentialError(f"This share link expired at {expires:%Y-%m-%d %H:%M} UTC.")
        comparison = session.get(ComparisonRow, link.comparison_id)
        if comparison is None:  # pragma: no cover - foreign key
            raise CredentialError("This share link's comparison no longer exists.")
        if USAGE.due("share", link.id):
            link.last_used_at = now
            session.commit()
        return Principal(
            kind="share",
            scope="read",
            name=link.label,
            share_id=link.id,
            comparison_id=comparison.id,
            dataset_id=comparison.dataset_id,
            model_ids=frozenset([comparison.model_a_id, *comparison.model_b_ids]),
        )
    principal = resolve_token(session.connection(), secret)
    if USAGE.due("token", principal.token_id or 0):
        touch_token(session.connection(), principal.token_id or 0)
        session.commit()
    return principal


# One prebuilt statement: the lookup runs on every request with a token, so it skips the ORM
# (a Core select on the unique index: ~50 us instead of ~440 us through a Session).
_TOKEN_BY_HASH = select(
    ApiTokenRow.id,
    ApiTokenRow.name,
    ApiTokenRow.scope,
    ApiTokenRow.revoked_at,
    ApiTokenRow.token_hash,
).where(ApiTokenRow.token_hash == bindparam("digest"))


def resolve_token(conn: Connection, secret: str) -> Principal:
    """The principal of an API token (read only; see :func:`touch_token`).

    Raises:
        CredentialError: unknown or revoked.
    """
    digest = hash_secret(secret)
    return token_principal(conn.execute(_TOKEN_BY_HASH, {"digest": digest}).first(), digest)


def token_principal(row: Any, digest: str) -> Principal:
    """The principal of a looked-up ``(id, name, scope, revoked_at, token_hash)`` row (None:
    no such token)."""
    if row is None:
        raise CredentialError("This token is not valid.")
    ident, name, kind, revoked_at, stored = row
    if not _matches(stored, digest):
        raise CredentialError("This token is not valid.")
    if revoked_at is not None:
        raise CredentialError(f"Token {ident} ({name}) was revoked.")
    scope: Scope = "write" if kind == "write" else "read"
    return Principal(kind="token", scope=scope, name=name, token_id=ident)


class SqliteTokenLookup:
    """The token lookup for the embedded (SQLite) database, on one connection of its own.

    The lookup runs on every request with a token; through the engine's pool it spent more on
    checking a connection out and rolling it back on return than on the query. This keeps one
    autocommit connection (each SELECT sees the latest committed state: a revocation counts at
    the next request) used only from the server's event-loop thread.
    """

    def __init__(self, database: str) -> None:
        import sqlite3

        from sqlalchemy.dialects import sqlite as sqlite_dialect

        self.sql = str(_TOKEN_BY_HASH.compile(dialect=sqlite_dialect.dialect()))
        self.conn = sqlite3.connect(
            database, timeout=30, isolation_level=None, check_same_thread=False
        )

    def resolve(self, secret: str) -> Principal:
        digest = hash_secret(secret)
        return token_principal(self.conn.execute(self.sql, (digest,)).fetchone(), digest)


def touch_token(conn: Connection, token_id: int) -> None:
    """Record that a token was used now (the caller commits)."""
    conn.execute(
        update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=utcnow())
    )


# tokens -------------------------------------------------------------------------------------
def create_token(
    session: Session, name: str, *, read_only: bool = False
) -> tuple[ApiTokenRow, str]:
    """A new API token; returns its row and the secret (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name (--name), e.g. the person or script using it")
    if len(name) > 200:
        raise ValueError(f"name is {len(name)} characters long; at most 200")
    secret = new_secret(TOKEN_PREFIX)
    row = ApiTokenRow(
        name=name,
        prefix=secret[:SHOWN_PREFIX],
        token_hash=hash_secret(secret),
        scope="read" if read_only else "write",
    )
    session.add(row)
    session.commit()
    return row, secret


def list_tokens(session: Session) -> list[ApiTokenRow]:
    return list(session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id)))


def revoke_token(session: Session, ident: str) -> list[ApiTokenRow]:
    """Revoke the token with this id, or every live token with this name; returns them.

    Raises:
        LookupError: nothing matches.
    """
    if ident.isdigit():
        rows = [r for r in [session.get(ApiTokenRow, int(ident))] if r is not None]
    else:
        rows = list(session.scalars(select(ApiTokenRow).where(ApiTokenRow.name == ident)))
    live = [r for r in rows if r.revoked_at is None]
    if not rows:
        raise LookupError(f"no token with id or name {ident!r} (see `prunescope token list`)")
    now = utcnow()
    for row in live:
        row.revoked_at = now
    session.commit()
    return live


def create_share(
    session: Session,
    comparison_id: int,
    *,
    expires_at: datetime | None,
    label: str,
    created_by: str,
    view: dict[str, str] | None = None,
) -> tuple[ShareLinkRow, str]:
    """A new share link of a comparison, opening ``view`` (the compare page's query, without
    id); returns its row and the secret (shown once)."""
    secret = new_secret(SHARE_PREFIX)
    row = ShareLinkRow(
        comparison_id=comparison_id,
        prefix=secret[:SHOWN_PREFIX],
        token_hash=hash_secret(secret),
        label=label,
        created_by=created_by[:250],
        expires_at=expires_at,
        view=dict(view or {}),
    )
    session.add(row)
    session.commit()
    return row, secret


def share_is_live(row: ShareLinkRow, now: datetime | None = None) -> bool:
    expires = aware(row.expires_at)
    return row.revoked_at is None and (expires is None or expires > (now or utcnow()))


# the policy ---------------------------------------------------------------------------------
class Access(StrEnum):
    """What a route needs."""

    PUBLIC = "public"
    READ = "read"
    WRITE = "write"


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Public routes: how to sign in, and liveness probes (docker-compose's healthcheck).
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/api/health"),
        ("GET", "/api/session"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/api/docs/oauth2-redirect"),
    }
)

# Routes a share link may read, each with the rule its ids must follow (see share_allows).
SHARE_ROUTES: dict[str, str] = {
    "/api/comparisons/{comparison_id}": "comparison",
    "/api/datasets/{dataset_id}": "dataset",
    "/api/datasets/{dataset_id}/images/{split}/{index}.png": "dataset-test-image",
    "/api/models/{model_id}": "model",
    "/api/models/{model_id}/download": "model",  # the comparison's models, as files
    "/api/models/{model_id}/pruning-limit": "model",  # the limit view of A (or a B)
    "/api/models/{model_id}/instability": "model",  # the instability view of a B
    "/api/analyses/{analysis_id}": "analysis",
}
SHARE_PREFIXES: dict[str, str] = {
    "/api/comparisons/{comparison_id}/": "comparison",
    "/api/analyses/{analysis_id}/": "analysis",
}
# ... but never these, though they sit under the comparison: who else it is shared with.
SHARE_EXCLUDED = ("/api/comparisons/{comparison_id}/shares",)


# Reads that only write tokens may make: who did what.
WRITE_READS = frozenset({("GET", "/api/audit")})


def route_access(method: str, template: str | None) -> Access:
    """What a request needs, from its method and the path template of the route it matched
    (None when it matched no API route: it is refused as a read, so that probing without a
    token learns nothing about which paths exist)."""
    if template is not None and (method, template) in PUBLIC_ROUTES:
        return Access.PUBLIC
    if (method, template) in WRITE_READS:
        return Access.WRITE
    return Access.READ if method in READ_METHODS else Access.WRITE


def share_rule(method: str, template: str | None) -> str | None:
    """The share-scope rule of a route, or None when share links may not call it at all."""
    if method not in READ_METHODS or template is None:
        return None
    if any(template == t or template.startswith(t + "/") for t in SHARE_EXCLUDED):
        return None
    if template in SHARE_ROUTES:
        return SHARE_ROUTES[template]
    for prefix, rule in SHARE_PREFIXES.items():
        if template.startswith(prefix):
            return rule
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def share_allows(session: Session, principal: Principal, rule: str, params: dict[str, Any]) -> bool:
    """Whether the ids in a request's path belong to the shared comparison."""
    if rule == "comparison":
        return _int(params.get("comparison_id")) == principal.comparison_id
    if rule == "dataset":
        return _int(params.get("dataset_id")) == principal.dataset_id
    if rule == "dataset-test-image":
        return (
            _int(params.get("dataset_id")) == principal.dataset_id and params.get("split") == "test"
        )
    if rule == "model":
        return _int(params.get("model_id")) in principal.model_ids
    if rule == "analysis":
        ident = _int(params.get("analysis_id"))
        if ident is None or not 1 <= ident <= MAX_ID:
            return False
        row = session.get(AnalysisRow, ident)
        return (
            row is not None
            and row.model_id in principal.model_ids
            and row.dataset_id == principal.dataset_id
        )
    return False


# rate limit ---------------------------------------------------------------------------------
# Routes that put work on the job queue: each counts once against the submitting token.
SUBMIT_ROUTES = frozenset(
    {
        ("POST", "/api/jobs"),
        ("POST", "/api/comparisons"),
        ("POST", "/api/comparisons/{comparison_id}/models"),
        ("POST", "/api/models/upload"),
        ("POST", "/api/datasets/upload"),
    }
)


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window). In-process:
    with several API replicas each counts its own (README, Access and sharing)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float:
        """Count one event; returns 0 when allowed, else the seconds until one would be."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            return 0.0


# audit --------------------------------------------------------------------------------------
def record(
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    status: int,
    client: str = "",
) -> None:
    """Append one audit event (and commit)."""
    session.add(
        AuditEventRow(
            actor=principal.actor[:250],
            token_id=principal.token_id,
            share_id=principal.share_id,
            action=action[:30],
            target=target[:500],
            status=status,
            client=client[:100],
        )
    )
    session.commit()


def recent_events(session: Session, limit: int = 100) -> Iterable[AuditEventRow]:
    return session.scalars(select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit))
