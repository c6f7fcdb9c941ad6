"""Prune a registered model with a registry method; the method drives its own schedule.

One-shot methods prune the trained model and fine-tune it; SNIP and RigL start from a fresh
initialisation; GMP, DNS and RigL change masks while training; lottery tickets train in rounds,
every round kept as a model in the lineage. The result carries the compression report against
the original (parameters, FLOPs, measured latency on the job's device). Each model records its
learning distance (backend/pruning/learning.py) in ``pruning_params["learning"]``:
``{"distance": float, "start_sha": the stored start weights (.npz)}``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from backend.data.batches import model_input
from backend.db.tables import JobRow
from backend.jobs.common import (
    accuracy,
    load_dataset,
    load_model,
    own_report,
    save_model,
    store_checkpoint,
    tensors,
)
from backend.jobs.context import JobContext
from backend.jobs.kinds.analyze import analyze_model
from backend.jobs.specs import PruneSpec, TrainSettings
from backend.pruning import create as create_method
from backend.pruning.finetune import TrainConfig
from backend.pruning.learning import effective_weights, model_learning_distance, save_weights
from backend.pruning.masks import layer_scope
from backend.pruning.report import compression_report
from backend.pruning.session import PruneSession
from models.registry import create as create_model

log = logging.getLogger(__name__)


def training_settings(
    spec: PruneSpec, method_schedule: str, parent_job: JobRow | None
) -> TrainSettings:
    """The spec's fine-tuning settings, else defaults that suit the method's schedule.

    One-shot methods fine-tune briefly (3 epochs). Methods that train from scratch or in rounds
    (SNIP, RigL, GMP, DNS, lottery tickets) default to the parent's own training settings, so
    the pruned network gets the training its original had.
    """
    if spec.finetune is not None:
        hyper = spec.finetune
    elif method_schedule == "one_shot":
        hyper = TrainSettings(epochs=3)
    elif parent_job is not None and parent_job.kind == "train":
        fields = set(TrainSettings.model_fields)
        hyper = TrainSettings(**{k: v for k, v in parent_job.spec.items() if k in fields})
    else:
        hyper = TrainSettings()
    if spec.seed is not None:
        hyper = hyper.model_copy(update={"seed": spec.seed})
    return hyper


def method_params(spec: PruneSpec) -> dict[str, Any]:
    """The method's parameters, with the spec's seed for methods that take one."""
    from backend.pruning import method_info

    params = dict(spec.params)
    if spec.seed is not None and "seed" in method_info(spec.method)["defaults"]:
        params.setdefault("seed", spec.seed)
    return params


def learning_record(ctx: JobContext, session: PruneSession, model: nn.Module) -> dict[str, Any]:
    """``{"distance", "start_sha"}`` of ``model`` as its latest training left it: the weights
    that training began from are stored (a model that was not trained starts where it ends,
    distance 0); ``{}`` if they do not fit the model (logged: the model is kept without it)."""
    start = session.start_weights
    if start is None:
        start = effective_weights(model)
    try:
        distance = model_learning_distance(start, model)
    except ValueError:
        log.warning("no learning distance: the start weights do not fit the model", exc_info=True)
        return {}
    return {"distance": distance, "start_sha": ctx.store.put_bytes(save_weights(start))}


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = PruneSpec.model_validate(job.spec)
    ctx.report(0.0, "loading model", force=True)
    parent, model = load_model(ctx, spec.model_id)
    if parent.dataset_id is None:
        raise ValueError(f"model {parent.id} has no dataset to fine-tune on")
    ds_row, ds = load_dataset(ctx, parent.dataset_id)
    x, y = tensors(ds, "train")
    method = create_method(spec.method, sparsity=spec.sparsity, **method_params(spec))
    with ctx.session() as s:
        parent_job = s.get(JobRow, parent.job_id) if parent.job_id else None
        if parent_job is not None:
            s.expunge(parent_job)
    hyper = training_settings(spec, method.schedule, parent_job)
    fields = set(TrainConfig.__dataclass_fields__) - {"device"}
    config = TrainConfig(**hyper.model_dump(include=fields), device=ctx.device)
    base_name = spec.name or f"{parent.name} / {spec.method} {spec.sparsity:.0%}"
    # (checkpoint sha, sparsity figures, round info) of each intermediate round
    pending_rounds: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def make_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(parent.architecture, **parent.arch_kwargs)

    def record_round(round_model: nn.Module, info: dict[str, Any]) -> None:
        # Checkpoints are stored now; rows are written only if the whole job succeeds, so a
        # cancelled or failed run leaves no partial lineage behind.
        sha = store_checkpoint(ctx, round_model, parent.architecture, parent.arch_kwargs)
        acc = accuracy(round_model, ds, ctx.device, should_stop=ctx.should_stop)
        info = {**info, "accuracy": acc, "learning": learning_record(ctx, session, round_model)}
        pending_rounds.append((sha, own_report(round_model), info))

    session = PruneSession(
        x,
        y,
        config,
        make_model,
        progress=lambda f, stage: ctx.report(0.02 + 0.88 * f, stage),
        should_stop=ctx.should_stop,
        record_round=record_round,
    )
    with layer_scope(spec.include, spec.exclude):
        pruned = method.run(model, session)
    ctx.check_cancelled()
    ctx.report(0.92, "measuring: accuracy, FLOPs and latency", force=True)
    learning = learning_record(ctx, session, pruned)
    _, original = load_model(ctx, parent.id)
    example = model_input(x[: min(len(x), hyper.batch_size)].to(ctx.device))
    report = compression_report(original, pruned, example, device=ctx.device)
    acc = accuracy(pruned, ds, ctx.device, should_stop=ctx.should_stop)
    params = {"sparsity": spec.sparsity, **method.params, "training": hyper.model_dump()}
    previous = parent.id
    round_ids: list[int] = []
    for sha, round_report, info in pending_rounds:
        previous = save_model(
            ctx,
            job,
            None,
            name=f"{base_name} round {info['round']}",
            architecture=parent.architecture,
            arch_kwargs=parent.arch_kwargs,
            dataset_id=ds_row.id,
            accuracy=info["accuracy"],
            parent_id=previous,
            pruning_method=spec.method,
            pruning_params={
                **params,
                "round": info["round"],
                "round_sparsity": info["sparsity"],
                **({"learning": info["learning"]} if info["learning"] else {}),
            },
            checkpoint_sha=sha,
            report=round_report,
        )
        round_ids.append(previous)
    model_id = save_model(
        ctx,
        job,
        pruned,
        name=base_name,
        architecture=parent.architecture,
        arch_kwargs=parent.arch_kwargs,
        dataset_id=ds_row.id,
        accuracy=acc,
        parent_id=previous,
        pruning_method=spec.method,
        pruning_params={**params, **({"learning": learning} if learning else {})},
        report=report,
    )
    result: dict[str, Any] = {
        "model_id": model_id,
        "accuracy": acc,
        "sparsity": report["sparsity"],
        "compression_ratio": report["compression_ratio"],
        "theoretical_speedup": report["theoretical_speedup"],
        "measured_speedup": report["measured_speedup"],
        "round_model_ids": round_ids,
        "learning_distance": learning.get("distance"),
    }
    if spec.analyze:
        ctx.report(0.97, "analysing", force=True)
        result["analysis_id"] = analyze_model(ctx, job, model_id, ds_row.id, "test")
    return result
