"""Masks: which layers are prunable, reading and applying masks, sparsity figures.

Masks live where ``torch.nn.utils.prune`` puts them: a pruned module has a parameter
``weight_orig``, a buffer ``weight_mask`` and a plain attribute ``weight = weight_orig *
weight_mask`` recomputed by a forward pre-hook. Only the weights of ``nn.Conv1d/2d/3d`` and
``nn.Linear`` are prunable; biases are not pruned.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from fnmatch import fnmatchcase
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from models.heads import try_find_classifier

__all__ = [
    "PRUNABLE_TYPES",
    "apply_masks",
    "current_mask",
    "effective_weight",
    "in_layer_scope",
    "is_pruned",
    "layer_scope",
    "masks_from_scores",
    "prunable_layers",
    "refresh_pruned_weights",
    "sparsity_report",
]

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

# The prune job's include / exclude patterns (fnmatch on qualified module names), in force for
# every method while the job prunes and fine-tunes; see :func:`layer_scope`.
_SCOPE: ContextVar[tuple[tuple[str, ...], tuple[str, ...]]] = ContextVar(
    "prunescope_layer_scope", default=((), ())
)


@contextmanager
def layer_scope(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Iterator[None]:
    """Restrict every pruning method to the layers whose qualified names match.

    Patterns are shell-style (``fnmatch``): ``"layer4.*"``, ``"*.attn.qkv"``, ``"fc"``. A layer is
    prunable when it matches one of ``include`` (or ``include`` is empty) and none of
    ``exclude``. The scope holds in this thread (a context variable) until the block ends.

    Raises:
        ValueError: If a pattern is not a non-empty string.
    """
    for pattern in [*include, *exclude]:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"layer pattern {pattern!r} should be a non-empty string")
    token = _SCOPE.set((tuple(include), tuple(exclude)))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _in_scope(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatchcase(name, p) for p in include):
        return False
    return not any(fnmatchcase(name, p) for p in exclude)


def in_layer_scope(name: str) -> bool:
    """Whether the layer ``name`` may be pruned under the :func:`layer_scope` in force."""
    include, exclude = _SCOPE.get()
    return _in_scope(name, include, exclude)


def prunable_layers(
    model: nn.Module, include_classifier: bool = True, *, scoped: bool = True
) -> list[tuple[str, nn.Module]]:
    """Every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` of ``model``, in ``named_modules()`` order.

    Attention projections, MLP blocks and 1x1 convolutions count wherever they sit.

    Args:
        model: The model.
        include_classifier: If False, the classifier (:func:`models.heads.find_classifier`: the
            final linear layer) is left out.
        scoped: Apply the :func:`layer_scope` in force (pruning); reports pass False so they
            always describe every layer.

    Returns:
        ``[(qualified name, module), ...]``.
    """
    classifier = None if include_classifier else try_find_classifier(model)
    include, exclude = _SCOPE.get() if scoped else ((), ())
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES)
        and module is not classifier
        and _in_scope(name, include, exclude)
    ]


def is_pruned(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` is reparametrised by ``torch.nn.utils.prune``."""
    return (
        module._buffers.get(name + "_mask") is not None
        and module._parameters.get(name + "_orig") is not None
    )


def effective_weight(module: nn.Module, name: str = "weight") -> Tensor:
    """The weight the forward pass uses: ``orig * mask`` if pruned, else the parameter.

    Computed afresh rather than read from ``module.weight``, which torch only refreshes in the
    forward pre-hook and may be stale right after an optimiser step.
    """
    if is_pruned(module, name):
        return getattr(module, name + "_orig") * getattr(module, name + "_mask")
    return getattr(module, name)


def current_mask(module: nn.Module, name: str = "weight") -> Tensor:
    """A copy of the module's mask, or ones (same shape, dtype, device) if not pruned yet."""
    if is_pruned(module, name):
        return getattr(module, name + "_mask").detach().clone()
    return torch.ones_like(getattr(module, name), memory_format=torch.contiguous_format).detach()


@torch.no_grad()
def refresh_pruned_weights(model: nn.Module) -> None:
    """Recompute ``weight = weight_orig * weight_mask`` for every pruned parameter.

    Call after optimiser steps so that ``module.weight`` is current without a forward pass.
    The result is computed without autograd history (the forward pre-hook recomputes it with
    history on the next forward), which also keeps the model ``copy.deepcopy``-able: torch
    refuses to deepcopy a module holding a non-leaf tensor attribute.
    """
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                setattr(module, hook._tensor_name, hook.apply_mask(module))


