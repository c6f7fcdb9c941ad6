"""Comparisons: model A (original) against models B (pruned) on one dataset."""

from __future__ import annotations

import io
import json
import math
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.analysis.flags import corruption_fragile, made_fragile_by_pruning
from backend.analysis.metrics import FLIP_CATEGORIES, flip_categories, flip_counts
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
    load_samples_table,
    prob_columns,
    refused,
)
from backend.api.public import (
    COMPARISON_NOT_FOUND,
    DATASET_NOT_FOUND,
    MODEL_NOT_FOUND,
    analysis_public,
    comparison_public,
    model_public,
)
from backend.api.schemas import (
    AnalysesPublic,
    Attribution,
    AttributionStatus,
    BrokenSamples,
    ComparisonCreate,
    ComparisonModelsAdd,
    ComparisonPublic,
    ComparisonsPublic,
    ComparisonView,
    DatasetPublic,
    DeletionPublic,
    FlipCounts,
    FlipPublic,
    FlipsPage,
    FourierPublic,
    IdPath,
    IdQuery,
    IndexPath,
    LayersPublic,
    SampleCorruptions,
    SampleDetail,
    SampleModelDetail,
    SampleNeighbours,
    TopClass,
    errors,
)
from backend.api.tables import MAX_LIMIT, TablePage, filter_table, page
from backend.db.tables import (
    AnalysisRow,
    AttributionResultRow,
    ComparisonMemberRow,
    ComparisonResultRow,
    ComparisonRow,
    DatasetRow,
    JobRow,
    LayerResultRow,
    ModelRow,
    RegionResultRow,
)
from backend.jobs import submit
from backend.jobs.specs import AttributionSpec, CompareSpec

router = APIRouter(prefix="/comparisons", tags=["comparisons"])

NOT_FOUND = COMPARISON_NOT_FOUND
SPLIT = "test"
DRY_RUN_ANSWER = "dry_run=true: the comparison would be created (nothing was written)"


def _find_analysis(session: Session, model_id: int, dataset_id: int) -> AnalysisRow | None:
    return session.scalars(
        select(AnalysisRow).where(
            AnalysisRow.model_id == model_id,
            AnalysisRow.dataset_id == dataset_id,
            AnalysisRow.split == SPLIT,
        )
    ).first()


def compare_jobs(session: Session) -> dict[int, int]:
    """Latest compare job id of every comparison."""
    latest: dict[int, int] = {}
    for job in session.scalars(select(JobRow).where(JobRow.kind == "compare")).all():
        cid = job.spec.get("comparison_id")
        if isinstance(cid, int):
            latest[cid] = max(latest.get(cid, 0), job.id)
    return latest


@router.get("", response_model=ComparisonsPublic)
def list_comparisons(session: SessionDep) -> ComparisonsPublic:
    """All comparisons."""
    rows = session.scalars(select(ComparisonRow).order_by(ComparisonRow.id)).all()
    jobs = compare_jobs(session)
    data = [comparison_public(r, jobs.get(r.id)) for r in rows]
    return ComparisonsPublic(data=data, count=len(rows))


@router.post(
    "",
    response_model=ComparisonPublic,
    status_code=201,
    responses={
        200: {"model": ComparisonCreate, "description": DRY_RUN_ANSWER},
        **errors(400, 422, 503),
    },
)
def create_comparison(
    body: ComparisonCreate, session: SessionDep, executor: ExecutorDep, dry_run: DryRunQuery = False
) -> Any:
    """Create a comparison and submit its compare job (which analyses what is missing): 201;
    422 when refused, with nothing written (`{"detail": "model 5 does not exist"}`, the first
    problem); 503 when the job queue is unreachable, with nothing written.

    `dry_run=true` runs exactly the same validation and writes and queues nothing: 200 with
    the body normalised (`dataset_id` and `name` as they would be stored, defaults filled
    in), or 422 with every problem in the shape of FastAPI's validation errors:
    `{"detail": [{"loc": ["body", "model_b_ids", 0], "msg": ..., "type": ...}, ...]}` (the
    body's schema first, as FastAPI answers it; then the checks against what exists: models,
    dataset, classes, corruptions, each at its field).
    """
    try:
        plan = submit.validate_comparison(
            session, body.model_a_id, body.model_b_ids, body.dataset_id, body.corruptions
        )
    except submit.SpecInvalid as exc:
        raise refused(exc, dry_run, root="body") from exc
    name = body.name or f"{plan.models[body.model_a_id].name} vs {len(body.model_b_ids)} pruned"
    if dry_run:
        normalised = body.model_copy(update={"dataset_id": plan.dataset.id, "name": name})
        return JSONResponse(normalised.model_dump(mode="json"), status_code=200)
    row = ComparisonRow(name=name, dataset_id=plan.dataset.id, model_a_id=body.model_a_id)
    row.members = [
        ComparisonMemberRow(model_id=mid, position=i) for i, mid in enumerate(body.model_b_ids)
    ]
    session.add(row)
    session.commit()
    spec = CompareSpec(
        comparison_id=row.id,
        corruptions=body.corruptions,
        severities=body.severities,
        embedding=body.embedding,
        neighbours_k=body.neighbours_k,
    )
    try:
        job = submit.enqueue(session, executor, "compare", spec)
    except submit.QueueUnavailable as exc:  # leave no comparison without a job
        session.delete(row)
        session.commit()
        raise refused(exc) from exc
    return comparison_public(row, job.id)


