"""Dynamic network surgery: pruning and splicing during training (Guo et al. 2016).

Guo, Yao & Chen, "Dynamic Network Surgery for Efficient DNNs", NeurIPS 2016 (SCIENCE.md
sect. 4). Every layer has a threshold thr = max(mu + c sigma, 0), mu and sigma being the mean
and standard deviation of |w| over its live weights. During training, with probability
(1 + gamma iter)^(-power), the mask is updated: weights with |w| <= 0.9 thr are pruned and
weights with |w| > 1.1 thr are spliced back (the band between is left as is). The forward pass
uses w * mask while every weight, pruned or not, keeps receiving its gradient
(:class:`~backend.pruning.straight_through.StraightThroughMask`), so a pruned weight can grow
back above the threshold.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from backend.pruning.finetune import TrainHook
from backend.pruning.masks import current_mask, effective_weight, masks_from_scores, prunable_layers
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
    ensure_pruned,
    orig_and_mask,
    write_mask,
)

if TYPE_CHECKING:
    from backend.pruning.session import PruneSession

__all__ = [
    "DynamicNetworkSurgery",
    "SurgeryHook",
    "calibrated_threshold",
    "project_to_sparsity",
    "splice_mask",
    "surgery_probability",
]

PRUNE_BAND = 0.9  # mask 0 where |w| <= 0.9 thr (Guo et al. 2016, reference implementation)
SPLICE_BAND = 1.1  # mask 1 where |w| > 1.1 thr


def surgery_probability(iteration: int, gamma: float, power: float) -> float:
    """Probability (1 + gamma * iteration)^(-power) of a mask update at ``iteration``."""
    return float((1.0 + gamma * iteration) ** (-power))


def calibrated_threshold(live_abs: Tensor, n_prune: int) -> float:
    """A threshold that removes exactly the ``n_prune`` smallest of ``live_abs``.

    The midpoint between the ``n_prune``-th and the next smallest value, so that neither
    band of :func:`splice_mask` (0.9 thr, 1.1 thr) changes the resulting mask when the two values
    differ by more than ~10%; 0 when nothing is to be pruned (only exact zeros are pruned then).

    Args:
        live_abs: |w| of the live weights, any shape.
        n_prune: How many of them to remove.
    """
    values = torch.sort(live_abs.detach().reshape(-1).double().cpu()).values
    if n_prune <= 0 or values.numel() == 0:
        return 0.0
    if n_prune >= values.numel():
        return float(values[-1])
    return float((values[n_prune - 1] + values[n_prune]) / 2)


def splice_mask(
    abs_weight: Tensor, mask: Tensor, threshold: float, allowed: Tensor | None = None
) -> Tensor:
    """One surgery step on a mask: prune |w| <= 0.9 thr, splice |w| > 1.1 thr.

    Args:
        abs_weight: |w| of all the layer's weights (pruned ones included).
        mask: The current 0/1 mask, same shape.
        threshold: thr >= 0.
        allowed: Optional 0/1 mask of the weights that may be live at all; spliced weights
            outside it stay pruned.

    Returns:
        The new 0/1 mask, dtype and device of ``mask``.
    """
    new = torch.where(
        abs_weight <= PRUNE_BAND * threshold,
        torch.zeros_like(mask),
        torch.where(abs_weight > SPLICE_BAND * threshold, torch.ones_like(mask), mask),
    )
    if allowed is not None:
        new = new * allowed.to(device=new.device, dtype=new.dtype)
    return new


def project_to_sparsity(
    abs_weight: Tensor, mask: Tensor, allowed: Tensor, sparsity: float
) -> Tensor:
    """The mask with exactly ``round(sparsity * numel)`` zeros closest to ``mask``.

    Keeps the live weights of ``mask`` with the largest |w|; if ``mask`` has too few live
    weights, the largest |w| of the remaining allowed weights are added. Weights outside
    ``allowed`` are never kept (if they are too many, the result has more zeros than asked).
    Ties are broken by position (the earlier entry is kept).

    Args:
        abs_weight: |w|, any shape.
        mask: The 0/1 mask DNS ended with, same shape.
        allowed: 0/1 mask of the weights that may be live.
        sparsity: Target fraction of zeros in [0, 1).

    Returns:
        The new 0/1 mask, dtype and device of ``mask``.
    """
    flat_w = abs_weight.detach().reshape(-1).float()
    ok = allowed.reshape(-1).to(flat_w.device) != 0
    live = (mask.reshape(-1).to(flat_w.device) != 0) & ok
    n_keep = flat_w.numel() - round(sparsity * flat_w.numel())
    # Lexicographic order: live first, then allowed, then by decreasing |w| (stable sorts).
    order = torch.sort(flat_w, descending=True, stable=True).indices
    group = live.to(torch.int8) * 2 + ok.to(torch.int8)
    order = order[torch.sort(group[order], descending=True, stable=True).indices]
    n_keep = min(n_keep, int(ok.sum()))
    new = torch.zeros_like(mask).reshape(-1)
    new[order[:n_keep]] = 1
    return new.reshape(mask.shape)


class SurgeryHook(TrainHook):
    """Straight-through masks during training and the stochastic DNS mask updates.

    :meth:`on_train_begin` switches the layers to dense gradients and makes the update of
    iteration 0 (probability 1); after optimiser step t the update of iteration t + 1 is drawn
    (so it precedes the forward pass of step t + 1, as in the reference implementation, which
    updates the mask in the forward pass); :meth:`on_train_end` turns the masks back into
    ordinary ``custom_from_mask`` ones.

    Args:
        layers: ``[(name, module)]`` to operate on.
        thresholds: ``{name: thr}``.
        allowed: ``{name: 0/1 mask}`` of the weights that may be live (the mask the model had
            before DNS started); None allows every weight.
        gamma: Decay of the update probability.
        power: Exponent of the update probability.
        seed: Seeds the Bernoulli draws.

    Attributes:
        n_updates: Mask updates made so far.
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        thresholds: dict[str, float],
        allowed: dict[str, Tensor] | None = None,
        gamma: float = 1e-4,
        power: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.layers = layers
        self.thresholds = thresholds
        self.allowed = allowed
        self.gamma = gamma
        self.power = power
        self.rng = random.Random(seed)
        self.n_updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """One surgery step on every layer (prune and splice)."""
        for name, module in self.layers:
            weight, mask = orig_and_mask(module)
            allowed = None if self.allowed is None else self.allowed[name]
            new = splice_mask(weight.abs(), mask, self.thresholds[name], allowed)
            mask.copy_(new)
        self.n_updates += 1

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        for name, module in self.layers:
            enable_straight_through(module)
            if self.allowed is not None:  # train() may have moved the model to its device
                weight, mask = orig_and_mask(module)
                self.allowed[name] = self.allowed[name].to(weight.device, mask.dtype)
        self.update()  # iteration 0: probability 1

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.rng.random() < surgery_probability(step + 1, self.gamma, self.power):
            self.update()

    def on_train_end(self, model: nn.Module) -> None:
        for _, module in self.layers:
            disable_straight_through(module)


