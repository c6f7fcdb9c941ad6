"""Pruning: method registry, masks, fine-tuning. Pure torch (no HTTP, SQL or Dash).

``import backend.pruning`` registers every built-in method.
"""

from __future__ import annotations

from backend.pruning import dns as dns
from backend.pruning import gradual as gradual
from backend.pruning import lottery as lottery
from backend.pruning import magnitude as magnitude
from backend.pruning import random as random
from backend.pruning import rigl as rigl
from backend.pruning import saliency as saliency
from backend.pruning import structured as structured
from backend.pruning.masks import apply_masks, prunable_layers, sparsity_report
from backend.pruning.registry import (
    PruningMethod,
    UnknownNameError,
    create,
    list_methods,
    method_info,
    register_method,
)

__all__ = [
    "PruningMethod",
    "UnknownNameError",
    "apply_masks",
    "create",
    "list_methods",
    "method_info",
    "prunable_layers",
    "register_method",
    "sparsity_report",
]
