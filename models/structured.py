"""Structurally pruned models: what was removed, as JSON, and how to remove it again.

A structurally pruned network (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017;
SCIENCE.md sect. 4) has fewer channels than its architecture's definition, so its
``state_dict`` no longer fits :func:`models.registry.create`. It carries a *structure* instead,
a JSON-ready dict kept on the model as the attribute ``model.prunescope_structure`` and stored
by :func:`models.checkpoint.save_checkpoint` under ``extra["structured"]``::

    {
        "format_version": 1,
        "input_shape": [3, 32, 32],            # one example, without the batch dimension
        "original_out_channels": {"conv1": 16, ..., "classifier": 10},
        "ops": [                               # in the order applied
            {"module": "layer1.0.conv1", "kind": "conv_out", "idxs": [3, 7, ...]},
            {"module": "features.1", "kind": "linear_out", "idxs": [0, 5, ...]},
        ],
    }

Each op removes the output channels ``idxs`` of the named ``nn.Conv2d`` (``"conv_out"``) or
``nn.Linear`` (``"linear_out"``) together with everything coupled to them: the following
BatchNorm, the next layers' input channels, and every other layer joined to them by a residual
addition. Torch-Pruning's ``DependencyGraph`` finds the coupled layers (Fang et al., "DepGraph:
Towards Any Structural Pruning", CVPR 2023); ``idxs`` index the module's output channels as they
were when the op was applied (each module's outputs are cut by at most one op per pruning run,
so in practice they index the channels of the preceding stage).

:func:`rebuild_structure` re-applies the ops to a freshly created model of the original
architecture, after which the saved ``state_dict`` loads strictly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "STRUCTURE_ATTR",
    "STRUCTURE_FORMAT",
    "OP_KINDS",
    "apply_structure_ops",
    "new_structure",
    "op_kind",
    "out_channels",
    "rebuild_structure",
    "validate_structure",
]

STRUCTURE_ATTR = "prunescope_structure"
STRUCTURE_FORMAT = 1
OP_KINDS: dict[str, type[nn.Module]] = {"conv_out": nn.Conv2d, "linear_out": nn.Linear}


def out_channels(module: nn.Module) -> int:
    """Output channels of an ``nn.Conv2d`` or output features of an ``nn.Linear``."""
    if isinstance(module, nn.Conv2d):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    raise ValueError(f"{type(module).__name__} is neither nn.Conv2d nor nn.Linear")


def op_kind(module: nn.Module) -> str:
    """``"conv_out"`` for an ``nn.Conv2d``, ``"linear_out"`` for an ``nn.Linear``."""
    for kind, cls in OP_KINDS.items():
        if isinstance(module, cls):
            return kind
    raise ValueError(f"{type(module).__name__} is neither nn.Conv2d nor nn.Linear")


def new_structure(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """An empty structure for an unpruned ``model``: its channel counts and no ops.

    Args:
        model: The model as defined by its architecture.
        input_shape: Shape of one example without the batch dimension, e.g. ``[3, 32, 32]``.
    """
    return {
        "format_version": STRUCTURE_FORMAT,
        "input_shape": [int(d) for d in input_shape],
        "original_out_channels": {
            name: out_channels(m)
            for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        },
        "ops": [],
    }


def _is_index_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
    )


def validate_structure(structure: object) -> dict[str, Any]:
    """Check a structure read from JSON; returns it as a fresh dict.

    Raises:
        ValueError: Naming the first malformed field.
    """
    if not isinstance(structure, Mapping):
        raise ValueError(f"structure={structure!r} should be a JSON object")
    version = structure.get("format_version")
    if version != STRUCTURE_FORMAT:
        raise ValueError(
            f"structure format_version={version!r} is not supported (expected {STRUCTURE_FORMAT})"
        )
    shape = structure.get("input_shape")
    if not _is_index_list(shape) or not shape or 0 in shape:
        raise ValueError(f"structure input_shape={shape!r} should be a list of positive ints")
    channels = structure.get("original_out_channels", {})
    if not isinstance(channels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in channels.items()
    ):
        raise ValueError(f"structure original_out_channels={channels!r} should map names to ints")
    ops = structure.get("ops")
    if not isinstance(ops, list):
        raise ValueError(f"structure ops={ops!r} should be a list")
    for op in ops:
        if (
            not isinstance(op, Mapping)
            or not isinstance(op.get("module"), str)
            or op.get("kind") not in OP_KINDS
            or not _is_index_list(op.get("idxs"))
        ):
            raise ValueError(
                f"structure op {op!r} should be {{'module': str, 'kind': one of "
                f"{sorted(OP_KINDS)}, 'idxs': [int >= 0, ...]}}"
            )
    return copy.deepcopy(dict(structure))


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for tracing (a train-mode forward would update BatchNorm statistics)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _has_prune_masks(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        for param in module._parameters:
            if param.endswith("_orig") and param[: -len("_orig")] + "_mask" in module._buffers:
                return name
    return None


def apply_structure_ops(
    model: nn.Module, ops: Sequence[Mapping[str, Any]], example_input: Tensor
) -> nn.Module:
    """Remove output channels, with every coupled layer, in place (Torch-Pruning).

    One ``DependencyGraph`` is traced from ``example_input``; each op then becomes a pruning
    group (``DependencyGraph.get_pruning_group``) that is pruned at once, so the next
    BatchNorm, the next layers' inputs and residual partners shrink with the op's module.
    The model is traced in eval mode and returned in the mode it came in.

    Args:
        model: The model, without ``torch.nn.utils.prune`` masks (make them permanent
            first); modified in place.
        ops: ``[{"module": qualified name, "kind": "conv_out" | "linear_out", "idxs": [...]},
            ...]`` applied in order.
        example_input: (N, ...) any input the model accepts, on the model's device (only
            shapes matter).

    Returns:
        ``model`` itself.

    Raises:
        ValueError: Unknown module, kind not matching the module type, index out of range or
            repeated, an op that would remove every channel, or a model carrying prune masks.
    """
    import torch_pruning as tp  # lazily: only structured pruning needs it

    masked = _has_prune_masks(model)
    if masked is not None:
        raise ValueError(
            f"layer {masked!r} carries a torch.nn.utils.prune mask; make masks permanent "
            "(prune.remove) before removing channels"
        )
    if not ops:
        return model
    with _eval_mode(model), torch.enable_grad():
        try:
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example_input, verbose=False
            )
        except RuntimeError as exc:
            raise ValueError(
                f"cannot trace the model with an input of shape {tuple(example_input.shape)}: {exc}"
            ) from None
        for op in ops:
            name, kind, idxs = op["module"], op["kind"], list(op["idxs"])
            try:
                module = model.get_submodule(name)
            except AttributeError:
                raise ValueError(f"structure op names no module {name!r}") from None
            expected = OP_KINDS.get(kind)
            if expected is None or not isinstance(module, expected):
                raise ValueError(
                    f"structure op kind={kind!r} does not fit module {name!r} "
                    f"({type(module).__name__})"
                )
            n = out_channels(module)
            if len(set(idxs)) != len(idxs) or any(not 0 <= i < n for i in idxs):
                raise ValueError(
                    f"structure op on {name!r}: idxs should be distinct channels in [0, {n})"
                )
            if len(idxs) >= n:
                raise ValueError(f"structure op on {name!r} would remove all {n} output channels")
            if not idxs:
                continue
            pruner = graph.get_pruner_of_module(module)
            group = graph.get_pruning_group(module, pruner.prune_out_channels, idxs)
            if not graph.check_pruning_group(group):
                raise ValueError(
                    f"structure op on {name!r} would remove every channel of a coupled layer"
                )
            group.prune(record_history=False)
    return model


def rebuild_structure(model: nn.Module, structure: object) -> nn.Module:
    """Re-apply a recorded structure to a freshly created model of the original architecture.

    Args:
        model: Output of :func:`models.registry.create` with the original kwargs, on the
            device it should end up on; modified in place.
        structure: The dict described in this module's docstring (e.g. read back from a
            checkpoint's ``extra["structured"]``).

    Returns:
        ``model``, with its channels removed and ``model.prunescope_structure`` set, ready for
        ``load_state_dict(..., strict=True)`` of the pruned weights.

    Raises:
        ValueError: If the structure is malformed or does not fit the model.
    """
    checked = validate_structure(structure)
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    example = torch.zeros(2, *checked["input_shape"], device=device)
    apply_structure_ops(model, checked["ops"], example)
    setattr(model, STRUCTURE_ATTR, checked)
    return model
