"""Read-only share links of a comparison (``/s/<token>``; README, Access and sharing)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from backend.api import security
from backend.api.deps import SessionDep, SettingsDep, get_or_404
from backend.api.schemas import (
    IdPath,
    ShareCreate,
    ShareCreated,
    SharePublic,
    SharesPublic,
    errors,
)
from backend.config import Settings
from backend.db.tables import ComparisonRow, ShareLinkRow

router = APIRouter(prefix="/comparisons/{comparison_id}/shares", tags=["shares"])

NOT_FOUND = "Comparison not found"
SHARE_NOT_FOUND = "Share link not found"


def share_public(row: ShareLinkRow) -> SharePublic:
    return SharePublic.model_validate(
        {
            **{k: getattr(row, k) for k in SharePublic.model_fields if k not in ("live", "view")},
            "live": security.share_is_live(row),
            "view": row.view or {},
        }
    )


def check_view(comparison: ComparisonRow, view: dict[str, str]) -> None:
    """The view's B is one of the comparison's and its class an index: a link that would open
    an error page is refused when made, not when the colleague opens it."""
    b, cls = view.get("b"), view.get("cls")
    if b is not None and (not b.isdigit() or int(b) not in comparison.model_b_ids):
        ids = ", ".join(map(str, comparison.model_b_ids))
        text = f"view b={b!r} is not a pruned model of comparison {comparison.id} ({ids})"
        raise HTTPException(status_code=422, detail=text)
    if cls is not None and not cls.isdigit():
        text = f"view cls={cls!r} should be a class index"
        raise HTTPException(status_code=422, detail=text)


def public_base(request: Request, settings: Settings) -> str:
    """Where people reach this server: PRUNESCOPE_PUBLIC_URL, else the host the browser used
    (X-Forwarded-Host/-Proto, which the dashboard and reverse proxies send), else this
    request's own address."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if host:
        proto = request.headers.get("x-forwarded-proto", request.url.scheme)
        return f"{proto.split(',')[0].strip() or 'http'}://{host}"
    return str(request.base_url).rstrip("/")


def principal_of(request: Request) -> security.Principal:
    return request.scope.get("state", {}).get("principal", security.LOCAL)  # type: ignore[no-any-return]


@router.post("", response_model=ShareCreated, status_code=201, responses=errors(400, 404, 422))
def create_share(
    comparison_id: IdPath,
    body: ShareCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> ShareCreated:
    """Create a share link; the answer holds its secret and URL, shown this once."""
    comparison = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    check_view(comparison, body.view)
    expires = (
        None
        if body.expires_in_hours is None
        else security.utcnow() + timedelta(hours=body.expires_in_hours)
    )
    row, secret = security.create_share(
        session,
        comparison_id,
        expires_at=expires,
        label=body.label.strip(),
        created_by=principal_of(request).actor,
        view=body.view,
    )
    base = public_base(request, settings)
    return ShareCreated(**share_public(row).model_dump(), token=secret, url=f"{base}/s/{secret}")


@router.get("", response_model=SharesPublic, responses=errors(404, 422))
def list_shares(
    comparison_id: IdPath, session: SessionDep, include_dead: bool = False
) -> SharesPublic:
    """The comparison's share links: the live ones, or all with ``include_dead=true``."""
    get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    rows = session.scalars(
        select(ShareLinkRow)
        .where(ShareLinkRow.comparison_id == comparison_id)
        .order_by(ShareLinkRow.id)
    ).all()
    data = [share_public(r) for r in rows]
    if not include_dead:
        data = [s for s in data if s.live]
    return SharesPublic(data=data, count=len(data))


@router.delete("/{share_id}", response_model=SharePublic, responses=errors(404, 422))
def revoke_share(comparison_id: IdPath, share_id: IdPath, session: SessionDep) -> SharePublic:
    """Revoke a share link; it stops working at its next request. Revoking twice is fine."""
    row = session.get(ShareLinkRow, share_id)
    if row is None or row.comparison_id != comparison_id:
        raise HTTPException(status_code=404, detail=SHARE_NOT_FOUND)
    if row.revoked_at is None:
        row.revoked_at = security.utcnow()
        session.commit()
    return share_public(row)
