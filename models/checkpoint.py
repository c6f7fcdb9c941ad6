"""Checkpoint read/write: one safetensors file per model.

File layout:

* tensors: the model's ``state_dict`` in which every parameter pruned with
  ``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask`` reparametrisation) is stored as
  its effective value under the plain key (``conv1.weight = weight_orig * weight_mask``, so the
  zeros are permanent and ``weight_orig`` is not written) plus the mask under
  ``conv1.weight_mask``;
* metadata key ``"prunescope"``: JSON ``{"format_version": 1, "architecture": name,
  "kwargs": {...}, "extra": {...}}``.

Loading rebuilds the model with :func:`models.registry.create`, loads the weights strictly and
re-applies every mask with ``torch.nn.utils.prune.custom_from_mask`` so that the loaded model is
pruned exactly as saved (``weight == weight_orig * weight_mask``).

A structurally pruned model (fewer channels than its architecture defines) carries
``model.prunescope_structure`` (see :mod:`models.structured`); :func:`save_checkpoint` stores it
as ``extra["structured"]`` and loading re-applies its ops to the freshly created architecture
before loading the weights strictly.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.utils import prune

from models.registry import UnknownNameError, create, is_known, list_models
from models.structured import STRUCTURE_ATTR, rebuild_structure

__all__ = [
    "FORMAT_VERSION",
    "META_KEY",
    "CheckpointError",
    "load_checkpoint",
    "model_from_tensors",
    "read_checkpoint_meta",
    "save_checkpoint",
    "state_dict_for_save",
]

META_KEY = "prunescope"
FORMAT_VERSION = 1
_MASK_SUFFIX = "_mask"
_ORIG_SUFFIX = "_orig"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, lacks PruneScope metadata or does not fit its model."""


def _pruned_parameters(model: nn.Module) -> dict[str, tuple[str, str]]:
    """Map ``"prefix.weight"`` -> (orig key, mask key) for every prune-reparametrised tensor."""
    found: dict[str, tuple[str, str]] = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        prefix = f"{mod_name}." if mod_name else ""
        for buf_name in module._buffers:
            if not buf_name.endswith(_MASK_SUFFIX):
                continue
            param = buf_name[: -len(_MASK_SUFFIX)]
            if module._parameters.get(param + _ORIG_SUFFIX) is not None:
                found[prefix + param] = (prefix + param + _ORIG_SUFFIX, prefix + buf_name)
    return found


