"""Dataset registry: built-in datasets made from what installed packages ship, or generated.

Every entry is a function ``fn(**params) -> ArrayDataset``; :func:`create` raises on unknown
names. An :class:`ArrayDataset` is what the rest of PruneScope stores (one .npz artifact, see
:mod:`backend.data.stored`) and trains on: inputs laid out (N, C, H, W) for images or (N, D)
for vectors, float32 or uint8 (pixels that stand for ``value / 255``, converted per batch), and
int64 labels.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_REGISTRY: dict[str, Callable[..., ArrayDataset]] = {}


class UnknownDatasetError(ValueError):
    """Raised by :func:`create` for a name that is not registered."""


@dataclass
class ArrayDataset:
    """A fixed train/test split, in memory or memory-mapped from its stored file.

    Attributes:
        x_train: (N_train, *input_shape) float32, or uint8 standing for ``x / 255``
            (:func:`backend.data.stored.float_inputs` converts a batch).
        y_train: (N_train,) int64 in [0, num_classes).
        x_test: (N_test, *input_shape), same dtype as x_train.
        y_test: (N_test,) int64.
        class_names: one name per class.
        params: the parameters the dataset was built with (stored for provenance).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if len(y) and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise ValueError(
                    f"y_{split} has labels outside [0, {len(self.class_names)}): "
                    f"min {y.min()}, max {y.max()}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train inputs {self.x_train.shape[1:]} and test inputs "
                f"{self.x_test.shape[1:]} differ in shape"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> list[int]:
        return [int(d) for d in self.x_train.shape[1:]]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the 'train' or 'test' split."""
        if name not in ("train", "test"):
            raise ValueError(f"split={name!r} should be 'train' or 'test'")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to_npz_bytes(self) -> bytes:
        """The stored form (:mod:`backend.data.stored`) in memory: for small datasets."""
        from backend.data.stored import dataset_bytes

        return dataset_bytes(self)

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> ArrayDataset:
        """Load a stored dataset (either form) from bytes, whole, into memory."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls(
                x_train=npz["x_train"],
                y_train=npz["y_train"],
                x_test=npz["x_test"],
                y_test=npz["y_test"],
                class_names=[str(c) for c in npz["class_names"]],
            )


def register_dataset(
    name: str,
) -> Callable[[Callable[..., ArrayDataset]], Callable[..., ArrayDataset]]:
    """Decorator: record a dataset builder under ``name``."""

    def deco(fn: Callable[..., ArrayDataset]) -> Callable[..., ArrayDataset]:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, **params: Any) -> ArrayDataset:
    """Build the built-in dataset ``name``; unknown names raise :class:`UnknownDatasetError`."""
    if name not in _REGISTRY:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    return _REGISTRY[name](**params)
