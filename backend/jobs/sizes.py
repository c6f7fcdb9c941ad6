"""Parameter counts of the built-in architectures, computed without torch.

The size cap (``Settings.max_params``, ``PRUNESCOPE_MAX_PARAMS``) is checked where a network is
built from a name and arguments: a train job's architecture is built on the meta device at
submission (:func:`backend.jobs.submit.check_trainable`, which imports torch already), and an
import job counts its architecture on the meta device before it builds it
(:func:`models.importer.read_checkpoint`). An upload is answered without torch (the server
stays small while it streams gigabytes, tests/test_upload_memory.py), and ``models`` imports
torch, so the upload's own check counts the built-ins (:mod:`models.architectures`) here,
from their definitions; tests/backend/jobs/test_sizes.py holds each count equal to the real
model's. timm, torchvision and plug-in architectures named in an upload are counted by its job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["BUILTIN_PARAMETERS", "builtin_parameters", "fill_builtin", "too_many"]


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _conv(n_in: int, n_out: int, k: int, bias: bool = True) -> int:
    return n_in * n_out * k * k + (n_out if bias else 0)


def _mlp(input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (128, 64)) -> int:
    widths = [math.prod(input_shape), *hidden, num_classes]
    return sum(_linear(a, b) for a, b in zip(widths, widths[1:], strict=False))


def _digits_cnn(num_classes: int = 10, in_channels: int = 1) -> int:
    convs = _conv(in_channels, 16, 3) + _conv(16, 32, 3) + _conv(32, 64, 3)
    return convs + _linear(64 * 2 * 2, 64) + _linear(64, num_classes)


def _resnet20(num_classes: int = 10, in_channels: int = 3) -> int:
    widths = (16, 32, 64)
    total = _conv(in_channels, widths[0], 3, bias=False) + 2 * widths[0]  # conv1, bn1
    in_planes = widths[0]
    for i, planes in enumerate(widths):
        for j in range(3):
            stride = 2 if (i > 0 and j == 0) else 1
            total += _conv(in_planes, planes, 3, bias=False) + 2 * planes
            total += _conv(planes, planes, 3, bias=False) + 2 * planes
            if stride != 1 or in_planes != planes:  # the 1x1 projection shortcut and its BN
                total += _conv(in_planes, planes, 1, bias=False) + 2 * planes
            in_planes = planes
    return total + _linear(in_planes, num_classes)


BUILTIN_PARAMETERS: dict[str, Callable[..., int]] = {
    "mlp": _mlp,
    "digits_cnn": _digits_cnn,
    "resnet20": _resnet20,
}
"""Built-in architecture -> its parameter count from the factory's keyword arguments (the
same names and defaults as the factory in :mod:`models.architectures`)."""


def _positive_int(value: object) -> bool:
    return type(value) is int and value > 0


def builtin_parameters(name: str, kwargs: Mapping[str, Any]) -> int | None:
    """Parameters of the built-in ``name`` built with ``kwargs``; None when ``name`` is not a
    built-in or ``kwargs`` would not build it (the import job then says what is wrong)."""
    count = BUILTIN_PARAMETERS.get(name)
    if count is None:
        return None
    values = list(kwargs.values())
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        if not all(_positive_int(v) for v in items):
            return None
    try:
        return count(**kwargs)
    except TypeError:  # missing or unexpected arguments
        return None


def fill_builtin(
    name: str, kwargs: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    """``kwargs`` completed from a dataset as :func:`models.registry.fill_kwargs` completes a
    built-in's: ``num_classes``, and ``input_shape`` or ``in_channels`` where the factory
    takes them; what the user gave is kept."""
    out = dict(kwargs)
    shape = [int(d) for d in input_shape]
    out.setdefault("num_classes", int(num_classes))
    if name == "mlp":
        out.setdefault("input_shape", shape)
    elif len(shape) == 3:
        out.setdefault("in_channels", shape[0])
    return out


def too_many(name: str, count: int, limit: int) -> str:
    """The refusal of an architecture over the cap, worded as
    :class:`models.registry.TooManyParameters`."""
    return (
        f"{name} with these arguments has {count:,} parameters; the limit is {limit:,} "
        "parameters (PRUNESCOPE_MAX_PARAMS)"
    )
