"""Geometric attribution of one test sample in A and one B of a comparison (SCIENCE.md sect. 1).

On demand, per (comparison, B, sample, parameters): the occlusion heatmaps of the change in
angle, length and margin (:func:`backend.analysis.attribution.occlusion_attribution`) for A and
for B on the same sample, and, when the comparison's analyses of A ran with corruptions and the
inputs are images, the sample's corrupted versions exactly as the analyze job fed them to the
models (the whole batch of CORRUPTION_BATCH samples holding it corrupted with that batch's seed,
see :func:`backend.jobs.kinds.analyze.corrupted_batch`), each predicted by A and B and rendered as
a small PNG. The result is one JSON artifact and one ``attribution_results`` row, upserted, so a
retried or repeated job leaves exactly one row per (comparison, B, sample, parameters).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.analysis.attribution import (
    ATTRIBUTION_METRICS,
    GeometricAttribution,
    default_patch,
    occlusion_attribution,
)
from backend.analysis.features import extract_features
from backend.data.batches import model_input
from backend.data.images import is_image, png_data_url, sample_png
from backend.db.tables import AnalysisRow, AttributionResultRow, ComparisonRow, JobRow, utcnow
from backend.jobs.common import JobInputError, load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.kinds.analyze import corrupted_batch, corruption_position
from backend.jobs.specs import AttributionSpec

SPLIT = "test"
# corruptions are only defined for images of at least this side (backend.data.corruptions)


def compact(value: float) -> float | None:
    """A float for JSON at about float32 precision (6 significant digits); None if not finite."""
    v = float(value)
    return float(f"{v:.6g}") if math.isfinite(v) else None


def _grid(values: np.ndarray) -> list[list[float | None]]:
    return [[compact(v) for v in row] for row in values]


def _side(att: GeometricAttribution) -> dict[str, Any]:
    return {m: _grid(att.deltas[m]) for m in ATTRIBUTION_METRICS}


def corruption_settings(
    robustness: dict[str, Any] | None, severity: int | None
) -> list[tuple[str, int]]:
    """(corruption, severity) pairs to render, in the analyses' order (names x severities).

    Raises:
        JobInputError: When ``severity`` is not one the analyses used.
    """
    if not robustness:
        return []
    names = [str(n) for n in robustness["corruptions"]]
    severities = [int(s) for s in robustness["severities"]]
    if severity is not None:
        if severity not in severities:
            used = ", ".join(str(s) for s in severities)
            raise JobInputError(
                f"severity={severity} was not used by the comparison's analyses (used: {used})"
            )
        severities = [severity]
    return [(n, s) for n in names for s in severities]


def find_analysis(s: Session, model_id: int, dataset_id: int) -> AnalysisRow | None:
    return s.scalars(  # type: ignore[no-any-return]
        select(AnalysisRow).where(
            AnalysisRow.model_id == model_id,
            AnalysisRow.dataset_id == dataset_id,
            AnalysisRow.split == SPLIT,
        )
    ).first()


def _upsert(s: Session, values: dict[str, Any]) -> int:
    """Insert the row, or replace the result of the same (comparison, B, sample, params)."""
    key = ("comparison_id", "model_b_id", "sample_index", "params_key")
    update = {"artifact_sha": values["artifact_sha"], "job_id": values["job_id"]}
    dialect = s.get_bind().dialect.name
    set_ = {**update, "created_at": utcnow()}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(AttributionResultRow).values(**values, created_at=utcnow())
        s.execute(pg.on_conflict_do_update(index_elements=key, set_=set_))
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(AttributionResultRow).values(**values, created_at=utcnow())
        s.execute(lite.on_conflict_do_update(index_elements=key, set_=set_))
    else:  # other databases: read, then write (a concurrent twin may then fail on the key)
        row = s.scalars(
            select(AttributionResultRow).filter_by(**{k: values[k] for k in key})
        ).first()
        if row is None:
            s.add(AttributionResultRow(**values))
        else:
            row.artifact_sha, row.job_id = values["artifact_sha"], values["job_id"]
            row.created_at = utcnow()
    s.flush()
    row_id = s.scalars(
        select(AttributionResultRow.id).filter_by(**{k: values[k] for k in key})
    ).one()
    return int(row_id)


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = AttributionSpec.model_validate(job.spec)
    with ctx.session() as s:
        comp = s.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise JobInputError(f"comparison {spec.comparison_id} does not exist")
        b_ids = comp.model_b_ids
        b_id = b_ids[0] if spec.model_b_id is None else spec.model_b_id
        if b_id not in b_ids:
            raise JobInputError(
                f"model_b_id={b_id}: model {b_id} is not one of comparison "
                f"{spec.comparison_id}'s pruned models ({', '.join(map(str, b_ids))})"
            )
        a_id, dataset_id = comp.model_a_id, comp.dataset_id
        an_a = find_analysis(s, a_id, dataset_id)
        robustness = an_a.summary.get("robustness") if an_a and an_a.corruptions_sha else None
    ctx.report(0.0, "loading models and data", force=True)
    _, ds = load_dataset(ctx, dataset_id)
    x, y = tensors(ds, SPLIT)
    if not 0 <= spec.index < len(x):
        raise JobInputError(
            f"index={spec.index} is not in the test split of dataset {dataset_id} "
            f"({len(x)} samples: 0..{len(x) - 1})"
        )
    pairs = corruption_settings(robustness, spec.severity) if is_image(ds.input_shape) else []
    models = {"a": load_model(ctx, a_id)[1], "b": load_model(ctx, b_id)[1]}
    sample, label = model_input(x[spec.index]), int(y[spec.index])  # uint8 -> [0, 1]

    patch = spec.patch if spec.patch is not None else default_patch(tuple(sample.shape))
    attributions: dict[str, GeometricAttribution] = {}
    span = 0.4
    for k, (side, model) in enumerate(models.items()):
        lo = 0.05 + span * k
        name = f"model {a_id if side == 'a' else b_id}"

        def on_batch(done: int, total: int, lo: float = lo, name: str = name) -> None:
            ctx.check_cancelled()
            ctx.report(lo + span * done / total, f"attribution of {name}: {done}/{total} patches")

        attributions[side] = occlusion_attribution(
            model,
            sample,
            label,
            patch=patch,
            stride=spec.stride,
            fill=spec.fill,
            device=ctx.device,
            on_batch=on_batch,
        )

    corrupted: list[dict[str, Any]] = []
    batch, row = corruption_position(spec.index)
    for i, (corruption, severity) in enumerate(pairs):
        ctx.check_cancelled()
        ctx.report(0.85 + 0.1 * i / len(pairs), f"corruption {corruption} severity {severity}")
        with torch.no_grad():
            xb = corrupted_batch(x, batch, corruption, severity, ctx.device)
        # predicted on the whole corrupted batch, as the analysis did, so that the float
        # arithmetic (batch size included) and hence the prediction is the recorded one
        check = ctx.check_cancelled
        preds = {
            side: int(
                extract_features(model, xb, device=ctx.device, cancel_check=check)
                .logits[row]
                .argmax()
            )
            for side, model in models.items()
        }
        corrupted.append(
            {
                "corruption": corruption,
                "severity": severity,
                "image": png_data_url(sample_png(xb[row].float().cpu().numpy())),
                "pred_a": preds["a"],
                "pred_b": preds["b"],
                "correct_a": preds["a"] == label,
                "correct_b": preds["b"] == label,
            }
        )

    ctx.report(0.97, "saving", force=True)
    att_a = attributions["a"]
    payload = {
        "comparison_id": spec.comparison_id,
        "model_b_id": b_id,
        "index": spec.index,
        "label": label,
        "patch": patch,
        "stride": att_a.stride,
        "fill": spec.fill,
        "severity": spec.severity,
        "grid": list(att_a.grid),
        "rows": att_a.rows.tolist(),
        "cols": att_a.cols.tolist(),
        "metrics": list(ATTRIBUTION_METRICS),
        "base": {
            side: {m: compact(att.base[m]) for m in ATTRIBUTION_METRICS}
            for side, att in attributions.items()
        },
        "a": _side(att_a),
        "b": _side(attributions["b"]),
        "corrupted": corrupted,
    }
    sha = ctx.store.put_bytes(json.dumps(payload, allow_nan=False).encode())
    params_key = spec.params_key()
    with ctx.session() as s:
        result_id = _upsert(
            s,
            {
                "comparison_id": spec.comparison_id,
                "model_b_id": b_id,
                "sample_index": spec.index,
                "params_key": params_key,
                "artifact_sha": sha,
                "job_id": job.id,
            },
        )
    return {
        "comparison_id": spec.comparison_id,
        "model_b_id": b_id,
        "index": spec.index,
        "params_key": params_key,
        "attribution_id": result_id,
        "corrupted": len(corrupted),
    }
