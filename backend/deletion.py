"""Deleting models, comparisons, datasets and jobs: every rule, the audit event, and the
artifact files no row references any more (README, "Deleting").

The rules:

- **model**: refused while comparisons use it (as A or as a B) or models were pruned from it,
  in a sentence naming them. With ``cascade`` those comparisons go too (with their share links
  and results) and the pruned models stay, as originals: their ``parent_id`` becomes null
  (the answer lists them in ``detached_models``). The model's analyses always go with it.
- **comparison**: its share links (a link of it then answers as a dead link, as a revoked one
  does), its members and its results (compare, regions, layers, attributions) go; never its
  models or their analyses.
- **dataset**: refused while models, analyses or comparisons use it. With ``cascade`` they go
  too: the models as with a model's cascade (the comparisons that use them, on any dataset,
  and their analyses; a model pruned from one of them but registered on another dataset stays,
  as an original).
- **job**: refused while it is queued, running or stopping: cancel it first. A finished job's
  row goes (a sweep's with its child jobs' rows); what it made stays (``job_id`` becomes null).
- Nothing is deleted while a queued or running job works on it (a model, a comparison or a
  dataset named in its spec): cancel the job first. ``cascade`` does not cancel jobs.

One deletion is one transaction: the rows and one audit event (who, what, which id, whether
cascading, what went). Files come after the commit: every sha256 the deleted rows named that
no remaining row names (:func:`backend.artifacts.referenced_shas`, the one place that knows
where rows name artifacts) is removed from the store, with the conversions built from a removed
checkpoint.
The same bytes backing two rows stay until both rows are gone. A file that cannot be removed
is logged and left behind: a stray file, never a row pointing at a missing one.

A dry run does the same work inside the transaction, counts what it would remove, and rolls
back: its answer is the real one's, or the same refusal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Column, ColumnElement, or_, select, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.artifacts import DERIVED_DIR as DERIVED_DIR
from backend.artifacts import JSON_SHA_COLUMNS, json_shas, referenced_shas, sha_columns
from backend.artifacts import chunks as _chunks
from backend.artifacts import derived_shas as derived_shas
from backend.artifacts import remove_derived as remove_derived
from backend.artifacts import remove_unreferenced as remove_unreferenced
from backend.artifacts import stored_shas as stored_shas
from backend.db.tables import (
    AnalysisRow,
    AttributionResultRow,
    AuditEventRow,
    Base,
    ComparisonMemberRow,
    ComparisonResultRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    LayerResultRow,
    ModelRow,
    RegionResultRow,
    ShareLinkRow,
)
from backend.jobs.specs import FINAL_STATUSES
from backend.storage import ArtifactStore

log = logging.getLogger(__name__)

Kind = Literal["model", "comparison", "dataset", "job"]
KINDS: tuple[Kind, ...] = ("model", "comparison", "dataset", "job")
CASCADING: tuple[Kind, ...] = ("model", "dataset")  # the kinds whose deletion can cascade

NAMED_AT_MOST = 5  # rows named in a sentence before "and N more"


class NotFound(LookupError):
    """No row with that id (404)."""


class Refused(Exception):
    """The deletion is refused (409); the message says why and what to do, naming the rows."""


@dataclass(frozen=True)
class Who:
    """Who asked, as the audit log names them (see backend.api.security.Principal)."""

    actor: str = "local"
    token_id: int | None = None
    share_id: int | None = None
    client: str = ""


@dataclass
class Plan:
    """The rows one deletion removes (ids per table) and the models it keeps as originals."""

    kind: Kind
    ident: int
    cascade: bool
    label: str  # "model 3 ('digits_cnn')"
    models: set[int] = field(default_factory=set)
    comparisons: set[int] = field(default_factory=set)
    analyses: set[int] = field(default_factory=set)
    datasets: set[int] = field(default_factory=set)
    jobs: set[int] = field(default_factory=set)
    detached: set[int] = field(default_factory=set)  # models whose parent goes


@dataclass
class Deletion:
    """What one deletion removed (or, for a dry run, would remove)."""

    kind: Kind
    id: int
    cascade: bool
    dry_run: bool
    deleted: dict[str, int]
    detached_models: list[int]
    artifacts_removed: int
    artifacts_kept: int
    artifacts_failed: int
    message: str


# where rows name artifacts (backend/artifacts.py) ----------------------------------------
def _shas_of(session: Session, table: type[Base], where: ColumnElement[bool]) -> set[str]:
    """The artifacts the rows of ``table`` matching ``where`` name (see referenced_shas)."""
    columns = [c for c in sha_columns() if c.table is table.__table__]
    json_columns = [a for a in JSON_SHA_COLUMNS if a.class_ is table]
    if not columns and not json_columns:
        return set()
    found: set[str] = set()
    for row in session.execute(select(*columns, *json_columns).where(where)):
        values = list(row)
        found.update(v for v in values[: len(columns)] if isinstance(v, str) and v)
        for value in values[len(columns) :]:
            found.update(json_shas(value))
    return found


# naming rows in sentences -------------------------------------------------------------------
def _named(singular: str, plural: str, rows: Sequence[tuple[int, str | None]]) -> str:
    """ "model 3 ('a')" or "models 3 ('a'), 4 ('b') and 5 ('c')", the first few named."""
    shown = [f"{ident} ({name!r})" if name else str(ident) for ident, name in rows]
    if len(shown) > NAMED_AT_MOST:
        extra = len(shown) - NAMED_AT_MOST
        shown = [*shown[:NAMED_AT_MOST], f"{extra} more"]
    if len(shown) == 1:
        return f"{singular} {shown[0]}"
    return f"{plural} {', '.join(shown[:-1])} and {shown[-1]}"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _ids(ids: Iterable[int]) -> list[int]:
    return sorted(set(ids))


def _names(session: Session, table: Any, ids: Iterable[int]) -> list[tuple[int, str | None]]:
    wanted = _ids(ids)
    names: dict[int, str | None] = {}
    for chunk in _chunks(wanted):
        rows = session.execute(select(table.id, table.name).where(table.id.in_(chunk)))
        names.update((int(i), n) for i, n in rows)
    return [(i, names.get(i)) for i in wanted]


def _in(column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """``column IN ids`` (false for none)."""
    return column.in_(_ids(ids))


# planning -----------------------------------------------------------------------------------
def _comparisons_using(session: Session, model_ids: set[int]) -> set[int]:
    if not model_ids:
        return set()
    as_a = session.scalars(select(ComparisonRow.id).where(_in(ComparisonRow.model_a_id, model_ids)))
    as_b = session.scalars(
        select(ComparisonMemberRow.comparison_id).where(
            _in(ComparisonMemberRow.model_id, model_ids)
        )
    )
    return {*as_a, *as_b}


def _spec_id(spec: dict[str, Any], key: str) -> int | None:
    value = spec.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _busy_jobs(session: Session, plan: Plan) -> list[JobRow]:
    """Jobs not final whose spec names a model, comparison or dataset of the plan."""
    busy = []
    for job in session.scalars(
        select(JobRow).where(JobRow.status.not_in(FINAL_STATUSES)).order_by(JobRow.id)
    ):
        spec = job.spec if isinstance(job.spec, dict) else {}
        models = {_spec_id(spec, k) for k in ("model_id", "parent_id", "model_b_id")}
        if (
            models & plan.models
            or _spec_id(spec, "comparison_id") in plan.comparisons
            or _spec_id(spec, "dataset_id") in plan.datasets
        ):
            busy.append(job)
    return busy


def _refuse_busy(plan: Plan, jobs: Sequence[JobRow]) -> None:
    shown = [f"{j.id} ({j.kind}, {j.status})" for j in jobs[:NAMED_AT_MOST]]
    if len(jobs) > NAMED_AT_MOST:
        shown.append(f"{len(jobs) - NAMED_AT_MOST} more")
    which = (
        f"job {shown[0]}" if len(shown) == 1 else f"jobs {', '.join(shown[:-1])} and {shown[-1]}"
    )
    first = jobs[0].id
    raise Refused(
        f"{_cap(plan.label)} cannot be deleted while {which} "
        f"{'works' if len(jobs) == 1 else 'work'} on {'it' if not plan.cascade else 'what goes'}: "
        f"cancel {'it' if len(jobs) == 1 else 'them'} first (POST /api/jobs/{first}/cancel, or "
        f"prunescope jobs --cancel {first}), then delete."
    )


def _cap(text: str) -> str:
    """The sentence's first letter upper case (str.capitalize would lower the rest: names)."""
    return text[:1].upper() + text[1:]


