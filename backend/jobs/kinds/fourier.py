"""Fourier sensitivity heat maps of A and every B of a comparison (Yin et al., NeurIPS 2019;
SCIENCE.md sect. 7).

On the first n = min(n_samples, test size) test samples (the stored order): for every 2-D
frequency of the image size, the error rate of each model under ``x + v r U_ij``
(:func:`backend.analysis.fourier.fourier_error_maps`), every model on the same perturbed
inputs (same samples, same signs r, fixed by ``seed``), and each model's clean error. v
defaults to ``4 sqrt(D / 3072)`` for inputs of D values (:func:`backend.analysis.fourier
.default_v`). Inputs are clipped to [0, 1] after the perturbation when the test inputs lie in
[0, 1] (stored pixels always do), as images; otherwise (normalised inputs) not.

The result is the job's result JSON (no table of its own, as ``pruning_limit``): ``GET
/api/comparisons/{id}/fourier`` serves the latest succeeded job's. A cancelled or failed job
has no result, so it stores nothing.
"""

from __future__ import annotations

from typing import Any

from backend.analysis.fourier import (
    clean_errors,
    default_v,
    distinct_frequencies,
    fourier_error_maps,
)
from backend.data.batches import input_dtype, model_input
from backend.db.tables import ComparisonRow, JobRow
from backend.jobs.common import JobInputError, load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import FourierSpec

# perturbed images per forward pass: well under a second for the built-in networks on a CPU,
# and the runner's forward checks stop a larger network inside a pass
BATCH_SIZE = 128


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = FourierSpec.model_validate(job.spec)
    with ctx.session() as s:
        comp = s.get(ComparisonRow, spec.comparison_id)
        if comp is None:
            raise JobInputError(f"comparison {spec.comparison_id} does not exist")
        dataset_id, a_id, b_ids = comp.dataset_id, comp.model_a_id, list(comp.model_b_ids)
    ctx.report(0.0, "loading the test split and the models", force=True)
    _, ds = load_dataset(ctx, dataset_id)
    x_all, y_all = tensors(ds, "test")
    if x_all.ndim != 4:
        shape = tuple(int(d) for d in x_all.shape[1:])
        raise JobInputError(f"Fourier sensitivity needs (C, H, W) images; inputs are {shape}")
    n = min(spec.n_samples, int(x_all.shape[0]))
    if n < 1:
        raise JobInputError(f"dataset {dataset_id} has no test samples")
    models = []
    for model_id in [a_id, *b_ids]:
        ctx.check_cancelled()
        models.append(load_model(ctx, model_id)[1].eval())
    x = model_input(x_all[:n], input_dtype(models[0], x_all))
    y = y_all[:n].long()
    c, h, w = (int(d) for d in x.shape[1:])
    v = spec.v if spec.v is not None else default_v((c, h, w))
    in_unit_range = bool(x.min() >= 0) and bool(x.max() <= 1)
    clip = (0.0, 1.0) if in_unit_range else None
    ctx.report(0.02, "clean error")
    clean = clean_errors(
        models, x, y, batch_size=BATCH_SIZE, device=ctx.device, cancel_check=ctx.check_cancelled
    )
    frequencies = len(distinct_frequencies(h, w))
    stage = f"Fourier heat maps: {frequencies} frequencies x {n} samples x {len(models)} models"
    ctx.report(0.03, stage, force=True)
    maps = fourier_error_maps(
        models,
        x,
        y,
        v,
        seed=spec.seed,
        clip=clip,
        batch_size=BATCH_SIZE,
        device=ctx.device,
        cancel_check=ctx.check_cancelled,
        progress=lambda f, stage: ctx.report(0.03 + 0.96 * f, stage),
    )
    ctx.check_cancelled()
    roles = ["a"] + ["b"] * len(b_ids)
    return {
        "comparison_id": spec.comparison_id,
        "dataset_id": dataset_id,
        "n_samples": n,
        "v": v,
        "v_default": spec.v is None,
        "seed": spec.seed,
        "clipped": clip is not None,
        "channels": c,
        "height": h,
        "width": w,
        "frequencies": frequencies,
        "models": [
            {
                "model_id": model_id,
                "role": role,
                "clean_error": clean_error,
                "error": [[float(e) for e in row] for row in error_map],
            }
            for model_id, role, clean_error, error_map in zip(
                [a_id, *b_ids], roles, clean, maps, strict=True
            )
        ],
    }
