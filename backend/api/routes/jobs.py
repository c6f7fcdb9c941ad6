"""Jobs: submit (validated by backend.jobs.submit before anything is written), list, read,
cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy import select

from backend.api.deleting import (
    DELETE_RESPONSES,
    DeleteDryRunQuery,
    NoBody,
    WhoDep,
    delete_answer,
)
from backend.api.deps import (
    DryRunQuery,
    ExecutorDep,
    SessionDep,
    StoreDep,
    get_or_404,
    refused,
)
from backend.api.public import JOB_NOT_FOUND, job_public, jobs_public
from backend.api.schemas import (
    DeletionPublic,
    IdPath,
    JobCreate,
    JobDryRun,
    JobPublic,
    JobsPublic,
    errors,
)
from backend.artifacts import release_ended
from backend.db.tables import JobRow, utcnow
from backend.jobs import submit
from backend.jobs.lifecycle import settle_sweep
from backend.jobs.specs import FINAL_STATUSES, UPLOAD_FIELDS, JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = JOB_NOT_FOUND
FROM_UPLOAD = "import jobs start from an upload: POST /api/models/upload or /api/datasets/upload"
DRY_RUN_ANSWER = "dry_run=true: the spec would be accepted (nothing was written)"


@router.post(
    "",
    response_model=JobPublic,
    status_code=201,
    responses={200: {"model": JobDryRun, "description": DRY_RUN_ANSWER}, **errors(400, 422, 503)},
)
def create_job(
    body: JobCreate, session: SessionDep, executor: ExecutorDep, dry_run: DryRunQuery = False
) -> Any:
    """Submit a job (train, prune, sweep, analyze, compare, regions, attribution, ping): 201
    with the job; 422 when the spec is refused, with nothing written; 503 when the job queue
    is unreachable, with nothing written.

    A refused spec's 422 says its first problem as one line: `{"detail": "spec.sparsity:
    Input should be less than 1"}`.

    `dry_run=true` runs exactly the same validation and writes and queues nothing: 200 with
    `{"kind", "spec" (normalised, every default filled in), "jobs" (how many jobs it would
    run: a sweep's child jobs)}`, or 422 with every problem in the shape of FastAPI's
    validation errors, `{"detail": [{"loc": ["spec", "sparsity"], "msg": ..., "type": ...},
    ...]}`: first every field the spec's schema refuses, then, only if there is none, the
    checks against what exists (the model, its classes, the method's parameters...), each at
    the field it concerns (`["spec", "model_id"]`, `["spec", "params", "gamma"]`) or at
    `["spec"]` for the spec as a whole. A body that is not `{kind, spec}` is FastAPI's own
    422, with locs starting with `"body"`. A dry run of `import_model` / `import_dataset`
    checks an upload form's fields (without the file): the upload's text fields as `spec`.
    """
    if dry_run:
        try:
            if body.kind in UPLOAD_FIELDS:
                spec = submit.validate_upload_fields(session, body.kind, body.spec)
            else:
                spec = submit.validate(session, body.kind, body.spec)
        except submit.SpecInvalid as exc:
            raise refused(exc, dry_run=True) from exc
        answer = JobDryRun(
            kind=body.kind, spec=spec.model_dump(mode="json"), jobs=submit.jobs_of(body.kind, spec)
        )
        return JSONResponse(answer.model_dump(mode="json"), status_code=200)
    if body.kind in UPLOAD_FIELDS:
        raise HTTPException(status_code=422, detail=FROM_UPLOAD)
    try:
        job = submit.submit(session, executor, body.kind, body.spec)
    except (submit.SpecInvalid, submit.QueueUnavailable) as exc:
        raise refused(exc) from exc
    return job_public(session, job)


@router.get("", response_model=JobsPublic, responses=errors(422))
def list_jobs(session: SessionDep, status: JobStatus | None = None, limit: int = 200) -> JobsPublic:
    """Jobs, newest first."""
    stmt = select(JobRow).order_by(JobRow.id.desc()).limit(max(1, min(limit, 1000)))
    if status:
        stmt = stmt.where(JobRow.status == status)
    rows = session.scalars(stmt).all()
    return JobsPublic(data=jobs_public(session, rows), count=len(rows))


@router.get("/{job_id}", response_model=JobPublic, responses=errors(404, 422))
def read_job(job_id: IdPath, session: SessionDep) -> JobPublic:
    """One job with its progress, stage and error."""
    return job_public(session, get_or_404(session, JobRow, job_id, NOT_FOUND))


@router.delete(
    "/{job_id}",
    response_model=DeletionPublic,
    responses=DELETE_RESPONSES,
    dependencies=[NoBody],
)
def delete_job(
    job_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    who: WhoDep,
    dry_run: DeleteDryRunQuery = False,
) -> DeletionPublic:
    """Delete a finished job's row (a sweep's with its child jobs'); what it made stays. 409
    while it is queued, running or stopping: cancel it first."""
    return delete_answer(session, store, "job", job_id, who, dry_run=dry_run)


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=errors(404, 409, 422))
def cancel_job(job_id: IdPath, session: SessionDep, store: StoreDep) -> JobPublic:
    """Cancel a queued job now, or ask a running one to stop."""
    job = get_or_404(session, JobRow, job_id, NOT_FOUND)
    if job.status in FINAL_STATUSES:
        raise HTTPException(status_code=409, detail="Job already finished")
    targets = [job]
    if job.kind == "sweep":
        targets += session.scalars(
            select(JobRow).where(
                JobRow.parent_job_id == job.id, JobRow.status.not_in(FINAL_STATUSES)
            )
        ).all()
    for target in targets:
        if target.status == "queued":
            target.status, target.stage, target.finished_at = "cancelled", "cancelled", utcnow()
        else:
            target.status, target.stage = "cancelling", "cancelling"
    session.flush()
    sweep_id = job.id if job.kind == "sweep" else job.parent_job_id
    if sweep_id is not None:
        settle_sweep(session, sweep_id)
    session.commit()
    release_ended(session, store, [t.id for t in targets])  # a cancelled import's upload
    return job_public(session, job)