def _label(kind: str, ident: int, name: str | None) -> str:
    return f"{kind} {ident} ({name!r})" if name else f"{kind} {ident}"


def plan_model(session: Session, ident: int, cascade: bool) -> Plan:
    row = session.get(ModelRow, ident)
    if row is None:
        raise NotFound(ident)
    plan = Plan("model", ident, cascade, _label("model", ident, row.name), models={ident})
    _add_models(session, plan)
    if not cascade and (plan.comparisons or plan.detached):
        users = []
        if plan.comparisons:
            users.append(
                "is used by "
                + _named(
                    "comparison", "comparisons", _names(session, ComparisonRow, plan.comparisons)
                )
            )
        if plan.detached:
            children = _named("model", "models", _names(session, ModelRow, plan.detached))
            users.append(f"is the original of {children}")
        what = "those comparisons (with their share links and results)" if plan.comparisons else ""
        kept = (
            f"the pruned {'model stays' if len(plan.detached) == 1 else 'models stay'}, as "
            f"{'an original' if len(plan.detached) == 1 else 'originals'}"
            if plan.detached
            else ""
        )
        then = "; ".join(p for p in (f"also deletes {what}" if what else "", kept) if p)
        raise Refused(
            f"{_cap(plan.label)} {' and '.join(users)}. Delete those first, or delete "
            f"with cascade=true, which {then}."
        )
    return plan


