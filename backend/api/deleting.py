"""What the DELETE routes of models, comparisons, datasets and jobs share: their query options,
the refusal of a body, the caller the audit event names, and the answer. The rules themselves
live in :mod:`backend.deletion`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from backend import deletion
from backend.api import security
from backend.api.public import (
    COMPARISON_NOT_FOUND,
    DATASET_NOT_FOUND,
    JOB_NOT_FOUND,
    MODEL_NOT_FOUND,
)
from backend.api.schemas import DeletionPublic, errors
from backend.storage import ArtifactStore

NOT_FOUND: dict[deletion.Kind, str] = {
    "model": MODEL_NOT_FOUND,
    "comparison": COMPARISON_NOT_FOUND,
    "dataset": DATASET_NOT_FOUND,
    "job": JOB_NOT_FOUND,
}
NO_BODY = "DELETE takes no body: its options are query parameters (?cascade=true, ?dry_run=true)"
DELETE_RESPONSES = errors(404, 409, 422)

CascadeQuery = Annotated[
    bool,
    Query(
        description="also delete what uses it (the refusal's 409 names it) instead of being "
        "refused; jobs at work on any of it are never cancelled: cancel them first"
    ),
]
DeleteDryRunQuery = Annotated[
    bool,
    Query(
        description="say what would be deleted (the same 200 or 409 as the real request) and "
        "delete nothing"
    ),
]


async def refuse_body(request: Request) -> None:
    """422 for a DELETE that carries a body: whatever it asked for is not what it would get."""
    if await request.body():
        raise HTTPException(status_code=422, detail=NO_BODY)


NoBody = Depends(refuse_body)


def caller(request: Request) -> deletion.Who:
    """Who is asking, as the access middleware found them (the audit event names them)."""
    principal: security.Principal = request.scope.get("state", {}).get("principal", security.LOCAL)
    client = (request.scope.get("client") or ("", 0))[0] or ""
    return deletion.Who(
        actor=principal.actor,
        token_id=principal.token_id,
        share_id=principal.share_id,
        client=str(client),
    )


WhoDep = Annotated[deletion.Who, Depends(caller)]


def delete_answer(
    session: Session,
    store: ArtifactStore,
    kind: deletion.Kind,
    ident: int,
    who: deletion.Who,
    *,
    cascade: bool = False,
    dry_run: bool = False,
) -> DeletionPublic:
    """Run one deletion (:func:`backend.deletion.delete`): 404 for no such row, 409 with the
    rules' sentence when refused."""
    try:
        done = deletion.delete(
            session, store, kind, ident, cascade=cascade, dry_run=dry_run, who=who
        )
    except deletion.NotFound:
        raise HTTPException(status_code=404, detail=NOT_FOUND[kind]) from None
    except deletion.Refused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return DeletionPublic.model_validate(asdict(done))
