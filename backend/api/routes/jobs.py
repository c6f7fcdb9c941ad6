"""Jobs: submit (validated before anything is written), list, read, cancel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import ExecutorDep, SessionDep, get_or_404
from backend.api.schemas import JobCreate, JobPublic, JobsPublic
from backend.db.tables import DatasetRow, JobRow, ModelRow, utcnow
from backend.jobs.specs import FINAL_STATUSES, SPEC_TYPES, AnalyzeSpec, PruneSpec, TrainSpec

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = "Job not found"


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status_code=422, detail=detail)


def validate_spec(session: Session, kind: str, raw: dict) -> dict:  # type: ignore[type-arg]
    """Check a job spec fully (names, ranges, referenced rows); return it with defaults."""
    try:
        spec = SPEC_TYPES[kind].model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _unprocessable(f"spec.{loc}: {first['msg']}") from exc
    if isinstance(spec, TrainSpec):
        from models.registry import list_models

        if session.get(DatasetRow, spec.dataset_id) is None:
            raise _unprocessable(f"spec.dataset_id: dataset {spec.dataset_id} does not exist")
        if spec.architecture not in list_models():
            raise _unprocessable(
                f"spec.architecture: unknown architecture {spec.architecture!r}; "
                f"known: {', '.join(list_models())}"
            )
    elif isinstance(spec, PruneSpec):
        from backend.pruning import create as create_method

        if session.get(ModelRow, spec.model_id) is None:
            raise _unprocessable(f"spec.model_id: model {spec.model_id} does not exist")
        try:
            create_method(spec.method, sparsity=spec.sparsity, **spec.params)
        except (TypeError, ValueError) as exc:
            raise _unprocessable(f"spec.method: {exc}".replace('"', "")) from exc
    elif isinstance(spec, AnalyzeSpec):
        model = session.get(ModelRow, spec.model_id)
        if model is None:
            raise _unprocessable(f"spec.model_id: model {spec.model_id} does not exist")
        dataset_id = spec.dataset_id or model.dataset_id
        if dataset_id is None or session.get(DatasetRow, dataset_id) is None:
            raise _unprocessable(f"spec.dataset_id: dataset {dataset_id} does not exist")
    return spec.model_dump(mode="json")


def submit_job(session: Session, executor: ExecutorDep, kind: str, raw: dict) -> JobRow:  # type: ignore[type-arg]
    """Validate, write the job row, then hand its id to the executor."""
    spec = validate_spec(session, kind, raw)
    job = JobRow(kind=kind, spec=spec, status="queued", progress=0.0, stage="queued")
    session.add(job)
    session.commit()
    executor.submit(job.id)
    session.refresh(job)  # an inline executor may already have finished it
    return job


@router.post("", response_model=JobPublic, status_code=201)
def create_job(body: JobCreate, session: SessionDep, executor: ExecutorDep) -> JobRow:
    """Submit a train, prune or analyze job."""
    return submit_job(session, executor, body.kind, body.spec)


@router.get("", response_model=JobsPublic)
def list_jobs(session: SessionDep, status: str | None = None, limit: int = 200) -> JobsPublic:
    """Jobs, newest first."""
    stmt = select(JobRow).order_by(JobRow.id.desc()).limit(max(1, min(limit, 1000)))
    if status:
        stmt = stmt.where(JobRow.status == status)
    rows = session.scalars(stmt).all()
    return JobsPublic(data=[JobPublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: int, session: SessionDep) -> JobRow:
    """One job with its progress, stage and error."""
    return get_or_404(session, JobRow, job_id, NOT_FOUND)  # type: ignore[no-any-return]


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: int, session: SessionDep) -> JobRow:
    """Cancel a queued job now, or ask a running one to stop."""
    job = get_or_404(session, JobRow, job_id, NOT_FOUND)
    if job.status in FINAL_STATUSES:
        raise HTTPException(status_code=409, detail="Job already finished")
    if job.status == "queued":
        job.status, job.stage, job.finished_at = "cancelled", "cancelled", utcnow()
    else:
        job.status, job.stage = "cancelling", "cancelling"
    session.commit()
    return job  # type: ignore[no-any-return]