def _add_models(session: Session, plan: Plan) -> None:
    """Add what goes with the plan's models: the comparisons that use them, their analyses;
    the models pruned from them that stay become originals."""
    plan.comparisons |= _comparisons_using(session, plan.models)
    plan.analyses |= set(
        session.scalars(select(AnalysisRow.id).where(_in(AnalysisRow.model_id, plan.models)))
    )
    children = session.scalars(select(ModelRow.id).where(_in(ModelRow.parent_id, plan.models)))
    plan.detached |= set(children) - plan.models


def plan_comparison(session: Session, ident: int, cascade: bool) -> Plan:
    row = session.get(ComparisonRow, ident)
    if row is None:
        raise NotFound(ident)
    return Plan(
        "comparison", ident, False, _label("comparison", ident, row.name), comparisons={ident}
    )


def plan_dataset(session: Session, ident: int, cascade: bool) -> Plan:
    row = session.get(DatasetRow, ident)
    if row is None:
        raise NotFound(ident)
    plan = Plan("dataset", ident, cascade, _label("dataset", ident, row.name), datasets={ident})
    models = set(session.scalars(select(ModelRow.id).where(ModelRow.dataset_id == ident)))
    analyses = set(session.scalars(select(AnalysisRow.id).where(AnalysisRow.dataset_id == ident)))
    comparisons = set(
        session.scalars(select(ComparisonRow.id).where(ComparisonRow.dataset_id == ident))
    )
    if not cascade and (models or analyses or comparisons):
        users = []
        if models:
            users.append(_named("model", "models", _names(session, ModelRow, models)))
        if analyses:
            users.append(_count(len(analyses), "analysis", "analyses"))
        if comparisons:
            users.append(
                _named("comparison", "comparisons", _names(session, ComparisonRow, comparisons))
            )
        listed = ", ".join(users[:-1]) + (" and " if len(users) > 1 else "") + users[-1]
        raise Refused(
            f"{_cap(plan.label)} is used by {listed}. Delete those first, or delete "
            "with cascade=true, which deletes them too (with the comparisons that use those "
            "models, and their share links)."
        )
    plan.models, plan.analyses, plan.comparisons = models, analyses, comparisons
    _add_models(session, plan)
    return plan


def plan_job(session: Session, ident: int, cascade: bool) -> Plan:
    row = session.get(JobRow, ident)
    if row is None:
        raise NotFound(ident)
    plan = Plan("job", ident, False, f"job {ident} ({row.kind})", jobs={ident})
    children = list(
        session.scalars(select(JobRow).where(JobRow.parent_job_id == ident).order_by(JobRow.id))
    )
    active = [j for j in [row, *children] if j.status not in FINAL_STATUSES]
    if active:
        doing = "is stopping" if row.status == "cancelling" else f"is {row.status}"
        if row.status in FINAL_STATUSES:
            doing = f"has {_count(len(active), 'child job')} not finished"
        cancel = (
            "wait until it has stopped"
            if row.status == "cancelling"
            else f"cancel it first (POST /api/jobs/{ident}/cancel, or prunescope jobs --cancel "
            f"{ident})"
        )
        raise Refused(f"{_cap(plan.label)} {doing}: {cancel}, then delete it.")
    plan.jobs |= {j.id for j in children}
    return plan


