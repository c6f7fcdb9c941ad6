"""Instability of a pruned model with a rewind point (Frankle, Dziugaite, Roy & Carbin, "Linear
Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020; SCIENCE.md sect. 4 and 7).

The model's architecture with its final mask is set to its *rewind point*: the effective
weights its last training began from, which the prune job stored as
``pruning_params["learning"]["start_sha"]`` (backend/pruning/learning.py: for a lottery ticket
the survivors' values at the rewind step, for a one-shot method the masked parent, for SNIP and
RigL the initialisation). Two copies are trained from there with the project's training loop
(:func:`backend.pruning.finetune.train`, masks fixed: pruned weights stay 0) and the model's own
training settings, differing only in the training seed, i.e. the data order (and any other
randomness of training). The test error is then measured at ``points`` evenly spaced a on the
linear path between the copies and the error barrier computed
(:mod:`backend.analysis.instability`).

Only the weights of prunable layers are stored with the rewind point. The rest (biases,
normalisation parameters, BatchNorm statistics) is rebuilt as it was when that training began:
from a fresh initialisation with the model's training seed for methods that start from one
(lottery tickets, SNIP, RigL: exact for a lottery ticket rewound to step 0, the original
lottery ticket; for a rewind step k > 0 their values at step k are not stored, so they start
from the initialisation), from the parent for methods that prune a trained network (one-shot
and during-training methods; a tensor whose shape the pruning changed keeps the model's own).
The result says which (``start["rest"]``).

The result is the job's result JSON (no table of its own): ``GET /api/models/{id}/instability``
serves the latest succeeded job's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from backend.analysis.instability import linear_path
from backend.db.tables import JobRow, ModelRow
from backend.jobs.common import JobInputError, accuracy, load_dataset, load_model, tensors
from backend.jobs.context import JobContext
from backend.jobs.specs import InstabilitySpec, TrainSettings
from backend.jobs.submit import NO_REWIND_POINT, rewind_sha
from backend.pruning.finetune import TrainConfig, train
from backend.pruning.learning import load_weights
from backend.pruning.masks import current_mask, is_pruned, prunable_layers, refresh_pruned_weights
from models.registry import create as create_model

TRAIN_SPAN = 0.8  # of the progress bar: the two trainings; the path takes the rest


def training_settings(row: ModelRow) -> TrainSettings:
    """The settings the model's last training used (``pruning_params["training"]``), else
    the defaults."""
    params = row.pruning_params if isinstance(row.pruning_params, dict) else {}
    recorded = params.get("training")
    if not isinstance(recorded, dict):
        return TrainSettings()
    fields = set(TrainSettings.model_fields)
    return TrainSettings(**{k: v for k, v in recorded.items() if k in fields})


def _rest_source(ctx: JobContext, row: ModelRow, seed: int) -> tuple[nn.Module | None, str]:
    """The network whose non-weight tensors the rewind point takes, and in words."""
    from backend.pruning import method_info

    method = row.pruning_method
    try:
        schedule = method_info(method)["schedule"] if method else None
    except ValueError:  # a method no longer registered
        schedule = None
    if schedule in ("iterative", "at_init"):
        torch.manual_seed(seed)  # as the prune job's make_model(seed) does
        net = create_model(row.architecture, **row.arch_kwargs)
        return net, f"a fresh initialisation with the training seed {seed}"
    if row.parent_id is not None:
        with ctx.session() as s:
            exists = s.get(ModelRow, row.parent_id) is not None
        if exists:
            _, parent = load_model(ctx, row.parent_id)
            return parent, f"the parent, model {row.parent_id}"
    return None, "the model itself (no parent to take them from)"


@torch.no_grad()
def set_rewind_point(model: nn.Module, weights: dict[str, Any], rest: nn.Module | None) -> None:
    """Set ``model`` (its masks kept) to its rewind point, in place: every prunable layer's
    weight to ``weights["<layer>.weight"]`` times the layer's mask, and every other tensor but
    the masks to ``rest``'s where the name and shape match.

    Raises:
        JobInputError: If the stored weights do not fit the model's layers.
    """
    layers = prunable_layers(model, scoped=False)
    skip = set()
    for name, _module in layers:
        skip |= {f"{name}.weight", f"{name}.weight_orig", f"{name}.weight_mask"}
    if rest is not None:
        own, theirs = model.state_dict(), rest.state_dict()
        update = {
            k: theirs[k]
            for k in own
            if k not in skip and k in theirs and theirs[k].shape == own[k].shape
        }
        model.load_state_dict(update, strict=False)
    keys = {f"{name}.weight" for name, _ in layers}
    if set(weights) != keys:
        differ = sorted(set(weights) ^ keys)[:5]
        raise JobInputError(f"the stored rewind point does not fit the model's layers: {differ}")
    for name, module in layers:
        target = getattr(module, "weight_orig" if is_pruned(module) else "weight")
        assert isinstance(target, torch.Tensor)
        value = torch.as_tensor(weights[f"{name}.weight"])
        if tuple(value.shape) != tuple(target.shape):
            raise JobInputError(
                f"the stored rewind point of layer {name!r} has shape {tuple(value.shape)}, "
                f"the layer {tuple(target.shape)}"
            )
        mask = current_mask(module).to(target.device, target.dtype)
        target.copy_(value.to(target.device, target.dtype) * mask)
    refresh_pruned_weights(model)


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = InstabilitySpec.model_validate(job.spec)
    ctx.report(0.0, "loading the model and its rewind point", force=True)
    row, model = load_model(ctx, spec.model_id)
    sha = rewind_sha(row.pruning_params)
    if sha is None:
        raise JobInputError(NO_REWIND_POINT.format(id=spec.model_id))
    if row.dataset_id is None:
        raise JobInputError(f"model {spec.model_id} names no dataset")
    _, ds = load_dataset(ctx, row.dataset_id)
    x, y = tensors(ds, "train")
    hyper = training_settings(row)
    epochs = hyper.epochs if spec.epochs is None else spec.epochs
    rest, rest_text = _rest_source(ctx, row, hyper.seed)
    set_rewind_point(model, load_weights(ctx.store.get_bytes(sha)), rest)
    del rest
    fields = set(TrainConfig.__dataclass_fields__) - {"device", "epochs", "seed"}
    base = hyper.model_dump(include=fields)

    copies: list[nn.Module] = []
    losses: list[list[float]] = []
    for i, seed in enumerate(spec.seeds):
        ctx.check_cancelled()
        net = copy.deepcopy(model)
        lo, hi = TRAIN_SPAN * i / 2, TRAIN_SPAN * (i + 1) / 2
        stage = f"copy {i + 1}/2 (seed {seed})"

        def progress(
            f: float, msg: str, lo: float = lo, hi: float = hi, stage: str = stage
        ) -> None:
            ctx.report(lo + (hi - lo) * f, f"{stage}: {msg}")

        config = TrainConfig(**base, epochs=epochs, seed=seed, device=ctx.device)
        losses.append(train(net, x, y, config, progress=progress, should_stop=ctx.should_stop))
        copies.append(net)

    first, second = (net.state_dict() for net in copies)
    evaluator = copies[0]  # its own state is in ``first``; it now holds each point in turn

    def error_of(state: dict[str, torch.Tensor]) -> float:
        evaluator.load_state_dict(state)
        refresh_pruned_weights(evaluator)
        return 1.0 - accuracy(evaluator, ds, ctx.device, "test", should_stop=ctx.should_stop)

    def after_point(i: int, error: float) -> None:
        done = (i + 1) / spec.points
        text = f"test error along the path: point {i + 1}/{spec.points} ({error:.1%})"
        ctx.report(TRAIN_SPAN + (1.0 - TRAIN_SPAN) * done, text)

    ctx.report(TRAIN_SPAN, f"test error along the path: point 0/{spec.points}", force=True)
    path = linear_path(
        {k: v.clone() for k, v in first.items()},
        second,
        error_of,
        spec.points,
        cancel_check=ctx.check_cancelled,
        after_point=after_point,
    )
    params = row.pruning_params if isinstance(row.pruning_params, dict) else {}
    return {
        "model_id": spec.model_id,
        "dataset_id": row.dataset_id,
        "method": row.pruning_method,
        "rewind_step": params.get("rewind_step"),
        **path.to_json(),
        "seeds": list(spec.seeds),
        "epochs": epochs,
        "points": spec.points,
        "train_losses": losses,
        "n_test": int(tensors(ds, "test")[1].shape[0]),
        # the weights: the model's stored start weights (not named here: a finished job's result
        # keeps no artifact, backend/artifacts.py); the rest: where it was rebuilt from
        "start": {"weights": "pruning_params.learning.start_sha", "rest": rest_text},
        "definition": "max_a E((1-a) W1 + a W2) - (E(W1) + E(W2)) / 2 (SCIENCE.md sect. 4)",
    }
