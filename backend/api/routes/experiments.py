"""Experiments: every model of the workspace as one sortable, filterable table, paged.

A page is one SQL statement. Its inner select filters the models, sorts them, counts every
match (a window count) and cuts the page; only the page's rows then get the outer select's
joins and JSON reads: lineage (a recursive CTE from each original down), the parent and the
original, the dataset, the model's test-split analysis of its own dataset and its original's of
the same dataset, the seed, the compression figures, the error barrier of its latest
succeeded instability job. Values kept only inside JSON lists (the
per-class recall for alpha_t, the accuracies under corruption) are computed in Python from
that statement's rows; sorting by one of them (``alpha_t``, ``corrupted_accuracy``) reads
every match in the same one statement and pages in Python.

alpha_t is taken against the model's *original* (the root of its lineage), as the issue and
SCIENCE.md section 2 define t and alpha_t against the model before pruning: for a model pruned
once its parent is its original; for a lottery-ticket round, whose parent is the previous
round, t (from its sparsity) and alpha_t both still count from the dense network.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from backend.analysis.recall import model_intensification, normalized_balance
from backend.api.deps import SessionDep
from backend.api.schemas import (
    EXPERIMENT_ORIGINAL,
    ExperimentFacet,
    ExperimentFacetsPublic,
    ExperimentPublic,
    ExperimentsFilter,
    ExperimentsPublic,
    ExperimentsQuery,
    errors,
)
from backend.db.tables import AnalysisRow, DatasetRow, JobRow, ModelRow

router = APIRouter(prefix="/experiments", tags=["experiments"])

SPLIT = "test"  # the figures come from the test-split analysis, as comparisons use
PYTHON_SORTS = frozenset({"alpha_t", "corrupted_accuracy"})  # computed from JSON lists
# fields of the report (backend/pruning/report.py) read in SQL
REPORT_NUMBERS = ("compression_ratio", "flops_dense", "flops_nonzero", "latency_ms_pruned")
CSV_COLUMNS = tuple(ExperimentPublic.model_fields)
CSV_CHUNK_ROWS = 200


# SQL pieces -----------------------------------------------------------------------------------
def _json_value(
    dialect: str, column: Any, path: Sequence[str], kind: str = "float"
) -> ColumnElement[Any]:
    """A number (``kind`` "float" or "integer") or string at ``path`` inside a JSON column.

    SQLite stores what Python's json writes, Infinity and NaN included, which its JSON
    functions refuse as malformed (the whole statement would fail): such a document reads
    as null here (see :func:`_report_raw` for the report, whose numbers are read anyway).
    """
    element = column[path[0] if len(path) == 1 else tuple(path)]
    expr = (
        element.as_float()
        if kind == "float"
        else element.as_integer()
        if kind == "integer"
        else element.as_string()
    )
    if dialect == "sqlite":
        return case((func.json_valid(column) == 1, expr), else_=None)
    return expr


def _report_raw(dialect: str, column: Any) -> ColumnElement[Any]:
    """The whole JSON document where SQLite cannot read it (Infinity, NaN), else null."""
    if dialect == "sqlite":
        return case((func.json_valid(column) == 0, column), else_=None)
    return literal(None)


def _lineage() -> Any:
    """(id, root_id, depth) of every model reachable from an original: a recursive CTE."""
    base = select(
        ModelRow.id.label("id"),
        ModelRow.id.label("root_id"),
        literal(0, Integer).label("depth"),
    ).where(ModelRow.parent_id.is_(None))
    lineage = base.cte("lineage", recursive=True)
    child = aliased(ModelRow, name="child")
    return lineage.union_all(
        select(child.id, lineage.c.root_id, lineage.c.depth + 1).where(
            child.parent_id == lineage.c.id
        )
    )


def _conditions(f: ExperimentsFilter) -> list[ColumnElement[bool]]:
    m, d = ModelRow, DatasetRow
    out: list[ColumnElement[bool]] = []
    if f.id:
        out.append(m.id.in_(f.id))
    if f.method:
        named = sorted({x for x in f.method if x != EXPERIMENT_ORIGINAL})
        either = [m.pruning_method.in_(named)] if named else []
        if EXPERIMENT_ORIGINAL in f.method:
            either.append(m.pruning_method.is_(None))
        out.append(or_(*either))
    if f.dataset:
        out.append(m.dataset_id.in_(f.dataset))
    if f.architecture:
        out.append(m.architecture.in_(f.architecture))
    if f.sparsity_min is not None:
        out.append(m.sparsity >= f.sparsity_min)
    if f.sparsity_max is not None:
        out.append(m.sparsity <= f.sparsity_max)
    texts = (
        func.lower(m.name),
        func.lower(m.architecture),
        func.lower(func.coalesce(m.pruning_method, EXPERIMENT_ORIGINAL)),
        func.lower(func.coalesce(d.name, "")),
    )
    for word in f.q.lower().split():
        out.append(or_(*(text.contains(word, autoescape=True) for text in texts)))
    return out


def _seed(dialect: str, model: Any, job: Any) -> ColumnElement[Any]:
    """The seed a model was trained or fine-tuned with: the prune job's training settings,
    else the method's own seed, else its job's spec (a train job's)."""
    return func.coalesce(
        _json_value(dialect, model.pruning_params, ("training", "seed"), "integer"),
        _json_value(dialect, model.pruning_params, ("seed",), "integer"),
        _json_value(dialect, job.spec, ("seed",), "integer"),
    )


def _compression(dialect: str, model: Any) -> ColumnElement[Any]:
    """Dense parameters / nonzero parameters, as the report recorded it (structured pruning:
    against the dense network), else the model's own parameters / nonzero."""
    own = model.n_params * 1.0 / func.nullif(model.n_nonzero, 0)
    return func.coalesce(_json_value(dialect, model.sparsity_report, ("compression_ratio",)), own)


def _learning_distance(dialect: str, model: Any) -> ColumnElement[Any]:
    """How far training moved the kept weights, as the prune job recorded it (SCIENCE.md 7)."""
    return _json_value(dialect, model.pruning_params, ("learning", "distance"))


def _latest_instability(dialect: str) -> Any:
    """(model_id, job_id) of each model's latest succeeded instability job: a subquery over
    the few jobs of that kind, joined to the page's rows (SCIENCE.md 4)."""
    j = aliased(JobRow, name="ij")
    model_id = _json_value(dialect, j.spec, ("model_id",), "integer")
    return (
        select(model_id.label("model_id"), func.max(j.id).label("job_id"))
        .where(j.kind == "instability", j.status == "succeeded")
        .group_by(model_id)
        .subquery("latest_instability")
    )


@dataclass(frozen=True)
class Page:
    rows: list[ExperimentPublic]
    count: int


def experiments_statement(
    dialect: str,
    f: ExperimentsFilter,
    limit: int | None = None,
    offset: int = 0,
) -> Select[Any]:
    """The one statement of a page (``limit`` None: every match), ordered as asked, with the
    number of matches in each row's ``total``. A sort computed in Python orders by id here."""
    m, d = ModelRow, DatasetRow
    a = aliased(AnalysisRow, name="a")
    job = aliased(JobRow, name="job")
    lineage = _lineage()
    root_id = func.coalesce(lineage.c.root_id, m.id)
    sql_sort = f.sort not in PYTHON_SORTS
    keys: dict[str, Any] = {
        "id": m.id,
        "name": func.lower(m.name),
        "created_at": m.created_at,
        "parent": m.parent_id,
        "original": root_id,
        "architecture": func.lower(m.architecture),
        "dataset": func.lower(d.name),
        "method": m.pruning_method,
        "sparsity": m.sparsity,
        "t": m.sparsity,
        "accuracy": func.coalesce(m.accuracy, a.accuracy),
        "n_params": m.n_params,
        "n_nonzero": m.n_nonzero,
    }
    if f.sort == "seed":
        keys["seed"] = _seed(dialect, m, job)
    elif f.sort == "compression_ratio":
        keys["compression_ratio"] = _compression(dialect, m)
    elif f.sort in ("flops_dense", "flops_nonzero"):
        keys[f.sort] = _json_value(dialect, m.sparsity_report, (f.sort,))
    elif f.sort == "latency_ms":
        keys["latency_ms"] = _json_value(dialect, m.sparsity_report, ("latency_ms_pruned",))
    elif f.sort == "learning_distance":
        keys["learning_distance"] = _learning_distance(dialect, m)
    if sql_sort:
        key = keys[f.sort]
        ordered = key.desc() if f.order == "desc" else key.asc()
        order = [ordered.nulls_last(), m.id.asc() if f.order == "asc" else m.id.desc()]
    else:
        order = [m.id.asc()]
    inner = (
        select(
            m.id.label("id"),
            func.count().over().label("total"),
            func.row_number().over(order_by=order).label("pos"),
            root_id.label("root_id"),
            func.coalesce(lineage.c.depth, 0).label("depth"),
            a.id.label("analysis_id"),
            func.coalesce(m.accuracy, a.accuracy).label("accuracy"),
        )
        .select_from(m)
        .outerjoin(d, d.id == m.dataset_id)
        .outerjoin(lineage, lineage.c.id == m.id)
        .outerjoin(a, and_(a.model_id == m.id, a.dataset_id == m.dataset_id, a.split == SPLIT))
        .where(*_conditions(f))
        .order_by(*order)
    )
    if f.sort == "seed":
        inner = inner.outerjoin(job, job.id == m.job_id)
    if limit is not None and sql_sort:
        inner = inner.limit(limit).offset(offset)
    page = inner.subquery("page")

    pm = aliased(ModelRow, name="pm")  # the page's models
    parent = aliased(ModelRow, name="parent")
    original = aliased(ModelRow, name="original")
    pa = aliased(AnalysisRow, name="pa")
    oa = aliased(AnalysisRow, name="oa")
    pjob = aliased(JobRow, name="pjob")
    pd = aliased(DatasetRow, name="pd")
    latest = _latest_instability(dialect)
    ijob = aliased(JobRow, name="ijob")
    report = pm.sparsity_report
    return (
        select(
            page.c.total,
            page.c.root_id,
            page.c.depth,
            page.c.analysis_id,
            page.c.accuracy,
            pm.id,
            pm.name,
            pm.parent_id,
            parent.name.label("parent_name"),
            original.name.label("original_name"),
            pm.architecture,
            pm.dataset_id,
            pd.name.label("dataset_name"),
            pm.pruning_method,
            pm.pruning_params,
            pm.sparsity,
            pm.n_params,
            pm.n_nonzero,
            pm.created_at,
            _seed(dialect, pm, pjob).label("seed"),
            _compression(dialect, pm).label("compression_ratio"),
            _learning_distance(dialect, pm).label("learning_distance"),
            _json_value(dialect, ijob.result, ("barrier",)).label("instability_barrier"),
            *(_json_value(dialect, report, (k,)).label(k) for k in REPORT_NUMBERS[1:]),
            _json_value(dialect, report, ("device",), "string").label("latency_device"),
            _report_raw(dialect, report).label("report_raw"),
            pa.accuracy.label("analysis_accuracy"),
            _json_part(dialect, pa.summary, ("recall",)).label("recall"),
            _json_part(dialect, pa.summary, ("robustness", "accuracy")).label("robustness"),
            oa.accuracy.label("original_accuracy"),
            _json_part(dialect, oa.summary, ("recall",)).label("original_recall"),
        )
        .select_from(page)
        .join(pm, pm.id == page.c.id)
        .outerjoin(parent, parent.id == pm.parent_id)
        .outerjoin(original, original.id == page.c.root_id)
        .outerjoin(pd, pd.id == pm.dataset_id)
        .outerjoin(pjob, pjob.id == pm.job_id)
        .outerjoin(pa, pa.id == page.c.analysis_id)
        .outerjoin(latest, latest.c.model_id == pm.id)
        .outerjoin(ijob, ijob.id == latest.c.job_id)
        .outerjoin(
            oa,
            and_(
                page.c.root_id != pm.id,
                oa.model_id == page.c.root_id,
                oa.dataset_id == pm.dataset_id,
                oa.split == SPLIT,
            ),
        )
        .order_by(page.c.pos)
    )


def _json_part(dialect: str, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
    """The JSON value at ``path`` (a list, say), decoded; null where SQLite cannot read the
    document (see :func:`_json_value`)."""
    element = column[path[0] if len(path) == 1 else tuple(path)]
    if dialect == "sqlite":
        return case((func.json_valid(column) == 1, element), else_=None)
    return element


# values computed in Python ---------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _vector(values: Any) -> np.ndarray | None:
    if not isinstance(values, list) or not values:
        return None
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def alpha_t(
    recall: Any, accuracy: Any, original_recall: Any, original_accuracy: Any
) -> float | None:
    """alpha_t of a model against its original (SCIENCE.md section 2); None when either side
    has no analysis, the class counts differ or it is undefined."""
    after, before = _vector(recall), _vector(original_recall)
    acc_after, acc_before = _finite(accuracy), _finite(original_accuracy)
    if after is None or before is None or acc_after is None or acc_before is None:
        return None
    if after.shape != before.shape:
        return None
    try:
        bn_after = normalized_balance(after, acc_after)
        bn_before = normalized_balance(before, acc_before)
    except ValueError:
        return None
    return _finite(model_intensification(bn_before, bn_after))


def mean_corrupted(accuracy: Any) -> float | None:
    """Mean over corruptions of each corruption's accuracy averaged over its severities (the
    Overview page's "Corrupted (mean)"); None for an analysis without corruptions."""
    if not isinstance(accuracy, list):
        return None
    means = []
    for row in accuracy:
        values = [v for v in (_finite(x) for x in (row or [])) if v is not None]
        if values:
            means.append(sum(values) / len(values))
    return sum(means) / len(means) if means else None


def _method_params(params: Any) -> dict[str, Any] | None:
    if not isinstance(params, dict):
        return None
    return {k: v for k, v in params.items() if k not in ("sparsity", "training", "learning")}


def experiment(row: Any) -> ExperimentPublic:
    """One row of :func:`experiments_statement` as the API shows it."""
    raw = row.report_raw if isinstance(row.report_raw, dict) else None
    numbers = {k: getattr(row, k) for k in REPORT_NUMBERS[1:]}
    compression, device = row.compression_ratio, row.latency_device
    if raw is not None:  # a report SQLite could not read: its numbers from Python's reading
        numbers = {k: raw.get(k) for k in REPORT_NUMBERS[1:]}
        compression = raw.get("compression_ratio") or (
            row.n_params / row.n_nonzero if row.n_nonzero else None
        )
        device = raw.get("device")
    sparsity = float(row.sparsity)
    return ExperimentPublic(
        id=row.id,
        name=row.name,
        parent_id=row.parent_id,
        parent_name=row.parent_name,
        original_id=row.root_id,
        original_name=row.original_name if row.original_name is not None else row.name,
        depth=row.depth,
        architecture=row.architecture,
        dataset_id=row.dataset_id,
        dataset_name=row.dataset_name,
        pruning_method=row.pruning_method,
        method_params=_method_params(row.pruning_params),
        sparsity=sparsity,
        t=1.0 / (1.0 - sparsity) if sparsity < 1.0 else None,
        compression_ratio=_finite(compression),
        seed=row.seed,
        n_params=row.n_params,
        n_nonzero=row.n_nonzero,
        accuracy=_finite(row.accuracy),
        corrupted_accuracy=mean_corrupted(row.robustness),
        alpha_t=alpha_t(
            row.recall, row.analysis_accuracy, row.original_recall, row.original_accuracy
        ),
        flops_dense=_finite(numbers["flops_dense"]),
        flops_nonzero=_finite(numbers["flops_nonzero"]),
        latency_ms=_finite(numbers["latency_ms_pruned"]),
        latency_device=device if isinstance(device, str) else None,
        learning_distance=_finite(row.learning_distance),
        instability_barrier=_finite(row.instability_barrier),
        analysis_id=row.analysis_id,
        created_at=row.created_at,
    )


def _python_sorted(rows: list[ExperimentPublic], sort: str, order: str) -> list[ExperimentPublic]:
    """``rows`` by a value computed in Python, missing values last in either order, ties by
    id in the same direction (as the SQL sorts do)."""
    sign = -1.0 if order == "desc" else 1.0
    present = [r for r in rows if getattr(r, sort) is not None]
    missing = [r for r in rows if getattr(r, sort) is None]
    present.sort(key=lambda r: (sign * getattr(r, sort), sign * r.id))
    missing.sort(key=lambda r: sign * r.id)
    return present + missing


def find_experiments(
    session: Session, f: ExperimentsFilter, limit: int | None = None, offset: int = 0
) -> Page:
    """The rows of one page (``limit`` None: every match) and the number of matches."""
    dialect = session.get_bind().dialect.name
    result = session.execute(experiments_statement(dialect, f, limit, offset)).all()
    rows = [experiment(r) for r in result]
    count = int(result[0].total) if result else 0
    if f.sort in PYTHON_SORTS:
        rows = _python_sorted(rows, f.sort, f.order)
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
    elif not result and offset > 0:
        # past the last page: the window count came with no row, so count on its own
        counted = select(func.count()).select_from(ModelRow)
        counted = counted.outerjoin(DatasetRow, DatasetRow.id == ModelRow.dataset_id)
        count = int(session.scalar(counted.where(*_conditions(f))) or 0)
    return Page(rows, count)


# routes -----------------------------------------------------------------------------------------
@router.get("", response_model=ExperimentsPublic, responses=errors(422))
def list_experiments(
    session: SessionDep, query: Annotated[ExperimentsQuery, Query()]
) -> ExperimentsPublic:
    """One page of every model with its lineage, method, sparsity, t, accuracies, alpha_t and
    compression figures; filtered, sorted, and the number of matches."""
    page = find_experiments(session, query, query.limit, query.offset)
    return ExperimentsPublic(data=page.rows, count=page.count)


CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Every matching model, one CSV line each (the columns of "
        "ExperimentPublic; method_params as JSON)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    **errors(422),
}


def csv_lines(rows: Sequence[ExperimentPublic]) -> Iterator[str]:
    """The CSV text in chunks: a header, then one line per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i, row in enumerate(rows, 1):
        values = row.model_dump(mode="json")
        values["method_params"] = (
            json.dumps(values["method_params"], sort_keys=True)
            if values["method_params"] is not None
            else None
        )
        writer.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
        if i % CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get(".csv", response_class=StreamingResponse, responses=CSV_RESPONSES)
def export_experiments(
    session: SessionDep, query: Annotated[ExperimentsFilter, Query()]
) -> StreamingResponse:
    """Every model matching the filters, in the same order, as a CSV file (streamed)."""
    rows = find_experiments(session, query).rows
    session.close()  # the rows are read: no connection held while the file streams
    return StreamingResponse(
        csv_lines(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="experiments.csv"'},
    )


@router.get("/facets", response_model=ExperimentFacetsPublic)
def read_experiment_facets(session: SessionDep) -> ExperimentFacetsPublic:
    """What the filters can choose from: methods, datasets and architectures in use, with how
    many models each, and the range of sparsities."""
    m, d = ModelRow, DatasetRow
    groups = session.execute(
        select(
            m.pruning_method,
            m.architecture,
            m.dataset_id,
            d.name,
            func.count(),
            func.min(m.sparsity),
            func.max(m.sparsity),
        )
        .outerjoin(d, d.id == m.dataset_id)
        .group_by(m.pruning_method, m.architecture, m.dataset_id, d.name)
    ).all()
    methods: dict[str, int] = {}
    architectures: dict[str, int] = {}
    datasets: dict[int, tuple[str, int]] = {}
    lows, highs, total = [], [], 0
    for method, architecture, dataset_id, dataset_name, n, low, high in groups:
        key = method if method is not None else EXPERIMENT_ORIGINAL
        methods[key] = methods.get(key, 0) + n
        architectures[architecture] = architectures.get(architecture, 0) + n
        if dataset_id is not None:
            name = dataset_name if dataset_name is not None else f"dataset {dataset_id}"
            datasets[dataset_id] = (name, datasets.get(dataset_id, ("", 0))[1] + n)
        lows.append(float(low))
        highs.append(float(high))
        total += n

    def facets(counts: dict[str, int]) -> list[ExperimentFacet]:
        return [ExperimentFacet(value=k, label=k, count=n) for k, n in sorted(counts.items())]

    return ExperimentFacetsPublic(
        count=total,
        methods=facets(methods),
        datasets=[
            ExperimentFacet(value=str(i), label=name, count=n)
            for i, (name, n) in sorted(datasets.items(), key=lambda kv: kv[1][0].lower())
        ],
        architectures=facets(architectures),
        sparsity_min=min(lows) if lows else None,
        sparsity_max=max(highs) if highs else None,
    )
