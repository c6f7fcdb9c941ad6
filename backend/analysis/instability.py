"""Instability: the error barrier on the linear path between two trained copies.

Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis", ICML 2020 (SCIENCE.md sect. 4 and 7). Two copies of a network are trained from
the same starting point (for a lottery ticket: its rewind point) with different SGD noise
(data order); the test error is measured along the straight line between their weights,

    E(a) = error of the network with weights (1 - a) W1 + a W2,  a in [0, 1],

at ``points`` evenly spaced a (30 by default, as the paper and SCIENCE.md do), and the
*error barrier* (the instability) is, as SCIENCE.md sect. 4 defines it,

    barrier = max_a E(a) - (E(0) + E(1)) / 2,

the height of the highest point of the path above the mean of the endpoints' errors. A
network whose copies are linearly connected (barrier ~ 0) is *stable* to SGD noise; the paper
calls it stable below 2 % error. (Because E(0) and E(1) are on the grid, the barrier is at
least |E(0) - E(1)| / 2 >= 0.)

What is interpolated (:func:`interpolate_states`): every floating-point tensor of the two
state dicts. A pruned layer (``torch.nn.utils.prune``: ``weight_orig`` and ``weight_mask``)
must have the same mask in both copies, and its *effective* weight ``orig * mask`` is what is
interpolated, so a pruned weight is exactly 0 at every point of the path. BatchNorm running
statistics are floating-point buffers and are interpolated like the weights (the network at
``(1 - a) W1 + a W2`` of the plain state-dict reading); recomputing them at each point on
training data (as REPAIR, Jordan et al. ICLR 2023, does to *lower* barriers) is not done.
Integer buffers (``num_batches_tracked``) are taken from the first copy.

Pure: state dicts and a callable in, arrays and a dataclass out (no database, no HTTP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DEFAULT_POINTS",
    "MASK_SUFFIX",
    "ORIG_SUFFIX",
    "STABLE_BELOW",
    "InstabilityPath",
    "error_barrier",
    "interpolate_states",
    "linear_path",
    "path_alphas",
]

DEFAULT_POINTS = 30  # evenly spaced a in [0, 1] (Frankle et al. 2020; SCIENCE.md sect. 4)
STABLE_BELOW = 0.02  # the paper calls a network stable when its barrier is below 2 % error
MASK_SUFFIX = "_mask"
ORIG_SUFFIX = "_orig"

StateDict = Mapping[str, Tensor]


def path_alphas(points: int = DEFAULT_POINTS) -> np.ndarray:
    """``points`` evenly spaced a in [0, 1], both ends included (``points`` >= 2).

    Raises:
        ValueError: If ``points`` < 2.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points={points!r} should be an integer >= 2 (both endpoints)")
    return np.linspace(0.0, 1.0, points)