@router.get("/{comparison_id}", response_model=ComparisonPublic, responses=errors(404, 422))
def read_comparison(comparison_id: IdPath, session: SessionDep) -> ComparisonPublic:
    """One comparison."""
    row = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    return comparison_public(row, compare_jobs(session).get(row.id))


@router.get("/{comparison_id}/analyses", response_model=AnalysesPublic, responses=errors(404, 422))
def list_comparison_analyses(comparison_id: IdPath, session: SessionDep) -> AnalysesPublic:
    """The latest test-split analysis of each of the comparison's models on its dataset, A
    first (what its pages show; a share link may read these, not the workspace's list)."""
    row = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    ids = list(dict.fromkeys([row.model_a_id, *row.model_b_ids]))
    found = session.scalars(
        select(AnalysisRow)
        .where(
            AnalysisRow.model_id.in_(ids),
            AnalysisRow.dataset_id == row.dataset_id,
            AnalysisRow.split == SPLIT,
        )
        .order_by(AnalysisRow.id)
    ).all()
    latest = {a.model_id: a for a in found}  # ascending ids: the latest wins
    data = [analysis_public(latest[m]) for m in ids if m in latest]
    return AnalysesPublic(data=data, count=len(data))


@router.delete(
    "/{comparison_id}",
    response_model=DeletionPublic,
    responses=DELETE_RESPONSES,
    dependencies=[NoBody],
)
def delete_comparison(
    comparison_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    who: WhoDep,
    dry_run: DeleteDryRunQuery = False,
) -> DeletionPublic:
    """Delete a comparison with its share links (they then answer as dead links) and its
    results; never its models or their analyses. 409 while a job works on it."""
    return delete_answer(session, store, "comparison", comparison_id, who, dry_run=dry_run)


def _choose_b(session: Session, comparison_id: int, b: int | None) -> tuple[ComparisonRow, int]:
    """The comparison and the selected pruned model (default: its first B)."""
    comp = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    b_id = comp.model_b_ids[0] if b is None else b
    if b_id not in comp.model_b_ids:
        raise HTTPException(
            status_code=422, detail=f"model {b_id} is not one of this comparison's pruned models"
        )
    return comp, b_id


def _resolve(session: Session, comparison_id: int, b: int | None):  # type: ignore[no-untyped-def]
    comp, b_id = _choose_b(session, comparison_id, b)
    analyses = []
    for mid in (comp.model_a_id, b_id):
        analysis = _find_analysis(session, mid, comp.dataset_id)
        if analysis is None:
            raise HTTPException(
                status_code=409,
                detail=f"model {mid} has no analysis on dataset {comp.dataset_id} yet; "
                "the comparison's compare job has not finished (see job_id)",
            )
        analyses.append(analysis)
    return comp, b_id, analyses[0], analyses[1]


