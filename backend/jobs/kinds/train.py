"""Train a network from scratch on a registered dataset."""

from __future__ import annotations

from typing import Any

import torch

from backend.data.batches import model_input
from backend.db.tables import JobRow
from backend.jobs.common import (
    accuracy,
    fill_arch_kwargs,
    fit,
    load_dataset,
    save_model,
    tensors,
)
from backend.jobs.context import JobContext
from backend.jobs.specs import TrainSpec
from backend.pruning.report import compression_report
from models.registry import create as create_model


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = TrainSpec.model_validate(job.spec)
    ctx.report(0.0, "loading dataset", force=True)
    ds_row, ds = load_dataset(ctx, spec.dataset_id)
    kwargs = fill_arch_kwargs(spec.architecture, spec.arch_kwargs, ds)
    torch.manual_seed(spec.seed)
    model = create_model(spec.architecture, **kwargs).to(ctx.device)
    x, y = tensors(ds, "train")
    fit(ctx, model, x, y, spec, start=0.0, span=0.95, label="training")
    ctx.report(0.96, "evaluating: accuracy, FLOPs and latency", force=True)
    acc = accuracy(model, ds, ctx.device, should_stop=ctx.should_stop)
    # the original's own figures (FLOPs, latency), the reference its pruned children are read
    # against
    example = model_input(x[: min(len(x), spec.batch_size)].to(ctx.device))
    report = compression_report(model, model, example, device=ctx.device, repeats=10)
    name = spec.name or f"{spec.architecture} on {ds_row.name}"
    model_id = save_model(
        ctx,
        job,
        model,
        name=name,
        architecture=spec.architecture,
        arch_kwargs=kwargs,
        dataset_id=ds_row.id,
        accuracy=acc,
        report=report,
    )
    return {"model_id": model_id, "accuracy": acc}
