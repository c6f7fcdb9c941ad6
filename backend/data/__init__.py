"""Datasets: registry, built-in datasets, loaders."""

from backend.data import builtin as _builtin  # noqa: F401  (registers the built-in datasets)
from backend.data.registry import (
    ArrayDataset,
    UnknownDatasetError,
    create,
    list_datasets,
    register_dataset,
)

__all__ = ["ArrayDataset", "UnknownDatasetError", "create", "list_datasets", "register_dataset"]