@router.get("/{comparison_id}/view", response_model=ComparisonView, responses=errors(404, 409, 422))
def read_comparison_view(
    comparison_id: IdPath, session: SessionDep, store: StoreDep, b: IdQuery = None
) -> ComparisonView:
    """Everything the comparison page shows for A vs the selected B."""
    comp, b_id, an_a, an_b = _resolve(session, comparison_id, b)
    ta = load_samples_table(store, an_a.samples_sha)
    tb = load_samples_table(store, an_b.samples_sha)
    cats = flip_categories(ta["label"].to_numpy(), ta["pred"].to_numpy(), tb["pred"].to_numpy())
    shift = np.asarray(an_b.summary["confusion"]) - np.asarray(an_a.summary["confusion"])
    dataset = get_or_404(session, DatasetRow, comp.dataset_id, DATASET_NOT_FOUND)
    return ComparisonView(
        comparison=comparison_public(comp),
        dataset=DatasetPublic.model_validate(dataset),
        model_a=model_public(get_or_404(session, ModelRow, comp.model_a_id, MODEL_NOT_FOUND)),
        model_b=model_public(get_or_404(session, ModelRow, b_id, MODEL_NOT_FOUND)),
        analysis_a=analysis_public(an_a),
        analysis_b=analysis_public(an_b),
        confusion_shift=shift.astype(int).tolist(),
        flip_counts=FlipCounts(**flip_counts(cats)),
    )


@router.get("/{comparison_id}/flips", response_model=FlipsPage, responses=errors(404, 409, 422))
def read_comparison_flips(
    comparison_id: IdPath,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    b: IdQuery = None,
    category: str | None = Query(None, description="one of " + ", ".join(FLIP_CATEGORIES)),
    label: int | None = Query(None, ge=0, description="only samples of this true class"),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=1000),
) -> FlipsPage:
    """Samples whose prediction changed between A and B, paged."""
    if category is not None and category not in FLIP_CATEGORIES:
        raise HTTPException(
            status_code=422, detail=f"category must be one of {', '.join(FLIP_CATEGORIES)}"
        )
    comp, _b_id, an_a, an_b = _resolve(session, comparison_id, b)
    ta = load_samples_table(store, an_a.samples_sha)
    tb = load_samples_table(store, an_b.samples_sha)
    y = ta["label"].to_numpy()
    cats = flip_categories(y, ta["pred"].to_numpy(), tb["pred"].to_numpy())
    keep = cats != ""
    if category is not None:
        keep &= cats == category
    if label is not None:
        keep &= y == label
    idx = np.flatnonzero(keep)
    page = idx[offset : offset + limit]
    # Root-relative, so the browser loads images from whatever host it reached us on.
    base = request.scope.get("root_path", "")
    dataset = session.get(DatasetRow, comp.dataset_id)
    images = dataset is not None and len(dataset.input_shape) in (2, 3)
    data = [
        FlipPublic(
            index=int(ta["index"].iat[i]),
            label=int(y[i]),
            pred_a=int(ta["pred"].iat[i]),
            pred_b=int(tb["pred"].iat[i]),
            category=cats[i],
            confidence_a=float(ta["confidence"].iat[i]),
            confidence_b=float(tb["confidence"].iat[i]),
            image_url=(
                f"{base}/api/datasets/{comp.dataset_id}/images/{SPLIT}/"
                f"{int(ta['index'].iat[i])}.png"
                if images
                else None
            ),
        )
        for i in page
    ]
    return FlipsPage(data=data, count=int(len(idx)), offset=offset, limit=limit)


def _result(session: Session, comparison_id: int, b: int | None) -> ComparisonResultRow:
    comp, b_id = _choose_b(session, comparison_id, b)
    row = session.scalars(
        select(ComparisonResultRow).where(
            ComparisonResultRow.comparison_id == comparison_id,
            ComparisonResultRow.model_b_id == b_id,
        )
    ).first()
    if row is None:
        raise HTTPException(
            status_code=409,
            detail="comparison results are not ready: its compare job has not "
            "finished (see job_id)",
        )
    return row


@router.get("/{comparison_id}/results", responses=errors(404, 409, 422))
def read_comparison_results(
    comparison_id: IdPath, session: SessionDep, b: IdQuery = None
) -> dict[str, Any]:
    """Recall distortion, population statistics, flags, robustness and embedding summary."""
    row = _result(session, comparison_id, b)
    return {"comparison_id": comparison_id, "model_b_id": row.model_b_id, **row.summary}