def state_dict_for_save(model: nn.Module) -> dict[str, Tensor]:
    """The tensors :func:`save_checkpoint` writes: detached contiguous CPU copies.

    For a pruned parameter, ``prefix.weight_orig`` is replaced by the effective
    ``prefix.weight = weight_orig * weight_mask`` and ``prefix.weight_mask`` is kept.

    Args:
        model: Any module, pruned or not.

    Returns:
        Ordered ``{key: tensor}``; keys are ``model.state_dict()`` keys except the ``*_orig``
        ones, which are renamed to the plain parameter name.
    """
    state = model.state_dict()
    pruned = _pruned_parameters(model)
    orig_to_plain = {orig: plain for plain, (orig, _) in pruned.items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in orig_to_plain:
            plain = orig_to_plain[key]
            mask = state[pruned[plain][1]]
            key, value = plain, value * mask
        out[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
    return out


def _meta_json(architecture: str, kwargs: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    meta = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "kwargs": dict(kwargs),
        "extra": dict(extra),
    }
    try:
        return json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from None


def save_checkpoint(
    model: nn.Module,
    architecture: str,
    kwargs: Mapping[str, Any],
    path: str | Path,
    *,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` to one safetensors file, atomically.

    Args:
        model: The model, possibly pruned with ``torch.nn.utils.prune``.
        architecture: Registered architecture name that rebuilds it.
        kwargs: Arguments of that architecture (JSON-serialisable).
        path: Destination; written to a temporary file in the same folder, then renamed.
        extra: Optional JSON-serialisable information stored with the metadata. If the model
            carries ``model.prunescope_structure`` (structured pruning) and ``extra`` has no
            ``"structured"`` key, the structure is stored there.

    Raises:
        UnknownNameError: If ``architecture`` is not registered.
        ValueError: If ``kwargs`` or ``extra`` are not JSON-serialisable.
    """
    if not is_known(architecture):
        raise UnknownNameError("architecture", architecture, list_models())
    extra = dict(extra or {})
    structure = getattr(model, STRUCTURE_ATTR, None)
    if structure is not None and "structured" not in extra:
        extra["structured"] = structure
    metadata = {META_KEY: _meta_json(architecture, kwargs, extra)}
    tensors = state_dict_for_save(model)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _name(path: str | Path) -> str:
    # the file's name, not its folder: on a server the folder is the artifact store's layout,
    # which the message's readers should not see (models.importer names files the same way)
    return repr(Path(path).name)


def _parse_meta(raw: Mapping[str, str] | None, path: str | Path) -> dict[str, Any]:
    if not raw or META_KEY not in raw:
        raise CheckpointError(f"{_name(path)} has no {META_KEY!r} metadata")
    try:
        meta = json.loads(raw[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{_name(path)}: {META_KEY!r} metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{_name(path)}: {META_KEY!r} metadata should be a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{_name(path)}: format_version={version!r} is not supported (expected "
            f"{FORMAT_VERSION})"
        )
    architecture = meta.get("architecture")
    kwargs = meta.get("kwargs", {})
    if not isinstance(architecture, str):
        raise CheckpointError(f"{_name(path)}: architecture={architecture!r} should be a string")
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{_name(path)}: kwargs={kwargs!r} should be a JSON object")
    return {
        "format_version": version,
        "architecture": architecture,
        "kwargs": kwargs,
        "extra": meta.get("extra", {}),
    }


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Read the metadata without loading any tensor.

    Returns:
        ``{"format_version", "architecture", "kwargs", "extra"}``.

    Raises:
        CheckpointError: If the file is not safetensors or lacks valid PruneScope metadata.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata()
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{_name(path)} is not a readable safetensors file: {exc}") from None
    return _parse_meta(raw, path)


def model_from_tensors(
    architecture: str,
    kwargs: Mapping[str, Any],
    tensors: Mapping[str, Tensor],
    map_location: str | torch.device = "cpu",
    structure: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build ``architecture`` and load ``tensors`` into it strictly, re-applying prune masks.

    Accepts both the layout written by :func:`save_checkpoint` (effective ``weight`` +
    ``weight_mask``) and a raw ``state_dict`` of a model pruned with ``torch.nn.utils.prune``
    (``weight_orig`` + ``weight_mask``; the effective weight is then ``orig * mask``).

    Args:
        architecture: Registered architecture name.
        kwargs: Its arguments.
        tensors: The weights (and masks).
        map_location: Device of the model.
        structure: For a structurally pruned model, the ``extra["structured"]`` metadata: its
            channel-removal ops are re-applied before the weights are loaded.

    Raises:
        CheckpointError: Unknown architecture, bad kwargs, a structure that does not fit, or
            tensors that do not fit.
    """
    try:
        model = create(architecture, **kwargs)
    except UnknownNameError as exc:
        raise CheckpointError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build architecture {architecture!r}: {exc}") from None
    model.to(map_location)
    if structure is not None:
        try:
            rebuild_structure(model, structure)
        except ValueError as exc:
            raise CheckpointError(
                f"cannot rebuild the structurally pruned {architecture!r}: {exc}"
            ) from None
    own_keys = set(model.state_dict())
    plain: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for key, value in tensors.items():
        if key.endswith(_MASK_SUFFIX) and key not in own_keys:
            masks[key[: -len(_MASK_SUFFIX)]] = value
        else:
            plain[key] = value
    for target in list(masks):
        orig_key = target + _ORIG_SUFFIX
        if orig_key in plain and orig_key not in own_keys and target not in plain:
            orig = plain.pop(orig_key)
            plain[target] = orig * masks[target].to(orig.device, orig.dtype)
    try:
        model.load_state_dict(plain, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit architecture {architecture!r}: {exc}") from None
    for target, mask in masks.items():
        module_name, _, param_name = target.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            raise CheckpointError(f"mask {target + _MASK_SUFFIX!r} names no module") from None
        param = module._parameters.get(param_name)
        if param is None:
            raise CheckpointError(f"mask {target + _MASK_SUFFIX!r} names no parameter")
        if mask.shape != param.shape:
            raise CheckpointError(
                f"mask {target + _MASK_SUFFIX!r} has shape {tuple(mask.shape)} but the "
                f"parameter has shape {tuple(param.shape)}"
            )
        prune.custom_from_mask(module, param_name, mask.to(param.device, param.dtype))
        with torch.no_grad():
            # Without autograd history, so that the loaded model can be copy.deepcopy-ed; the
            # forward pre-hook recomputes it with history on the next forward.
            setattr(
                module,
                param_name,
                getattr(module, param_name + "_orig") * module._buffers[param_name + "_mask"],
            )
    return model


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: The safetensors file.
        map_location: Device for the model and its tensors.

    Returns:
        ``(model, meta)``: the model in eval mode, pruned exactly as saved (structurally
        pruned models are rebuilt from ``meta["extra"]["structured"]`` and carry it again as
        ``model.prunescope_structure``), and the metadata (see :func:`read_checkpoint_meta`).

    Raises:
        CheckpointError: Missing/invalid metadata, unknown architecture, or weights that do not
            fit.
    """
    meta = read_checkpoint_meta(path)
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{_name(path)} is not a readable safetensors file: {exc}") from None
    extra = meta["extra"]
    structure = extra.get("structured") if isinstance(extra, dict) else None
    model = model_from_tensors(
        meta["architecture"], meta["kwargs"], tensors, map_location, structure=structure
    )
    return model.eval(), meta
