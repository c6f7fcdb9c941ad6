"""RigL: sparse training from scratch with drop-and-grow mask updates (Evci et al. 2020).

Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets Winners", ICML 2020
(SCIENCE.md sect. 4). The network starts sparse, with Erdos-Renyi-Kernel (ERK) layer densities
and random masks; every dT steps until T_end, each layer drops the fraction
f(t) = (alpha / 2)(1 + cos(pi t / T_end)) of its active weights with the smallest |w| and grows
as many inactive connections with the largest |dense gradient|, initialised at 0. The number of
active weights of every layer never changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from backend.pruning.finetune import TrainHook
from backend.pruning.masks import current_mask, prunable_layers
from backend.pruning.registry import (
    PruningMethod,
    check_bool,
    check_int,
    check_number,
    register_method,
)
from backend.pruning.straight_through import (
    disable_straight_through,
    enable_straight_through,
    orig_and_mask,
    write_mask,
)

if TYPE_CHECKING:
    from backend.pruning.session import PruneSession

__all__ = [
    "RigL",
    "RigLHook",
    "erk_counts",
    "erk_densities",
    "erk_densities_for_shapes",
    "rigl_drop_fraction",
]


def erk_densities_for_shapes(
    shapes: dict[str, tuple[int, ...]],
    sparsity: float,
    max_density: dict[str, float] | None = None,
) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities for weights of the given shapes.

    density_l = eps * (sum of the dims of layer l) / (product of its dims), with eps such that
    sum_l density_l * numel_l = (1 - sparsity) * sum_l numel_l. A layer whose density would
    exceed its maximum is set to the maximum and eps is solved again for the others, until no
    layer exceeds it: the iterative procedure of the RigL reference code
    (``sparse_utils.get_sparsities_erdos_renyi``), which makes the layers with the largest raw
    density dense first. Capping all violating layers at once gives the same result, since
    capping only raises eps.

    Args:
        shapes: ``{layer: weight shape}``.
        sparsity: Target fraction of zeros over all layers, in [0, 1).
        max_density: ``{layer: cap in [0, 1]}``, default 1 (dense) for every layer; pruning an
            already-pruned model caps each layer at its live fraction.

    Returns:
        ``{layer: density in [0, 1]}``. If the caps cannot hold ``(1 - sparsity)`` of the weights,
        every layer is at its cap.
    """
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / numel[name] for name, shape in shapes.items() if numel[name]}
    caps = {name: 1.0 if max_density is None else max_density[name] for name in shapes}
    target = (1.0 - sparsity) * sum(numel.values())
    capped: set[str] = {name for name in shapes if not numel[name]}
    eps = 0.0
    while len(capped) < len(shapes):
        budget = target - sum(caps[n] * numel[n] for n in capped)
        free = [n for n in shapes if n not in capped]
        eps = budget / sum(raw[n] * numel[n] for n in free)
        violators = {n for n in free if eps * raw[n] > caps[n]}
        if not violators:
            break
        capped |= violators
    return {n: caps[n] if n in capped else eps * raw[n] for n in shapes}


def erk_densities(
    model: nn.Module, sparsity: float, include_classifier: bool = True
) -> dict[str, float]:
    """ERK densities of the prunable layers of ``model`` (Evci et al. 2020, SCIENCE.md sect. 4).

    See :func:`erk_densities_for_shapes`; every layer may be up to dense.

    Args:
        model: The model (its masks are ignored).
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        include_classifier: Whether ``model.classifier`` is one of the layers.

    Returns:
        ``{layer: density}``, with sum_l density_l * numel_l = (1 - sparsity) * total.
    """
    check_number("sparsity", sparsity, 0.0, 1.0, high_closed=False)
    shapes = {
        name: tuple(cast(Tensor, module.weight).shape)
        for name, module in prunable_layers(model, include_classifier)
    }
    return erk_densities_for_shapes(shapes, sparsity)


def erk_counts(
    densities: dict[str, float], numels: dict[str, int], n_live: int, caps: dict[str, int]
) -> dict[str, int]:
    """Integer live counts per layer summing to ``n_live``: largest-remainder rounding.

    Each layer gets floor(density * numel), then the layers with the largest fractional parts
    (ties: layer order) get one more until the total is ``n_live``; no layer exceeds its cap.
    Every count is therefore within one weight of density * numel.
    """
    exact = {n: densities[n] * numels[n] for n in densities}
    counts = {n: min(math.floor(exact[n] + 1e-9), caps[n]) for n in densities}
    missing = n_live - sum(counts.values())
    while missing > 0:
        room = [n for n in densities if counts[n] < caps[n]]
        if not room:
            break
        room.sort(key=lambda n: -(exact[n] - counts[n]))
        for n in room[:missing]:
            counts[n] += 1
        missing = n_live - sum(counts.values())
    return counts


