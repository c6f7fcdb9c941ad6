"""Import a user-supplied checkpoint file as a validated PruneScope model.

The file may come from anyone, so it is treated as hostile until proven otherwise:

* the format is detected from the first bytes, never from the file name: safetensors (an
  8-byte little-endian header length followed by a JSON header), PruneScope's own safetensors
  layout (:mod:`models.checkpoint`, recognised by its ``"prunescope"`` metadata), and
  ``torch.save`` files (zip-based, magic ``PK\\x03\\x04``, or the legacy pickle stream that starts
  with torch's magic number), and ONNX models (a serialised ``onnx.ModelProto``, or a zip holding
  one ``*.onnx`` file and its external data instead of torch's ``data.pkl``);
* safetensors headers are checked by this module before ``safetensors`` maps the file (length
  within the file and at most 100 MB, JSON object, known dtypes, byte ranges that match the
  shapes and lie inside the file), so an absurd length never allocates memory;
* ``torch.save`` files are read only with ``torch.load(..., weights_only=True)``, whose
  unpickler refuses every global outside torch's allowlist; any other pickle stream is refused
  without being unpickled at all;
* the tensors are validated against the registered architecture (keys, shapes, dtypes, finite
  values) before a model is returned;
* ONNX models are parsed as protobuf (no code runs), checked and converted by
  :mod:`models.onnx_graph`; they become the architecture ``"onnx"`` whose only argument is the
  sha256 of the weight-stripped graph (:attr:`ImportedCheckpoint.graph`, which the caller
  stores).

Any problem raises :class:`CheckpointError` (the class of :mod:`models.checkpoint`, re-exported
here so callers catch one type) whose message says what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor, nn
from torch.nn.utils import prune

from models.checkpoint import META_KEY, CheckpointError, read_checkpoint_meta
from models.onnx_graph import (
    is_onnx_zip,
    looks_like_onnx,
    read_onnx,
    strip_weights,
    to_torch_with_sources,
)
from models.registry import (
    TooManyParameters,
    UnknownNameError,
    _factory,
    check_size,
    count_parameters,
    create,
    list_models,
)
from models.structured import rebuild_structure

__all__ = [
    "FORMATS",
    "MASK_KINDS",
    "WRAPPER_KEYS",
    "CheckpointError",
    "ImportedCheckpoint",
    "read_checkpoint",
]

FORMATS = ("safetensors", "prunescope", "torch_state_dict", "onnx")
MASK_KINDS = ("none", "explicit", "zeros")
# Keys under which training scripts commonly nest the state_dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")

# Same set as backend.pruning.masks.PRUNABLE_TYPES (models/ must not import backend/).
_PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
_MASK_SUFFIX = "_mask"
_ORIG_SUFFIX = "_orig"
_DDP_PREFIX = "module."
_TOLERATED_MISSING_SUFFIX = "num_batches_tracked"
_MAX_LISTED = 10
_MAX_NONFINITE_LISTED = 5
_MAX_UNWRAP_DEPTH = 4
# The safetensors library refuses larger headers too (MAX_HEADER_SIZE).
_MAX_HEADER_BYTES = 100_000_000
_HEAD_BYTES = 64
_ZIP_MAGIC = b"PK\x03\x04"
# torch.serialization.MAGIC_NUMBER as a pickled long: the legacy format's first record.
_TORCH_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_PICKLED_OBJECT_ADVICE = (
    "this file holds a pickled Python object (e.g. a whole nn.Module), which PruneScope never "
    "unpickles; save the weights instead: torch.save(model.state_dict(), 'model.pt') or "
    "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')"
)


@dataclass
class ImportedCheckpoint:
    """A checkpoint file turned into a validated PruneScope model.

    Attributes:
        model: Built with :func:`models.registry.create`, weights loaded, in eval mode. Pruned
            layers use ``torch.nn.utils.prune``'s layout (``weight_orig`` parameter,
            ``weight_mask`` buffer, ``weight = weight_orig * weight_mask``) when the file carried
            masks (``masks == "explicit"``) or exact zeros (``masks == "zeros"``).
        architecture: Registered architecture name.
        arch_kwargs: Its keyword arguments.
        format: ``"safetensors"``, ``"prunescope"`` (safetensors with PruneScope metadata),
            ``"torch_state_dict"`` (a ``torch.save`` file) or ``"onnx"``.
        masks: ``"none"``, ``"explicit"`` (``*_mask`` tensors in the file) or ``"zeros"``
            (masks ``weight != 0`` built from exact zeros of prunable weights).
        layers: One dict per prunable layer (``nn.Conv2d``/``nn.Linear``), in module order:
            ``name`` (module name), ``kind`` (class name), ``shape`` (of the weight),
            ``n_params``, ``n_zero``, ``sparsity`` (``n_zero / n_params``) and ``masked``
            (whether the layer carries a prune mask).
        sparsity: Fraction of zeros over all prunable weights (biases excluded).
        n_params: Number of parameter entries of the model, counting each pruned weight once
            (its effective value) and no masks or buffers.
        n_nonzero: Non-zero entries among those ``n_params``.
        warnings: Things the user should know that did not prevent the import (ignored
            entries, dtype conversions, defaulted buffers, overridden metadata).
        graph: For ``format == "onnx"``: the graph without its weights
            (:func:`models.onnx_graph.strip_weights`), whose sha256 is
            ``arch_kwargs["graph_sha"]``; store it before the model can be rebuilt. None
            otherwise.
    """

    model: nn.Module
    architecture: str
    arch_kwargs: dict[str, Any]
    format: str
    masks: str
    layers: list[dict[str, Any]]
    sparsity: float
    n_params: int
    n_nonzero: int
    warnings: list[str] = field(default_factory=list)
    graph: bytes | None = None


def read_checkpoint(
    path: str | os.PathLike[str],
    architecture: str | None,
    arch_kwargs: Mapping[str, Any] | None = None,
    *,
    max_tensor_bytes: int | None = None,
    max_params: int | None = None,
) -> ImportedCheckpoint:
    """Read a checkpoint file and return a validated model of a registered architecture.

    Accepted content (detected from the bytes): safetensors; PruneScope's own safetensors
    checkpoints; ONNX models (a ``.onnx`` file, or a zip of one ``*.onnx`` and its external
    data; see :func:`models.onnx_graph.read_onnx`), which need no architecture; ``torch.save``
    files holding a ``state_dict``, possibly wrapped as
    ``{"state_dict" | "model_state_dict" | "model" | "net": {...}, "epoch": ...}`` (non-tensor
    entries are ignored) and possibly with ``module.`` prefixes (DataParallel/DDP).

    Pruning layouts: ``torch.nn.utils.prune`` state dicts (``<p>_orig`` + ``<p>_mask``; the file's
    ``<p>_orig`` becomes the parameter ``<p>_orig``), plain ``<p>`` + ``<p>_mask`` (the layout of
    :func:`models.checkpoint.save_checkpoint`), and, when the file carries no masks at all,
    plain weights whose exact zeros imply masks: if any prunable weight holds zeros,
    ``weight != 0`` is attached as the mask of each layer that has zeros, so that fine-tuning
    keeps them pruned.

    Validation happens before anything is returned: the architecture is registered and builds
    with ``arch_kwargs``; the file's keys and shapes equal the model's (a missing
    ``num_batches_tracked`` is tolerated and left at the model's value); floating tensors are
    converted to float32, and integer or boolean tensors where the model holds floats (or the
    reverse) are refused; masks are 0/1.

    Non-finite policy: a file with NaN or +-Inf in any floating tensor (counted after conversion
    to float32, so float64 values beyond float32's range count as Inf) is refused, because a
    model with such weights yields NaN features and every geometric metric computed from them
    would be meaningless. The error names the first few tensors with their NaN/Inf counts.

    Args:
        path: The file.
        architecture: Registered architecture name, or None to take it (and its kwargs) from
            PruneScope metadata; required for any other file except ONNX, for which it must be
            None or ``"onnx"``.
        arch_kwargs: Arguments of the architecture. For a PruneScope file they update the
            stored kwargs; otherwise they are the kwargs.
        max_tensor_bytes: If given, refuse files whose tensor data exceeds this many bytes
            (safetensors: as declared by the header, before anything is loaded; zip-based torch
            files: the storages of the kept tensors, memory-mapped before counting; torch files
            read whole, i.e. legacy ones and those whose name ends in ``.safetensors``, which
            ``torch.load`` would otherwise hand to safetensors: the file size).
        max_params: If given, refuse an architecture that, with its arguments (the file's
            metadata, updated by ``arch_kwargs``), has more parameters: counted on the meta
            device (:func:`models.registry.check_size`) before the model is built.

    Returns:
        The model and what was found; see :class:`ImportedCheckpoint`.

    Raises:
        CheckpointError: Unknown architecture or bad kwargs, unreadable, truncated, corrupt or
            unsupported file, a pickled object instead of weights, tensors that do not fit the
            model, or non-finite values.
    """
    path = Path(path)
    kwargs = dict(arch_kwargs or {})
    if architecture is not None:
        _check_registered(architecture)
    if max_tensor_bytes is not None and max_tensor_bytes < 0:
        raise ValueError(f"max_tensor_bytes={max_tensor_bytes!r} should be >= 0")

    if _is_onnx(path):
        return _read_onnx_checkpoint(path, architecture, kwargs, max_tensor_bytes)

    notes: list[str] = []
    structure: object = None
    raw, fmt, meta = _read_tensors(path, max_tensor_bytes, notes)
    if meta is not None:
        if architecture is None or architecture == meta["architecture"]:
            architecture = meta["architecture"]
            kwargs = {**meta["kwargs"], **kwargs}
            extra = meta["extra"]
            structure = extra.get("structured") if isinstance(extra, dict) else None
        else:
            notes.append(
                f"the file's metadata names architecture {meta['architecture']!r}; "
                f"using {architecture!r} as requested"
            )
    if architecture is None:
        raise CheckpointError(
            f"{_name(path)} carries no PruneScope metadata: name the architecture: one of "
            f"{', '.join(list_models())}"
        )
    _check_registered(architecture)
    model = _build(architecture, kwargs, structure, max_params)

    own = model.state_dict()
    tensors = _strip_ddp_prefix(raw, own)
    plain, masks = _split_masks(tensors, own, model)
    _check_fit(plain, masks, own, architecture, kwargs)
    plain, masks = _check_dtypes(plain, masks, own, notes)
    _check_finite({**plain, **{k + _MASK_SUFFIX: m for k, m in masks.items()}})
    _check_binary_masks(masks)

    defaulted = [k for k in own if k not in plain]
    if defaulted:
        notes.append(f"{_listing(defaulted)} missing from the file: kept the model's value")
    full = {k: plain.get(k, v) for k, v in own.items()}
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as exc:  # validated above; kept so no torch error escapes
        raise CheckpointError(f"weights do not fit architecture {architecture!r}: {exc}") from None

    mask_kind = "explicit" if masks else "none"
    if not masks:
        masks = _masks_from_zeros(model)
        if masks:
            mask_kind = "zeros"
    for target, mask in masks.items():
        _attach_mask(model, target, mask)

    layers = _layer_stats(model)
    n_weights = sum(layer["n_params"] for layer in layers)
    n_zero = sum(layer["n_zero"] for layer in layers)
    n_params, n_nonzero = _param_counts(model)
    return ImportedCheckpoint(
        model=model.eval(),
        architecture=architecture,
        arch_kwargs=kwargs,
        format=fmt,
        masks=mask_kind,
        layers=layers,
        sparsity=n_zero / n_weights if n_weights else 0.0,
        n_params=n_params,
        n_nonzero=n_nonzero,
        warnings=notes,
    )


def _read_onnx_checkpoint(
    path: Path,
    architecture: str | None,
    kwargs: Mapping[str, Any],
    max_tensor_bytes: int | None,
) -> ImportedCheckpoint:
    """An ONNX model as the architecture ``"onnx"`` (see :mod:`models.onnx_graph`)."""
    if architecture not in (None, "onnx"):
        raise CheckpointError(
            f"{_name(path)} is an ONNX model, which carries its own architecture: leave the "
            f"architecture empty (or 'onnx') instead of {architecture!r}"
        )
    proto, notes = read_onnx(path, max_tensor_bytes=max_tensor_bytes)
    if kwargs:
        notes.append(f"ignored arch_kwargs {sorted(kwargs)}: an ONNX model carries its own")
    model, sources = to_torch_with_sources(proto)
    graph = strip_weights(proto, sources)
    del proto
    _check_finite(model.state_dict())
    masks = _masks_from_zeros(model)
    for target, mask in masks.items():
        _attach_mask(model, target, mask)
    layers = _layer_stats(model)
    n_weights = sum(layer["n_params"] for layer in layers)
    n_zero = sum(layer["n_zero"] for layer in layers)
    n_params, n_nonzero = _param_counts(model)
    return ImportedCheckpoint(
        model=model.eval(),
        architecture="onnx",
        arch_kwargs={"graph_sha": hashlib.sha256(graph).hexdigest()},
        format="onnx",
        masks="zeros" if masks else "none",
        layers=layers,
        sparsity=n_zero / n_weights if n_weights else 0.0,
        n_params=n_params,
        n_nonzero=n_nonzero,
        warnings=notes,
        graph=graph,
    )


# --- reading ---------------------------------------------------------------------------------


def _is_onnx(path: Path) -> bool:
    """Whether the file holds an ONNX model (a ModelProto, or a zip with an ``*.onnx``)."""
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False  # reported by the usual reading path
    if head.startswith(_ZIP_MAGIC):
        return is_onnx_zip(path)
    return looks_like_onnx(head)


def _name(path: Path) -> str:
    return repr(path.name)


def _read_tensors(
    path: Path, max_tensor_bytes: int | None, notes: list[str]
) -> tuple[dict[str, Tensor], str, dict[str, Any] | None]:
    """(tensors, format, PruneScope metadata or None) of a file, by its content."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise CheckpointError(f"cannot read {_name(path)}: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{_name(path)} is empty: upload the checkpoint file again")
    if len(head) >= 9 and head[8:9] == b"{":
        tensors, header_meta = _read_safetensors(path, size, max_tensor_bytes)
        if header_meta is not None and META_KEY in header_meta:
            return tensors, "prunescope", read_checkpoint_meta(path)
        return tensors, "safetensors", None
    is_zip = head.startswith(_ZIP_MAGIC)
    if not is_zip and not (head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head):
        raise CheckpointError(
            f"{_name(path)} is neither safetensors nor a torch.save file nor an ONNX model: its "
            "first bytes "
            f"{head[:16]!r} look like {_describe(head)}"
        )
    # torch.load hands any path ending in ".safetensors" to safetensors, whatever it holds: such
    # files go in as an open file object, which rules out mmap.
    by_file = str(path).endswith(".safetensors")
    mmap = is_zip and not by_file
    if not mmap and max_tensor_bytes is not None and size > max_tensor_bytes:
        raise _too_big(path, size, max_tensor_bytes)
    obj = _torch_load(path, zip_format=is_zip, mmap=mmap, by_file=by_file)
    tensors = _flatten(obj, path, notes)
    if mmap and max_tensor_bytes is not None:
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage() for t in tensors.values()}
        total = sum(s.nbytes() for s in storages.values())
        if total > max_tensor_bytes:
            raise _too_big(path, total, max_tensor_bytes)
    return tensors, "torch_state_dict", None


def _too_big(path: Path, n_bytes: int, limit: int) -> CheckpointError:
    return CheckpointError(
        f"{_name(path)} holds {n_bytes} bytes of tensor data, more than the limit of {limit} bytes"
    )


def _describe(head: bytes) -> str:
    """A human guess at what a file is from its first bytes."""
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return (
            f"a Python pickle (protocol {head[1]}) that is not a torch.save file; "
            + _PICKLED_OBJECT_ADVICE
        )
    known = [
        (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras/TensorFlow weights?); export PyTorch weights"),
        (b"\x93NUMPY", "a NumPy .npy array"),
        (b"\x1f\x8b", "a gzip archive; decompress it first"),
        (b"BZh", "a bzip2 archive; decompress it first"),
        (b"\xfd7zXZ\x00", "an xz archive; decompress it first"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive; extract the checkpoint first"),
        (b"GGUF", "a GGUF file (llama.cpp)"),
        (b"\x08", "possibly a protobuf file (TensorFlow?) but not an ONNX model"),
    ]
    for magic, what in known:
        if head.startswith(magic):
            return what
    if not all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "unrecognised binary data; upload safetensors or a torch.save(state_dict) file"
    text = head.decode("ascii").lstrip()
    if text[:1] in ("{", "["):
        return "JSON text, not a checkpoint"
    if text[:1] == "<":
        return "HTML/XML text (an error page instead of the download?)"
    return "text, not a checkpoint; upload safetensors or a torch.save(state_dict) file"


def _read_safetensors(
    path: Path, size: int, max_tensor_bytes: int | None
) -> tuple[dict[str, Tensor], dict[str, str] | None]:
    """Check a safetensors header cheaply, then load the tensors with ``safe_open``."""
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > size - 8:
            raise CheckpointError(
                f"{_name(path)}: the safetensors header claims {n} bytes but the file has only "
                f"{size - 8} after the length field; the file is truncated or corrupt, upload "
                "it again"
            )
        if n > _MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{_name(path)}: safetensors header of {n} bytes exceeds the "
                f"{_MAX_HEADER_BYTES}-byte limit"
            )
        header_bytes = f.read(n)
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{_name(path)}: the safetensors header is not valid JSON ({exc}); the file is corrupt"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{_name(path)}: the safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise CheckpointError(f"{_name(path)}: safetensors __metadata__ should map str to str")
    data_len = size - 8 - n
    total = 0
    for key, info in header.items():
        total += _check_safetensors_entry(path, key, info, data_len)
    if max_tensor_bytes is not None and total > max_tensor_bytes:
        raise _too_big(path, total, max_tensor_bytes)
    if not header:
        raise CheckpointError(f"{_name(path)} holds no tensors")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    # safetensors raises SafetensorError, OSError, ValueError or TypeError depending on the
    # defect; any of them means the same thing to the user.
    except Exception as exc:
        raise CheckpointError(f"{_name(path)} is not a readable safetensors file: {exc}") from None
    return tensors, metadata


def _check_safetensors_entry(path: Path, key: str, info: object, data_len: int) -> int:
    """Validate one header entry; returns its byte length."""
    bad = f"{_name(path)}: safetensors entry {key!r}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{bad} should be a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in _SAFETENSORS_ITEMSIZE:
        raise CheckpointError(
            f"{bad} has unsupported dtype {dtype!r}; supported: {', '.join(_SAFETENSORS_ITEMSIZE)}"
        )
    if not (
        isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise CheckpointError(f"{bad} has invalid shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointError(f"{bad} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    if end > data_len:
        raise CheckpointError(
            f"{bad} ends at byte {end} of the data but the file holds only {data_len} bytes of "
            "data; the file is truncated, upload it again"
        )
    expected = math.prod(shape) * _SAFETENSORS_ITEMSIZE[str(dtype)]
    if end - begin != expected:
        raise CheckpointError(
            f"{bad} spans {end - begin} bytes but shape {shape} of {dtype} needs {expected}"
        )
    return expected


def _torch_load(path: Path, *, zip_format: bool, mmap: bool, by_file: bool) -> object:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``)."""
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": noise for a user who cannot act on it
            warnings.simplefilter("ignore")
            if by_file:
                with path.open("rb") as f:
                    return torch.load(f, map_location="cpu", weights_only=True, mmap=False)
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{_name(path)}: {_PICKLED_OBJECT_ADVICE}{_global_hint(exc)}"
        ) from None
    # torch raises RuntimeError, EOFError, ValueError, KeyError, ... on a corrupt file; all mean
    # the same to the user and none may escape as anything but CheckpointError.
    except Exception as exc:
        if "weights only load failed" in str(exc).lower():
            raise CheckpointError(
                f"{_name(path)}: {_PICKLED_OBJECT_ADVICE}{_global_hint(exc)}"
            ) from None
        if "TorchScript" in str(exc):
            raise CheckpointError(
                f"{_name(path)} is a TorchScript archive, which PruneScope does not load; save "
                "the weights instead: torch.save(model.state_dict(), 'model.pt')"
            ) from None
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        kind = (
            "a zip archive but" if zip_format else "a pickle stream with torch's magic number but"
        )
        raise CheckpointError(
            f"{_name(path)} is {kind} not a readable torch.save file (truncated, corrupt, or "
            f"another kind of file): {first}"
        ) from None


def _global_hint(exc: BaseException) -> str:
    """`` (it references X)`` when torch's message names the refused global."""
    found = re.search(r"GLOBAL ([\w.]{1,200})", str(exc))
    return f" (it references {found.group(1)})" if found else ""


def _is_tensor_mapping(value: object) -> bool:
    return isinstance(value, Mapping) and any(isinstance(v, Tensor) for v in value.values())


def _flatten(obj: object, path: Path, notes: list[str]) -> dict[str, Tensor]:
    """The flat ``{name: tensor}`` inside a loaded torch object (unwrapping known wrappers)."""
    for _ in range(_MAX_UNWRAP_DEPTH):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if _is_tensor_mapping(obj.get(k))), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Tensor):
        raise CheckpointError(
            f"{_name(path)} holds a single tensor, not a state_dict; save "
            "model.state_dict() instead"
        )
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{_name(path)} holds a {type(obj).__name__}, not a state_dict; save "
            "model.state_dict() instead"
        )
    tensors: dict[str, Tensor] = {}
    ignored: list[str] = []
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            ignored.append(str(key)[:80])
            continue
        if not isinstance(key, str):
            raise CheckpointError(
                f"{_name(path)}: state_dict key {key!r} is a {type(key).__name__}, not a string"
            )
        tensors[key] = value
    if not tensors:
        raise CheckpointError(
            f"{_name(path)} holds no tensors at its top level (keys: {_listing(ignored)}); "
            "expected a flat state_dict {name: tensor}, optionally under one of "
            f"{', '.join(repr(k) for k in WRAPPER_KEYS)}"
        )
    if ignored:
        notes.append(f"ignored non-tensor entries: {_listing(ignored)}")
    return tensors


