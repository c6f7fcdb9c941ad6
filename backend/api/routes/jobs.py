"""Jobs: submit (validated before anything is written), list, read, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import ExecutorDep, SessionDep, get_or_404
from backend.api.schemas import IdPath, JobCreate, JobPublic, JobsPublic, errors
from backend.db.tables import AnalysisRow, ComparisonRow, DatasetRow, JobRow, ModelRow, utcnow
from backend.jobs.executor import ExecutorUnavailable
from backend.jobs.specs import (
    FINAL_STATUSES,
    MAX_SWEEP_JOBS,
    SPEC_TYPES,
    AnalyzeSpec,
    AttributionSpec,
    CompareSpec,
    JobStatus,
    PruneSpec,
    RegionsSpec,
    SweepSpec,
    TrainSpec,
    queue_for,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])

NOT_FOUND = "Job not found"
QUEUE_UNAVAILABLE = "Job queue unavailable"


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
        dataset = session.get(DatasetRow, spec.dataset_id)
        if dataset is None:
            raise _unprocessable(f"spec.dataset_id: dataset {spec.dataset_id} does not exist")
        check_trainable(spec.architecture, spec.arch_kwargs, dataset)
    elif isinstance(spec, PruneSpec):
        from backend.jobs.kinds.prune import training_settings
        from backend.pruning import create as create_method

        model = session.get(ModelRow, spec.model_id)
        if model is None:
            raise _unprocessable(f"spec.model_id: model {spec.model_id} does not exist")
        check_layer_patterns(spec.include, spec.exclude)
        try:
            method = create_method(spec.method, sparsity=spec.sparsity, **spec.params)
        except (TypeError, ValueError) as exc:
            raise _unprocessable(f"spec.method: {exc}".replace('"', "")) from exc
        if method.scope == "structured" and model.architecture != "onnx":
            from backend.pruning.structured import structured_unsupported
            from models.registry import create as create_model

            reason = structured_unsupported(create_model(model.architecture, **model.arch_kwargs))
            if reason is not None:
                raise _unprocessable(
                    f"spec.method: model {model.id} ({model.architecture}): {reason}"
                )
        dataset = session.get(DatasetRow, model.dataset_id) if model.dataset_id else None
        validate_schedule = getattr(method, "validate_schedule", None)
        if dataset is not None and validate_schedule is not None:
            parent_job = session.get(JobRow, model.job_id) if model.job_id else None
            hyper = training_settings(spec, method.schedule, parent_job)
            steps = hyper.epochs * -(-dataset.n_train // hyper.batch_size)
            try:
                validate_schedule(steps)
            except ValueError as exc:
                raise _unprocessable(f"spec.params: {exc}") from exc
    elif isinstance(spec, SweepSpec):
        children = spec.expand()
        if len(children) > MAX_SWEEP_JOBS:
            raise _unprocessable(
                f"spec: the sweep expands to {len(children)} jobs; at most {MAX_SWEEP_JOBS}"
            )
        for child in children:  # each child is validated like a prune job of its own
            validate_spec(session, "prune", child.model_dump(mode="json"))
    elif isinstance(spec, AnalyzeSpec):
        model = session.get(ModelRow, spec.model_id)
        if model is None:
            raise _unprocessable(f"spec.model_id: model {spec.model_id} does not exist")
        dataset_id = spec.dataset_id or model.dataset_id
        dataset = session.get(DatasetRow, dataset_id) if dataset_id is not None else None
        if dataset is None:
            raise _unprocessable(f"spec.dataset_id: dataset {dataset_id} does not exist")
        check_classes(model, dataset)
        check_corruptions(spec.corruptions, dataset)
    elif isinstance(spec, RegionsSpec):
        comp = session.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise _unprocessable(
                f"spec.comparison_id: comparison {spec.comparison_id} does not exist"
            )
        from backend.analysis.linear_regions import check_supported
        from models.registry import create as create_model

        for model_id in [comp.model_a_id, *comp.model_b_ids]:
            model = session.get(ModelRow, model_id)
            assert model is not None
            if model.regions_unsupported:  # found when the model was registered
                raise _unprocessable(
                    f"model {model_id} ({model.architecture}): {model.regions_unsupported}"
                )
            if model.architecture == "onnx":
                continue  # its graph is in the artifact store: checked at registration
            try:
                check_supported(create_model(model.architecture, **model.arch_kwargs))
            except ValueError as exc:
                raise _unprocessable(f"model {model_id} ({model.architecture}): {exc}") from exc
    elif isinstance(spec, AttributionSpec):
        check_attribution(session, spec)
    elif isinstance(spec, CompareSpec):
        comp = session.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise _unprocessable(
                f"spec.comparison_id: comparison {spec.comparison_id} does not exist"
            )
        check_corruptions(spec.corruptions, session.get(DatasetRow, comp.dataset_id))
    return spec.model_dump(mode="json")


def check_attribution(session: Session, spec: AttributionSpec) -> None:
    """Refuse an attribution of a sample, a B or a severity the comparison does not have."""
    comp = session.get(ComparisonRow, spec.comparison_id)
    if comp is None:
        raise _unprocessable(f"spec.comparison_id: comparison {spec.comparison_id} does not exist")
    b_ids = comp.model_b_ids
    if spec.model_b_id is not None and spec.model_b_id not in b_ids:
        raise _unprocessable(
            f"spec.model_b_id: model {spec.model_b_id} is not one of comparison "
            f"{comp.id}'s pruned models ({', '.join(map(str, b_ids))})"
        )
    dataset = session.get(DatasetRow, comp.dataset_id)
    assert dataset is not None
    if spec.index >= dataset.n_test:
        raise _unprocessable(
            f"spec.index: index={spec.index} is not in the test split of dataset {dataset.id} "
            f"({dataset.n_test} samples: 0..{dataset.n_test - 1})"
        )
    if spec.severity is not None:
        analysis = session.scalars(
            select(AnalysisRow).where(
                AnalysisRow.model_id == comp.model_a_id,
                AnalysisRow.dataset_id == comp.dataset_id,
                AnalysisRow.split == "test",
            )
        ).first()
        # before the analyses exist the job itself checks (and fails with the same message)
        robustness = analysis.summary.get("robustness") if analysis is not None else None
        if robustness and spec.severity not in robustness["severities"]:
            used = ", ".join(str(s) for s in robustness["severities"])
            raise _unprocessable(
                f"spec.severity: severity={spec.severity} was not used by the comparison's "
                f"analyses (used: {used})"
            )


def _shape(shape: list[int] | tuple[int, ...]) -> str:
    """``(3, 32, 32)``, ``(32,)``: a shape as Python and torch print it (as
    ``models.heads.shape_text``, which this module does not import: it would load torch)."""
    return str(tuple(int(d) for d in shape))


def check_classes(model: ModelRow, dataset: DatasetRow) -> None:
    """Refuse, before any work, a dataset whose inputs the model was not proven to accept
    (``model.input_shape``, recorded at registration) or whose classes it cannot predict."""
    if model.input_shape is not None and list(model.input_shape) != list(dataset.input_shape):
        raise _unprocessable(
            f"model {model.id} ({model.architecture}) accepts inputs of shape "
            f"{_shape(model.input_shape)} but dataset {dataset.id} ({dataset.name!r}) has inputs "
            f"of shape {_shape(dataset.input_shape)}"
        )
    classes = model.num_classes
    if classes is None:
        classes = (model.arch_kwargs or {}).get("num_classes")
    if classes is not None and int(classes) != dataset.num_classes:
        raise _unprocessable(
            f"dataset {dataset.id} ({dataset.name!r}) has {dataset.num_classes} classes but "
            f"model {model.id} predicts {classes}"
        )


def check_layer_patterns(include: list[str], exclude: list[str]) -> None:
    """Refuse empty layer patterns (spec.include / spec.exclude of a prune job)."""
    for field, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns:
            if not pattern.strip():
                raise _unprocessable(f"spec.{field}: layer patterns should not be empty")


def check_trainable(architecture: str, arch_kwargs: dict[str, Any], dataset: DatasetRow) -> None:
    """Build the architecture with the kwargs the train job will use and run one sample of the
    dataset's shape through it: an unknown name, bad or downloading kwargs, an input it cannot
    take or a wrong number of logits is a 422 now, never a torch error inside the job."""
    from models.heads import ProbeError, probe_input
    from models.registry import UnknownNameError, create, fill_kwargs

    try:
        kwargs = fill_kwargs(
            architecture, arch_kwargs, list(dataset.input_shape), dataset.num_classes
        )
        model = create(architecture, **kwargs).eval()
    except UnknownNameError as exc:
        raise _unprocessable(f"spec.architecture: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise _unprocessable(f"spec.arch_kwargs: {exc}") from exc
    shape = [int(d) for d in dataset.input_shape]
    try:
        classes = probe_input(model, shape)
    except ProbeError as exc:
        raise _unprocessable(
            f"spec.architecture: {architecture} (dataset {dataset.id}, {dataset.name!r}) {exc}"
        ) from exc
    if classes != dataset.num_classes:
        raise _unprocessable(
            f"spec.arch_kwargs: {architecture} returns {classes} logits for one sample but "
            f"dataset {dataset.id} ({dataset.name!r}) has {dataset.num_classes} classes"
        )


def check_corruptions(names: list[str] | None, dataset: DatasetRow | None = None) -> None:
    """Refuse unknown corruption names, and corruptions of a dataset that is not images (the
    corruptions filter (C, H, W) images: a compare or analyze job would fail on the first)."""
    if not names:
        return
    from backend.data.corruptions import list_corruptions
    from backend.data.images import MIN_IMAGE_SIDE, is_image

    if dataset is not None and not is_image(dataset.input_shape):
        shape = "(" + ", ".join(str(d) for d in dataset.input_shape) + ")"
        raise _unprocessable(
            f"spec.corruptions: corruptions apply to images of shape (C, H, W) with sides of "
            f"at least {MIN_IMAGE_SIDE} pixels; dataset {dataset.id} ({dataset.name}) has "
            f"inputs of shape {shape}. Leave corruptions out for this dataset."
        )

    unknown = [n for n in names if n not in list_corruptions()]
    if unknown:
        raise _unprocessable(
            f"spec.corruptions: unknown corruption {unknown[0]!r}; "
            f"known: {', '.join(list_corruptions())}"
        )


def submit_job(session: Session, executor: ExecutorDep, kind: str, raw: dict) -> JobRow:  # type: ignore[type-arg]
    """Validate, write the job row(s), then hand the runnable ids to the executor.

    A sweep is written with all its child prune jobs in one transaction and is never run
    itself: its status and progress are aggregated from the children.
    """
    spec = validate_spec(session, kind, raw)
    job = JobRow(kind=kind, spec=spec, status="queued", progress=0.0, stage="queued")
    session.add(job)
    children: list[JobRow] = []
    if kind == "sweep":
        job.status, job.stage = "running", f"0/{0} child jobs done"
        session.flush()
        for child in SweepSpec.model_validate(spec).expand():
            children.append(
                JobRow(
                    kind="prune",
                    spec=child.model_dump(mode="json"),
                    status="queued",
                    progress=0.0,
                    stage="queued",
                    parent_job_id=job.id,
                )
            )
        session.add_all(children)
        job.stage = f"0/{len(children)} child jobs done"
    session.commit()
    runnables = children or [job]
    for i, runnable in enumerate(runnables):
        try:
            executor.submit(runnable.id, queue_for(runnable.kind, runnable.spec))
        except ExecutorUnavailable as exc:
            withdraw(session, job, runnables[i:], sent=i)
            raise HTTPException(
                status_code=503, detail=f"{QUEUE_UNAVAILABLE}: {exc}. Nothing was submitted."
            ) from exc
    session.refresh(job)  # an inline executor may already have finished it
    if kind == "sweep":
        refresh_sweep(session, job)
    return job


def withdraw(session: Session, job: JobRow, unsent: list[JobRow], sent: int) -> None:
    """Undo a submission the executor could not take: delete its rows when nothing was handed
    out; when some sweep children already were, fail the rest (they will never run)."""
    if sent == 0:
        for row in unsent:
            if row is not job:
                session.delete(row)
        session.flush()
        session.delete(job)
    else:
        for row in unsent:
            row.status, row.stage, row.finished_at = "failed", "failed", utcnow()
            row.error = f"{QUEUE_UNAVAILABLE} while this sweep was being queued"
    session.commit()


def refresh_sweep(session: Session, sweep: JobRow) -> JobRow:
    """Bring a sweep's status, progress and stage up to date with its children."""
    if sweep.kind != "sweep" or sweep.status in FINAL_STATUSES:
        return sweep
    # children change in other processes: never trust this session's cached copies
    children = session.scalars(
        select(JobRow)
        .where(JobRow.parent_job_id == sweep.id)
        .execution_options(populate_existing=True)
    ).all()
    done = [c for c in children if c.status in FINAL_STATUSES]
    failed = [c for c in done if c.status == "failed"]
    sweep.progress = sum(c.progress for c in children) / len(children) if children else 1.0
    sweep.stage = f"{len(done)}/{len(children)} child jobs done"
    if len(done) == len(children):
        if failed:
            sweep.status = "failed"
            sweep.error = f"{len(failed)} of {len(children)} child jobs failed"
        elif all(c.status == "cancelled" for c in done) or sweep.status == "cancelling":
            sweep.status = "cancelled"
        else:
            sweep.status = "succeeded"
        sweep.finished_at = utcnow()
        sweep.result = {
            "child_job_ids": [c.id for c in children],
            "model_ids": [c.result["model_id"] for c in done if c.result],
        }
    session.commit()
    return sweep