def rigl_drop_fraction(step: int, end_step: int, alpha: float = 0.3) -> float:
    """f(t) = (alpha / 2)(1 + cos(pi t / T_end)) for t < T_end, 0 afterwards (cosine decay)."""
    if step >= end_step:
        return 0.0
    return float(alpha / 2 * (1 + math.cos(math.pi * step / end_step)))


def _reset_optimizer_state(
    optimizer: torch.optim.Optimizer | None, param: Tensor, where: Tensor
) -> None:
    """Zero the per-weight optimiser state (momentum, Adam moments) at ``where`` (flat bool)."""
    if optimizer is None:
        return
    for value in optimizer.state.get(param, {}).values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value[where.reshape(value.shape)] = 0


class RigLHook(TrainHook):
    """Drop-and-grow updates every ``delta_t`` steps until ``end_fraction`` of training.

    The layers are masked with straight-through masks during training (dense gradients for the
    grow criterion, as RigL computes them at update steps; the forward pass uses w * mask). An
    update happens after the optimiser step t for t = delta_t, 2 delta_t, ... < T_end
    (T_end = round(end_fraction * total steps)); step 0 is not an update (the masks are new).
    Per layer, n = floor(f(t) * active) active weights with the smallest |w| are dropped and the
    n inactive ones with the largest |gradient of step t| are grown (a weight dropped in this
    update may be grown back: it keeps its value, as in the reference code); new connections
    are set to 0 and their optimiser state is reset.

    Attributes:
        end_step: T_end of the current training.
        history: ``[(step, drop fraction, {layer: n dropped})]``.
        grown: ``{layer: flat bool tensor}`` of the new connections of the last update.
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        delta_t: int = 100,
        end_fraction: float = 0.75,
        alpha: float = 0.3,
    ) -> None:
        self.layers = layers
        self.delta_t = delta_t
        self.end_fraction = end_fraction
        self.alpha = alpha
        self.end_step = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.history: list[tuple[int, float, dict[str, int]]] = []
        self.grown: dict[str, Tensor] = {}
        self._grads: dict[str, Tensor] = {}

    def is_update_step(self, step: int) -> bool:
        """Whether the masks are updated after optimiser step ``step``."""
        return 0 < step < self.end_step and step % self.delta_t == 0

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        self.optimizer = optimizer
        self.end_step = round(self.end_fraction * total_steps)
        for _, module in self.layers:
            enable_straight_through(module)

    def after_backward(self, model: nn.Module, step: int) -> None:
        if not self.is_update_step(step):
            return
        for name, module in self.layers:
            weight, _ = orig_and_mask(module)
            grad = weight.grad
            self._grads[name] = (
                torch.zeros_like(weight) if grad is None else grad.detach().abs().clone()
            )

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if not self.is_update_step(step):
            return
        fraction = rigl_drop_fraction(step, self.end_step, self.alpha)
        dropped: dict[str, int] = {}
        self.grown = {}
        for name, module in self.layers:
            weight, mask = orig_and_mask(module)
            active = mask.reshape(-1) != 0
            n_drop = math.floor(fraction * int(active.sum()))
            dropped[name] = n_drop
            if n_drop == 0:
                continue
            drop_score = weight.reshape(-1).abs().masked_fill(~active, math.inf)
            drop = torch.sort(drop_score, stable=True).indices[:n_drop]
            kept = active.clone()
            kept[drop] = False
            grow_score = self._grads[name].reshape(-1).float().masked_fill(kept, -math.inf)
            grow = torch.sort(grow_score, descending=True, stable=True).indices[:n_drop]
            new = kept.clone()
            new[grow] = True
            new_connections = new & ~active
            weight[new_connections.reshape(weight.shape)] = 0.0  # grown weights start at 0
            _reset_optimizer_state(self.optimizer, weight, new_connections)
            write_mask(module, new.reshape(mask.shape).to(mask.dtype))
            self.grown[name] = new_connections
        self._grads = {}
        self.history.append((step, fraction, dropped))

    def on_train_end(self, model: nn.Module) -> None:
        for _, module in self.layers:
            disable_straight_through(module)
        self._grads = {}


@register_method("rigl")
class RigL(PruningMethod):
    """RigL (Evci et al. 2020): sparse training from scratch with ERK densities and drop/grow.

    SCIENCE.md sect. 4. :meth:`compute_masks` draws random masks with Erdos-Renyi-Kernel layer
    densities (:func:`erk_densities`); :meth:`run` discards the trained model it is given,
    takes a freshly initialised network (``session.fresh_model()``), applies those masks and
    trains it for the session's epochs (the session's budget is the whole from-scratch
    training) while every ``delta_t`` steps until ``end_fraction`` of training each layer drops
    the fraction f(t) = (alpha/2)(1 + cos(pi t / T_end)) of its active weights with the smallest
    |w| and grows as many inactive connections with the largest |dense gradient| (grown weights
    start at 0, their optimiser state is reset). Every layer's sparsity stays exactly constant.

    Deviations from the paper: layer counts are floor or ceil of density * numel
    (largest-remainder rounding, :func:`erk_counts`) so that the total is exactly
    ``round(sparsity * total)`` zeros; dense gradients come from straight-through masks at
    every step (the values are the same as RigL's at update steps; inactive weights are also
    updated by the optimiser in between, which has no effect since a grown weight is reset to 0);
    on a model that is already pruned, :meth:`compute_masks` keeps its pruned weights pruned
    (each layer's ERK density is capped at its live fraction), while :meth:`run` starts from a
    fresh, unpruned network.

    Args:
        sparsity: Target fraction of zero prunable weights (over all layers), in [0, 1).
        delta_t: Steps between mask updates, >= 1.
        end_fraction: T_end as a fraction of the training steps, in [0, 1].
        alpha: Initial drop fraction, in [0, 1].
        seed: Seed of the random initial masks.
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    scope = "global"
    schedule = "at_init"
    revives = True

    def __init__(
        self,
        sparsity: float,
        delta_t: int = 100,
        end_fraction: float = 0.75,
        alpha: float = 0.3,
        seed: int = 0,
        include_classifier: bool = True,
    ) -> None:
        delta_t = check_int("delta_t", delta_t, 1)
        end_fraction = check_number("end_fraction", end_fraction, 0.0, 1.0)
        alpha = check_number("alpha", alpha, 0.0, 1.0)
        seed = check_int("seed", seed, 0, 2**63 - 1)
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(
            sparsity,
            delta_t=delta_t,
            end_fraction=end_fraction,
            alpha=alpha,
            seed=seed,
            include_classifier=include_classifier,
        )
        self.delta_t = delta_t
        self.end_fraction = end_fraction
        self.alpha = alpha
        self.seed = seed
        self.include_classifier = include_classifier

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Random masks with ERK layer densities, exactly ``round(sparsity * total)`` zeros."""
        layers = prunable_layers(model, self.include_classifier)
        current = {name: current_mask(m) for name, m in layers}
        numels = {name: mask.numel() for name, mask in current.items()}
        live = {name: int((mask != 0).sum()) for name, mask in current.items()}
        caps = {name: live[name] / numels[name] if numels[name] else 0.0 for name in current}
        shapes = {name: tuple(mask.shape) for name, mask in current.items()}
        densities = erk_densities_for_shapes(shapes, self.sparsity, caps)
        total = sum(numels.values())
        counts = erk_counts(densities, numels, total - round(self.sparsity * total), live)
        generator = torch.Generator().manual_seed(self.seed)
        masks: dict[str, Tensor] = {}
        for name, mask in current.items():
            # Drawn on the CPU for every layer: masks depend only on the seed and the shapes.
            scores = torch.rand(mask.shape, generator=generator).reshape(-1)
            scores = scores.masked_fill(mask.reshape(-1).cpu() == 0, -1.0)
            keep = torch.sort(scores, descending=True, stable=True).indices[: counts[name]]
            new = torch.zeros(mask.numel(), dtype=mask.dtype)
            new[keep] = 1
            masks[name] = new.reshape(mask.shape).to(mask.device)
        return masks

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        """Train a fresh network sparsely from scratch for the session's epochs.

        Returns:
            A new model (``session.fresh_model()``) with exactly the target sparsity.
        """
        session.progress(0.0, f"pruning: {self.name} at {self.sparsity:.0%} from scratch")
        model = session.fresh_model()
        self.apply(model)
        hook = RigLHook(
            prunable_layers(model, self.include_classifier),
            self.delta_t,
            self.end_fraction,
            self.alpha,
        )
        session.train(model, hooks=[hook], stage=f"RigL sparse training at {self.sparsity:.0%}")
        return model
