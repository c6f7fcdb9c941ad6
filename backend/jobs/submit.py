"""Submitting a job: the one place a spec is validated (also as a dry run), written and queued.

    validate(session, kind, raw)  ->  the spec, defaults filled        (SpecInvalid otherwise)
    submit(session, executor, kind, raw)  ->  the job row, queued      (QueueUnavailable: 503)

A spec is checked once, here, in two steps: its pydantic model (``backend.jobs.specs``: every
bad field is reported, not just the first), then, only when that passes, the checks of its
kind against the database (``KIND_CHECKS``: the model exists, the classes match, the method
accepts its parameters...). Each problem is a :class:`SpecError` naming the field it concerns,
so a form can show it next to that field; a dry run answers with all of them, a submission
with the first as one line of text (``"spec.sparsity: ..."``). The worker only reads the stored
spec back (``runner.check_spec``); it never checks it again.

Adding a job kind: its spec model in ``backend.jobs.specs``, its ``run`` in
``backend.jobs.kinds``, and (when it refers to rows or plug-ins) one ``@checks("kind")``
function here.

Nothing here knows HTTP: the routers turn :class:`SpecInvalid` and :class:`QueueUnavailable`
into answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.config import Settings, get_settings
from backend.db.tables import AnalysisRow, ComparisonRow, DatasetRow, JobRow, ModelRow, utcnow
from backend.jobs.executor import Executor, ExecutorUnavailable
from backend.jobs.lifecycle import settle_sweep
from backend.jobs.sizes import builtin_parameters, fill_builtin, too_many
from backend.jobs.specs import (
    FINAL_STATUSES,
    MAX_SWEEP_JOBS,
    SPEC_TYPES,
    UPLOAD_FIELDS,
    AnalyzeSpec,
    AttributionSpec,
    CompareSpec,
    FourierSpec,
    ImportModelFields,
    InstabilitySpec,
    LayersSpec,
    MethodChoice,
    PruneSpec,
    PruningLimitSpec,
    RegionsSpec,
    SweepSpec,
    TrainSpec,
    queue_for,
)

if TYPE_CHECKING:
    from backend.pruning import PruningMethod

QUEUE_UNAVAILABLE = "Job queue unavailable"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class SpecError:
    """One problem with a spec: where (``loc``, a path inside the spec: ``("sparsity",)``,
    ``("finetune", "epochs")``, ``()`` for the spec as a whole), what, and its type
    (pydantic's error type, or ``not_found`` / ``mismatch`` / ``value_error``).

    ``text`` is the one-line detail a submission answers with when this is its first problem;
    empty means ``"spec.<loc>: <msg>"``. Some messages say themselves what they concern
    ("model 3 (mlp) accepts inputs of shape ..."): they are their own text.
    """

    loc: Loc
    msg: str
    type: str = "value_error"
    text: str = ""

    def line(self, prefix: str = "spec") -> str:
        """The one-line detail: ``text``, else ``"<prefix>.<loc>: <msg>"``."""
        if self.text:
            return self.text
        where = ".".join(str(p) for p in ((prefix,) if prefix else ()) + self.loc)
        return f"{where}: {self.msg}" if where else self.msg


class SpecInvalid(ValueError):
    """A spec the server refuses (answered with 422), with every problem found."""

    status = 422

    def __init__(self, errors: Sequence[SpecError]) -> None:
        if not errors:
            raise ValueError("SpecInvalid needs at least one error")
        self.errors = list(errors)
        super().__init__(self.errors[0].line())

    @classmethod
    def one(cls, loc: Loc, msg: str, type: str = "value_error", text: str = "") -> SpecInvalid:
        return cls([SpecError(loc, msg, type, text)])

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SpecInvalid:
        """Every error of a pydantic validation, in pydantic's order."""
        return cls(
            [SpecError(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]  # type: ignore[arg-type]
        )

    def detail(self, prefix: str = "spec") -> str:
        """The first problem as one line, as a submission answers: ``"spec.sparsity: ..."``."""
        return self.errors[0].line(prefix)

    def issues(self, root: str = "spec") -> list[dict[str, Any]]:
        """Every problem in the shape of FastAPI's validation errors, as a dry run answers:
        ``[{"loc": [root, *loc], "msg": ..., "type": ...}, ...]``."""
        return [{"loc": [root, *e.loc], "msg": e.msg, "type": e.type} for e in self.errors]


class QueueUnavailable(RuntimeError):
    """The executor could not take the job; nothing was left submitted (answered with 503)."""

    status = 503

    def __init__(self, reason: object) -> None:
        super().__init__(f"{QUEUE_UNAVAILABLE}: {reason}. Nothing was submitted.")


class _Errors:
    """Problems collected by one kind's checks; ``raise_if_any`` ends them."""

    def __init__(self) -> None:
        self.found: list[SpecError] = []

    def add(self, loc: Loc, msg: str, type: str = "value_error", text: str = "") -> None:
        self.found.append(SpecError(loc, msg, type, text))

    def raise_if_any(self) -> None:
        if self.found:
            raise SpecInvalid(self.found)


# validate / submit ----------------------------------------------------------------------------
S = TypeVar("S", bound=BaseModel)


def parse(spec_type: type[S], raw: Any) -> S:
    """``raw`` as ``spec_type``; :class:`SpecInvalid` with every pydantic error otherwise."""
    try:
        return spec_type.model_validate(raw)
    except ValidationError as exc:
        raise SpecInvalid.from_validation(exc) from exc


def validate(session: Session, kind: str, raw: Any) -> BaseModel:
    """Check a job spec fully: its fields, then (only if they pass) its kind's checks against
    the database; return the spec with defaults filled.

    Raises:
        SpecInvalid: with every bad field, or the semantic problems found.
    """
    if kind not in SPEC_TYPES:
        raise SpecInvalid.one((), f"unknown job kind {kind!r}; known: {', '.join(SPEC_TYPES)}")
    return checked(session, kind, parse(SPEC_TYPES[kind], raw))


def validate_upload_fields(session: Session, kind: str, fields: dict[str, Any]) -> BaseModel:
    """Check the form fields of an upload (``import_model`` / ``import_dataset``) without the
    file: what the upload would refuse before storing anything. ``fields`` as the form sends
    them (empty strings are left out, ``arch_kwargs`` may be JSON text) or as JSON values."""
    return checked(session, kind, parse(UPLOAD_FIELDS[kind], form_fields(fields)))


def checked(session: Session, kind: str, spec: S) -> S:
    """``spec`` after its kind's checks against the database (``KIND_CHECKS``), completed
    from it where a check fills something in (``import_model``: the parent's architecture)."""
    check = KIND_CHECKS.get(kind)
    completed = check(session, spec) if check is not None else None
    return spec if completed is None else completed


def form_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """An upload form's text fields as spec values: empty ones left out, ``arch_kwargs``
    decoded from JSON text (:class:`SpecInvalid` when it is not JSON)."""
    raw = {k: v for k, v in fields.items() if v != ""}
    text = raw.get("arch_kwargs")
    if isinstance(text, str):
        try:
            raw["arch_kwargs"] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecInvalid.one(
                ("arch_kwargs",), f"not JSON ({exc.msg}): {text!r}", "json_invalid"
            ) from exc
    return raw


def jobs_of(kind: str, spec: BaseModel) -> int:
    """How many jobs a submission of ``spec`` writes and runs (a sweep: its children)."""
    return len(spec.expand()) if isinstance(spec, SweepSpec) else 1


def submit(session: Session, executor: Executor, kind: str, raw: Any) -> JobRow:
    """Validate a spec, write its job row(s), then hand the runnable ids to the executor.

    Raises:
        SpecInvalid: nothing was written.
        QueueUnavailable: the executor refused; nothing is left queued.
    """
    return enqueue(session, executor, kind, validate(session, kind, raw))


def enqueue(session: Session, executor: Executor, kind: str, spec: BaseModel) -> JobRow:
    """Write the job row(s) of a spec :func:`validate` returned, then hand the runnable ids
    to the executor.

    A sweep is written with all its child prune jobs in one transaction and is never run
    itself: its status and progress follow its children (``lifecycle.sweep_state``).
    """
    data = spec.model_dump(mode="json")
    job = JobRow(kind=kind, spec=data, status="queued", progress=0.0, stage="queued")
    session.add(job)
    children: list[JobRow] = []
    if isinstance(spec, SweepSpec):
        job.status = "running"
        session.flush()
        children = [
            JobRow(
                kind="prune",
                spec=child.model_dump(mode="json"),
                status="queued",
                progress=0.0,
                stage="queued",
                parent_job_id=job.id,
            )
            for child in spec.expand()
        ]
        session.add_all(children)
        job.stage = f"0/{len(children)} child jobs done"
    session.commit()
    runnables = children or [job]
    for i, runnable in enumerate(runnables):
        try:
            executor.submit(runnable.id, queue_for(runnable.kind, runnable.spec))
        except ExecutorUnavailable as exc:
            withdraw(session, job, runnables[i:], sent=i)
            raise QueueUnavailable(exc) from exc
    session.refresh(job)  # an inline executor may already have finished it
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
        session.flush()
        settle_sweep(session, job.id)
    session.commit()


# comparisons ----------------------------------------------------------------------------------
@dataclass
class ComparisonPlan:
    """A comparison that passed :func:`validate_comparison`: its models and dataset."""

    models: dict[int, ModelRow]
    dataset: DatasetRow


def validate_comparison(
    session: Session,
    model_a_id: int,
    model_b_ids: list[int],
    dataset_id: int | None,
    corruptions: list[str] | None,
) -> ComparisonPlan:
    """Check a new comparison (its fields are checked by its schema): distinct models that
    exist, a dataset (default: model A's) they accept, corruptions that apply to it.

    Locs are the request body's fields (``("model_b_ids", 1)``).
    """
    errors = _Errors()
    refs: list[tuple[Loc, int]] = [(("model_a_id",), model_a_id)]
    refs += [(("model_b_ids", i), mid) for i, mid in enumerate(model_b_ids)]
    ids = [mid for _, mid in refs]
    if len(set(ids)) != len(ids):
        text = "model ids must be distinct"
        errors.add(("model_b_ids",), text, "value_error", text)
        errors.raise_if_any()
    models: dict[int, ModelRow] = {}
    for loc, mid in refs:
        model = session.get(ModelRow, mid)
        if model is None:
            text = f"model {mid} does not exist"
            errors.add(loc, text, "not_found", text)
        else:
            models[mid] = model
    errors.raise_if_any()
    dataset_id = dataset_id or models[model_a_id].dataset_id
    dataset = session.get(DatasetRow, dataset_id) if dataset_id is not None else None
    if dataset is None:
        text = f"dataset {dataset_id} does not exist"
        errors.add(("dataset_id",), text, "not_found", text)
        errors.raise_if_any()
    assert dataset is not None
    for loc, mid in refs:
        problem = classes_problem(models[mid], dataset)
        if problem is not None:
            errors.add(loc, problem, "mismatch", problem)
    problem = corruptions_problem(corruptions, dataset)
    if problem is not None:
        errors.add(("corruptions",), problem)
    errors.raise_if_any()
    return ComparisonPlan(models=models, dataset=dataset)


@dataclass
class AddModelsPlan:
    """Models B that passed :func:`validate_added_models`, and the compare job that computes
    what they need (the comparison's latest settings, ``added_model_b_ids`` set)."""

    models: dict[int, ModelRow]
    spec: CompareSpec


def latest_compare_job(session: Session, comparison_id: int) -> JobRow | None:
    """The newest compare job of a comparison, None when it has none."""
    jobs = session.scalars(
        select(JobRow).where(JobRow.kind == "compare").order_by(JobRow.id.desc())
    ).all()
    return next((j for j in jobs if j.spec.get("comparison_id") == comparison_id), None)


def active_compare_job(session: Session, comparison_id: int) -> JobRow | None:
    """A compare job of the comparison that is still queued, running or cancelling: adding
    models waits for it (two jobs would write the same results)."""
    jobs = session.scalars(
        select(JobRow).where(JobRow.kind == "compare", JobRow.status.not_in(FINAL_STATUSES))
    ).all()
    return next((j for j in jobs if j.spec.get("comparison_id") == comparison_id), None)


def validate_added_models(
    session: Session, comparison: ComparisonRow, model_b_ids: list[int]
) -> AddModelsPlan:
    """Check models B to add to an existing comparison (the list's length is checked by its
    schema): each exists, is neither model A nor already one of its Bs nor listed twice, and
    belongs to (and accepts) the comparison's dataset. Locs are the request body's fields
    (``("model_b_ids", 1)``).

    The compare job it plans uses the settings of the comparison's latest compare job
    (corruptions, severities, embedding, neighbours_k), so the new Bs are analysed and
    embedded as the others were; without one, the defaults.
    """
    errors = _Errors()
    dataset = session.get(DatasetRow, comparison.dataset_id)
    assert dataset is not None  # a comparison's dataset cannot be deleted under it
    members = set(comparison.model_b_ids)
    models: dict[int, ModelRow] = {}
    for i, mid in enumerate(model_b_ids):
        model = session.get(ModelRow, mid)
        problem, kind = None, "mismatch"
        if mid in model_b_ids[:i]:
            problem, kind = f"model {mid} is listed twice", "value_error"
        elif model is None:
            problem, kind = f"model {mid} does not exist", "not_found"
        elif mid == comparison.model_a_id:
            problem = f"model {mid} is comparison {comparison.id}'s model A"
        elif mid in members:
            problem = f"model {mid} is already in comparison {comparison.id}"
        elif model.dataset_id is not None and model.dataset_id != dataset.id:
            problem = (
                f"model {mid} belongs to dataset {model.dataset_id}, not to comparison "
                f"{comparison.id}'s dataset {dataset.id} ({dataset.name!r})"
            )
        else:
            problem = classes_problem(model, dataset)
            models[mid] = model
        if problem is not None:  # each message names its model: a submission's whole line
            errors.add(("model_b_ids", i), problem, kind, problem)
    errors.raise_if_any()
    latest = latest_compare_job(session, comparison.id)
    kept = ("corruptions", "severities", "embedding", "neighbours_k")
    settings = {k: v for k, v in (latest.spec if latest else {}).items() if k in kept}
    spec = CompareSpec.model_validate(
        {**settings, "comparison_id": comparison.id, "added_model_b_ids": list(model_b_ids)}
    )
    return AddModelsPlan(models=models, spec=spec)


# the checks of each kind ----------------------------------------------------------------------
KindCheck = Callable[[Session, Any], Any]
KIND_CHECKS: dict[str, KindCheck] = {}
"""Kind -> its checks against the database, run after its spec model passed. A kind without
an entry (``ping``) has none. A check returns None, or the spec completed from the database
(what a dry run answers and the job is written with)."""


def checks(kind: str) -> Callable[[KindCheck], KindCheck]:
    """Register the function as ``kind``'s checks (raises :class:`SpecInvalid`)."""

    def decorator(fn: KindCheck) -> KindCheck:
        if kind in KIND_CHECKS:
            raise ValueError(f"job kind {kind!r} already has checks: {KIND_CHECKS[kind]}")
        KIND_CHECKS[kind] = fn
        return fn

    return decorator


def settings_of(session: Session) -> Settings:
    """The settings whose limits a submission checks (``max_params``): those of the app whose
    request opened ``session`` (``session.info["settings"]``, set by
    ``backend.api.deps.get_session``), else the process's."""
    found = session.info.get("settings")
    return found if isinstance(found, Settings) else get_settings()


def _missing(loc: str, what: str, ident: object) -> SpecInvalid:
    return SpecInvalid.one((loc,), f"{what} {ident} does not exist", "not_found")


@checks("train")
def check_train(session: Session, spec: TrainSpec) -> None:
    """The dataset exists and the architecture, built as the job will build it, takes one of
    its samples and returns one logit per class."""
    dataset = session.get(DatasetRow, spec.dataset_id)
    if dataset is None:
        raise _missing("dataset_id", "dataset", spec.dataset_id)
    check_trainable(spec.architecture, spec.arch_kwargs, dataset, settings_of(session).max_params)


@checks("prune")
def check_prune(session: Session, spec: PruneSpec) -> None:
    """The model exists; the layer patterns are not empty; the method accepts its parameters
    and sparsity, can prune this architecture, and its schedule fits the training."""
    model = session.get(ModelRow, spec.model_id)
    if model is None:
        raise _missing("model_id", "model", spec.model_id)
    _check_prune_of(session, spec, model)


def _check_prune_of(session: Session, spec: PruneSpec, model: ModelRow) -> None:
    errors = _Errors()
    for field, patterns in (("include", spec.include), ("exclude", spec.exclude)):
        if any(not pattern.strip() for pattern in patterns):
            errors.add((field,), "layer patterns should not be empty")
    errors.raise_if_any()
    method = _method(spec)
    if method.scope == "structured" and model.architecture != "onnx":
        from backend.pruning.structured import structured_unsupported
        from models.registry import create as create_model

        reason = structured_unsupported(create_model(model.architecture, **model.arch_kwargs))
        if reason is not None:
            raise SpecInvalid.one(
                ("method",), f"model {model.id} ({model.architecture}): {reason}", "mismatch"
            )
    dataset = session.get(DatasetRow, model.dataset_id) if model.dataset_id else None
    validate_schedule = getattr(method, "validate_schedule", None)
    if dataset is not None and validate_schedule is not None:
        from backend.jobs.kinds.prune import training_settings

        parent_job = session.get(JobRow, model.job_id) if model.job_id else None
        hyper = training_settings(spec, method.schedule, parent_job)
        steps = hyper.epochs * -(-dataset.n_train // hyper.batch_size)
        try:
            validate_schedule(steps)
        except ValueError as exc:
            loc = _param_loc(str(exc), spec.params)
            raise SpecInvalid.one(loc, str(exc), text=f"spec.params: {exc}") from exc


def _method(spec: PruneSpec) -> PruningMethod:
    """The pruning method the job will create; its refusal names the parameter concerned."""
    from backend.pruning import UnknownNameError
    from backend.pruning import create as create_method

    try:
        return create_method(spec.method, sparsity=spec.sparsity, **spec.params)
    except UnknownNameError as exc:
        msg = str(exc).replace('"', "")
        raise SpecInvalid.one(("method",), msg, "not_found", f"spec.method: {msg}") from exc
    except (TypeError, ValueError) as exc:
        msg = str(exc).replace('"', "")
        loc = _param_loc(msg, spec.params)
        raise SpecInvalid.one(loc, msg, text=f"spec.method: {msg}") from exc


def _param_loc(msg: str, params: dict[str, Any]) -> Loc:
    """Which field a pruning method's refusal concerns: ``("params", "gamma")`` for
    "gamma=2 should be ..." or an unexpected keyword 'gamma', ``("sparsity",)``, else
    ``("params",)``."""
    named = re.match(r"(\w+)=", msg)
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", msg)
    name = named.group(1) if named else unexpected.group(1) if unexpected else None
    if name == "sparsity":
        return ("sparsity",)
    if name is not None and name in params:
        return ("params", name)
    return ("params",)


@checks("sweep")
def check_sweep(session: Session, spec: SweepSpec) -> None:
    """At most ``MAX_SWEEP_JOBS`` children, each of which passes the checks of a prune job;
    a child's problem is reported at the sweep's field it comes from (``("methods", 1)``,
    ``("sparsities", 0)``)."""
    children = spec.expand()
    if len(children) > MAX_SWEEP_JOBS:
        raise SpecInvalid.one(
            (), f"the sweep expands to {len(children)} jobs; at most {MAX_SWEEP_JOBS}"
        )
    model = session.get(ModelRow, spec.model_id)
    if model is None:
        raise _missing("model_id", "model", spec.model_id)
    errors = _Errors()
    seen: set[Loc] = set()
    # the checks do not depend on the seed: one child per (method, sparsity) is enough
    for i, choice in enumerate(spec.methods):
        for j, sparsity in enumerate(spec.sparsities):
            child = PruneSpec(
                model_id=spec.model_id,
                method=choice if isinstance(choice, str) else choice.method,
                sparsity=sparsity,
                params={} if isinstance(choice, str) else choice.params,
                finetune=spec.finetune,
                analyze=spec.analyze,
                seed=spec.seeds[0],
            )
            try:
                _check_prune_of(session, child, model)
            except SpecInvalid as exc:
                for error in exc.errors:
                    moved = replace(error, loc=_sweep_loc(error.loc, i, j, choice))
                    if moved.loc not in seen:
                        seen.add(moved.loc)
                        errors.found.append(moved)
    errors.raise_if_any()


def _sweep_loc(loc: Loc, i: int, j: int, choice: str | MethodChoice) -> Loc:
    """Where in a sweep spec the problem of its child (method ``i``, sparsity ``j``) lies."""
    head, rest = (loc[0], loc[1:]) if loc else ("method", ())
    if head == "sparsity":
        return ("sparsities", j)
    if head == "params":
        return (
            ("methods", i, "params", *rest) if isinstance(choice, MethodChoice) else ("methods", i)
        )
    if head in ("finetune", "model_id"):
        return loc
    return ("methods", i, "method") if isinstance(choice, MethodChoice) else ("methods", i)


@checks("analyze")
def check_analyze(session: Session, spec: AnalyzeSpec) -> None:
    """The model and the dataset (default: the model's) exist, the model accepts the dataset,
    and the corruptions apply to it."""
    model = session.get(ModelRow, spec.model_id)
    if model is None:
        raise _missing("model_id", "model", spec.model_id)
    dataset_id = spec.dataset_id or model.dataset_id
    dataset = session.get(DatasetRow, dataset_id) if dataset_id is not None else None
    if dataset is None:
        raise _missing("dataset_id", "dataset", dataset_id)
    errors = _Errors()
    problem = classes_problem(model, dataset)
    if problem is not None:
        errors.add(("dataset_id",), problem, "mismatch", problem)
    problem = corruptions_problem(spec.corruptions, dataset)
    if problem is not None:
        errors.add(("corruptions",), problem)
    errors.raise_if_any()


@checks("compare")
def check_compare(session: Session, spec: CompareSpec) -> None:
    """The comparison exists, the corruptions apply to its dataset and the added Bs, if any,
    are among its Bs."""
    comp = _comparison(session, spec.comparison_id)
    errors = _Errors()
    problem = corruptions_problem(spec.corruptions, session.get(DatasetRow, comp.dataset_id))
    if problem is not None:
        errors.add(("corruptions",), problem)
    for i, mid in enumerate(spec.added_model_b_ids or []):
        if mid not in comp.model_b_ids:
            errors.add(
                ("added_model_b_ids", i),
                f"model {mid} is not one of comparison {comp.id}'s pruned models "
                "(POST /api/comparisons/{id}/models adds it)",
                "mismatch",
            )
    errors.raise_if_any()


@checks("regions")
def check_regions(session: Session, spec: RegionsSpec) -> None:
    """The comparison exists and every one of its networks is one whose linear regions the
    exact counter can follow."""
    comp = _comparison(session, spec.comparison_id)
    from backend.analysis.linear_regions import check_supported
    from models.registry import create as create_model

    for model_id in [comp.model_a_id, *comp.model_b_ids]:
        model = session.get(ModelRow, model_id)
        assert model is not None
        reason = model.regions_unsupported  # found when the model was registered
        if reason is None and model.architecture != "onnx":  # an ONNX graph: checked then too
            try:
                check_supported(create_model(model.architecture, **model.arch_kwargs))
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            text = f"model {model_id} ({model.architecture}): {reason}"
            raise SpecInvalid.one(("comparison_id",), text, "mismatch", text)


@checks("layers")
def check_layers(session: Session, spec: LayersSpec) -> None:
    """The comparison exists."""
    _comparison(session, spec.comparison_id)


@checks("fourier")
def check_fourier(session: Session, spec: FourierSpec) -> None:
    """The comparison exists and its dataset holds images (inputs of shape (C, H, W))."""
    comp = _comparison(session, spec.comparison_id)
    dataset = session.get(DatasetRow, comp.dataset_id)
    shape = [int(d) for d in (dataset.input_shape if dataset is not None else [])]
    if dataset is not None and (len(shape) != 3 or min(shape[1:]) < 2):
        text = (
            f"Fourier sensitivity needs images of shape (C, H, W) with sides of at least 2 "
            f"pixels; dataset {dataset.id} ({dataset.name}) of comparison {comp.id} has inputs "
            f"of shape {_shape(shape)}"
        )
        raise SpecInvalid.one(("comparison_id",), text, "mismatch", text)


@checks("pruning_limit")
def check_pruning_limit(session: Session, spec: PruningLimitSpec) -> None:
    """The model exists and names the dataset whose training split its loss is of."""
    model = session.get(ModelRow, spec.model_id)
    if model is None:
        raise _missing("model_id", "model", spec.model_id)
    if model.dataset_id is None or session.get(DatasetRow, model.dataset_id) is None:
        text = (
            f"model {spec.model_id} names no dataset: the pruning limit needs its training "
            "split (register the model with a dataset)"
        )
        raise SpecInvalid.one(("model_id",), text, "mismatch", text)


def rewind_sha(pruning_params: Any) -> str | None:
    """The stored start weights of a pruned model's last training (its rewind point for a
    lottery ticket: ``pruning_params["learning"]["start_sha"]``, backend/pruning/learning.py),
    or None when it has none."""
    learning = pruning_params.get("learning") if isinstance(pruning_params, dict) else None
    sha = learning.get("start_sha") if isinstance(learning, dict) else None
    return sha if isinstance(sha, str) and sha else None


NO_REWIND_POINT = (
    "model {id} has no rewind point: instability trains two copies from the weights its "
    "training began from, which only models pruned by a prune job record (a lottery ticket's "
    "rewind point, the masked parent of a one-shot method, the initialisation of SNIP or RigL)"
)


@checks("instability")
def check_instability(session: Session, spec: InstabilitySpec) -> None:
    """The model exists, names the dataset it trains on and has a rewind point (the start
    weights its prune job stored)."""
    model = session.get(ModelRow, spec.model_id)
    if model is None:
        raise _missing("model_id", "model", spec.model_id)
    if rewind_sha(model.pruning_params) is None:
        text = NO_REWIND_POINT.format(id=spec.model_id)
        raise SpecInvalid.one(("model_id",), text, "mismatch", text)
    if model.dataset_id is None or session.get(DatasetRow, model.dataset_id) is None:
        text = (
            f"model {spec.model_id} names no dataset: instability trains on its training split "
            "and measures the error on its test split"
        )
        raise SpecInvalid.one(("model_id",), text, "mismatch", text)


@checks("attribution")
def check_attribution(session: Session, spec: AttributionSpec) -> None:
    """Refuse an attribution of a sample, a B or a severity the comparison does not have."""
    comp = _comparison(session, spec.comparison_id)
    errors = _Errors()
    b_ids = comp.model_b_ids
    if spec.model_b_id is not None and spec.model_b_id not in b_ids:
        errors.add(
            ("model_b_id",),
            f"model {spec.model_b_id} is not one of comparison {comp.id}'s pruned models "
            f"({', '.join(map(str, b_ids))})",
            "mismatch",
        )
    dataset = session.get(DatasetRow, comp.dataset_id)
    assert dataset is not None
    if spec.index >= dataset.n_test:
        errors.add(
            ("index",),
            f"index={spec.index} is not in the test split of dataset {dataset.id} "
            f"({dataset.n_test} samples: 0..{dataset.n_test - 1})",
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
            errors.add(
                ("severity",),
                f"severity={spec.severity} was not used by the comparison's analyses "
                f"(used: {used})",
            )
    errors.raise_if_any()


IM = TypeVar("IM", bound=ImportModelFields)


@checks("import_model")
def check_import_model(session: Session, spec: IM) -> IM:
    """The parent model and the dataset it names, if any, exist; a spec naming a parent and
    no architecture takes the parent's (:func:`with_parent_architecture`); a built-in
    architecture is within the size cap (:func:`check_import_size`)."""
    errors = _Errors()
    for field, ref, table, what in (
        ("parent_id", spec.parent_id, ModelRow, "parent model"),
        ("dataset_id", spec.dataset_id, DatasetRow, "dataset"),
    ):
        if ref is not None and session.get(table, ref) is None:
            text = f"{what} {ref} does not exist"
            errors.add((field,), text, "not_found", text)
    errors.raise_if_any()
    spec = with_parent_architecture(session, spec)
    check_import_size(session, spec)
    return spec


def check_import_size(session: Session, spec: ImportModelFields) -> None:
    """Refuse an import whose built-in architecture, with the arguments its job will build it
    with (the user's over the parent's, completed from the dataset), has more parameters than
    ``max_params``. Counted without torch (:mod:`backend.jobs.sizes`): an upload is answered
    without it. Other architectures, and PruneScope files that carry their own, are counted
    on the meta device by the import job before it builds anything."""
    if spec.architecture is None:
        return
    kwargs = dict(spec.arch_kwargs)
    parent = session.get(ModelRow, spec.parent_id) if spec.parent_id is not None else None
    if parent is not None and parent.architecture == spec.architecture:
        kwargs = {**(parent.arch_kwargs or {}), **kwargs}
    dataset_id = spec.dataset_id or (parent.dataset_id if parent is not None else None)
    dataset = session.get(DatasetRow, dataset_id) if dataset_id is not None else None
    if dataset is not None:
        kwargs = fill_builtin(spec.architecture, kwargs, dataset.input_shape, dataset.num_classes)
    count = builtin_parameters(spec.architecture, kwargs)
    limit = settings_of(session).max_params
    if count is not None and count > limit:
        raise SpecInvalid.one(("arch_kwargs",), too_many(spec.architecture, count, limit))


def with_parent_architecture(session: Session, spec: IM) -> IM:
    """A pruned model keeps its original's architecture: an upload that names its parent and
    leaves the architecture out gets the parent's, with the parent's arguments (the user's
    over them); any other spec is returned as it is. A named architecture is kept even when
    it is not the parent's (the import job then says so)."""
    if spec.parent_id is None or spec.architecture is not None:
        return spec
    parent = session.get(ModelRow, spec.parent_id)
    if parent is None:
        return spec
    kwargs = {**(parent.arch_kwargs or {}), **spec.arch_kwargs}
    return spec.model_copy(update={"architecture": parent.architecture, "arch_kwargs": kwargs})


def _comparison(session: Session, comparison_id: int) -> ComparisonRow:
    comp = session.get(ComparisonRow, comparison_id)
    if comp is None:
        raise _missing("comparison_id", "comparison", comparison_id)
    return comp


# checks shared by several kinds ---------------------------------------------------------------
def _shape(shape: Iterable[int]) -> str:
    """``(3, 32, 32)``, ``(32,)``: a shape as Python and torch print it (as
    ``models.heads.shape_text``, which this module does not import: it would load torch)."""
    return str(tuple(int(d) for d in shape))


def classes_problem(model: ModelRow, dataset: DatasetRow) -> str | None:
    """Why ``model`` cannot be run on ``dataset``: inputs it was not proven to accept
    (``model.input_shape``, recorded at registration) or classes it cannot predict; None if
    it can."""
    if model.input_shape is not None and list(model.input_shape) != list(dataset.input_shape):
        return (
            f"model {model.id} ({model.architecture}) accepts inputs of shape "
            f"{_shape(model.input_shape)} but dataset {dataset.id} ({dataset.name!r}) has inputs "
            f"of shape {_shape(dataset.input_shape)}"
        )
    classes = model.num_classes
    if classes is None:
        classes = (model.arch_kwargs or {}).get("num_classes")
    if classes is not None and int(classes) != dataset.num_classes:
        return (
            f"dataset {dataset.id} ({dataset.name!r}) has {dataset.num_classes} classes but "
            f"model {model.id} predicts {classes}"
        )
    return None


def corruptions_problem(names: list[str] | None, dataset: DatasetRow | None = None) -> str | None:
    """Why these corruptions cannot be run: unknown names, or a dataset that is not images
    (the corruptions filter (C, H, W) images: a compare or analyze job would fail on the
    first); None if they can."""
    if not names:
        return None
    from backend.data.corruptions import list_corruptions
    from backend.data.images import MIN_IMAGE_SIDE, is_image

    if dataset is not None and not is_image(dataset.input_shape):
        shape = "(" + ", ".join(str(d) for d in dataset.input_shape) + ")"
        return (
            f"corruptions apply to images of shape (C, H, W) with sides of at least "
            f"{MIN_IMAGE_SIDE} pixels; dataset {dataset.id} ({dataset.name}) has inputs of "
            f"shape {shape}. Leave corruptions out for this dataset."
        )
    unknown = [n for n in names if n not in list_corruptions()]
    if unknown:
        return f"unknown corruption {unknown[0]!r}; known: {', '.join(list_corruptions())}"
    return None


def check_trainable(
    architecture: str,
    arch_kwargs: dict[str, Any],
    dataset: DatasetRow,
    max_params: int | None = None,
) -> None:
    """Build the architecture with the kwargs the train job will use and run one sample of the
    dataset's shape through it: an unknown name, bad or downloading kwargs, more parameters
    than ``max_params`` (default: the setting), an input it cannot take or a wrong number of
    logits is refused now, never a torch error inside the job.

    It is built on the meta device first (:func:`models.registry.check_size`), so a network
    over the cap is refused before anything is allocated and, when the sample passes there,
    nothing is. Only a network whose constructor or forward cannot run without data is built
    for real, within the cap (a constructor that cannot run on the meta device at all is
    counted once built).
    """
    from models.heads import ProbeError, probe_input
    from models.registry import (
        TooManyParameters,
        UnknownNameError,
        check_size,
        count_parameters,
        create,
        fill_kwargs,
    )

    limit = get_settings().max_params if max_params is None else max_params
    try:
        kwargs = fill_kwargs(
            architecture, arch_kwargs, list(dataset.input_shape), dataset.num_classes
        )
        meta = check_size(architecture, kwargs, limit)
    except UnknownNameError as exc:
        raise SpecInvalid.one(("architecture",), str(exc), "not_found") from exc
    except (TypeError, ValueError) as exc:  # TooManyParameters too
        raise SpecInvalid.one(("arch_kwargs",), str(exc)) from exc
    shape = [int(d) for d in dataset.input_shape]
    classes = None
    if meta is not None:
        try:
            classes = probe_input(meta, shape, device="meta")
        except ProbeError:
            pass  # maybe only an operation without a meta kernel: the real model decides
    if classes is None:
        try:
            model = create(architecture, **kwargs).eval()
        except (TypeError, ValueError) as exc:
            raise SpecInvalid.one(("arch_kwargs",), str(exc)) from exc
        count = count_parameters(model)
        if count > limit:
            raise SpecInvalid.one(
                ("arch_kwargs",), str(TooManyParameters(architecture, count, limit))
            )
        try:
            classes = probe_input(model, shape)
        except ProbeError as exc:
            raise SpecInvalid.one(
                ("architecture",),
                f"{architecture} (dataset {dataset.id}, {dataset.name!r}) {exc}",
                "mismatch",
            ) from exc
    if classes != dataset.num_classes:
        raise SpecInvalid.one(
            ("arch_kwargs",),
            f"{architecture} returns {classes} logits for one sample but dataset {dataset.id} "
            f"({dataset.name!r}) has {dataset.num_classes} classes",
            "mismatch",
        )