PLANNERS: dict[Kind, Callable[[Session, int, bool], Plan]] = {
    "model": plan_model,
    "comparison": plan_comparison,
    "dataset": plan_dataset,
    "job": plan_job,
}


# doing it -----------------------------------------------------------------------------------
def _candidates(session: Session, plan: Plan) -> set[str]:
    """The artifacts the rows of the plan name."""
    found: set[str] = set()
    by_comparison = [
        (ComparisonResultRow, ComparisonResultRow.comparison_id, ComparisonResultRow.model_b_id),
        (RegionResultRow, RegionResultRow.comparison_id, RegionResultRow.model_id),
        (AttributionResultRow, AttributionResultRow.comparison_id, AttributionResultRow.model_b_id),
        (LayerResultRow, LayerResultRow.comparison_id, LayerResultRow.model_b_id),
    ]
    for table, comparison, model in by_comparison:
        where = or_(_in(comparison, plan.comparisons), _in(model, plan.models))
        found |= _shas_of(session, table, where)
    found |= _shas_of(session, AnalysisRow, _in(AnalysisRow.id, plan.analyses))
    found |= _shas_of(session, ModelRow, _in(ModelRow.id, plan.models))
    found |= _shas_of(session, DatasetRow, _in(DatasetRow.id, plan.datasets))
    return found


def _foreign_keys_to(table: Any) -> list[Column[Any]]:
    """Every column of any table that refers to ``table``'s id."""
    return [
        fk.parent
        for other in Base.metadata.tables.values()
        for fk in other.foreign_keys
        if fk.column.table is table.__table__
    ]


def _execute(session: Session, plan: Plan) -> dict[str, int]:
    """Delete the plan's rows, children first; returns the rows deleted per kind."""
    counts: dict[str, int] = {}

    def gone(name: str, table: Any, where: ColumnElement[bool]) -> None:
        result = session.execute(sql_delete(table).where(where))
        counts[name] = counts.get(name, 0) + int(result.rowcount or 0)  # type: ignore[attr-defined]

    comps, models = plan.comparisons, plan.models
    gone("share_links", ShareLinkRow, _in(ShareLinkRow.comparison_id, comps))
    for name, table, comparison, model in (
        (
            "attribution_results",
            AttributionResultRow,
            AttributionResultRow.comparison_id,
            AttributionResultRow.model_b_id,
        ),
        (
            "region_results",
            RegionResultRow,
            RegionResultRow.comparison_id,
            RegionResultRow.model_id,
        ),
        (
            "layer_results",
            LayerResultRow,
            LayerResultRow.comparison_id,
            LayerResultRow.model_b_id,
        ),
        (
            "comparison_results",
            ComparisonResultRow,
            ComparisonResultRow.comparison_id,
            ComparisonResultRow.model_b_id,
        ),
    ):
        gone(name, table, or_(_in(comparison, comps), _in(model, models)))
    members = or_(
        _in(ComparisonMemberRow.comparison_id, comps), _in(ComparisonMemberRow.model_id, models)
    )
    session.execute(sql_delete(ComparisonMemberRow).where(members))
    gone("comparisons", ComparisonRow, _in(ComparisonRow.id, comps))
    gone("analyses", AnalysisRow, _in(AnalysisRow.id, plan.analyses))
    if models:
        # the pruned models that stay become originals; lineage inside the plan goes with it
        session.execute(
            update(ModelRow)
            .where(or_(_in(ModelRow.parent_id, models), _in(ModelRow.id, models)))
            .values(parent_id=None)
        )
    gone("models", ModelRow, _in(ModelRow.id, models))
    if plan.jobs:
        # what the jobs made stays: every row that names one of them forgets it
        for column in _foreign_keys_to(JobRow):
            session.execute(
                update(column.table).where(_in(column, plan.jobs)).values({column.name: None})
            )
        gone("jobs", JobRow, _in(JobRow.id, plan.jobs))
    gone("datasets", DatasetRow, _in(DatasetRow.id, plan.datasets))
    return {name: n for name, n in counts.items() if n}


