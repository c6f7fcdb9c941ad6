"""Magnitude pruning: keep the weights with the largest |w| (SCIENCE.md sect. 4).

Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS 2015;
global vs layer-wise variants as compared in Blalock et al., "What is the State of Neural Network
Pruning?", MLSys 2020 (ShrinkBench).
"""

from __future__ import annotations

from torch import Tensor, nn

from backend.pruning.masks import current_mask, effective_weight, masks_from_scores, prunable_layers
from backend.pruning.registry import PruningMethod, check_bool, register_method

__all__ = ["GlobalMagnitude", "LayerMagnitude"]


@register_method("global_magnitude")
class GlobalMagnitude(PruningMethod):
    """Global magnitude pruning: one |w| threshold over all prunable layers jointly.

    Han et al. 2015; global variant as in Blalock et al. 2020 (SCIENCE.md sect. 4). Exactly
    ``round(sparsity * total)`` of the prunable weights are zero afterwards (already-pruned
    weights count and stay pruned); ties in |w| are broken by layer order, then row-major
    position. Equivalent to ``torch.nn.utils.prune.global_unstructured`` with
    ``L1Unstructured`` on an unpruned model without ties.

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    scope = "global"

    def __init__(self, sparsity: float, include_classifier: bool = True) -> None:
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(sparsity, include_classifier=include_classifier)
        self.include_classifier = include_classifier

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Masks keeping the largest-|w| weights of all prunable layers jointly."""
        layers = prunable_layers(model, self.include_classifier)
        scores = {name: effective_weight(m).detach().abs() for name, m in layers}
        current = {name: current_mask(m) for name, m in layers}
        return masks_from_scores(scores, current, self.sparsity)


@register_method("layer_magnitude")
class LayerMagnitude(PruningMethod):
    """Layer-wise magnitude pruning: the same sparsity in every prunable layer.

    Han et al. 2015; layer-wise variant as in Blalock et al. 2020 (SCIENCE.md sect. 4). In each
    layer exactly ``round(sparsity * numel)`` weights are zero afterwards; equivalent to
    ``torch.nn.utils.prune.l1_unstructured`` per layer on an unpruned model without ties.

    Args:
        sparsity: Target fraction of zero weights in each prunable layer, in [0, 1).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    scope = "layer"

    def __init__(self, sparsity: float, include_classifier: bool = True) -> None:
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(sparsity, include_classifier=include_classifier)
        self.include_classifier = include_classifier

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Masks keeping the largest-|w| weights of each prunable layer."""
        masks: dict[str, Tensor] = {}
        for name, module in prunable_layers(model, self.include_classifier):
            scores = {name: effective_weight(module).detach().abs()}
            masks.update(masks_from_scores(scores, {name: current_mask(module)}, self.sparsity))
        return masks
