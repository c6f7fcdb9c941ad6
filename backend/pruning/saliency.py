"""Gradient-based saliency pruning: gradient (GP), undecayed (UP) and SNIP.

All three score every prunable weight from the gradient g of the plain data loss (mean
cross-entropy) on one training batch, with respect to the effective weight (``weight_orig *
weight_mask`` for an already-pruned layer), and prune the lowest scores globally:

- GP (Good et al., NeurIPS 2022; SCIENCE.md sect. 2): s_i = |theta_i g_i|.
- UP (ibid.): s_i = |-theta_i g_i + eps theta_i^2|, eps the weight-decay coefficient.
- SNIP (Lee et al., ICLR 2019; SCIENCE.md sect. 4): s_i = |g_i w_i| at initialisation; the
  network is pruned before training and then trained.

Gradients are taken in eval mode (BatchNorm uses its running statistics, which a single
scoring batch must not change); the model's mode is restored afterwards.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from backend.pruning.masks import current_mask, masks_from_scores, prunable_layers
from backend.pruning.registry import PruningMethod, check_bool, check_number, register_method
from backend.pruning.session import PruneSession


def loss_gradients(
    model: nn.Module, batch: tuple[Tensor, Tensor], layers: list[tuple[str, nn.Module]]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Effective weight and gradient of the mean cross-entropy for each layer.

    Args:
        model: Maps x (B, ...) to logits (B, C).
        batch: ``(x, y)``; x (B, ...), y (B,) integer labels.
        layers: ``(name, module)`` pairs from :func:`prunable_layers`.

    Returns:
        ``{name: (w, g)}`` with w and g of the weight's shape, both detached.
    """
    x, y = batch
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y)
            # After the forward pass module.weight is the tensor that was used: a leaf
            # Parameter, or orig * mask computed by the prune pre-hook.
            weights: list[Tensor] = [m.weight for _, m in layers]  # type: ignore[misc]
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
    finally:
        model.train(was_training)
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for (name, _), w, g in zip(layers, weights, grads, strict=True):
        grad = torch.zeros_like(w) if g is None else g
        out[name] = (w.detach(), grad.detach())
    return out


class _SaliencyMethod(PruningMethod):
    """Shared machinery: global ranking of a per-weight score computed from (w, g)."""

    needs_batch: ClassVar[bool] = True
    scope = "global"

    def __init__(self, sparsity: float, include_classifier: bool = True) -> None:
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(sparsity, include_classifier=include_classifier)
        self.include_classifier = include_classifier

    def score(self, w: Tensor, g: Tensor) -> Tensor:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def scores(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Per-weight scores ``{layer: (out, in, ...)}``; higher means keep."""
        layers = prunable_layers(model, self.include_classifier)
        grads = loss_gradients(model, batch, layers)
        return {name: self.score(w, g) for name, (w, g) in grads.items()}

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        if batch is None:
            raise ValueError(f"pruning method {self.name!r} needs a batch (x, y)")
        layers = prunable_layers(model, self.include_classifier)
        current = {name: current_mask(m) for name, m in layers}
        return masks_from_scores(self.scores(model, batch), current, self.sparsity)


@register_method("gradient")
class GradientPruning(_SaliencyMethod):
    """Gradient pruning (GP): score |theta_i g_i| on one batch, prune the lowest globally.

    Good et al., "Recall Distortion in Neural Network Pruning and the Undecayed Pruning
    Algorithm", NeurIPS 2022 (SCIENCE.md sect. 2): UP without the weight-decay term.

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    def score(self, w: Tensor, g: Tensor) -> Tensor:
        return (w * g).abs()


@register_method("undecayed")
class UndecayedPruning(_SaliencyMethod):
    """Undecayed pruning (UP): score |-theta_i g_i + eps theta_i^2|, prune the lowest globally.

    Good et al., NeurIPS 2022 (SCIENCE.md sect. 2), the algorithm proposed to attenuate recall
    distortion: the score is the first-order change of the regularised loss when the weight is
    removed, with eps the weight-decay coefficient used in training.

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        eps: Weight-decay coefficient, >= 0 (default 5e-4).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    def __init__(self, sparsity: float, eps: float = 5e-4, include_classifier: bool = True) -> None:
        self.eps = check_number("eps", eps, 0.0)
        super().__init__(sparsity, include_classifier=include_classifier)
        self.params["eps"] = self.eps

    def score(self, w: Tensor, g: Tensor) -> Tensor:
        return (-w * g + self.eps * w * w).abs()


@register_method("snip")
class Snip(_SaliencyMethod):
    """SNIP: prune a freshly initialised network by |g_i w_i| on one batch, then train it.

    Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019
    (SCIENCE.md sect. 4). :meth:`run` ignores the trained weights it is given: it scores a new
    initialisation of the same architecture (seeded by the training seed) and trains the pruned
    network with the session's settings. The score is the paper's connection sensitivity up to
    its normalisation, which does not change the ranking.

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    schedule = "at_init"

    def score(self, w: Tensor, g: Tensor) -> Tensor:
        return (g * w).abs()

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        fresh = session.fresh_model()
        session.progress(0.0, f"pruning at initialisation: snip to {self.sparsity:.0%}")
        self.apply(fresh, session.batch())
        session.train(fresh, span=(0.05, 1.0), stage="training")
        return fresh
