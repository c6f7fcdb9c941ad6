"""Rows as the API shows them (the ``*Public`` schemas), and the details of a missing row:
what several routers answer with, so that no router imports another."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from backend.api.schemas import AnalysisPublic, ComparisonPublic, JobPublic, ModelPublic
from backend.db.tables import AnalysisRow, ComparisonRow, JobRow, ModelRow
from backend.jobs.lifecycle import sweep_children, sweep_state
from backend.jobs.specs import FINAL_STATUSES

ANALYSIS_NOT_FOUND = "Analysis not found"
COMPARISON_NOT_FOUND = "Comparison not found"
DATASET_NOT_FOUND = "Dataset not found"
JOB_NOT_FOUND = "Job not found"
MODEL_NOT_FOUND = "Model not found"


def learning_distance(pruning_params: Any) -> float | None:
    """The learning distance the prune job recorded (``pruning_params["learning"]``), if any."""
    learning = pruning_params.get("learning") if isinstance(pruning_params, dict) else None
    value = learning.get("distance") if isinstance(learning, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


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
            "learning_distance": learning_distance(row.pruning_params),
        }
    )


def analysis_public(row: AnalysisRow) -> AnalysisPublic:
    s = row.summary
    return AnalysisPublic(
        id=row.id,
        model_id=row.model_id,
        dataset_id=row.dataset_id,
        split=row.split,
        accuracy=row.accuracy,
        n_samples=row.n_samples,
        recall=s["recall"],
        precision=s["precision"],
        support=s["support"],
        confusion=s["confusion"],
        created_at=row.created_at,
    )


def comparison_public(row: ComparisonRow, job_id: int | None = None) -> ComparisonPublic:
    return ComparisonPublic(
        id=row.id,
        name=row.name,
        dataset_id=row.dataset_id,
        model_a_id=row.model_a_id,
        model_b_ids=row.model_b_ids,
        job_id=job_id,
        created_at=row.created_at,
    )


def jobs_public(session: Session, rows: Sequence[JobRow]) -> list[JobPublic]:
    """Jobs as the API shows them. A sweep still going shows what its children say now
    (``lifecycle.sweep_state``): derived here, never written by a read."""
    going = [r.id for r in rows if r.kind == "sweep" and r.status not in FINAL_STATUSES]
    children = sweep_children(session, going)
    public = []
    for row in rows:
        job = JobPublic.model_validate(row)
        if row.id in children:
            state = sweep_state(row.status, children[row.id])
            job = JobPublic.model_validate({**job.model_dump(), **state})
        public.append(job)
    return public


def job_public(session: Session, row: JobRow) -> JobPublic:
    return jobs_public(session, [row])[0]
