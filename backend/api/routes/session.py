"""Who is asking (``GET /api/session``) and the audit log (``GET /api/audit``)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from backend.api import security
from backend.api.deps import SessionDep, SettingsDep
from backend.api.schemas import AuditEventPublic, AuditEventsPublic, SessionPublic

router = APIRouter(tags=["access"])


@router.get("/session", response_model=SessionPublic)
def read_session(request: Request, settings: SettingsDep) -> SessionPublic:
    """The caller's credential: kind, scope, and for a share link its comparison. Public."""
    principal: security.Principal = request.scope.get("state", {}).get("principal", security.LOCAL)
    return SessionPublic(auth=settings.auth_enabled, **principal.public())


@router.get("/audit", response_model=AuditEventsPublic)
def list_audit_events(
    session: SessionDep, limit: int = Query(default=100, ge=1, le=10_000)
) -> AuditEventsPublic:
    """The newest audit events: writes, share-link openings and refused requests. Needs a
    write token."""
    rows = list(security.recent_events(session, limit))
    return AuditEventsPublic(
        data=[AuditEventPublic.model_validate(r) for r in rows], count=len(rows)
    )
