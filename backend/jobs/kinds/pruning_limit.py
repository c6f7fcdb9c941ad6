"""The predicted pruning limit of a model (Zhang et al., NeurIPS 2024; SCIENCE.md sect. 7).

On a fixed random draw of training batches (``seed``): eps, the standard deviation of the
per-batch training loss (``eps_batches`` batches); the Hessian eigenvalue density of the mean
loss over the first ``batches`` of them by stochastic Lanczos quadrature (``vectors`` x
``iterations`` Hessian-vector products, :mod:`backend.analysis.hessian`); R(s) for global
magnitude pruning on the grid s = i / grid; the theory curve w(R(s)) and its crossing with s
(the predicted limit, :func:`backend.analysis.hessian.predicted_limit`). Then the observed
test accuracy of one-shot global magnitude pruning at every s of the grid, *without*
fine-tuning (:class:`backend.pruning.magnitude.GlobalMagnitude` on a copy), with the dense
accuracy - 1 pp line and the largest s that stays above it; and, for reference, the models
already pruned from this one by global magnitude (fine-tuned: their accuracies are not the
one-shot curve's).

The result is the job's result JSON (no table of its own): ``GET
/api/models/{id}/pruning-limit`` serves the latest succeeded job's.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sqlalchemy import select

from backend.analysis.hessian import (
    effective_weights,
    hessian_parameters,
    loss_std,
    magnitude_distances,
    model_hvp,
    predicted_fraction,
    predicted_limit,
    slq_density,
)
from backend.data.batches import input_dtype, model_input
from backend.db.tables import JobRow, ModelRow
from backend.jobs.common import JobInputError, accuracy, load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import PruningLimitSpec
from backend.pruning import create as create_method
from backend.pruning.masks import refresh_pruned_weights

ACCURACY_DROP = 0.01  # the "dense - 1 pp" line
THEORY_POINTS = 60  # w(R) on an even grid of R for the theory curve against R


def _train_batches(
    ds: Any, spec: PruningLimitSpec, model: torch.nn.Module, device: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """max(batches, eps_batches) batches of ``batch_size`` (fewer when the training split is
    smaller) from one random permutation of the training split, on the device."""
    x, y = tensors(ds, "train")
    n = int(y.shape[0])
    size = min(spec.batch_size, n)
    available = n // size
    wanted = min(max(spec.batches, spec.eps_batches), available)
    if wanted < 2:
        raise JobInputError(
            f"the training split has {n} samples: fewer than 2 batches of {spec.batch_size} "
            "for eps (the per-batch loss spread); lower batch_size"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(spec.seed)))
    dtype = input_dtype(model, x)
    out = []
    for i in range(wanted):
        idx = order[i * size : (i + 1) * size]
        out.append((model_input(x[idx].to(device), dtype), y[idx].to(device).long()))
    return out


def _sweep_models(ctx: JobContext, model_id: int) -> list[dict[str, Any]]:
    with ctx.session() as s:
        rows = s.scalars(
            select(ModelRow)
            .where(ModelRow.parent_id == model_id, ModelRow.pruning_method == "global_magnitude")
            .order_by(ModelRow.sparsity, ModelRow.id)
        ).all()
        return [
            {"id": r.id, "name": r.name, "sparsity": r.sparsity, "accuracy": r.accuracy}
            for r in rows
        ]


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = PruningLimitSpec.model_validate(job.spec)
    row, model = load_model(ctx, spec.model_id)
    if row.dataset_id is None:
        raise JobInputError(f"model {spec.model_id} names no dataset")
    _, ds = load_dataset(ctx, row.dataset_id)
    model.eval()
    batches = _train_batches(ds, spec, model, ctx.device)
    criterion = torch.nn.functional.cross_entropy

    ctx.report(0.02, f"training loss over {len(batches)} batches")
    with torch.no_grad():
        losses = [float(criterion(model(x), y)) for x, y in batches]
    eps = loss_std(losses)

    hp = hessian_parameters(model, spec.include_classifier)
    for p in hp.params:
        p.requires_grad_(True)
    hvp_batches = batches[: spec.batches]
    matvec = model_hvp(model, hp, hvp_batches, criterion)
    mask = hp.flat_mask().detach()

    def after_vector(done: int) -> None:
        stage = f"Hessian density: vector {done}/{spec.vectors}"
        ctx.report(0.05 + 0.6 * done / spec.vectors, stage)

    ctx.report(0.05, f"Hessian density: vector 0/{spec.vectors}")
    density = slq_density(
        matvec,
        mask,
        spec.iterations,
        spec.vectors,
        seed=spec.seed,
        cancel_check=ctx.check_cancelled,  # between Hessian-vector products
        after_vector=after_vector,
    )
    weights = effective_weights(hp)
    sparsities = np.arange(spec.grid) / spec.grid
    radii = magnitude_distances(weights, sparsities)
    limit = predicted_limit(density, eps, sparsities, radii)
    norm = float(magnitude_distances(weights, [1.0])[0])  # ||theta||: R at s = 1
    theory_r = np.linspace(0.0, norm, THEORY_POINTS)
    theory_w = predicted_fraction(density, eps, theory_r)

    # observed: one-shot global magnitude pruning at each s, no fine-tuning
    for p in hp.params:
        p.requires_grad_(False)
    total = sum(int(w.numel()) for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    observed: list[float] = []
    dense_accuracy = float("nan")
    for i, s in enumerate(sparsities):
        ctx.check_cancelled()
        ctx.report(0.65 + 0.33 * i / len(sparsities), f"one-shot accuracy at s = {s:.3g}")
        if round(float(s) * total) <= zeros:  # nothing more to prune than the model has
            pruned = model
        else:
            refresh_pruned_weights(model)
            pruned = copy.deepcopy(model)
            method = create_method(
                "global_magnitude",
                sparsity=float(s),
                include_classifier=spec.include_classifier,
            )
            method.apply(pruned)
        acc = accuracy(pruned, ds, ctx.device, "test", should_stop=ctx.should_stop)
        if i == 0:
            dense_accuracy = acc
        observed.append(acc)
    threshold = dense_accuracy - ACCURACY_DROP
    # the observed limit: the largest s before the accuracy first falls below the line
    above: list[float] = []
    for s, a in zip(sparsities, observed, strict=True):
        if a < threshold:
            break
        above.append(float(s))
    return {
        "model_id": spec.model_id,
        "dataset_id": row.dataset_id,
        "eps": eps,
        "mean_loss": float(np.mean(losses)),
        "loss_batches": len(batches),
        "hessian_batches": len(hvp_batches),
        "batch_size": int(batches[0][1].shape[0]),
        "iterations": spec.iterations,
        "vectors": spec.vectors,
        "n_weights": total,
        "n_kept": int(mask.sum()),
        "weight_norm": norm,
        "density": density.to_json(),
        **limit.to_json(),
        "theory": {"radii": [float(r) for r in theory_r], "predicted": theory_w.tolist()},
        "observed": {
            "accuracy": observed,
            "dense_accuracy": dense_accuracy,
            "threshold": threshold,
            "limit": max(above) if above else None,
            "fine_tuned": False,
        },
        "sweep_models": _sweep_models(ctx, spec.model_id),
        "crossing": "s = w(R(s)): the sparsity against the theory curve (SCIENCE.md sect. 7)",
    }
