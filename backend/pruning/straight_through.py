"""Straight-through masks: every weight learns, only live ones compute (SCIENCE.md sect. 4).

Dynamic network surgery (Guo et al., "Dynamic Network Surgery for Efficient DNNs", NeurIPS 2016)
and RigL (Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020) need the
gradient of the loss with respect to *every* weight, pruned or not, while the forward pass uses
only the live ones: DNS keeps updating pruned weights so that they can be spliced back, RigL
grows the inactive connections with the largest dense gradient.

:class:`StraightThroughMask` is a ``torch.nn.utils.prune.BasePruningMethod`` whose
:meth:`~StraightThroughMask.apply_mask` returns ``orig * mask + (orig - orig.detach()) *
(1 - mask)``: its value is exactly ``orig * mask`` (the second term is zero) and its gradient
with respect to ``orig`` is the dense gradient (``mask + (1 - mask) = 1``). Masks stay where
torch puts them (parameter ``weight_orig``, buffer ``weight_mask``), so the state dict, and
therefore checkpoints, look exactly as for ordinary pruning; :func:`disable_straight_through`
swaps the hook back to a plain ``CustomFromMask`` holding the current mask, as
``prune.custom_from_mask`` would have left it.

Methods that revive weights cannot go through :func:`backend.pruning.masks.apply_masks` (torch
multiplies a new mask into the old one); :func:`write_mask` replaces a mask in place instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.masks import is_pruned

__all__ = [
    "StraightThroughMask",
    "disable_all_straight_through",
    "disable_straight_through",
    "enable_straight_through",
    "ensure_pruned",
    "is_straight_through",
    "orig_and_mask",
    "write_mask",
]


class StraightThroughMask(prune.BasePruningMethod):
    """Forward with ``orig * mask``, backward with the dense gradient for ``orig``.

    The hook reads the mask buffer at every forward pass, so a mask rewritten in place (by
    :func:`write_mask`) takes effect at the next forward. It is never created through
    ``BasePruningMethod.apply`` (which would stack it into a ``PruningContainer`` with the
    ordinary ``orig * mask`` product); use :func:`enable_straight_through`.
    """

    PRUNING_TYPE = "unstructured"

    def __init__(self, name: str = "weight") -> None:
        self._tensor_name = name

    def compute_mask(self, t: Tensor, default_mask: Tensor) -> Tensor:
        """The existing mask, unchanged: masks are written directly (:func:`write_mask`)."""
        return default_mask

    def apply_mask(self, module: nn.Module) -> Tensor:
        """``orig * mask`` in value; d(result)/d(orig) = 1 everywhere (dense gradient)."""
        orig = getattr(module, self._tensor_name + "_orig")
        mask = getattr(module, self._tensor_name + "_mask").to(dtype=orig.dtype)
        return orig * mask + (orig - orig.detach()) * (1 - mask)


def _pruning_hook_keys(module: nn.Module, name: str) -> list[int]:
    return [
        key
        for key, hook in module._forward_pre_hooks.items()
        if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == name
    ]


def _refresh(module: nn.Module, name: str) -> None:
    """Recompute ``module.<name>`` without autograd history (keeps the module deep-copyable)."""
    with torch.no_grad():
        hook = module._forward_pre_hooks[_pruning_hook_keys(module, name)[0]]
        assert isinstance(hook, prune.BasePruningMethod)
        setattr(module, name, hook.apply_mask(module))


def ensure_pruned(module: nn.Module, name: str = "weight") -> None:
    """Give ``module.<name>`` the prune reparametrisation with a mask of ones if it has none.

    Done with ``prune.custom_from_mask``, as :func:`backend.pruning.masks.apply_masks` does.

    The parameter object is kept (renamed ``<name>_orig``), so an optimiser built before still
    updates it.
    """
    if not is_pruned(module, name):
        weight = getattr(module, name)
        prune.custom_from_mask(
            module, name, torch.ones_like(weight, memory_format=torch.contiguous_format)
        )


def orig_and_mask(module: nn.Module, name: str = "weight") -> tuple[Tensor, Tensor]:
    """``(<name>_orig, <name>_mask)`` of a pruned module (the parameter and the buffer)."""
    return getattr(module, name + "_orig"), getattr(module, name + "_mask")


def is_straight_through(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` is masked by a :class:`StraightThroughMask`."""
    return any(
        isinstance(module._forward_pre_hooks[k], StraightThroughMask)
        for k in _pruning_hook_keys(module, name)
    )


