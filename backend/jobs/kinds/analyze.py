"""Evaluate a model on a dataset split: predictions, penultimate-feature geometry, corruptions.

Artifacts (all content-addressed):
- samples (Parquet): one row per sample: index, label, pred, correct, confidence, p0..p{C-1},
  and the geometry of SCIENCE.md sect. 1 (angle to the true and predicted class, length raw and
  z-scored, signed margin, angular margin, angle to every class a0..a{C-1});
- features (.npy): the (N, D) float32 penultimate features, for embeddings;
- corruptions (Parquet, optional): one row per (corruption, severity, sample) with the
  prediction and the three fingerprint metrics, from which robustness, corruption-fragile
  samples and geometric fingerprints are derived.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select

from backend.analysis.features import extract_features
from backend.analysis.geometry import class_geometry, sample_geometry
from backend.analysis.metrics import softmax, summarize
from backend.db.tables import AnalysisRow, JobRow, ModelRow
from backend.jobs.common import load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import AnalyzeSpec

CORRUPTION_BATCH = 1024
GEOMETRY_COLUMNS = ("angle_true", "angle_pred", "length", "length_z", "margin", "angular_margin")


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


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def parquet_bytes(table: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return buf.getvalue()


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = AnalyzeSpec.model_validate(job.spec)
    with ctx.session() as s:
        model_row = s.get(ModelRow, spec.model_id)
        if model_row is None:
            raise ValueError(f"model {spec.model_id} does not exist")
        dataset_id = spec.dataset_id or model_row.dataset_id
    if dataset_id is None:
        raise ValueError(f"model {spec.model_id} has no dataset; give dataset_id")
    analysis_id = analyze_model(
        ctx,
        job,
        spec.model_id,
        dataset_id,
        spec.split,
        corruptions=spec.corruptions,
        severities=spec.severities,
        feature_layer=spec.feature_layer,
    )
    with ctx.session() as s:
        row = s.get(AnalysisRow, analysis_id)
        assert row is not None
        return {"analysis_id": analysis_id, "accuracy": row.accuracy}


def corruption_batches(n: int) -> int:
    """How many batches of ``CORRUPTION_BATCH`` samples a split of ``n`` samples is cut into."""
    return -(-n // CORRUPTION_BATCH)


def corruption_position(index: int) -> tuple[int, int]:
    """(batch, row in that batch) of split sample ``index`` in :func:`corrupted_batch`."""
    return divmod(index, CORRUPTION_BATCH)


def corrupted_batch(x: torch.Tensor, b: int, name: str, severity: int, device: str) -> torch.Tensor:
    """Batch ``b`` (rows ``b * CORRUPTION_BATCH`` to ``(b + 1) * CORRUPTION_BATCH``) of a split
    under one corruption, exactly as :func:`corruption_records` feeds it to the model: moved
    to ``device`` first, then corrupted with seed ``b`` (each batch has its own seed, so the
    result does not depend on the batch size of anything but this scheme). Sample ``i`` of the
    split is row ``i - b * CORRUPTION_BATCH`` of batch ``b = i // CORRUPTION_BATCH``."""
    from backend.data.batches import model_input
    from backend.data.corruptions import corrupt

    start = b * CORRUPTION_BATCH
    xb = model_input(x[start : start + CORRUPTION_BATCH].to(device))  # uint8 -> [0, 1]
    return corrupt(xb, name, severity, seed=b)


