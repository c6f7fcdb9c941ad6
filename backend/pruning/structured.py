"""Structured L1 filter pruning: remove whole output channels (SCIENCE.md sect. 4).

Li, Kadav, Durdanovic, Samet & Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017: rank
the filters of a layer by the L1 norm of their kernel weights, ``sum_{c,i,j} |W[f, c, i, j]|``
for a Conv2d weight W of shape (C_out, C_in, kh, kw) (``sum_c |W[f, c]|`` for a Linear weight
of shape (out, in)), and remove the filters with the smallest norms together with their
feature maps, i.e. the matching input channels of the next layer and the BatchNorm entries in
between. The network physically shrinks, so unlike unstructured sparsity the speed-up is real.

Coupled layers are found by Torch-Pruning's ``DependencyGraph`` (Fang et al., CVPR 2023): the
convolutions whose outputs are summed by residual additions (in a ResNet stage, every block's
``conv2`` plus the stem or the projection shortcut) must lose the same channels. Choice made
here: such a group is ranked by the *sum* of its output layers' filter L1 norms, so a channel
is removed only if it is weak in the whole residual stream (Li et al. sect. 3.2 instead leave
the second layer of each residual block unpruned; summing, as Torch-Pruning's
``GroupMagnitudeImportance(p=1, group_reduction="sum")`` restricted to output filters does,
lets the residual channels shrink as well). All norms are computed on the unpruned model before
any channel is cut (Li et al.'s "independent" strategy), so the choice does not depend on the
order in which layers are visited.

Counting rule: a group with ``c`` output channels (``c0`` before any structured pruning of this
model) loses ``min(round(sparsity * c0) - (c0 - c), c - 1)`` more channels (never fewer than
0): every prunable layer ends with ``round(sparsity * c0)`` channels removed, but keeps at least
one. Layers of a residual group have the same channel count, so the group constraint changes
nothing for them. ``model.classifier`` never loses outputs (its inputs shrink with the layer
before it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.masks import (
    apply_masks,
    current_mask,
    effective_weight,
    in_layer_scope,
    is_pruned,
    prunable_layers,
)
from backend.pruning.registry import PruningMethod, check_bool, check_number, register_method
from models.heads import try_find_classifier
from models.structured import (
    STRUCTURE_ATTR,
    apply_structure_ops,
    new_structure,
    op_kind,
    out_channels,
    validate_structure,
)

if TYPE_CHECKING:
    from backend.pruning.session import PruneSession

__all__ = [
    "FilterGroup",
    "L1FilterPruning",
    "plan_filter_pruning",
    "prune_filters",
    "structured_unsupported",
]


@dataclass(frozen=True)
class FilterGroup:
    """Output channels that must be removed together, and which of them to remove.

    Attributes:
        root: Qualified name of the layer the pruning op is recorded on.
        kind: ``"conv_out"`` or ``"linear_out"`` (the root's type).
        channels: Current number of output channels of the group.
        scores: (channels,) summed filter L1 norms over ``layers``, in the root's numbering.
        remove: Root channel indices to remove, ascending.
        layers: ``{layer name: its removed output channels}`` for every ``nn.Conv2d`` /
            ``nn.Linear`` whose outputs are cut with the root's (the root included).
    """

    root: str
    kind: str
    channels: int
    scores: Tensor
    remove: list[int]
    layers: dict[str, list[int]] = field(default_factory=dict)

    def op(self) -> dict[str, Any]:
        """The JSON-ready op of :mod:`models.structured`."""
        return {"module": self.root, "kind": self.kind, "idxs": list(self.remove)}


def _permanent_copy(model: nn.Module) -> nn.Module:
    """A copy whose prune masks are baked in (weight = orig * mask), for tracing and scoring."""
    work = copy.deepcopy(model)
    for module in work.modules():
        if is_pruned(module):
            prune.remove(module, "weight")
    return work


def structured_unsupported(model: nn.Module) -> str | None:
    """Why filter pruning cannot take ``model`` (a sentence), or None.

    Attention couples every projection's output channels to the number of heads and the head
    dimension (``qkv`` is reshaped to (3, heads, head_dim)); removing single channels breaks
    that reshape, so attention networks (ViT, DeiT, Swin, ...) are refused before a job runs.
    """
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.MultiheadAttention) or "attention" in kind.lower():
            return (
                f"structured filter pruning cannot remove channels of attention layers "
                f"({kind} {name!r}: its projections are reshaped into heads); prune this "
                "network with an unstructured method, e.g. global_magnitude"
            )
    return None


def _n_remove(sparsity: float, channels: int, original: int) -> int:
    already = original - channels
    return max(0, min(round(sparsity * original) - already, channels - 1))


def _no_layer_error(include_linear: bool) -> ValueError:
    kinds = "nn.Conv2d or hidden nn.Linear" if include_linear else "nn.Conv2d"
    return ValueError(
        f"the model has no prunable layer for structured pruning (no {kinds} outside "
        "model.classifier)"
    )


@torch.no_grad()
def _l1_rows(module: nn.Module) -> Tensor:
    """(C_out,) L1 norm of each output filter (Li et al. 2017, sect. 3.1)."""
    weight = effective_weight(module).detach()
    return weight.abs().reshape(weight.shape[0], -1).sum(dim=1).double().cpu()


def plan_filter_pruning(
    model: nn.Module, sparsity: float, example_input: Tensor, include_linear: bool = True
) -> list[FilterGroup]:
    """Choose the filters to remove; the model is not modified.

    Args:
        model: The model (may carry ``torch.nn.utils.prune`` masks: norms use
            ``weight_orig * weight_mask``; may be structurally pruned already, see
            ``model.prunescope_structure``).
        sparsity: Fraction of each layer's original output channels to have removed, [0, 1).
        example_input: (N, ...) an input the model accepts, on its device; only traced.
        include_linear: Also prune hidden ``nn.Linear`` layers (never ``model.classifier``).

    Returns:
        One :class:`FilterGroup` per group of coupled output layers, in Torch-Pruning's
        traversal order (groups with nothing to remove included).

    Raises:
        ValueError: Invalid ``sparsity`` or ``include_linear``, a model without prunable layer,
            or one that cannot be traced with ``example_input``.
    """
    import torch_pruning as tp  # lazily: only structured pruning needs it

    sparsity = check_number("sparsity", sparsity, 0.0, 1.0, high_closed=False)
    include_linear = check_bool("include_linear", include_linear)
    reason = structured_unsupported(model)
    if reason is not None:
        raise ValueError(reason)
    work = _permanent_copy(model).eval()
    names = {m: n for n, m in work.named_modules()}
    structure = getattr(model, STRUCTURE_ATTR, None)
    original: dict[str, int] = (
        dict(structure.get("original_out_channels", {})) if isinstance(structure, dict) else {}
    )
    classifier: nn.Module | None = try_find_classifier(work)
    layers = [m for m in work.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not isinstance(classifier, (nn.Conv2d, nn.Linear)):
        # Without the architecture convention, the last layer is taken to produce the logits.
        classifier = layers[-1] if layers else None
    roots: list[type[nn.Module]] = [nn.Conv2d, nn.Linear] if include_linear else [nn.Conv2d]
    if not any(isinstance(m, tuple(roots)) and m is not classifier for m in layers):
        raise _no_layer_error(include_linear)

    with torch.enable_grad():
        try:
            graph = tp.DependencyGraph().build_dependency(
                work, example_inputs=example_input, verbose=False
            )
        except RuntimeError as exc:
            raise ValueError(
                f"cannot trace the model with an input of shape {tuple(example_input.shape)}: {exc}"
            ) from None
    plans: list[FilterGroup] = []
    ignored = [classifier] if classifier is not None else []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots):
        root_module = group[0].dep.target.module
        channels = out_channels(root_module)
        scores = torch.zeros(channels, dtype=torch.float64)
        members: list[tuple[str, list[int], list[int]]] = []
        for item in group.items:
            module = item.dep.target.module
            if not (
                graph.is_out_channel_pruning_fn(item.dep.handler)
                and isinstance(module, (nn.Conv2d, nn.Linear))
            ):
                continue
            idxs, root_idxs = list(item.idxs), list(item.root_idxs)
            scores.index_add_(0, torch.tensor(root_idxs), _l1_rows(module)[idxs])
            members.append((names[module], idxs, root_idxs))
        root = names[root_module]
        # the prune job's include / exclude patterns choose the groups by their root layer
        k = (
            _n_remove(sparsity, channels, original.get(root, channels))
            if in_layer_scope(root)
            else 0
        )
        # Stable sort: among equal norms (e.g. filters zeroed earlier) the first goes first.
        remove = sorted(torch.sort(scores, stable=True).indices[:k].tolist())
        removed = set(remove)
        plans.append(
            FilterGroup(
                root=root,
                kind=op_kind(root_module),
                channels=channels,
                scores=scores.float(),
                remove=remove,
                layers={
                    name: sorted(i for i, r in zip(idxs, root_idxs, strict=True) if r in removed)
                    for name, idxs, root_idxs in members
                },
            )
        )
    if not plans:
        raise _no_layer_error(include_linear)
    return plans


def prune_filters(
    model: nn.Module, sparsity: float, example_input: Tensor, include_linear: bool = True
) -> nn.Module:
    """Physically remove the lowest-L1 filters of every prunable layer, in place.

    Coupled layers (BatchNorm, the next layers' inputs, residual partners) shrink with them
    (Torch-Pruning). Existing ``torch.nn.utils.prune`` masks are kept: they are cut down to the
    surviving channels and re-applied, so a pruned weight stays pruned. The ops are appended to
    ``model.prunescope_structure`` (created if absent; see :mod:`models.structured`), which
    :func:`models.checkpoint.save_checkpoint` stores so that the model can be rebuilt.

    Args:
        model: The model; modified in place.
        sparsity: Fraction of each layer's original output channels to have removed, [0, 1).
        example_input: (N, ...) an input the model accepts, on its device; only traced.
        include_linear: Also prune hidden ``nn.Linear`` layers (never ``model.classifier``).

    Returns:
        ``model`` itself, smaller.

    Raises:
        ValueError: If the model has no prunable layer or cannot be traced with
            ``example_input``; both are found on a copy, before the model is touched.
    """
    plans = plan_filter_pruning(model, sparsity, example_input, include_linear)
    ops = [plan.op() for plan in plans if plan.remove]
    existing = getattr(model, STRUCTURE_ATTR, None)
    structure = (
        validate_structure(existing)
        if existing is not None
        else new_structure(model, example_input.shape[1:])
    )

    masks = {name: current_mask(m) for name, m in model.named_modules() if is_pruned(m)}
    for name in masks:
        prune.remove(model.get_submodule(name), "weight")
    mask_model: nn.Module | None = None
    if masks:
        # Cut the masks exactly as the weights: a copy whose weights are the masks goes
        # through the same surgery.
        mask_model = copy.deepcopy(model)
        with torch.no_grad():
            for name, mask in masks.items():
                effective_weight(mask_model.get_submodule(name)).copy_(mask)

    apply_structure_ops(model, ops, example_input)
    if mask_model is not None:
        apply_structure_ops(mask_model, ops, example_input)
        apply_masks(
            model,
            {
                name: effective_weight(mask_model.get_submodule(name)).detach().clone()
                for name in masks
            },
        )
    structure["ops"] = list(structure["ops"]) + ops
    setattr(model, STRUCTURE_ATTR, structure)
    return model


@register_method("l1_filter")
class L1FilterPruning(PruningMethod):
    """Structured L1 filter pruning (Li et al. 2017): remove the weakest output channels.

    In every ``nn.Conv2d`` (and hidden ``nn.Linear``) the fraction ``sparsity`` of output
    channels with the smallest filter L1 norms is removed; residual-coupled layers are ranked
    by their summed norms and lose the same channels (see this module's docstring for the
    exact counting rule). :meth:`run` physically shrinks the model and fine-tunes it;
    :meth:`compute_masks` gives the equivalent masks (the removed filters' weight rows zero)
    for code that works with masks. The example batch is only used to trace the network.

    Args:
        sparsity: Fraction of output channels removed from each prunable layer, in [0, 1).
        include_linear: Also prune hidden ``nn.Linear`` layers (never ``model.classifier``).
    """

    needs_batch = True  # an example input to trace the dependency graph
    scope = "structured"
    schedule = "one_shot"

    def __init__(self, sparsity: float, include_linear: bool = True) -> None:
        include_linear = check_bool("include_linear", include_linear)
        super().__init__(sparsity, include_linear=include_linear)
        self.include_linear = include_linear

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Masks zeroing the weight rows of the filters :meth:`run` would remove.

        The masks zero weights only (biases and BatchNorm shifts of a removed channel still
        flow), so the masked model is not output-equivalent to the physically pruned one.

        Args:
            model: The model, possibly already pruned.
            batch: ``(x, y)``; x (N, ...) is traced, y is ignored.

        Returns:
            ``{layer: mask}`` for every ``nn.Conv2d`` and ``nn.Linear``: the current mask
            with the removed filters' rows zeroed (unchanged for ``model.classifier`` and for
            layers that lose nothing, e.g. hidden Linear layers when ``include_linear`` is
            False).
        """
        if batch is None:
            raise ValueError(f"pruning method {self.name!r} needs a batch (x, y) to trace")
        plans = plan_filter_pruning(model, self.sparsity, batch[0][:2], self.include_linear)
        modules = dict(model.named_modules())
        masks = {name: current_mask(m) for name, m in prunable_layers(model)}
        for plan in plans:
            for name, rows in plan.layers.items():
                masks.setdefault(name, current_mask(modules[name]))[rows] = 0
        return masks

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        """Remove the channels, then fine-tune with the session's settings.

        Returns:
            The same model object, physically smaller, with ``model.prunescope_structure``
            (pass the model to :func:`models.checkpoint.save_checkpoint` as usual: the
            structure is stored with it).
        """
        session.progress(0.0, f"pruning: {self.name} removes {self.sparsity:.0%} of channels")
        param = next(iter(model.parameters()), None)
        example = session.batch(2)[0]
        if param is not None:
            example = example.to(param.device)
        prune_filters(model, self.sparsity, example, self.include_linear)
        session.train(model, span=(0.05, 1.0))
        return model
