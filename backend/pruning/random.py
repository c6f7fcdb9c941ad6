"""Random unstructured pruning, the baseline every method must beat (SCIENCE.md sect. 4;
Blalock et al., "What is the State of Neural Network Pruning?", MLSys 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.pruning.masks import current_mask, masks_from_scores, prunable_layers
from backend.pruning.registry import PruningMethod, check_bool, check_int, register_method

__all__ = ["RandomUnstructured"]


@register_method("random")
class RandomUnstructured(PruningMethod):
    """Random unstructured pruning over all prunable weights jointly (global).

    Exactly ``round(sparsity * total)`` prunable weights are zero afterwards; already-pruned
    weights count and stay pruned. The random scores depend only on ``seed`` and the layer
    shapes (drawn on the CPU), so pruning 0.5 then 0.8 with one seed gives nested masks, the
    same as pruning 0.8 directly.

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        seed: Seed of the torch.Generator drawing the scores.
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    scope = "global"

    def __init__(self, sparsity: float, seed: int = 0, include_classifier: bool = True) -> None:
        seed = check_int("seed", seed, 0, 2**63 - 1)
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(sparsity, seed=seed, include_classifier=include_classifier)
        self.seed = seed
        self.include_classifier = include_classifier

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Masks keeping a uniformly random subset of the prunable weights."""
        generator = torch.Generator().manual_seed(self.seed)
        layers = prunable_layers(model, self.include_classifier)
        current = {name: current_mask(m) for name, m in layers}
        scores = {
            name: torch.rand(mask.shape, generator=generator) for name, mask in current.items()
        }
        return masks_from_scores(scores, current, self.sparsity)