@router.get("/{comparison_id}/table", response_model=TablePage, responses=errors(404, 409, 422))
def read_comparison_table(
    comparison_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    b: IdQuery = None,
    label: int | None = Query(None, ge=0, description="only samples of this true class"),
    category: str | None = Query(None, description="flip category"),
    pie: bool | None = Query(None, description="pruning-identified exemplars only"),
    made_fragile: bool | None = Query(None, description="made fragile by pruning"),
    range_: list[str] = Query([], alias="range", description="column:min:max, repeatable"),
    sort: str | None = Query(None, description="column, or -column for descending"),
    columns: list[str] | None = Query(None, description="columns to return (default all)"),
    format: Literal["records", "columns"] = "columns",
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT),
) -> TablePage:
    """Per-sample A-vs-B records (flips, PIE, fragility, geometry shifts, embedding), paged."""
    row = _result(session, comparison_id, b)
    table = load_samples_table(store, row.samples_sha)
    equals = {"label": label, "category": category, "pie": pie, "made_fragile": made_fragile}
    return page(filter_table(table, equals, range_, sort), offset, limit, format, columns)


@router.get("/{comparison_id}/similarity", responses=errors(404, 409, 422))
def read_comparison_similarity(comparison_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """Geometric similarity map of every (model, corruption) pair, with its spanning tree."""
    comp = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    if not comp.summary or "similarity" not in comp.summary:
        raise HTTPException(
            status_code=409,
            detail="comparison results are not ready: its compare job has not "
            "finished (see job_id)",
        )
    return dict(comp.summary["similarity"])


@router.get("/{comparison_id}/regions", responses=errors(404, 409, 422))
def read_comparison_regions(comparison_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """Linear-region statistics of A and every B (submit a `regions` job first)."""
    get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    rows = session.scalars(
        select(RegionResultRow).where(RegionResultRow.comparison_id == comparison_id)
    ).all()
    if not rows:
        raise HTTPException(
            status_code=409,
            detail="no linear-region results yet: submit a job of kind 'regions' for this "
            "comparison",
        )
    return {"data": [{"model_id": r.model_id, **r.summary} for r in rows], "count": len(rows)}


NO_LAYERS = "no layer results yet: submit a job of kind 'layers' for this comparison"


@router.get("/{comparison_id}/layers", response_model=LayersPublic, responses=errors(404, 422))
def read_comparison_layers(comparison_id: IdPath, session: SessionDep) -> LayersPublic:
    """Per prunable layer of A and each B: sparsity, kept channels, weight change, CKA,
    dead-ReLU rates and weight histograms (submit a `layers` job first)."""
    comp = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    rows = session.scalars(
        select(LayerResultRow).where(LayerResultRow.comparison_id == comparison_id)
    ).all()
    if not rows:
        raise HTTPException(status_code=404, detail=NO_LAYERS)
    order = {mid: i for i, mid in enumerate(comp.model_b_ids)}
    rows = sorted(rows, key=lambda r: (order.get(r.model_b_id, len(order)), r.model_b_id))
    results = [{"model_b_id": r.model_b_id, "job_id": r.job_id, **r.summary} for r in rows]
    return LayersPublic.model_validate({"comparison_id": comparison_id, "results": results})


NO_FOURIER = (
    "no Fourier sensitivity yet: submit a job of kind 'fourier' for this comparison "
    '(POST /api/jobs {"kind": "fourier", "spec": {"comparison_id": ...}})'
)


@router.get("/{comparison_id}/fourier", response_model=FourierPublic, responses=errors(404, 422))
def read_comparison_fourier(comparison_id: IdPath, session: SessionDep) -> FourierPublic:
    """Fourier heat maps of A and each B: test error per 2-D frequency (the latest succeeded
    `fourier` job's)."""
    comp = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    jobs = session.scalars(
        select(JobRow)
        .where(JobRow.kind == "fourier", JobRow.status == "succeeded")
        .order_by(JobRow.id.desc())
    )
    for job in jobs:
        result = job.result or {}
        if (job.spec or {}).get("comparison_id") != comparison_id or not result:
            continue
        first = (result.get("models") or [{}])[0]
        # a job of a deleted comparison whose id was reused: not this comparison's
        if first.get("model_id") == comp.model_a_id and result.get("dataset_id") == comp.dataset_id:
            return FourierPublic.model_validate({**result, "job_id": job.id})
    raise HTTPException(status_code=404, detail=NO_FOURIER)


@router.get(
    "/{comparison_id}/regions/{model_id}/table",
    response_model=TablePage,
    responses=errors(404, 422),
)
def read_comparison_regions_table(
    comparison_id: IdPath,
    model_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    which: Literal["segments", "samples"] = Query(
        "samples",
        description="segments: exact counts per segment; samples: per-sample distances, with "
        "the decision interval decision_lower (certified) and decision_upper (nearest exact "
        "crossing found, null if none) where the result has them (newer regions jobs)",
    ),
    sort: str | None = Query(None, description="column, or -column for descending"),
    format: Literal["records", "columns"] = "columns",
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT),
) -> TablePage:
    """Per-segment counts or per-sample region measures of one model, paged."""
    get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    row = session.scalars(
        select(RegionResultRow).where(
            RegionResultRow.comparison_id == comparison_id, RegionResultRow.model_id == model_id
        )
    ).first()
    if row is None:
        raise HTTPException(status_code=404, detail="Region results not found")
    sha = row.segments_sha if which == "segments" else row.samples_sha
    table = filter_table(load_samples_table(store, sha), {}, [], sort)
    return page(table, offset, limit, format, None)


@router.get("/{comparison_id}/regions/{model_id}/slice", responses=errors(404, 422))
def read_comparison_region_map(
    comparison_id: IdPath, model_id: IdPath, session: SessionDep, store: StoreDep
) -> dict[str, Any]:
    """The exact 2-D region map of one model: polygons in (u, v), their predicted classes and
    the decision boundary, on the plane through the same three samples for A and every B."""
    get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    row = session.scalars(
        select(RegionResultRow).where(
            RegionResultRow.comparison_id == comparison_id, RegionResultRow.model_id == model_id
        )
    ).first()
    if row is None:
        raise HTTPException(status_code=404, detail="Region results not found")
    sha = row.summary.get("slice", {}).get("artifact_sha")
    if sha is None:
        raise HTTPException(status_code=404, detail="Region map not found")
    return dict(json.loads(store.get_bytes(sha)))


SAMPLE_NOT_FOUND = "Sample not found"
NO_ATTRIBUTION = "no attribution for this sample yet: submit a job of kind 'attribution'"


def _compact(value: float) -> float | None:
    """About float32 precision (6 significant digits) for compact JSON; None if not finite."""
    v = float(value)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _position(table: pd.DataFrame, index: int) -> int:
    """Row of the sample with dataset index ``index`` in a per-sample table (404 if none)."""
    hits = np.flatnonzero(table["index"].to_numpy() == index)
    if hits.size == 0:
        raise HTTPException(status_code=404, detail=SAMPLE_NOT_FOUND)
    return int(hits[0])


def _model_detail(model_id: int, table: pd.DataFrame, pos: int) -> SampleModelDetail:
    row = table.iloc[pos]
    probs = prob_columns(table.iloc[[pos]])[0]
    top = np.argsort(-probs, kind="stable")[:5]
    return SampleModelDetail(
        model_id=model_id,
        pred=int(row["pred"]),
        correct=bool(row["correct"]),
        confidence=_compact(row["confidence"]) or 0.0,
        top5=[TopClass(label=int(c), prob=_compact(probs[c]) or 0.0) for c in top],
        angle=_compact(row["angle_true"]),
        length=_compact(row["length"]) or 0.0,
        length_z=_compact(row["length_z"]) or 0.0,
        margin=_compact(row["margin"]),
    )


def _correct_under(
    records: pd.DataFrame, samples: pd.DataFrame, corruption: str, severity: int
) -> tuple[np.ndarray, np.ndarray]:
    """(correct on the clean input, correct on the corrupted one) per sample of ``samples``'
    order, for one (corruption, severity); samples the records lack count as correct."""
    rows = records[
        (records["corruption"].astype(str) == corruption) & (records["severity"] == severity)
    ]
    if rows.empty:
        raise HTTPException(
            status_code=404,
            detail=f"no outcomes under {corruption} at severity {severity} in this analysis",
        )
    index = samples["index"].to_numpy()
    correct = pd.Series(rows["correct"].to_numpy(dtype=bool), index=rows["index"].to_numpy())
    corrupted = correct.reindex(index, fill_value=True).to_numpy(dtype=bool)
    return samples["correct"].to_numpy(dtype=bool), corrupted


@router.get(
    "/{comparison_id}/broken", response_model=BrokenSamples, responses=errors(404, 409, 422)
)
def read_comparison_broken(
    comparison_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    corruption: str = Query(..., max_length=100, description="a corruption the analyses ran"),
    severity: int = Query(..., ge=1, le=5),
    b: IdQuery = None,
) -> BrokenSamples:
    """The test samples one corruption at one severity broke in B and not in A: correct on
    the clean input and wrong on the corrupted one in B, not so in A (SCIENCE.md sect. 3,
    corruption-fragile; "pruning made it fragile" for this one setting)."""
    result = _result(session, comparison_id, b)
    _comp, b_id, an_a, an_b = _resolve(session, comparison_id, result.model_b_id)
    if not (an_a.corruptions_sha and an_b.corruptions_sha):
        raise HTTPException(
            status_code=404, detail="this comparison was analysed without corruptions"
        )
    ta = load_samples_table(store, an_a.samples_sha)
    tb = load_samples_table(store, an_b.samples_sha)
    fragile = []
    for an, samples in ((an_a, ta), (an_b, tb)):
        records = load_samples_table(store, str(an.corruptions_sha))
        fragile.append(corruption_fragile(*_correct_under(records, samples, corruption, severity)))
    if not np.array_equal(ta["index"].to_numpy(), tb["index"].to_numpy()):
        raise HTTPException(status_code=409, detail="A and B were analysed on different samples")
    broken = made_fragile_by_pruning(fragile[0], fragile[1])
    ids = [int(i) for i in ta["index"].to_numpy()[broken]]
    return BrokenSamples(
        comparison_id=comparison_id,
        model_b_id=b_id,
        corruption=corruption,
        severity=severity,
        fragile_a=int(fragile[0].sum()),
        fragile_b=int(fragile[1].sum()),
        ids=ids,
        count=len(ids),
    )


def _sample_corruptions(
    records_a: pd.DataFrame, records_b: pd.DataFrame, index: int
) -> SampleCorruptions:
    """Outcomes of one sample under the (corruption, severity) pairs both analyses have."""
    ra = records_a[records_a["index"] == index]
    rb = records_b[records_b["index"] == index]
    names_b = set(rb["corruption"].astype(str))
    names = [n for n in dict.fromkeys(ra["corruption"].astype(str)) if n in names_b]
    sevs = sorted({int(v) for v in ra["severity"]} & {int(v) for v in rb["severity"]})

    def grid(records: pd.DataFrame, column: str) -> list[list[Any]]:
        keyed = {
            (str(c), int(v)): x
            for c, v, x in zip(
                *(records[k] for k in ("corruption", "severity", column)), strict=True
            )
        }
        return [[keyed[(n, v)] for v in sevs] for n in names]

    pa, pb = grid(ra, "pred"), grid(rb, "pred")
    ca, cb = grid(ra, "correct"), grid(rb, "correct")
    return SampleCorruptions(
        names=names,
        severities=sevs,
        pred_a=[[int(p) for p in row] for row in pa],
        pred_b=[[int(p) for p in row] for row in pb],
        correct_a=[[bool(c) for c in row] for row in ca],
        correct_b=[[bool(c) for c in row] for row in cb],
    )


def _attribution_row(
    session: Session, comparison_id: int, b_id: int, index: int, params_key: str
) -> AttributionResultRow | None:
    return session.scalars(
        select(AttributionResultRow).where(
            AttributionResultRow.comparison_id == comparison_id,
            AttributionResultRow.model_b_id == b_id,
            AttributionResultRow.sample_index == index,
            AttributionResultRow.params_key == params_key,
        )
    ).first()


def _attribution_status(
    session: Session, comp: ComparisonRow, b_id: int, index: int
) -> AttributionStatus:
    """The stored attribution with default parameters, else the newest job computing it."""
    key = AttributionSpec(comparison_id=comp.id, index=index).params_key()
    row = _attribution_row(session, comp.id, b_id, index, key)
    if row is not None:
        job = session.get(JobRow, row.job_id) if row.job_id is not None else None
        return AttributionStatus(
            status="succeeded",
            job_id=row.job_id,
            progress=1.0,
            message=job.stage if job is not None else None,
        )
    jobs = session.scalars(
        select(JobRow).where(JobRow.kind == "attribution").order_by(JobRow.id.desc())
    ).all()
    for job in jobs:
        try:
            spec = AttributionSpec.model_validate(job.spec)
        except ValueError:  # a spec written by hand or by another version
            continue
        spec_b = comp.model_b_ids[0] if spec.model_b_id is None else spec.model_b_id
        if (spec.comparison_id, spec_b, spec.index) == (comp.id, b_id, index) and (
            spec.params_key() == key
        ):
            return AttributionStatus(
                status=job.status,  # type: ignore[arg-type]
                job_id=job.id,
                progress=job.progress,
                message=job.stage,
                error=job.error,
            )
    return AttributionStatus(status="none")


@router.get(
    "/{comparison_id}/samples/{index}", response_model=SampleDetail, responses=errors(404, 409, 422)
)
def read_comparison_sample(
    comparison_id: IdPath,
    index: IndexPath,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    b: IdQuery = None,
) -> SampleDetail:
    """One test sample in A and B: predictions, top classes, geometry, flags, corruption
    outcomes and the state of its geometric attribution."""
    result = _result(session, comparison_id, b)
    comp, b_id, an_a, an_b = _resolve(session, comparison_id, result.model_b_id)
    ta = load_samples_table(store, an_a.samples_sha)
    tb = load_samples_table(store, an_b.samples_sha)
    pos_a, pos_b = _position(ta, index), _position(tb, index)
    table = load_samples_table(store, result.samples_sha)
    flags = table.iloc[_position(table, index)]
    corruptions = None
    if an_a.corruptions_sha and an_b.corruptions_sha:
        corruptions = _sample_corruptions(
            load_samples_table(store, an_a.corruptions_sha),
            load_samples_table(store, an_b.corruptions_sha),
            index,
        )
    dataset = session.get(DatasetRow, comp.dataset_id)
    images = dataset is not None and len(dataset.input_shape) in (2, 3)
    base = request.scope.get("root_path", "")
    return SampleDetail(
        comparison_id=comparison_id,
        model_b_id=b_id,
        index=index,
        label=int(ta["label"].iat[pos_a]),
        image_url=(
            f"{base}/api/datasets/{comp.dataset_id}/images/{SPLIT}/{index}.png" if images else None
        ),
        category=str(flags["category"]),  # type: ignore[arg-type]
        pie=bool(flags["pie"]),
        made_fragile=bool(flags["made_fragile"]) if "made_fragile" in table.columns else None,
        a=_model_detail(comp.model_a_id, ta, pos_a),
        b=_model_detail(b_id, tb, pos_b),
        corruptions=corruptions,
        attribution=_attribution_status(session, comp, b_id, index),
    )


NO_FEATURES = (
    "no penultimate features stored for this comparison's models: their analyses predate "
    "them; run the compare job again"
)


@lru_cache(maxsize=4)
def _unit_features(url: str, sha: str) -> np.ndarray:
    """A stored feature file's rows scaled to unit length (float32), read once per process."""
    from backend.analysis.neighbours import normalise_rows
    from backend.storage import ArtifactStore

    raw = np.load(io.BytesIO(ArtifactStore(url).get_bytes(sha)), allow_pickle=False)
    unit = normalise_rows(raw)
    unit.flags.writeable = False
    return unit


@router.get(
    "/{comparison_id}/neighbours/{index}",
    response_model=SampleNeighbours,
    responses=errors(404, 409, 422),
)
def read_comparison_neighbours(
    comparison_id: IdPath,
    index: IndexPath,
    session: SessionDep,
    store: StoreDep,
    b: IdQuery = None,
    k: int | None = Query(
        None, ge=1, le=200, description="neighbours per side (default: the comparison's k)"
    ),
) -> SampleNeighbours:
    """One test sample's k nearest test samples in A and in B, and their Jaccard similarity."""
    from backend.analysis.neighbours import DEFAULT_K, knn_cosine, shared_neighbours

    result = _result(session, comparison_id, b)
    comp, b_id, an_a, an_b = _resolve(session, comparison_id, result.model_b_id)
    if not an_a.features_sha or not an_b.features_sha:
        raise HTTPException(status_code=409, detail=NO_FEATURES)
    samples = load_samples_table(store, an_a.samples_sha)
    pos = _position(samples, index)
    n = len(samples)
    if k is None:
        k = int((result.summary or {}).get("neighbours", {}).get("k") or min(DEFAULT_K, n - 1))
    if not 1 <= k <= n - 1:
        raise HTTPException(
            status_code=422,
            detail=f"k={k} should be in [1, N - 1] = [1, {n - 1}] for this comparison's {n} "
            "test samples",
        )
    order = samples["index"].to_numpy()
    lists = []
    for sha in (an_a.features_sha, an_b.features_sha):
        unit = _unit_features(store.url, sha)
        if unit.shape[0] != n:
            raise HTTPException(status_code=409, detail=NO_FEATURES)
        lists.append([int(order[j]) for j in knn_cosine(unit, k, rows=[pos], normalised=True)[0]])
    shared = shared_neighbours(lists[0], lists[1])
    return SampleNeighbours(
        comparison_id=comparison_id,
        model_b_id=b_id,
        index=index,
        k=k,
        a=lists[0],
        b=lists[1],
        shared=shared,
        jaccard=len(shared) / (2 * k - len(shared)),
    )


@router.get(
    "/{comparison_id}/samples/{index}/attribution",
    response_model=Attribution,
    responses=errors(404, 409, 422),
)
def read_comparison_sample_attribution(
    comparison_id: IdPath,
    index: IndexPath,
    session: SessionDep,
    store: StoreDep,
    b: IdQuery = None,
    patch: int | None = Query(
        None, ge=1, le=64, description="patch side in pixels; default: an 8 x 8 grid"
    ),
    stride: int | None = Query(None, ge=1, le=64, description="default: patch"),
    fill: Literal["mean", "zero"] = "mean",
    severity: int | None = Query(None, ge=1, le=5, description="default: every severity"),
) -> dict[str, Any]:
    """The stored geometric attribution of one sample in A and B (submit a job of kind
    'attribution' first): occlusion heatmaps of angle, length and margin, corrupted versions."""
    comp, b_id = _choose_b(session, comparison_id, b)
    dataset = get_or_404(session, DatasetRow, comp.dataset_id, DATASET_NOT_FOUND)
    if not 0 <= index < dataset.n_test:
        raise HTTPException(status_code=404, detail=SAMPLE_NOT_FOUND)
    spec = AttributionSpec(
        comparison_id=comparison_id,
        index=index,
        patch=patch,
        stride=stride,
        fill=fill,
        severity=severity,
    )
    row = _attribution_row(session, comparison_id, b_id, index, spec.params_key())
    if row is None:
        raise HTTPException(status_code=409, detail=NO_ATTRIBUTION)
    return {**json.loads(store.get_bytes(row.artifact_sha)), "job_id": row.job_id}


ADD_DRY_RUN_ANSWER = "dry_run=true: the models would be added (nothing was written)"


@router.post(
    "/{comparison_id}/models",
    response_model=ComparisonPublic,
    status_code=201,
    responses={
        200: {"model": ComparisonModelsAdd, "description": ADD_DRY_RUN_ANSWER},
        **errors(400, 404, 409, 422, 503),
    },
)
def add_comparison_models(
    comparison_id: IdPath,
    body: ComparisonModelsAdd,
    session: SessionDep,
    executor: ExecutorDep,
    dry_run: DryRunQuery = False,
) -> Any:
    """Add models B to a comparison and submit its compare job, which computes only what they
    need (A's analysis, the other Bs' results and embeddings are kept while what they were
    computed from is unchanged) and then the similarity map over all models: 201 with the
    comparison (``job_id``: that job); 422 when refused, with nothing written (the first
    problem: ``{"detail": "model 5 is already in comparison 2"}``); 409 while a compare job
    of the comparison is still going; 503 when the job queue is unreachable.

    ``dry_run=true`` runs the same checks and writes and queues nothing: 200 with the body,
    or 422 with every problem at its field (``{"loc": ["body", "model_b_ids", 1], ...}``).
    """
    comp = get_or_404(session, ComparisonRow, comparison_id, NOT_FOUND)
    try:
        plan = submit.validate_added_models(session, comp, body.model_b_ids)
    except submit.SpecInvalid as exc:
        raise refused(exc, dry_run, root="body") from exc
    busy = submit.active_compare_job(session, comp.id)
    if busy is not None:
        raise HTTPException(
            status_code=409,
            detail=f"comparison {comp.id}'s compare job {busy.id} is still {busy.status}; "
            "add models once it has finished",
        )
    if dry_run:
        return JSONResponse(body.model_dump(mode="json"), status_code=200)
    start = max((m.position for m in comp.members), default=-1) + 1
    added = [
        ComparisonMemberRow(model_id=mid, position=start + i)
        for i, mid in enumerate(body.model_b_ids)
    ]
    comp.members.extend(added)
    session.commit()
    try:
        job = submit.enqueue(session, executor, "compare", plan.spec)
    except submit.QueueUnavailable as exc:  # leave no member without a job computing it
        for member in added:
            comp.members.remove(member)
        session.commit()
        raise refused(exc) from exc
    session.refresh(comp)
    return comparison_public(comp, job.id)
