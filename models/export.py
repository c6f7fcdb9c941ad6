"""Export a (pruned) model for use outside PruneScope: plain state_dicts, ONNX, checkpoints.

What each format holds (``GET /api/models/{id}/download?format=...``, README "Download"):

* ``"safetensors"``: the model's plain ``state_dict``: the original architecture's key names,
  every ``torch.nn.utils.prune`` mask folded into its weight (``weight = weight_orig *
  weight_mask``), no ``*_mask`` and no ``*_orig`` keys, so ``model.load_state_dict(...)`` of a
  freshly built model of the same architecture just works. File metadata (strings):
  ``"format": "pt"``, ``"architecture"`` and ``"kwargs"`` (JSON) naming how to build it.
* ``"pt"``: the same ``state_dict`` written with ``torch.save`` (loads with
  ``torch.load(path, weights_only=True)``).
* ``"onnx"``: the pruned network traced with ``torch.onnx.export(dynamo=False)`` (opset
  :data:`ONNX_OPSET`): one input ``"input"`` (N, *input_shape) and one output ``"logits"``
  (N, C), the batch dimension dynamic.
* ``"prunescope"``: PruneScope's own checkpoint (:mod:`models.checkpoint`: effective weights,
  the masks, and the metadata that rebuilds it, lineage included).

A structurally pruned model (:mod:`models.structured`: fewer channels than its architecture
defines) exports the *smaller* network's ``state_dict``, which only fits a model rebuilt with
:func:`models.structured.rebuild_structure`. What was kept travels with it:

* safetensors: metadata ``"structure"`` (the JSON :func:`rebuild_structure` takes) and
  ``"kept_channels"`` (JSON ``{module name: [kept output-channel indices of the original
  module, ...]}`` for every ``nn.Conv2d`` / ``nn.Linear`` whose outputs were cut);
* pt: a dict ``{"state_dict": ..., "kept_channels": ..., "structure": ..., "architecture":
  ..., "kwargs": ...}`` instead of the bare ``state_dict``.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn
from torch.nn.utils import prune

from models.structured import STRUCTURE_ATTR, validate_structure

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "ONNX_OPSET",
    "ExportError",
    "export_bytes",
    "fold_masks",
    "kept_channels",
    "plain_state_dict",
    "structure_of",
]

FORMATS = ("safetensors", "pt", "onnx", "prunescope")
# file name extension per format (the download is "<model-name-slug>-<id>.<extension>")
EXTENSIONS = {
    "safetensors": "safetensors",
    "pt": "pt",
    "onnx": "onnx",
    "prunescope": "prunescope.safetensors",
}
ONNX_OPSET = 17
_MASK_SUFFIX = "_mask"
_ORIG_SUFFIX = "_orig"


class ExportError(ValueError):
    """The model cannot be exported in the requested format; the message says why."""


def _pruned(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(qualified parameter name, module, parameter name)`` of every prune-reparametrised
    parameter (``<name>_orig`` parameter + ``<name>_mask`` buffer)."""
    found = []
    for mod_name, module in model.named_modules():
        for buf_name in module._buffers:
            if not buf_name.endswith(_MASK_SUFFIX):
                continue
            param = buf_name[: -len(_MASK_SUFFIX)]
            if module._parameters.get(param + _ORIG_SUFFIX) is not None:
                found.append((f"{mod_name}.{param}" if mod_name else param, module, param))
    return found


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's ``state_dict`` with every prune mask folded into its weight.

    Args:
        model: Any module, pruned with ``torch.nn.utils.prune`` or not (not modified).

    Returns:
        ``{key: tensor}`` with the keys of the unpruned architecture: ``prefix.weight =
        weight_orig * weight_mask`` in place of ``prefix.weight_orig``, no ``prefix.weight_mask``.
        Tensors are detached contiguous CPU copies.
    """
    state = model.state_dict()
    orig_to_plain: dict[str, tuple[str, str]] = {}
    for qualified, _module, _param in _pruned(model):
        orig_to_plain[qualified + _ORIG_SUFFIX] = (qualified, qualified + _MASK_SUFFIX)
    masks = {mask for _, mask in orig_to_plain.values()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in masks:
            continue
        if key in orig_to_plain:
            plain, mask = orig_to_plain[key]
            key, value = plain, value * state[mask].to(value.dtype)
        out[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
    return out


def fold_masks(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which every prune mask is made permanent (``prune.remove``): plain
    parameters and no forward pre-hooks, ready to trace. ``model`` itself is not modified."""
    # A freshly pruned module holds ``weight`` as a non-leaf tensor with autograd history,
    # which deepcopy refuses; it is recomputed from weight_orig * weight_mask anyway.
    memo: dict[int, Any] = {}
    for _qualified, module, param in _pruned(model):
        current = module.__dict__.get(param)
        if isinstance(current, Tensor):
            memo[id(current)] = current.detach()
    clone = copy.deepcopy(model, memo)
    for _qualified, module, param in _pruned(clone):
        try:
            prune.remove(module, param)
        except ValueError:  # masks without their hook (set up by hand): fold them directly
            orig = module._parameters.pop(param + _ORIG_SUFFIX)
            mask = module._buffers.pop(param + _MASK_SUFFIX)
            module.__dict__.pop(param, None)
            assert orig is not None and mask is not None
            module.register_parameter(param, nn.Parameter((orig * mask).detach()))
    return clone