def error_barrier(errors: Sequence[float] | np.ndarray) -> float:
    """``max_a E(a) - (E(0) + E(1)) / 2`` over the errors of a path whose first and last
    entries are the endpoints (SCIENCE.md sect. 4).

    Args:
        errors: (P,) test errors along the path, P >= 2, ``errors[0]`` at a = 0 and
            ``errors[-1]`` at a = 1.

    Raises:
        ValueError: Fewer than 2 errors, or one that is not finite.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"the path needs at least its two endpoints' errors, got {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("every error along the path should be finite")
    return float(e.max() - 0.5 * (e[0] + e[-1]))


def _masked_pairs(state: StateDict) -> dict[str, str]:
    """``{"<prefix>_orig": "<prefix>_mask"}`` for every prune-reparametrised tensor."""
    out = {}
    for key in state:
        if key.endswith(ORIG_SUFFIX):
            mask = key[: -len(ORIG_SUFFIX)] + MASK_SUFFIX
            if mask in state:
                out[key] = mask
    return out


def interpolate_states(first: StateDict, second: StateDict, alpha: float) -> dict[str, Tensor]:
    """The state dict at ``(1 - alpha) * first + alpha * second``.

    Floating-point tensors (weights, biases, BatchNorm running statistics) are interpolated;
    a pruned layer's ``weight_orig`` becomes the interpolation of the effective weights
    ``orig * mask`` of the two copies (so pruned entries are exactly 0 along the path) and its
    ``weight_mask`` is kept; other tensors (integer buffers) are taken from ``first``.

    Args:
        first: State dict at alpha = 0.
        second: State dict of the same architecture at alpha = 1.
        alpha: Position on the path (any real: 0 and 1 give the copies back).

    Raises:
        ValueError: If the two name different tensors, a shape differs, or a mask differs
            (the path is defined between copies of one sparse network).
    """
    if set(first) != set(second):
        differ = sorted(set(first) ^ set(second))
        raise ValueError(f"the two state dicts name different tensors: {differ[:5]}")
    masks = _masked_pairs(first)
    mask_keys = set(masks.values())
    a = float(alpha)
    out: dict[str, Tensor] = {}
    for key, t1 in first.items():
        t2 = second[key]
        if t1.shape != t2.shape:
            raise ValueError(f"{key!r}: shapes {tuple(t1.shape)} and {tuple(t2.shape)} differ")
        if key in mask_keys:
            if not torch.equal(t1, t2):
                raise ValueError(f"{key!r}: the two copies have different masks")
            out[key] = t1.detach().clone()
        elif not t1.is_floating_point():
            out[key] = t1.detach().clone()
        else:
            u, v = t1.detach(), t2.detach().to(t1.device, t1.dtype)
            if key in masks:
                mask = first[masks[key]].to(t1.device, t1.dtype)
                u, v = u * mask, v * mask
            out[key] = torch.lerp(u, v, a) if a not in (0.0, 1.0) else (u if a == 0 else v).clone()
    return out


@dataclass(frozen=True)
class InstabilityPath:
    """The test error along the linear path between two trained copies.

    Attributes:
        alphas: (P,) positions a in [0, 1], evenly spaced.
        errors: (P,) test error (1 - top-1 accuracy) of the network at each a.
        barrier: ``max_a E(a) - (E(0) + E(1)) / 2`` (:func:`error_barrier`).
        argmax: Index of the highest error on the path.
    """

    alphas: np.ndarray
    errors: np.ndarray
    barrier: float
    argmax: int

    @property
    def endpoint_errors(self) -> tuple[float, float]:
        return float(self.errors[0]), float(self.errors[-1])

    def to_json(self) -> dict[str, Any]:
        e0, e1 = self.endpoint_errors
        return {
            "alphas": [float(a) for a in self.alphas],
            "errors": [float(e) for e in self.errors],
            "barrier": self.barrier,
            "endpoint_errors": [e0, e1],
            "endpoint_mean": 0.5 * (e0 + e1),
            "max_error": float(self.errors[self.argmax]),
            "max_alpha": float(self.alphas[self.argmax]),
            "stable": self.barrier < STABLE_BELOW,
            "stable_below": STABLE_BELOW,
        }


def linear_path(
    first: StateDict,
    second: StateDict,
    error_of: Callable[[dict[str, Tensor]], float],
    points: int = DEFAULT_POINTS,
    cancel_check: Callable[[], None] | None = None,
    after_point: Callable[[int, float], None] | None = None,
) -> InstabilityPath:
    """Evaluate ``error_of`` along the straight line between two state dicts.

    Args:
        first: Weights of copy 1 (a = 0).
        second: Weights of copy 2 (a = 1), same architecture and masks.
        error_of: ``error_of(state)`` -> the test error in [0, 1] of the network with those
            weights (the job loads them into a model and evaluates it).
        points: How many evenly spaced a, endpoints included.
        cancel_check: Called before each point (raises to stop).
        after_point: ``after_point(i, error)`` after point i (progress).

    Raises:
        ValueError: Bad ``points``, mismatched state dicts, or an error outside [0, 1].
    """
    alphas = path_alphas(points)
    errors = np.empty(len(alphas), dtype=np.float64)
    for i, a in enumerate(alphas):
        if cancel_check is not None:
            cancel_check()
        err = float(error_of(interpolate_states(first, second, float(a))))
        if not 0.0 <= err <= 1.0:
            raise ValueError(f"error {err!r} at a = {a:.3f} is not in [0, 1]")
        errors[i] = err
        if after_point is not None:
            after_point(i, err)
    return InstabilityPath(alphas, errors, error_barrier(errors), int(np.argmax(errors)))
