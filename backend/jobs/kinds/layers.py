"""Per-layer comparison of A and every B of a comparison (SCIENCE.md sect. 7).

Per prunable layer, in A's forward-execution order: sparsity, kept channels, relative weight
change, linear CKA between A's and B's layer outputs on the first n = min(n_samples, test size)
test samples (the stored order, the same for every model), dead-ReLU rates and weight
histograms (:func:`backend.analysis.layers.compare_layers`). One ``layer_results`` row per B,
all written in one transaction at the end: a cancelled or failed job stores nothing, a job run
again replaces the rows of its comparison.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from backend.analysis.layers import compare_layers
from backend.db.tables import ComparisonRow, JobRow, LayerResultRow
from backend.jobs.common import load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import LayersSpec

BATCH_SIZE = 64  # a batch is well under a second for the built-in networks on a CPU


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = LayersSpec.model_validate(job.spec)
    with ctx.session() as s:
        comp = s.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise ValueError(f"comparison {spec.comparison_id} does not exist")
        dataset_id, a_id, b_ids = comp.dataset_id, comp.model_a_id, list(comp.model_b_ids)
    ctx.report(0.0, "loading the test split and the models", force=True)
    _, ds = load_dataset(ctx, dataset_id)
    x, _y = tensors(ds, "test")
    n = min(spec.n_samples, int(x.shape[0]))
    if n < 1:
        raise ValueError(f"dataset {dataset_id} has no test samples")
    _, model_a = load_model(ctx, a_id)
    models_b = []
    for model_id in b_ids:
        ctx.check_cancelled()
        models_b.append(load_model(ctx, model_id)[1])
    found = compare_layers(
        model_a,
        models_b,
        x[:n],
        batch_size=BATCH_SIZE,
        device=ctx.device,
        cancel_check=ctx.check_cancelled,
        progress=lambda f, stage: ctx.report(0.02 + 0.96 * f, stage),
    )
    ctx.check_cancelled()
    ctx.report(0.99, "storing the results", force=True)
    ids_out: dict[int, int] = {}
    # one transaction for every B: a failure part-way leaves no result that looks complete
    with ctx.session() as s:
        for model_id, rows in zip(b_ids, found, strict=True):
            row = s.scalars(
                select(LayerResultRow).where(
                    LayerResultRow.comparison_id == spec.comparison_id,
                    LayerResultRow.model_b_id == model_id,
                )
            ).first()
            if row is None:
                row = LayerResultRow(comparison_id=spec.comparison_id, model_b_id=model_id)
                s.add(row)
            row.summary = {"n_samples": n, "layers": [r.to_json() for r in rows]}
            row.job_id = job.id
            s.flush()
            ids_out[model_id] = row.id
    return {"comparison_id": spec.comparison_id, "n_samples": n, "layer_result_ids": ids_out}
