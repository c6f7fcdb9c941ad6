"""Models (networks): list and read. Models are created by train and prune jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from backend.api.deps import SessionDep, get_or_404
from backend.api.schemas import IdPath, IdQuery, ModelPublic, ModelsPublic, errors
from backend.db.tables import ModelRow

router = APIRouter(prefix="/models", tags=["models"])

NOT_FOUND = "Model not found"


def model_public(row: ModelRow) -> ModelPublic:
    report = row.sparsity_report or {}
    ratio = report.get("compression_ratio") or (
        row.n_params / row.n_nonzero if row.n_nonzero else float("inf")
    )
    pruned = row.parent_id is not None  # an original's "speed-up" against itself is noise
    return ModelPublic.model_validate(
        {
            **row.__dict__,
            "compression_ratio": ratio,
            "theoretical_speedup": report.get("theoretical_speedup") if pruned else None,
            "measured_speedup": report.get("measured_speedup") if pruned else None,
            "report_note": report.get("note"),
        }
    )


@router.get("", response_model=ModelsPublic, responses=errors(422))
def list_models(session: SessionDep, parent_id: IdQuery = None) -> ModelsPublic:
    """All models, optionally only the children of one parent."""
    stmt = select(ModelRow).order_by(ModelRow.id)
    if parent_id is not None:
        stmt = stmt.where(ModelRow.parent_id == parent_id)
    rows = session.scalars(stmt).all()
    return ModelsPublic(data=[model_public(r) for r in rows], count=len(rows))


@router.get("/{model_id}/report", responses=errors(404, 422))
def read_model_report(model_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """The model's compression report: per-layer sparsity, FLOPs, measured latency."""
    row = get_or_404(session, ModelRow, model_id, NOT_FOUND)
    return dict(row.sparsity_report or {})


@router.get("/{model_id}", response_model=ModelPublic, responses=errors(404, 422))
def read_model(model_id: IdPath, session: SessionDep) -> ModelPublic:
    """One model with its sparsity and accuracy."""
    return model_public(get_or_404(session, ModelRow, model_id, NOT_FOUND))