def _check_mask(name: str, module: nn.Module, mask: object) -> None:
    weight = getattr(module, "weight_orig", None) if is_pruned(module) else None
    if weight is None:
        weight = module._parameters.get("weight")
    if weight is None:
        raise ValueError(f"layer {name!r} has no weight parameter to prune")
    if not isinstance(mask, Tensor):
        raise ValueError(f"mask for layer {name!r} should be a tensor, got {type(mask).__name__}")
    if mask.shape != weight.shape:
        raise ValueError(
            f"mask for layer {name!r} has shape {tuple(mask.shape)} but its weight has shape "
            f"{tuple(weight.shape)}"
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"mask for layer {name!r} should contain only 0 and 1")


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Apply masks in place through ``torch.nn.utils.prune.custom_from_mask``.

    torch multiplies a new mask into an existing one, so a weight pruned before stays pruned.
    Every mask is validated before any module is touched: a bad mask leaves the model
    unchanged. Afterwards ``module.weight`` is refreshed without autograd history (see
    :func:`refresh_pruned_weights`).

    Args:
        model: The model to prune.
        masks: ``{qualified module name: 0/1 mask with the shape of its weight}``.

    Raises:
        ValueError: Unknown layer name, layer without weight, wrong shape (naming the layer and
            both shapes) or values other than 0/1.
    """
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        module = modules.get(name)
        if module is None:
            raise ValueError(f"mask for unknown layer {name!r}")
        _check_mask(name, module, mask)
    for name, mask in masks.items():
        module = modules[name]
        weight = module.weight_orig if is_pruned(module) else module.weight
        prune.custom_from_mask(module, "weight", mask.to(weight.device, weight.dtype))
    refresh_pruned_weights(model)


def masks_from_scores(
    scores: Mapping[str, Tensor], current: Mapping[str, Tensor], sparsity: float
) -> dict[str, Tensor]:
    """Zero the lowest-scoring weights jointly over all given layers, building on ``current``.

    Exactly ``round(sparsity * total)`` entries end up zero (``total`` = number of entries in
    ``scores``), unless more than that are already pruned, in which case nothing changes
    (pruning never revives). Already-pruned entries count towards the target. Ties are broken
    deterministically: the entry that comes first (layer order, then row-major) is pruned
    first. Call once per layer for layer-wise pruning.

    Args:
        scores: ``{layer: importance}``, same shapes as the masks; higher means keep.
        current: ``{layer: current 0/1 mask}`` for the same layers.
        sparsity: Target fraction of zeros in [0, 1).

    Returns:
        ``{layer: new 0/1 mask}`` with the dtype and device of ``current``.
    """
    names = list(scores)
    if not names:
        return {}
    flat_mask = torch.cat([current[n].reshape(-1) for n in names])
    device = flat_mask.device
    flat_scores = torch.cat([scores[n].detach().reshape(-1).to(device) for n in names])
    total = flat_scores.numel()
    target = round(sparsity * total)
    pruned = flat_mask == 0
    new = flat_mask.clone()
    if target > int(pruned.sum()):
        # Pruned entries sort first, so the `target` smallest include all of them.
        ranked = flat_scores.float().masked_fill(pruned, -math.inf)
        order = torch.sort(ranked, stable=True).indices
        new[order[:target]] = 0
    out: dict[str, Tensor] = {}
    offset = 0
    for n in names:
        size = current[n].numel()
        out[n] = new[offset : offset + size].reshape(current[n].shape)
        offset += size
    return out


def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """Sparsity and compression figures (ShrinkBench, Blalock et al. 2020).

    Zeros are counted in the effective weights (``orig * mask`` for pruned modules), so a
    weight that is exactly zero without a mask counts as zero too.

    Returns:
        ``{"layers": [{"name", "shape", "numel", "nonzero", "sparsity"}, ...],
        "prunable_numel", "prunable_nonzero", "sparsity" (zeros / prunable over all Conv2d and
        Linear weights), "n_params" (all parameters, a pruned weight counted once),
        "n_nonzero", "compression_ratio" (n_params / n_nonzero; inf if n_nonzero == 0)}``.
        All values are plain Python ints/floats.
    """
    layers = []
    prunable_numel = prunable_nonzero = 0
    with torch.no_grad():
        for name, module in prunable_layers(model, scoped=False):
            w = effective_weight(module)
            numel, nonzero = w.numel(), int(torch.count_nonzero(w))
            layers.append(
                {
                    "name": name,
                    "shape": list(w.shape),
                    "numel": numel,
                    "nonzero": nonzero,
                    "sparsity": 1.0 - nonzero / numel if numel else 0.0,
                }
            )
            prunable_numel += numel
            prunable_nonzero += nonzero
        n_params = n_nonzero = 0
        for module in model.modules():
            for pname, param in module._parameters.items():
                if param is None:
                    continue
                base = pname[: -len("_orig")] if pname.endswith("_orig") else None
                value = (
                    effective_weight(module, base) if base and is_pruned(module, base) else param
                )
                n_params += value.numel()
                n_nonzero += int(torch.count_nonzero(value))
    return {
        "layers": layers,
        "prunable_numel": prunable_numel,
        "prunable_nonzero": prunable_nonzero,
        "sparsity": 1.0 - prunable_nonzero / prunable_numel if prunable_numel else 0.0,
        "n_params": n_params,
        "n_nonzero": n_nonzero,
        "compression_ratio": n_params / n_nonzero if n_nonzero else math.inf,
    }