def corruption_records(
    ctx: JobContext,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    names: Sequence[str],
    severities: Sequence[int],
    feature_layer: str | None,
    progress: tuple[float, float],
) -> pd.DataFrame:
    """Predictions and fingerprint metrics of every sample under every corruption."""
    frames = []
    pairs = [(n, s) for n in names for s in severities]
    lo, hi = progress
    for i, (name, severity) in enumerate(pairs):
        ctx.check_cancelled()
        ctx.report(lo + (hi - lo) * i / len(pairs), f"corruption {name} severity {severity}")
        # batched so memory stays bounded; each batch has its own seed, so the result does
        # not depend on the batch size of anything but this loop
        feats, logits = [], []
        for b in range(corruption_batches(len(x))):
            ctx.check_cancelled()  # a batch of large images takes seconds to corrupt
            out = extract_features(
                model,
                corrupted_batch(x, b, name, severity, ctx.device),
                device=ctx.device,
                layer=feature_layer,
                cancel_check=ctx.check_cancelled,
            )
            feats.append(out.features)
            logits.append(out.logits)
        features, all_logits = np.concatenate(feats), np.concatenate(logits)
        geom = sample_geometry(features, out.weight, out.bias, y)
        pred = all_logits.argmax(axis=1)
        frames.append(
            pd.DataFrame(
                {
                    "corruption": name,
                    "severity": np.full(len(y), severity, dtype=np.int8),
                    "index": np.arange(len(y), dtype=np.int32),
                    "pred": pred.astype(np.int16),
                    "correct": pred == y,
                    "angle_true": geom.angle_true.astype(np.float32),
                    "length": geom.length.astype(np.float32),
                    "margin": geom.margin.astype(np.float32),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["corruption"] = table["corruption"].astype("category")
    return table


def robustness_table(records: pd.DataFrame) -> dict[str, Any]:
    """Accuracy per corruption x severity: {"corruptions", "severities", "accuracy"[c][s]}."""
    acc = records.groupby(["corruption", "severity"], observed=True)["correct"].mean()
    names = list(dict.fromkeys(records["corruption"].astype(str)))
    sevs = sorted({int(s) for s in records["severity"]})
    return {
        "corruptions": names,
        "severities": sevs,
        "accuracy": [[float(acc.loc[(n, s)]) for s in sevs] for n in names],
    }


def analyze_model(
    ctx: JobContext,
    job: JobRow,
    model_id: int,
    dataset_id: int,
    split: str,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    feature_layer: str | None = None,
) -> int:
    """Evaluate a model on a dataset split and store its artifacts; returns the analysis id.

    Re-analysing the same (model, dataset, split) replaces the earlier result.
    """
    ctx.report(0.0, "loading model", force=True)
    model_row, model = load_model(ctx, model_id)
    ds_row, ds = load_dataset(ctx, dataset_id)
    x, y_t = tensors(ds, split)
    y = y_t.numpy()
    ctx.report(0.1, f"features of {len(y)} samples", force=True)
    out = extract_features(
        model, x, device=ctx.device, layer=feature_layer, cancel_check=ctx.check_cancelled
    )
    if out.logits.shape[1] != ds.num_classes:
        raise ValueError(
            f"model {model_id} predicts {out.logits.shape[1]} classes but dataset "
            f"{ds_row.name!r} has {ds.num_classes}"
        )
    geom = sample_geometry(out.features, out.weight, out.bias, y)
    table = samples_table(y, out.logits)
    for column in GEOMETRY_COLUMNS:
        table[column] = getattr(geom, column).astype(np.float32)
    for c in range(geom.angles.shape[1]):
        table[f"a{c}"] = geom.angles[:, c].astype(np.float32)
    classification = summarize(y, table["pred"].to_numpy(), ds.num_classes)
    summary = classification.to_json()
    summary["classes"] = class_geometry(geom, y, out.weight, ds.num_classes)
    summary["feature_dim"] = int(out.features.shape[1])
    sha = ctx.store.put_bytes(parquet_bytes(table))
    features_sha = ctx.store.put_bytes(npy_bytes(out.features.astype(np.float32)))
    corruptions_sha = None
    if corruptions:
        records = corruption_records(
            ctx, model, x, y, corruptions, severities, feature_layer, progress=(0.3, 0.95)
        )
        summary["robustness"] = robustness_table(records)
        corruptions_sha = ctx.store.put_bytes(parquet_bytes(records))
    ctx.report(0.97, "saving", force=True)
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
        row.accuracy = classification.accuracy
        row.n_samples = len(table)
        row.summary = summary
        row.samples_sha = sha
        row.features_sha = features_sha
        row.corruptions_sha = corruptions_sha
        row.job_id = job.id
        s.flush()
        return row.id
