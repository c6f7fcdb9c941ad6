"""Stored inputs as a model reads them, one batch at a time.

A stored dataset keeps uint8 images as uint8 (:mod:`backend.data.stored`); they stand for
``value / 255`` in [0, 1]. Every place that feeds a model (training, prediction, features,
pruning scores, corruptions, regions) converts the batch it moves with :func:`model_input`, so
no float copy of a whole split is ever made. The conversion is float32 division by 255, the
same numbers an upload's uint8 arrays became when datasets were stored as float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FloatRows", "input_dtype", "is_pixels", "model_input", "row_norms"]


def is_pixels(x: Tensor) -> bool:
    """True for stored uint8 pixel inputs (which stand for ``x / 255``)."""
    return x.dtype == torch.uint8


def model_input(xb: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A batch as the model takes it: uint8 becomes float32 ``xb / 255``; a float batch is
    cast to ``dtype`` when one is given.

    Args:
        xb: (B, ...) inputs, on any device (move uint8 before converting: 4x fewer bytes).
        dtype: the model's floating dtype, or None to keep float32 / the batch's dtype.
    """
    if xb.dtype == torch.uint8:
        xb = xb.to(torch.float32) / 255.0
    if dtype is not None and xb.is_floating_point() and xb.dtype != dtype:
        xb = xb.to(dtype)
    return xb


def input_dtype(model: nn.Module, x: Tensor) -> torch.dtype:
    """The dtype a batch of ``x`` is given to ``model`` in: the model's parameter dtype for
    floating or pixel inputs (float64 arrays from numpy are common), ``x``'s own otherwise."""
    param = next(model.parameters(), None)
    if (x.is_floating_point() or is_pixels(x)) and param is not None:
        return param.dtype
    if is_pixels(x):
        return torch.float32
    return x.dtype


class FloatRows:
    """Read access to some stored inputs as float (uint8 -> ``x / 255``), row by row, for
    code that picks a few samples out of a split (segments, slices) without converting it
    whole. Offers what such code uses of a tensor: ``len``, ``shape``, ``dtype``, ``device``
    and indexing."""

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.shape = x.shape
        self.device = x.device
        self.dtype = torch.float32 if is_pixels(x) else x.dtype

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: object) -> Tensor:
        return model_input(self.x[index])  # type: ignore[index]


def row_norms(x: Tensor, chunk: int = 4096) -> Tensor:
    """The L2 norm of every row of ``x`` as the model reads it, shape (N,), computed a chunk
    at a time (float32 rows give exactly ``x.flatten(1).norm(dim=1)``)."""
    parts = [model_input(x[i : i + chunk]).flatten(1).norm(dim=1) for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)