def _sentence(plan: Plan, counts: dict[str, int], removed: int, kept: int, dry_run: bool) -> str:
    """ "Deleted model 3 ('a'), 2 analyses, 1 comparison, ...; model 5 stays, as an original."""
    order = [
        ("datasets", "dataset", None),
        ("models", "model", None),
        ("comparisons", "comparison", None),
        ("share_links", "share link", None),
        ("comparison_results", "comparison result", None),
        ("region_results", "region result", None),
        ("layer_results", "layer result", None),
        ("attribution_results", "attribution", None),
        ("analyses", "analysis", "analyses"),
        ("jobs", "job row", None),
    ]
    main = {"model": "models", "comparison": "comparisons", "dataset": "datasets", "job": "jobs"}
    parts = [plan.label]
    for key, singular, plural in order:
        n = counts.get(key, 0) - (1 if key == main[plan.kind] else 0)
        if n > 0:
            parts.append(_count(n, ("other " if key == main[plan.kind] else "") + singular, plural))
    verb = "Would delete" if dry_run else "Deleted"
    text = (
        f"{verb} {', '.join(parts[:-1])} and {parts[-1]}"
        if len(parts) > 1
        else f"{verb} {parts[0]}"
    )
    if plan.detached:
        text += "; " + _named("model", "models", [(i, None) for i in sorted(plan.detached)])
        text += " " + ("stays, as an original" if len(plan.detached) == 1 else "stay, as originals")
    if plan.kind == "job":
        text += "; what it made stays"
    files = []
    if removed:
        files.append(f"{_count(removed, 'artifact file')} {'would be' if dry_run else ''} removed")
    if kept:
        files.append(f"{_count(kept, 'artifact file')} kept (other rows use the same bytes)")
    if files:
        text += "; " + ", ".join(files)
    return re.sub(r"\s+", " ", text) + "."


def delete(
    session: Session,
    store: ArtifactStore,
    kind: Kind,
    ident: int,
    *,
    cascade: bool = False,
    dry_run: bool = False,
    who: Who | None = None,
) -> Deletion:
    """Delete one model, comparison, dataset or job by the module's rules, in one transaction
    with its audit event, then remove the artifact files nothing references any more.

    Raises:
        NotFound: no such row.
        Refused: the rules refuse it; the message names what uses it and what to do.
    """
    who = who or Who()
    plan = PLANNERS[kind](session, ident, cascade)
    busy = _busy_jobs(session, plan)
    if busy:
        _refuse_busy(plan, busy)
    candidates = _candidates(session, plan)
    try:
        counts = _execute(session, plan)
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise _still_used(plan, exc) from None
    doomed = candidates - referenced_shas(session, candidates)
    kept = len(candidates - doomed)
    present = sum(1 for sha in doomed if _exists(store, sha))
    if dry_run:
        session.rollback()
        message = _sentence(plan, counts, present, kept, dry_run=True)
        return _answer(plan, counts, True, present, kept, 0, message)
    message = _sentence(plan, counts, present, kept, dry_run=False)
    target = f"{plan.kind} {plan.ident}{' cascade=true' if plan.cascade else ''}: {message}"
    session.add(
        AuditEventRow(
            actor=who.actor[:250],
            token_id=who.token_id,
            share_id=who.share_id,
            action=f"delete.{plan.kind}",
            target=target[:500],
            status=200,
            client=who.client[:100],
        )
    )
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise _still_used(plan, exc) from None
    removed, failed = remove_unreferenced(session, store, doomed)
    if failed:
        message = _sentence(plan, counts, removed, kept, dry_run=False)
    return _answer(plan, counts, False, removed, kept, len(failed), message)


def _still_used(plan: Plan, exc: IntegrityError) -> Refused:
    """A row the rules do not know of (or one written meanwhile) still refers to the plan's."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    where = getattr(diag, "table_name", None)
    return Refused(
        f"{_cap(plan.label)} is still used by another row"
        f"{f' of {where}' if where else ''} (something may have started using it meanwhile); "
        "nothing was deleted. Reload and try again."
    )


def _answer(
    plan: Plan,
    counts: dict[str, int],
    dry_run: bool,
    removed: int,
    kept: int,
    failed: int,
    message: str,
) -> Deletion:
    return Deletion(
        kind=plan.kind,
        id=plan.ident,
        cascade=plan.cascade,
        dry_run=dry_run,
        deleted=counts,
        detached_models=sorted(plan.detached),
        artifacts_removed=removed,
        artifacts_kept=kept,
        artifacts_failed=failed,
        message=message,
    )


# artifacts ----------------------------------------------------------------------------------
def _exists(store: ArtifactStore, sha: str) -> bool:
    try:
        return store.exists(sha)
    except Exception:  # noqa: BLE001 - an unreachable store: counted as absent, logged later
        return False