# --- validation ------------------------------------------------------------------------------


def _listing(items: list[str], limit: int = _MAX_LISTED) -> str:
    """``'a', 'b', ... (and 3 more)``."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _check_registered(architecture: str) -> None:
    try:
        _factory(architecture)
    except UnknownNameError as exc:
        raise CheckpointError(str(exc)) from None


def _build(
    architecture: str, kwargs: dict[str, Any], structure: object, max_params: int | None = None
) -> nn.Module:
    try:
        counted = max_params is None or check_size(architecture, kwargs, max_params) is not None
        model = create(architecture, **kwargs)
        if max_params is not None and not counted:  # cannot be built on the meta device
            count = count_parameters(model)
            if count > max_params:
                raise TooManyParameters(architecture, count, max_params)
    except TooManyParameters as exc:
        raise CheckpointError(str(exc)) from None
    except UnknownNameError as exc:
        raise CheckpointError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"cannot build architecture {architecture!r} with {kwargs!r}: {exc}"
        ) from None
    if structure is not None:
        try:
            rebuild_structure(model, structure)
        except ValueError as exc:
            raise CheckpointError(
                f"cannot rebuild the structurally pruned {architecture!r}: {exc}"
            ) from None
    return model


def _strip_ddp_prefix(tensors: dict[str, Tensor], own: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove ``module.`` prefixes (DataParallel/DDP, possibly nested) shared by every key."""
    if any(k.startswith(_DDP_PREFIX) for k in own):
        return tensors  # the model itself has a submodule called "module"
    while tensors and all(k.startswith(_DDP_PREFIX) for k in tensors):
        tensors = {k[len(_DDP_PREFIX) :]: v for k, v in tensors.items()}
    return tensors


