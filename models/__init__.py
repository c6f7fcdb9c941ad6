"""Neural-network architectures (one registry) and checkpoint read/write.

``import models`` registers the built-in architectures.
"""

from __future__ import annotations

from models import architectures as architectures
from models import onnx_graph as onnx_graph
from models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_tensors,
    read_checkpoint_meta,
    save_checkpoint,
    state_dict_for_save,
)
from models.registry import UnknownNameError, create, list_models, model_info, register_model

__all__ = [
    "CheckpointError",
    "UnknownNameError",
    "create",
    "list_models",
    "load_checkpoint",
    "model_from_tensors",
    "model_info",
    "read_checkpoint_meta",
    "register_model",
    "save_checkpoint",
    "state_dict_for_save",
]