@router.post("", response_model=JobPublic, status_code=201, responses=errors(400, 422, 503))
def create_job(body: JobCreate, session: SessionDep, executor: ExecutorDep) -> JobRow:
    """Submit a job (train, prune, sweep, analyze, compare, regions, attribution, ping); 503
    when the job queue is unreachable, with nothing written."""
    if body.kind.startswith("import_"):
        raise _unprocessable(
            "import jobs start from an upload: POST /api/models/upload or /api/datasets/upload"
        )
    return submit_job(session, executor, body.kind, body.spec)


@router.get("", response_model=JobsPublic, responses=errors(422))
def list_jobs(session: SessionDep, status: JobStatus | None = None, limit: int = 200) -> JobsPublic:
    """Jobs, newest first."""
    stmt = select(JobRow).order_by(JobRow.id.desc()).limit(max(1, min(limit, 1000)))
    if status:
        stmt = stmt.where(JobRow.status == status)
    rows = session.scalars(stmt).all()
    rows = [refresh_sweep(session, r) for r in rows]
    return JobsPublic(data=[JobPublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/{job_id}", response_model=JobPublic, responses=errors(404, 422))
def read_job(job_id: IdPath, session: SessionDep) -> JobRow:
    """One job with its progress, stage and error."""
    return refresh_sweep(session, get_or_404(session, JobRow, job_id, NOT_FOUND))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=errors(404, 409, 422))
def cancel_job(job_id: IdPath, session: SessionDep) -> JobRow:
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
    session.commit()
    return refresh_sweep(session, job)