def _split_masks(
    tensors: Mapping[str, Tensor], own: Mapping[str, Tensor], model: nn.Module
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Separate prune masks: ``(tensors keyed like the model, {param key: mask})``.

    ``<p>_mask`` counts as a mask only when it is not a key of the model and ``<p>`` names one of
    the model's parameters; ``<p>_orig`` next to it then stands for ``<p>``.
    """
    params = dict(model.named_parameters())
    plain: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for key, value in tensors.items():
        target = key[: -len(_MASK_SUFFIX)]
        if key.endswith(_MASK_SUFFIX) and key not in own and target in params:
            masks[target] = value
        else:
            plain[key] = value
    for target in masks:
        orig = target + _ORIG_SUFFIX
        if target not in plain and orig in plain and orig not in own:
            plain[target] = plain.pop(orig)
    return plain, masks


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_fit(
    plain: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    own: Mapping[str, Tensor],
    architecture: str,
    kwargs: Mapping[str, Any],
) -> None:
    missing = [k for k in own if k not in plain and not k.endswith(_TOLERATED_MISSING_SUFFIX)]
    unexpected = [k for k in plain if k not in own]
    mismatched = [
        f"{k}: file {_shape(v)} vs model {_shape(own[k])}"
        for k, v in plain.items()
        if k in own and v.shape != own[k].shape
    ]
    mismatched += [
        f"{k + _MASK_SUFFIX}: file {_shape(m)} vs model {_shape(own[k])}"
        for k, m in masks.items()
        if m.shape != own[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        hint = ""
        if any(k.endswith(_ORIG_SUFFIX) for k in unexpected):
            hint = " (a *_orig tensor needs its *_mask next to it)"
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}{hint}")
    if mismatched:
        shown = "; ".join(mismatched[:_MAX_LISTED])
        more = (
            f" (and {len(mismatched) - _MAX_LISTED} more)" if len(mismatched) > _MAX_LISTED else ""
        )
        parts.append(f"{len(mismatched)} mismatched shapes: {shown}{more}")
    raise CheckpointError(
        f"the weights do not fit {architecture} with {dict(kwargs)!r}: "
        + "; ".join(parts)
        + ". Check the architecture and its arguments (e.g. num_classes)."
    )


def _check_dtypes(
    plain: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    own: Mapping[str, Tensor],
    notes: list[str],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Float32 copies of floating tensors; refuses integer-for-float and the reverse."""
    wrong: list[str] = []
    converted: set[str] = set()
    out: dict[str, Tensor] = {}
    for key, value in plain.items():
        value = value.detach()
        if value.layout != torch.strided or value.is_complex():
            wrong.append(f"{key}: {value.dtype} ({value.layout})")
            continue
        expected = own[key]
        if expected.is_floating_point():
            if not value.is_floating_point():
                wrong.append(f"{key}: file {value.dtype}, model {expected.dtype}")
                continue
            if value.dtype != torch.float32:
                converted.add(str(value.dtype).removeprefix("torch."))
            value = value.to(torch.float32)
        elif value.is_floating_point() or value.dtype == torch.bool:
            wrong.append(f"{key}: file {value.dtype}, model {expected.dtype}")
            continue
        else:
            value = value.to(expected.dtype)
        out[key] = value
    out_masks: dict[str, Tensor] = {}
    for target, mask in masks.items():
        mask = mask.detach()
        if mask.layout != torch.strided or mask.is_complex():
            wrong.append(f"{target + _MASK_SUFFIX}: {mask.dtype} ({mask.layout})")
            continue
        out_masks[target] = mask.to(torch.float32)
    if wrong:
        raise CheckpointError(
            f"tensors of the wrong type for the model: {'; '.join(wrong[:_MAX_LISTED])}"
            + (f" (and {len(wrong) - _MAX_LISTED} more)" if len(wrong) > _MAX_LISTED else "")
        )
    if converted:
        notes.append(f"converted {', '.join(sorted(converted))} tensors to float32")
    return out, out_masks


def _check_finite(tensors: Mapping[str, Tensor]) -> None:
    bad: list[str] = []
    for key, value in tensors.items():
        if not value.is_floating_point() or bool(torch.isfinite(value).all()):
            continue  # one pass for the usual case; counted only when something is wrong
        n_nan = int(torch.isnan(value).sum())
        n_inf = int(torch.isinf(value).sum())
        if n_nan or n_inf:
            bad.append(f"{key} ({n_nan} NaN, {n_inf} Inf)")
    if bad:
        shown = ", ".join(bad[:_MAX_NONFINITE_LISTED])
        more = (
            f" and {len(bad) - _MAX_NONFINITE_LISTED} more tensors"
            if len(bad) > _MAX_NONFINITE_LISTED
            else ""
        )
        raise CheckpointError(
            f"non-finite values in {shown}{more}; a model with NaN/Inf weights yields NaN "
            "features, so PruneScope refuses it: export the weights from a healthy training run"
        )


def _check_binary_masks(masks: Mapping[str, Tensor]) -> None:
    bad = [k + _MASK_SUFFIX for k, m in masks.items() if not bool(((m == 0) | (m == 1)).all())]
    if bad:
        raise CheckpointError(f"masks must hold only 0 and 1: {_listing(bad)}")


# --- masks and statistics --------------------------------------------------------------------


def _masks_from_zeros(model: nn.Module) -> dict[str, Tensor]:
    """``{"<module>.weight": weight != 0}`` for prunable layers with zeros, if any."""
    masks: dict[str, Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, _PRUNABLE_TYPES):
            weight = _effective(module, "weight")
            if bool((weight == 0).any()):
                key = f"{name}.weight" if name else "weight"
                masks[key] = (weight != 0).to(weight.dtype)
    return masks


def _attach_mask(model: nn.Module, target: str, mask: Tensor) -> None:
    module_name, _, param_name = target.rpartition(".")
    module = model.get_submodule(module_name)
    param = getattr(module, param_name)
    prune.custom_from_mask(module, param_name, mask.to(param.device, param.dtype))
    with torch.no_grad():
        # Without autograd history so that the model can be copy.deepcopy-ed (as in
        # models.checkpoint); the forward pre-hook recomputes it on the next forward.
        setattr(module, param_name, _effective(module, param_name))


def _effective(module: nn.Module, name: str) -> Tensor:
    """``<name>_orig * <name>_mask`` if pruned, else the tensor itself; detached."""
    mask = module._buffers.get(name + _MASK_SUFFIX)
    orig = module._parameters.get(name + _ORIG_SUFFIX)
    if mask is not None and orig is not None:
        return (orig * mask).detach()
    value: Tensor = getattr(module, name)
    return value.detach()


def _layer_stats(model: nn.Module) -> list[dict[str, Any]]:
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, _PRUNABLE_TYPES):
            continue
        weight = _effective(module, "weight")
        n = weight.numel()
        n_zero = int((weight == 0).sum())
        layers.append(
            {
                "name": name,
                "kind": type(module).__name__,
                "shape": list(weight.shape),
                "n_params": n,
                "n_zero": n_zero,
                "sparsity": n_zero / n if n else 0.0,
                "masked": module._buffers.get("weight" + _MASK_SUFFIX) is not None,
            }
        )
    return layers


def _param_counts(model: nn.Module) -> tuple[int, int]:
    """(entries, non-zero entries) over all parameters, pruned ones by their effective value."""
    total = nonzero = 0
    for module in model.modules():
        for pname, param in module._parameters.items():
            if param is None:
                continue
            base = pname.removesuffix(_ORIG_SUFFIX)
            value = _effective(module, base) if pname != base else param.detach()
            total += value.numel()
            nonzero += int(torch.count_nonzero(value))
    return total, nonzero