@register_method("dynamic_network_surgery")
class DynamicNetworkSurgery(PruningMethod):
    """Dynamic network surgery (Guo et al. 2016): prune and splice while training.

    SCIENCE.md sect. 4. :meth:`run` starts from the masks of :meth:`compute_masks`, fine-tunes
    the trained model it is given for the session's epochs with straight-through masks (the
    forward pass uses w * mask, every weight receives its gradient) and, with probability
    (1 + gamma iter)^(-power) after each step, prunes |w| <= 0.9 thr and splices back
    |w| > 1.1 thr in every layer, thr = max(mu + c sigma, 0). At the end the masks are ordinary
    ``custom_from_mask`` masks (checkpoints are unchanged).

    mu and sigma are the mean and (population) standard deviation of |w| over the weights that
    are live when DNS starts, computed once, as the authors' reference implementation does.
    When ``c`` is None it is calibrated per layer: thr is the midpoint between the k-th and
    (k+1)-th smallest live |w|, k = the number of weights that layer must lose to reach
    ``sparsity`` (already-pruned weights count), i.e. the initial threshold removes exactly the
    target fraction of that layer, and c = (thr - mu) / sigma.

    Deviations from the paper: (1) the paper's final sparsity is an outcome of c; to make
    sparsities comparable across methods, the final masks are projected to exactly
    ``round(sparsity * numel)`` zeros per layer, keeping the largest |w| among DNS's final live
    weights and, if they are too few, adding the largest |w| of the pruned ones (which kept
    training, so their values are meaningful); no fine-tuning follows the projection. (2)
    Weights already pruned when DNS starts (by an earlier method) stay pruned: DNS splices
    only weights that were live at its start. (3) :meth:`compute_masks` returns the initial
    masks at the target (per-layer magnitude pruning, what the calibrated threshold gives),
    whatever ``c``; with an explicit ``c`` the first surgery step of :meth:`run` (iteration 0,
    probability 1) moves them to thr(c).

    Args:
        sparsity: Target fraction of zero weights in each prunable layer, in [0, 1).
        gamma: gamma >= 0 of the update probability (1 + gamma iter)^(-power).
        power: power >= 0 of the update probability.
        c: The threshold's c (one value for every layer), or None to calibrate it per layer.
        seed: Seeds the Bernoulli draws of the mask updates.
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    scope = "layer"
    schedule = "during_training"
    revives = True

    def __init__(
        self,
        sparsity: float,
        gamma: float = 1e-4,
        power: float = 1.0,
        c: float | None = None,
        seed: int = 0,
        include_classifier: bool = True,
    ) -> None:
        gamma = check_number("gamma", gamma, 0.0, math.inf, high_closed=False)
        power = check_number("power", power, 0.0, math.inf, high_closed=False)
        if c is not None:
            c = check_number("c", c, -math.inf, math.inf, low_closed=False, high_closed=False)
        seed = check_int("seed", seed, 0, 2**63 - 1)
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(
            sparsity,
            gamma=gamma,
            power=power,
            c=c,
            seed=seed,
            include_classifier=include_classifier,
        )
        self.gamma = gamma
        self.power = power
        self.c = c
        self.seed = seed
        self.include_classifier = include_classifier

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """The initial masks: per layer, the smallest-|w| live weights removed to the target."""
        masks: dict[str, Tensor] = {}
        for name, module in prunable_layers(model, self.include_classifier):
            scores = {name: effective_weight(module).detach().abs()}
            masks.update(masks_from_scores(scores, {name: current_mask(module)}, self.sparsity))
        return masks

    def layer_thresholds(self, model: nn.Module) -> dict[str, tuple[float, float]]:
        """``{layer: (c, thr)}`` from the current live weights of ``model``.

        With ``c=None``, c is calibrated so that thr removes the target fraction of the layer
        (see the class docstring); otherwise thr = max(mu + c sigma, 0).
        """
        out: dict[str, tuple[float, float]] = {}
        with torch.no_grad():
            for name, module in prunable_layers(model, self.include_classifier):
                mask = current_mask(module)
                live = effective_weight(module).detach().abs()[mask != 0].double()
                mu = float(live.mean()) if live.numel() else 0.0
                sigma = float(live.std(unbiased=False)) if live.numel() else 0.0
                if self.c is None:
                    n = mask.numel()
                    n_prune = round(self.sparsity * n) - (n - live.numel())
                    thr = calibrated_threshold(live, n_prune)
                    c = (thr - mu) / sigma if sigma > 0 else 0.0
                else:
                    c = self.c
                    thr = max(mu + c * sigma, 0.0)
                out[name] = (c, thr)
        return out

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        """Fine-tune ``model`` for the session's epochs with dynamic network surgery.

        Returns:
            The same model, with exactly the target sparsity in every prunable layer.
        """
        session.progress(0.0, f"pruning: {self.name} to {self.sparsity:.0%}")
        layers = prunable_layers(model, self.include_classifier)
        allowed = {name: current_mask(m) for name, m in layers}
        thresholds = {name: thr for name, (_, thr) in self.layer_thresholds(model).items()}
        initial = self.compute_masks(model)
        for name, module in layers:
            ensure_pruned(module)
            write_mask(module, initial[name])
        hook = SurgeryHook(layers, thresholds, allowed, self.gamma, self.power, self.seed)
        session.train(model, hooks=[hook], stage=f"network surgery to {self.sparsity:.0%}")
        with torch.no_grad():
            for name, module in layers:
                weight, mask = orig_and_mask(module)
                final = project_to_sparsity(weight.abs(), mask, allowed[name], self.sparsity)
                write_mask(module, final)
        return model
