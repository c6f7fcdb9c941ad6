"""Evaluate a model on a dataset split; per-sample results are stored as Parquet."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from backend.analysis.metrics import softmax, summarize
from backend.db.tables import AnalysisRow, JobRow, ModelRow
from backend.jobs.common import load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import AnalyzeSpec
from backend.pruning.finetune import predict


def samples_table(y: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """One row per sample: index, label, pred, correct, confidence, p0..p{C-1}."""
    probs = softmax(logits)
    pred = probs.argmax(axis=1)
    table = pd.DataFrame(
        {
            "index": np.arange(len(y), dtype=np.int64),
            "label": y.astype(np.int64),
            "pred": pred.astype(np.int64),
            "correct": pred == y,
            "confidence": probs.max(axis=1).astype(np.float32),
        }
    )
    for c in range(probs.shape[1]):
        table[f"p{c}"] = probs[:, c].astype(np.float32)
    return table


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = AnalyzeSpec.model_validate(job.spec)
    with ctx.session() as s:
        model_row = s.get(ModelRow, spec.model_id)
        if model_row is None:
            raise ValueError(f"model {spec.model_id} does not exist")
        dataset_id = spec.dataset_id or model_row.dataset_id
    if dataset_id is None:
        raise ValueError(f"model {spec.model_id} has no dataset; give dataset_id")
    analysis_id = analyze_model(ctx, job, spec.model_id, dataset_id, spec.split)
    with ctx.session() as s:
        row = s.get(AnalysisRow, analysis_id)
        assert row is not None
        return {"analysis_id": analysis_id, "accuracy": row.accuracy}


def analyze_model(ctx: JobContext, job: JobRow, model_id: int, dataset_id: int, split: str) -> int:
    """Evaluate a model on a dataset split, store the per-sample table; returns the analysis id.

    Re-analysing the same (model, dataset, split) replaces the earlier result.
    """
    ctx.report(0.0, "loading model", force=True)
    model_row, model = load_model(ctx, model_id)
    ds_row, ds = load_dataset(ctx, dataset_id)
    x, y = tensors(ds, split)
    ctx.report(0.2, f"predicting {len(y)} samples", force=True)
    logits = predict(model, x, device=ctx.device).cpu().numpy()
    ctx.report(0.8, "summarising", force=True)
    table = samples_table(y.numpy(), logits)
    summary = summarize(table["label"].to_numpy(), table["pred"].to_numpy(), ds.num_classes)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    sha = ctx.store.put_bytes(buf.getvalue())
    with ctx.session() as s:
        row = s.scalars(
            select(AnalysisRow).where(
                AnalysisRow.model_id == model_row.id,
                AnalysisRow.dataset_id == ds_row.id,
                AnalysisRow.split == split,
            )
        ).first()
        if row is None:
            row = AnalysisRow(model_id=model_row.id, dataset_id=ds_row.id, split=split)
            s.add(row)
        row.accuracy = summary.accuracy
        row.n_samples = len(table)
        row.summary = summary.to_json()
        row.samples_sha = sha
        row.job_id = job.id
        s.flush()
        return row.id