def write_mask(module: nn.Module, mask: Tensor, name: str = "weight") -> None:
    """Replace the mask of ``module.<name>`` in place (may revive weights) and refresh it.

    The module must be pruned already (:func:`ensure_pruned`). The mask is not checked for 0/1
    values (callers build it from comparisons); its shape must match.

    Raises:
        ValueError: If the module is not pruned or the shapes differ.
    """
    if not is_pruned(module, name):
        raise ValueError(f"{type(module).__name__}.{name} is not pruned; call ensure_pruned first")
    buffer: Tensor = getattr(module, name + "_mask")
    if mask.shape != buffer.shape:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but {name} has shape {tuple(buffer.shape)}"
        )
    with torch.no_grad():
        buffer.copy_(mask)
    for key in _pruning_hook_keys(module, name):
        hook = module._forward_pre_hooks[key]
        if isinstance(hook, prune.CustomFromMask):
            hook.mask = buffer.detach().clone()  # keep the hook's copy consistent
    _refresh(module, name)


def enable_straight_through(
    module: nn.Module, mask: Tensor | None = None, name: str = "weight"
) -> None:
    """Mask ``module.<name>`` with a :class:`StraightThroughMask` (dense gradients).

    An unpruned module first gets a mask of ones; an existing pruning hook (or a container of
    them) is replaced in place, keeping the mask buffer, the ``<name>_orig`` parameter object
    and the hook's position among the forward pre-hooks.

    Args:
        module: A module with a ``<name>`` parameter, pruned or not.
        mask: If given, replaces the current mask (may revive weights).
        name: Parameter name.
    """
    ensure_pruned(module, name)
    keys = _pruning_hook_keys(module, name)
    module._forward_pre_hooks[keys[0]] = StraightThroughMask(name)
    for key in keys[1:]:
        del module._forward_pre_hooks[key]
    if mask is not None:
        write_mask(module, mask, name)
    else:
        _refresh(module, name)


def disable_straight_through(module: nn.Module, name: str = "weight") -> None:
    """Swap a :class:`StraightThroughMask` back to an ordinary ``prune.CustomFromMask``.

    Afterwards the module is indistinguishable from one pruned with
    ``prune.custom_from_mask(module, name, mask)`` (current mask), and ``module.<name>`` is
    refreshed without autograd history. A module without a straight-through hook is left as is.
    """
    for key in _pruning_hook_keys(module, name):
        if isinstance(module._forward_pre_hooks[key], StraightThroughMask):
            standard = prune.CustomFromMask(getattr(module, name + "_mask").detach().clone())
            standard._tensor_name = name
            module._forward_pre_hooks[key] = standard
            _refresh(module, name)


def disable_all_straight_through(modules: nn.Module | Iterable[nn.Module]) -> int:
    """:func:`disable_straight_through` on every parameter of every (sub)module.

    Args:
        modules: A model (all its submodules are visited) or an iterable of modules.

    Returns:
        The number of parameters switched back.
    """
    mods = modules.modules() if isinstance(modules, nn.Module) else modules
    count = 0
    for module in mods:
        for key in list(module._forward_pre_hooks):
            hook = module._forward_pre_hooks.get(key)
            if isinstance(hook, StraightThroughMask):
                disable_straight_through(module, hook._tensor_name)
                count += 1
    return count
