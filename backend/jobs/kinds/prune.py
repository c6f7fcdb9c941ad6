"""Prune a registered model with a registry method, then fine-tune it."""

from __future__ import annotations

from typing import Any

from backend.db.tables import JobRow
from backend.jobs.common import accuracy, fit, load_dataset, load_model, save_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import PruneSpec
from backend.pruning import apply_masks
from backend.pruning import create as create_method


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = PruneSpec.model_validate(job.spec)
    ctx.report(0.0, "loading model", force=True)
    parent, model = load_model(ctx, spec.model_id)
    if parent.dataset_id is None:
        raise ValueError(f"model {parent.id} has no dataset to fine-tune on")
    ds_row, ds = load_dataset(ctx, parent.dataset_id)
    x, y = tensors(ds, "train")
    method = create_method(spec.method, sparsity=spec.sparsity, **spec.params)
    ctx.report(0.05, f"pruning: {spec.method} to {spec.sparsity:.0%}", force=True)
    batch = None
    if getattr(method, "needs_batch", False):
        n = min(len(x), spec.finetune.batch_size)
        batch = (x[:n].to(ctx.device), y[:n].to(ctx.device))
    apply_masks(model, method.compute_masks(model, batch))
    ctx.check_cancelled()
    fit(ctx, model, x, y, spec.finetune, start=0.1, span=0.85, label="fine-tuning")
    ctx.report(0.96, "evaluating", force=True)
    acc = accuracy(model, ds, ctx.device)
    name = spec.name or f"{parent.name} / {spec.method} {spec.sparsity:.0%}"
    model_id = save_model(
        ctx,
        job,
        model,
        name=name,
        architecture=parent.architecture,
        arch_kwargs=parent.arch_kwargs,
        dataset_id=ds_row.id,
        accuracy=acc,
        parent_id=parent.id,
        pruning_method=spec.method,
        pruning_params={
            "sparsity": spec.sparsity,
            **spec.params,
            "finetune": spec.finetune.model_dump(),
        },
    )
    return {"model_id": model_id, "accuracy": acc}
