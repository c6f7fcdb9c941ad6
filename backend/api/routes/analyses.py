"""Analyses: per-model results on a dataset split, and their per-sample records."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from backend.api.deps import SessionDep, StoreDep, get_or_404, load_samples_table, prob_columns
from backend.api.public import ANALYSIS_NOT_FOUND, analysis_public
from backend.api.schemas import (
    AnalysesPublic,
    AnalysisPublic,
    IdPath,
    IdQuery,
    SamplePublic,
    SamplesPage,
    errors,
)
from backend.api.tables import MAX_LIMIT, TablePage, filter_table, page
from backend.db.tables import AnalysisRow

router = APIRouter(prefix="/analyses", tags=["analyses"])

NOT_FOUND = ANALYSIS_NOT_FOUND


@router.get("", response_model=AnalysesPublic, responses=errors(422))
def list_analyses(
    session: SessionDep, model_id: IdQuery = None, dataset_id: IdQuery = None
) -> AnalysesPublic:
    """Analyses, optionally of one model and/or one dataset."""
    stmt = select(AnalysisRow).order_by(AnalysisRow.id)
    if model_id is not None:
        stmt = stmt.where(AnalysisRow.model_id == model_id)
    if dataset_id is not None:
        stmt = stmt.where(AnalysisRow.dataset_id == dataset_id)
    rows = session.scalars(stmt).all()
    return AnalysesPublic(data=[analysis_public(r) for r in rows], count=len(rows))


@router.get("/{analysis_id}", response_model=AnalysisPublic, responses=errors(404, 422))
def read_analysis(analysis_id: IdPath, session: SessionDep) -> AnalysisPublic:
    """One analysis: accuracy, per-class recall and precision, confusion matrix."""
    return analysis_public(get_or_404(session, AnalysisRow, analysis_id, NOT_FOUND))


@router.get("/{analysis_id}/samples", response_model=SamplesPage, responses=errors(404, 422))
def read_analysis_samples(
    analysis_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> SamplesPage:
    """Per-sample records (prediction, confidence, probabilities), paged."""
    row = get_or_404(session, AnalysisRow, analysis_id, NOT_FOUND)
    table = load_samples_table(store, row.samples_sha)
    page = table.iloc[offset : offset + limit]
    probs = prob_columns(page)
    records = page[["index", "label", "pred", "correct", "confidence"]].to_dict("records")
    data = [
        SamplePublic(
            index=int(r["index"]),
            label=int(r["label"]),
            pred=int(r["pred"]),
            correct=bool(r["correct"]),
            confidence=float(r["confidence"]),
            probs=[float(p) for p in probs[i]],
        )
        for i, r in enumerate(records)
    ]
    return SamplesPage(data=data, count=len(table), offset=offset, limit=limit)


@router.get("/{analysis_id}/table", response_model=TablePage, responses=errors(404, 422))
def read_analysis_table(
    analysis_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    label: int | None = Query(None, description="only samples of this true class"),
    pred: int | None = Query(None, description="only samples predicted as this class"),
    correct: bool | None = None,
    range_: list[str] = Query([], alias="range", description="column:min:max, repeatable"),
    sort: str | None = Query(None, description="column, or -column for descending"),
    columns: list[str] | None = Query(None, description="columns to return (default all)"),
    format: Literal["records", "columns"] = "columns",
    offset: int = Query(0, ge=0),
    limit: int = Query(1000, ge=1, le=MAX_LIMIT),
) -> TablePage:
    """Per-sample predictions and geometry (angle, length, margin...), filtered and paged."""
    row = get_or_404(session, AnalysisRow, analysis_id, NOT_FOUND)
    table = load_samples_table(store, row.samples_sha)
    table = filter_table(table, {"label": label, "pred": pred, "correct": correct}, range_, sort)
    return page(table, offset, limit, format, columns)


@router.get("/{analysis_id}/robustness", responses=errors(404, 422))
def read_analysis_robustness(analysis_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """Accuracy per corruption x severity (analyses run with corruptions only)."""
    row = get_or_404(session, AnalysisRow, analysis_id, NOT_FOUND)
    robustness = row.summary.get("robustness")
    if robustness is None:
        raise HTTPException(status_code=404, detail="Analysis has no corruption results")
    return dict(robustness)


@router.get("/{analysis_id}/classes", responses=errors(404, 422))
def read_analysis_classes(analysis_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """Per-class geometry: direction norms and mean/std of angle, length and margin."""
    row = get_or_404(session, AnalysisRow, analysis_id, NOT_FOUND)
    return {"classes": row.summary.get("classes"), "feature_dim": row.summary.get("feature_dim")}