def structure_of(model: nn.Module, meta: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The structure of a structurally pruned model (``model.prunescope_structure`` or the
    checkpoint metadata's ``extra["structured"]``), or None for one with all its channels."""
    structure = getattr(model, STRUCTURE_ATTR, None)
    if structure is None and meta is not None:
        extra = meta.get("extra") or {}
        structure = extra.get("structured") if isinstance(extra, Mapping) else None
    if structure is None or not structure.get("ops"):
        return None
    return validate_structure(structure)


def _kept_from_ops(structure: Mapping[str, Any]) -> dict[str, list[int]]:
    """Kept channels of the modules the ops name (not of the layers coupled to them)."""
    kept: dict[str, list[int]] = {}
    originals = structure.get("original_out_channels", {})
    for op in structure["ops"]:
        name = op["module"]
        current = kept.get(name, list(range(int(originals.get(name, 0)))))
        gone = set(op["idxs"])
        kept[name] = [c for i, c in enumerate(current) if i not in gone]
    return kept


def kept_channels(
    architecture: str, kwargs: Mapping[str, Any], structure: Mapping[str, Any]
) -> dict[str, list[int]]:
    """Which output channels of the original network a structurally pruned one kept.

    Every ``nn.Conv2d`` / ``nn.Linear`` of a fresh ``architecture`` gets output channel ``i``
    filled with the value ``i``; the structure's ops are then re-applied (with everything
    coupled to them: residual partners, grouped convolutions), and the values left in each cut
    layer are the original indices it kept. Falls back to the ops' own modules when the
    architecture cannot be built here.

    Returns:
        ``{module name: sorted kept indices}`` for every layer whose outputs were cut.
    """
    from models.registry import create
    from models.structured import rebuild_structure

    originals: Mapping[str, int] = structure.get("original_out_channels", {})
    try:
        probe = create(architecture, **kwargs)
        with torch.no_grad():
            for module in probe.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    w = module.weight
                    index = torch.arange(w.shape[0], dtype=w.dtype).view(-1, *[1] * (w.dim() - 1))
                    w.copy_(index.expand_as(w))
        rebuild_structure(probe, structure)
    except (ValueError, TypeError, RuntimeError, KeyError):
        return _kept_from_ops(structure)
    kept: dict[str, list[int]] = {}
    for name, module in probe.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        n = module.weight.shape[0]
        if name in originals and n != int(originals[name]):
            values = module.weight.detach().reshape(n, -1)[:, 0]
            kept[name] = [int(round(float(v))) for v in values]
    return kept


def _onnx_bytes(model: nn.Module, example_input: Tensor) -> bytes:
    plain = fold_masks(model).eval()
    # dynamo=False on purpose: the TorchScript exporter needs no onnxscript and traces any
    # module; its deprecation notice is not news to the person downloading
    with (
        tempfile.TemporaryDirectory() as tmp,
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            plain,
            (example_input,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
        return path.read_bytes()


def _onnx_graph_export(graph: bytes, state: dict[str, Tensor]) -> bytes | None:
    """``models.onnx_graph.export_onnx`` for an imported ONNX graph, when that module has it."""
    try:
        onnx_graph = importlib.import_module("models.onnx_graph")
    except ImportError:
        return None
    export = getattr(onnx_graph, "export_onnx", None)
    if export is None:
        return None
    try:
        return bytes(export(graph, state))
    except ValueError:  # weights that no longer fit the graph (channels removed): trace it
        return None


def export_bytes(
    model: nn.Module,
    meta: Mapping[str, Any],
    fmt: str,
    example_input: Tensor | None = None,
    *,
    onnx_graph: bytes | None = None,
) -> bytes:
    """The file of one download format (see the module docstring).

    Args:
        model: The model as :func:`models.checkpoint.load_checkpoint` returns it (masks as
            ``torch.nn.utils.prune`` reparametrisations, structure on the model).
        meta: Its checkpoint metadata (``architecture``, ``kwargs``, ``extra``).
        fmt: One of :data:`FORMATS`.
        example_input: (N, *input_shape) for ``"onnx"`` (only its shape matters).
        onnx_graph: For ``architecture == "onnx"`` (an imported ONNX graph), the graph's bytes:
            ``models.onnx_graph.export_onnx(graph, state_dict)`` writes the file if it exists,
            else the model is traced like any other.

    Raises:
        ExportError: Unknown format, ``"onnx"`` without an example input, or an export that
            failed (the message names the reason).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt!r} should be one of {', '.join(FORMATS)}")
    architecture = str(meta.get("architecture", ""))
    kwargs = dict(meta.get("kwargs") or {})
    if fmt == "prunescope":
        return _checkpoint_bytes(model, meta)
    if fmt == "onnx":
        if onnx_graph is not None and architecture == "onnx":
            exported = _onnx_graph_export(onnx_graph, plain_state_dict(model))
            if exported is not None:
                return exported
        if example_input is None:
            raise ExportError("an ONNX export needs an example input (the model's input shape)")
        try:
            return _onnx_bytes(model, example_input)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ExportError(f"torch.onnx.export failed: {exc}") from None
    state = plain_state_dict(model)
    structure = structure_of(model, meta)
    info: dict[str, Any] = {"architecture": architecture, "kwargs": kwargs}
    if structure is not None:
        info["structure"] = structure
        info["kept_channels"] = kept_channels(architecture, kwargs, structure)
    if fmt == "safetensors":
        metadata = {"format": "pt"}
        metadata.update({k: v if isinstance(v, str) else _json(v) for k, v in info.items()})
        try:
            return safetensors_save(state, metadata=metadata)
        except (RuntimeError, ValueError) as exc:
            raise ExportError(f"cannot write safetensors: {exc}") from None
    payload: Any = state if structure is None else {"state_dict": state, **info}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _checkpoint_bytes(model: nn.Module, meta: Mapping[str, Any]) -> bytes:
    from models.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_checkpoint(
            model,
            str(meta.get("architecture", "")),
            dict(meta.get("kwargs") or {}),
            path,
            extra=dict(meta.get("extra") or {}),
        )
        return path.read_bytes()
