"""Learning distance: how far the kept weights travelled while the pruned model trained.

He et al., "Sparse Double Descent: Where Network Pruning Aggravates Overfitting", ICML 2022
(SCIENCE.md sect. 7): ``|| m * (theta_final - theta_start) ||_2`` over the kept weights, with
``m`` the final mask and ``theta_start`` the weights the pruned model's training began from.

Every method trains through :meth:`backend.pruning.session.PruneSession.train`, which records
the effective weights (``orig * mask``, what the forward pass uses) at the start of each call;
the last call's are ``theta_start``: the rewind point for lottery tickets (its final round),
the masked parent for one-shot methods, the parent for methods that prune while training
(GMP, DNS), the initialisation for methods that train from scratch (SNIP, RigL). A weight
inactive at the start (a connection RigL grows or DNS splices back) starts from 0, the value
the forward pass used. The weights are those of every ``Conv1d/2d/3d`` and ``Linear`` layer
(the prunable types, whatever the layer scope), under the checkpoint's keys
(``"<layer>.weight"``); biases and normalisation parameters are not counted.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from backend.pruning.masks import current_mask, effective_weight, prunable_layers

__all__ = [
    "effective_weights",
    "final_masks",
    "learning_distance",
    "load_weights",
    "model_learning_distance",
    "save_weights",
]

ArrayLike = Tensor | np.ndarray


def _cpu(t: Tensor) -> Tensor:
    t = t.detach().to("cpu", copy=True)
    # numpy has no bfloat16; float32 holds every bfloat16 exactly
    return t.float() if t.dtype == torch.bfloat16 else t


@torch.no_grad()
def effective_weights(model: nn.Module) -> dict[str, Tensor]:
    """CPU copies of the weights the forward pass uses, ``{"<layer>.weight": orig * mask}``,
    for every prunable-type layer (the layer scope is ignored)."""
    return {
        f"{name}.weight": _cpu(effective_weight(module))
        for name, module in prunable_layers(model, scoped=False)
    }


@torch.no_grad()
def final_masks(model: nn.Module) -> dict[str, Tensor]:
    """CPU copies of the masks (ones for an unpruned layer), under the same keys."""
    return {
        f"{name}.weight": _cpu(current_mask(module))
        for name, module in prunable_layers(model, scoped=False)
    }


def _f64(value: ArrayLike) -> np.ndarray:
    if isinstance(value, Tensor):
        value = _cpu(value).numpy()
    return np.asarray(value, dtype=np.float64)


def learning_distance(
    start: Mapping[str, ArrayLike], final: Mapping[str, ArrayLike], masks: Mapping[str, ArrayLike]
) -> float:
    """``|| m * (theta_final - theta_start) ||_2`` over all layers jointly, in float64.

    Args:
        start: ``{key: theta_start}``, one array per layer.
        final: ``{key: theta_final}`` with the same keys and shapes.
        masks: ``{key: m}`` (0/1), the final masks, same keys and shapes.

    Raises:
        ValueError: If the keys or a layer's shapes differ (naming them).
    """
    if set(start) != set(final) or set(final) != set(masks):
        differ = sorted(set(start) ^ set(final) | set(final) ^ set(masks))
        raise ValueError(f"start and final weights name different layers: {differ}")
    total = 0.0
    for key in sorted(final):
        s, f, m = _f64(start[key]), _f64(final[key]), _f64(masks[key])
        if not s.shape == f.shape == m.shape:
            raise ValueError(
                f"layer {key!r}: start {s.shape}, final {f.shape} and mask {m.shape} differ"
            )
        total += float(np.sum(np.square(m * (f - s))))
    return math.sqrt(total)


def model_learning_distance(start: Mapping[str, ArrayLike], model: nn.Module) -> float:
    """:func:`learning_distance` from ``start`` to ``model``'s weights under its own masks."""
    return learning_distance(start, effective_weights(model), final_masks(model))


def save_weights(weights: Mapping[str, Tensor]) -> bytes:
    """``weights`` as a compressed ``.npz`` (masked weights are mostly zeros)."""
    buffer = io.BytesIO()
    arrays = {key: _cpu(value).numpy() for key, value in weights.items()}
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def load_weights(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a :func:`save_weights` file."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}
