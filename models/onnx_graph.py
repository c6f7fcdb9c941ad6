"""Any architecture without running the uploader's code: ONNX graphs as torch.fx modules.

An ONNX file is a protobuf: reading it runs no code. It is parsed with ``onnx`` (never with
``onnx.load(path)``, which would follow external-data paths on the server's disk), its tensors
are checked from their declared shapes before anything is allocated, it is checked with
``onnx.checker``, and it is converted by onnx2torch into a ``torch.fx.GraphModule`` whose
``Conv``/``Gemm`` nodes are real ``nn.Conv2d``/``nn.Linear`` modules, so every pruning method,
fine-tuning and analysis works on it as on any other model.

What the import refuses, with a :class:`~models.checkpoint.CheckpointError` saying why:

* a plain ``.onnx`` whose tensors keep their data in external files (a path in an upload is
  never read on the server); a model with external data comes as a zip of exactly one
  ``*.onnx`` and its data files, and every external-data location must be a plain relative
  name of a file in that archive (no absolute path, no ``..``);
* tensors whose declared size does not match the bytes present, or beyond the size limit;
* operators of custom domains, and operators onnx2torch cannot convert (the message names the
  operators and their nodes);
* graphs with more than one input or output (PruneScope needs images in, logits out).

torch 2.14.1's exporters write operators onnx2torch 1.5.15 does not know: ``Identity``-19 on
initializers (the TorchScript exporter, for weights it deduplicated), ``ReduceMean``-18 (axes
as an input) and ``Reshape``-19 (the dynamo exporter). They are handled by a rewriting pass
(an ``Identity`` of an initializer becomes an initializer of its own, so every layer has its
own weights to prune) and by converters registered with onnx2torch's registry: the
``Reduce*``-18/20 family, and newer versions of operators whose inputs, outputs and attributes
are unchanged since the version onnx2torch knows (only their type lists grew).

Storage. A model is the architecture ``"onnx"`` with one argument, ``graph_sha``: the sha256
of its graph stripped of its weights (:func:`strip_weights`), stored in the artifact store.
The backend hands that store to this module with :func:`set_graph_loader`; the weights come
from PruneScope's checkpoint like those of any architecture. The stripped graph carries, in
its ``metadata_props``, which initializer each ``state_dict`` entry of the converted module
came from, so that :func:`export_onnx` writes (pruned) weights back into the original graph
without guessing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import posixpath
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, fx, nn

from models.checkpoint import CheckpointError
from models.registry import register_model

if TYPE_CHECKING:
    import onnx

__all__ = [
    "META_KEY",
    "export_onnx",
    "is_onnx_zip",
    "looks_like_onnx",
    "onnx_graph",
    "read_onnx",
    "set_graph_loader",
    "strip_weights",
    "to_torch",
    "to_torch_with_sources",
]

# metadata_props key of the stored graph: {"version", "sources", "stripped"} as JSON.
META_KEY = "prunescope.onnx"
META_VERSION = 1
# A serialised ModelProto cannot exceed 2 GiB (protobuf), so neither can an importable model.
_PROTOBUF_LIMIT = 2**31 - 1
_MAX_ZIP_MEMBERS = 1000
_MAX_LISTED = 5
_ZIP_MAGIC = b"PK\x03\x04"
# Tags that may follow ModelProto's ir_version (field 1) in an exporter's output.
_MODEL_PROTO_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xAA}
# Byte size of one element per onnx.TensorProto.DataType; others are refused.
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}
# Which typed field holds the values when raw_data is empty.
_TYPED_FIELD = {
    1: "float_data",
    2: "int32_data",
    3: "int32_data",
    4: "int32_data",
    5: "int32_data",
    6: "int32_data",
    7: "int64_data",
    9: "int32_data",
    10: "int32_data",
    11: "double_data",
    12: "uint64_data",
    13: "uint64_data",
    16: "int32_data",
}
# Newest opset version whose operator versions are known to be safe aliases (type lists only).
_MAX_ALIAS_VERSION = 25
_REDUCE_OPS = (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSumSquare",
)

_loader: Callable[[str], bytes] | None = None
_convert_lock = threading.RLock()
_registered = False
# converted stored graphs (zero weights), copied for each model: a prune job builds two models
_TEMPLATES: OrderedDict[str, fx.GraphModule] = OrderedDict()
_templates_lock = threading.Lock()
_MAX_TEMPLATES = 4


def set_graph_loader(fn: Callable[[str], bytes] | None) -> None:
    """Set how the ``"onnx"`` architecture reads a stored graph: ``fn(graph_sha) -> bytes``.

    The backend sets its artifact store's ``get_bytes`` (models/ never imports backend/);
    None unsets it.
    """
    global _loader
    _loader = fn  # converted graphs stay cached: a sha names the same graph in any store


@register_model("onnx")
def onnx_graph(graph_sha: str) -> nn.Module:
    """An imported ONNX graph, converted by onnx2torch to a torch.fx module.

    Args:
        graph_sha: sha256 of the stored graph without weights (see :func:`strip_weights`);
            read through the loader of :func:`set_graph_loader`.

    Returns:
        The fx module with placeholder weights (zeros); the checkpoint supplies the real ones.
    """
    if not isinstance(graph_sha, str) or len(graph_sha) != 64:
        raise ValueError(f"graph_sha={graph_sha!r} should be a sha256 hex digest")
    with _templates_lock:
        template = _TEMPLATES.get(graph_sha)
        if template is not None:
            _TEMPLATES.move_to_end(graph_sha)
    if template is None:
        if _loader is None:
            raise CheckpointError(
                f"the ONNX graph {graph_sha} cannot be read: no graph loader is set in this "
                "process (models.onnx_graph.set_graph_loader)"
            )
        data = _loader(graph_sha)
        if hashlib.sha256(data).hexdigest() != graph_sha:
            raise CheckpointError(f"the stored ONNX graph {graph_sha} does not match its digest")
        template = _from_stripped(data)
        with _templates_lock:
            _TEMPLATES[graph_sha] = template
            while len(_TEMPLATES) > _MAX_TEMPLATES:
                _TEMPLATES.popitem(last=False)
    return copy.deepcopy(template)


# --- content detection -----------------------------------------------------------------------


def looks_like_onnx(head: bytes) -> bool:
    """Whether a file's first bytes look like a serialised ``onnx.ModelProto``.

    Exporters write field 1 (``ir_version``, a small varint) first, then another field of
    ModelProto; pickles and zips start differently, and a safetensors file (whose 8-byte
    header length may start alike) has its JSON header's ``{`` at byte 8.
    """
    return (
        len(head) >= 3
        and head[0] == 0x08
        and 1 <= head[1] <= 0x7F
        and head[2] in _MODEL_PROTO_TAGS
        and head[8:9] != b"{"
    )


def is_onnx_zip(path: str | Path) -> bool:
    """Whether a zip archive holds an ``*.onnx`` file rather than a ``torch.save`` pickle."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return False
    return any(n.lower().endswith(".onnx") for n in names)


# --- reading and checking --------------------------------------------------------------------


def read_onnx(
    path: str | Path, *, max_tensor_bytes: int | None = None
) -> tuple[onnx.ModelProto, list[str]]:
    """Read and check an uploaded ONNX model without following any path it names.

    Args:
        path: A ``.onnx`` file (all tensors inside it) or a zip holding exactly one ``*.onnx``
            and the files its external data names (relative to that file's folder in the
            archive).
        max_tensor_bytes: Refuse models whose tensors declare more bytes than this (checked
            from the declared shapes, before any tensor is read); at most 2 GiB in any case.

    Returns:
        ``(model, notes)``: the model with all tensor data inside it, checked with
        ``onnx.checker`` and convertible by :func:`to_torch`; notes for the user.

    Raises:
        CheckpointError: Unreadable or invalid file, external data outside the archive, a tensor
            whose bytes do not match its shape or beyond the limit, custom or unconvertible
            operators, or not exactly one graph input and output.
    """
    import onnx  # noqa: F811  (deferred: a few hundred ms that `import models` should not pay)

    path = Path(path)
    name = repr(path.name)
    limit = _PROTOBUF_LIMIT if max_tensor_bytes is None else min(max_tensor_bytes, _PROTOBUF_LIMIT)
    notes: list[str] = []
    try:
        with path.open("rb") as f:
            head = f.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read {name}: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC):
        model = _read_zip(path, limit, notes)
    else:
        if size > _PROTOBUF_LIMIT:
            raise CheckpointError(f"{name} is larger than 2 GiB, the limit of an ONNX protobuf")
        model = _parse(path.read_bytes(), name)
        _check_tensors(model, name, limit, archive=None)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{name} is not a valid ONNX model (onnx.checker): {first}") from None
    _check_convertible(model, name)
    _check_io(model, name, notes)
    return model, notes


def _parse(data: bytes, name: str) -> onnx.ModelProto:
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise CheckpointError(
            f"{name} is not a readable ONNX model (the protobuf does not parse: {exc}); "
            "export it again with torch.onnx.export"
        ) from None
    if not model.HasField("graph"):
        raise CheckpointError(f"{name} holds no ONNX graph")
    return model


def _read_zip(path: Path, limit: int, notes: list[str]) -> onnx.ModelProto:
    name = repr(path.name)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{name} is not a readable zip archive: {exc}") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > _MAX_ZIP_MEMBERS:
            raise CheckpointError(
                f"{name} holds {len(infos)} files; an ONNX archive holds the .onnx file and its "
                f"external data files (at most {_MAX_ZIP_MEMBERS})"
            )
        graphs = [i for i in infos if i.filename.lower().endswith(".onnx")]
        if len(graphs) != 1:
            found = ", ".join(repr(i.filename) for i in graphs[:_MAX_LISTED]) or "none"
            raise CheckpointError(
                f"{name} should hold exactly one .onnx file (found: {found}) next to its "
                "external data files"
            )
        graph_info = graphs[0]
        if graph_info.file_size > _PROTOBUF_LIMIT:
            raise CheckpointError(
                f"{graph_info.filename!r} in {name} is larger than 2 GiB, the limit of an ONNX "
                "protobuf"
            )
        try:
            data = zf.read(graph_info)
        except Exception as exc:  # zlib.error, BadZipFile (CRC), NotImplementedError, ...
            raise CheckpointError(f"cannot read {graph_info.filename!r} in {name}: {exc}") from None
        model = _parse(data, f"{graph_info.filename!r} in {name}")
        del data
        members = {i.filename: i for i in infos}
        used = _check_tensors(
            model,
            f"{graph_info.filename!r} in {name}",
            limit,
            archive=(zf, members, posixpath.dirname(graph_info.filename)),
        )
        if used:
            notes.append(
                f"read external data from {', '.join(repr(u) for u in sorted(used))} in the archive"
            )
    return model


def _all_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every tensor of the model: initializers, tensor attributes, subgraphs, functions."""

    def graph_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto]]:
        for tensor in graph.initializer:
            yield f"initializer {tensor.name!r}", tensor
        for node in graph.node:
            yield from node_tensors(node)

    def node_tensors(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.TensorProto]]:
        where = f"attribute {{}} of node {node.name or node.op_type!r}"
        for attr in node.attribute:
            if attr.HasField("sparse_tensor") or len(attr.sparse_tensors):
                raise CheckpointError(
                    f"{where.format(repr(attr.name))} is a sparse tensor, which PruneScope does "
                    "not read"
                )
            if attr.HasField("t"):
                yield where.format(repr(attr.name)), attr.t
            for t in attr.tensors:
                yield where.format(repr(attr.name)), t
            if attr.HasField("g"):
                yield from graph_tensors(attr.g)
            for g in attr.graphs:
                yield from graph_tensors(g)

    yield from graph_tensors(model.graph)
    for info in model.training_info:
        yield from graph_tensors(info.initialization)
        yield from graph_tensors(info.algorithm)
    for function in model.functions:
        for node in function.node:
            yield from node_tensors(node)


def _check_tensors(
    model: onnx.ModelProto,
    name: str,
    limit: int,
    archive: tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo], str] | None,
) -> set[str]:
    """Check every tensor from its declared shape; inline external data read from the archive.

    Nothing is allocated for a tensor before its declared size has been checked against the
    bytes actually present and against ``limit``. Returns the archive members read.
    """
    import onnx

    if model.graph.sparse_initializer:
        raise CheckpointError(f"{name} has sparse initializers, which PruneScope does not read")
    total = 0
    external: list[tuple[str, onnx.TensorProto, int]] = []
    for where, tensor in _all_tensors(model):
        if tensor.data_type not in _ITEMSIZE:
            valid = tensor.data_type in onnx.TensorProto.DataType.values()
            type_name = onnx.TensorProto.DataType.Name(tensor.data_type) if valid else "unknown"
            raise CheckpointError(
                f"{name}: {where} has type {type_name} ({tensor.data_type}), which PruneScope "
                "does not read"
            )
        if any(d < 0 for d in tensor.dims):
            raise CheckpointError(f"{name}: {where} has negative dims {list(tensor.dims)}")
        if tensor.HasField("segment"):
            raise CheckpointError(f"{name}: {where} is segmented, which PruneScope does not read")
        numel = math.prod(tensor.dims)
        declared = numel * _ITEMSIZE[tensor.data_type]
        if declared > limit:
            raise CheckpointError(
                f"{name}: {where} declares {declared} bytes (dims {list(tensor.dims)}), more "
                f"than the limit of {limit} bytes"
            )
        total += declared
        if total > limit:
            raise CheckpointError(
                f"{name}: its tensors declare more than the limit of {limit} bytes"
            )
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            if archive is None:
                raise CheckpointError(
                    f"{name}: {where} keeps its data in an external file {location!r}; PruneScope "
                    "never reads a path named in an upload: upload a zip of the .onnx file and "
                    "its data files instead (see README, ONNX)"
                )
            external.append((where, tensor, declared))
            continue
        _check_present(tensor, where, name, numel, declared)
    if archive is None:
        return set()
    return _inline_external(external, name, archive)


def _check_present(
    tensor: onnx.TensorProto, where: str, name: str, numel: int, declared: int
) -> None:
    """The bytes a tensor holds match the shape it declares."""
    if tensor.raw_data:
        held = len(tensor.raw_data)
        if held != declared:
            raise CheckpointError(
                f"{name}: {where} declares dims {list(tensor.dims)} ({declared} bytes) but holds "
                f"{held} bytes"
            )
        return
    count = len(getattr(tensor, _TYPED_FIELD[tensor.data_type]))
    if count != numel:
        raise CheckpointError(
            f"{name}: {where} declares dims {list(tensor.dims)} ({numel} values) but holds "
            f"{count} values"
        )


def _inline_external(
    external: list[tuple[str, onnx.TensorProto, int]],
    name: str,
    archive: tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo], str],
) -> set[str]:
    """Resolve external data inside the archive only, and copy it into the tensors."""
    import onnx

    zf, members, base = archive
    plan: dict[str, list[tuple[int, int, onnx.TensorProto, str]]] = {}
    for where, tensor, declared in external:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        parts = location.split("/")
        if (
            not location
            or location.startswith("/")
            or "\\" in location
            or ":" in location
            or "\x00" in location
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise CheckpointError(
                f"{name}: {where} names external data {location!r}, which is not a plain "
                "relative file name inside the archive (no absolute path, no '..')"
            )
        member = posixpath.join(base, location) if base else location
        if member not in members:
            raise CheckpointError(
                f"{name}: {where} names external data {location!r}, which is not in the archive"
            )
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else declared
        except ValueError:
            raise CheckpointError(
                f"{name}: {where} has a non-integer external data offset or length"
            ) from None
        if offset < 0 or length != declared:
            raise CheckpointError(
                f"{name}: {where} declares dims {list(tensor.dims)} ({declared} bytes) but its "
                f"external data spans {length} bytes at offset {offset}"
            )
        if offset + length > members[member].file_size:
            raise CheckpointError(
                f"{name}: {where} reads bytes {offset}..{offset + length} of {location!r}, which "
                f"holds only {members[member].file_size} bytes"
            )
        plan.setdefault(member, []).append((offset, length, tensor, where))
    for member, items in plan.items():
        items.sort(key=lambda item: item[0])
        try:
            with zf.open(members[member]) as fh:
                for offset, length, tensor, _where in items:
                    fh.seek(offset)
                    data = fh.read(length)
                    if len(data) != length:
                        raise CheckpointError(f"{name}: {member!r} in the archive is truncated")
                    tensor.raw_data = data
                    del tensor.external_data[:]
                    tensor.data_location = onnx.TensorProto.DEFAULT
        except CheckpointError:
            raise
        except Exception as exc:  # zlib.error, BadZipFile (CRC), ...
            raise CheckpointError(f"cannot read {member!r} in {name}: {exc}") from None
    return set(plan)


def _check_convertible(model: onnx.ModelProto, name: str) -> None:
    """Refuse custom domains and operators onnx2torch cannot convert, naming their nodes."""
    from onnx2torch.node_converters.registry import get_converter

    _register_converters()
    opsets = {o.domain or "": o.version for o in model.opset_import}
    custom: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    for index, node in enumerate(model.graph.node):
        label = repr(node.name) if node.name else f"#{index}"
        if node.domain not in ("",):
            custom.setdefault(f"{node.domain}::{node.op_type}", []).append(label)
            continue
        version = opsets.get("", 0)
        try:
            get_converter(operation_type=node.op_type, version=version, domain="")
        except NotImplementedError:
            missing.setdefault(f"{node.op_type} (opset {version})", []).append(label)
    parts = []
    if custom:
        parts.append("custom operators " + _by_node(custom))
    if missing:
        parts.append("operators PruneScope cannot convert " + _by_node(missing))
    if parts:
        raise CheckpointError(
            f"{name} uses {'; and '.join(parts)}; export the model with the standard ONNX "
            "domain only (torch.onnx.export, see README, ONNX)"
        )


def _by_node(ops: Mapping[str, list[str]]) -> str:
    shown = []
    for op, nodes in list(ops.items())[:_MAX_LISTED]:
        more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
        shown.append(f"{op} in node{'s' if len(nodes) > 1 else ''} {', '.join(nodes[:3])}{more}")
    extra = f" (and {len(ops) - _MAX_LISTED} more)" if len(ops) > _MAX_LISTED else ""
    return "; ".join(shown) + extra


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _check_io(model: onnx.ModelProto, name: str, notes: list[str]) -> None:
    inputs = _graph_inputs(model)
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise CheckpointError(
            f"{name} has {len(inputs)} graph inputs and {len(outputs)} outputs; PruneScope needs "
            "one input (the images) and one output (the logits)"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value"):
        notes.append(
            f"the graph input {inputs[0].name!r} has a fixed batch size of {dims[0].dim_value}; "
            "if evaluation fails, export with a dynamic batch dimension (see README, ONNX)"
        )


# --- conversion ------------------------------------------------------------------------------


def _register_converters() -> None:
    """Register what onnx2torch 1.5.15 lacks for torch 2.14.1's exporters (once).

    * ``Reduce*`` from opset 18 on take their axes as an input (a constant here);
    * operator versions whose inputs, outputs and attributes equal those of the newest version
      onnx2torch converts (only their type lists grew: ``Identity``-19, ``Reshape``-19,
      ``Conv``-22, ...) reuse its converter;
    * ``Pad``-18+ and ``AveragePool``-19+ reuse it while the new ``axes`` input / ``dilations``
      attribute are unused.
    """
    global _registered
    if _registered:
        return
    with _convert_lock:
        if _registered:
            return
        _register_reduce()
        _register_aliases()
        _registered = True


def _register_reduce() -> None:
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value

    class _Passthrough(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    def convert_reduce(node: Any, graph: Any) -> Any:
        keepdims = node.attributes.get("keepdims", 1)
        noop = node.attributes.get("noop_with_empty_axes", 0)
        axes: list[int] | None = None
        if len(node.input_values) > 1 and node.input_values[1]:
            try:
                value = get_const_value(node.input_values[1], graph)
            except KeyError:
                raise NotImplementedError(
                    f"{node.operation_type} with axes computed at run time"
                ) from None
            axes = [int(a) for a in torch.as_tensor(value).reshape(-1).tolist()]
        module: nn.Module
        if not axes and noop:
            module = _Passthrough()
        else:
            module = OnnxReduceStaticAxes(
                operation_type=node.operation_type, axes=axes or None, keepdims=keepdims
            )
        return OperationConverterResult(
            torch_module=module,
            onnx_mapping=OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values),
        )

    for op in _REDUCE_OPS:
        versions = (18, 20) if op in ("ReduceMax", "ReduceMin") else (18,)
        for version in versions:
            key = OperationDescription(domain="", operation_type=op, version=version)
            _CONVERTER_REGISTRY.setdefault(key, convert_reduce)


def _register_aliases() -> None:
    import onnx.defs
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription

    known: dict[str, int] = {}
    for desc in _CONVERTER_REGISTRY:
        if desc.domain == "":
            known[desc.operation_type] = max(known.get(desc.operation_type, 0), desc.version)
    newer: dict[str, set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == "" and schema.name in known:
            if known[schema.name] < schema.since_version <= _MAX_ALIAS_VERSION:
                newer.setdefault(schema.name, set()).add(schema.since_version)

    def signature(schema: Any) -> Any:
        attrs = {
            k: (v.type, v.default_value.SerializeToString()) for k, v in schema.attributes.items()
        }
        inputs = [(i.name, i.option) for i in schema.inputs]
        outputs = [(o.name, o.option) for o in schema.outputs]
        return attrs, inputs, outputs

    for op, versions in newer.items():
        base_version = known[op]
        base = _CONVERTER_REGISTRY[OperationDescription("", op, base_version)]
        base_sig = signature(onnx.defs.get_schema(op, base_version))
        for version in sorted(versions):
            key = OperationDescription("", op, version)
            if key in _CONVERTER_REGISTRY:
                continue
            if signature(onnx.defs.get_schema(op, version)) == base_sig or op == "Cast":
                # Cast-19 only added `saturate`, which matters for float8 targets alone
                _CONVERTER_REGISTRY[key] = base
            elif op == "Pad":
                _CONVERTER_REGISTRY[key] = _pad_without_axes(base)
            elif op == "AveragePool":
                _CONVERTER_REGISTRY[key] = _pool_without_dilations(base)
    # Reshape-14 added `allowzero`; onnx2torch refuses allowzero=1, which the dynamo exporter
    # always writes. torch.reshape's own semantics are allowzero=1 (a 0 is a 0).
    for desc in [
        d for d in _CONVERTER_REGISTRY if d.domain == "" and d.operation_type == "Reshape"
    ]:
        if desc.version >= 14:
            _CONVERTER_REGISTRY[desc] = _reshape_allowzero(_CONVERTER_REGISTRY[desc])


class _ReshapeAllowZero(nn.Module):
    """ONNX ``Reshape`` with ``allowzero=1``: the shape's zeros are sizes, as in torch."""

    def forward(self, x: Tensor, shape: Tensor) -> Tensor:
        return torch.reshape(x, [int(s) for s in shape.tolist()])


def _reshape_allowzero(base: Callable[..., Any]) -> Callable[..., Any]:
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    def convert(node: Any, graph: Any) -> Any:
        if node.attributes.get("allowzero", 0) != 1:
            return base(node, graph)
        return OperationConverterResult(
            torch_module=_ReshapeAllowZero(), onnx_mapping=onnx_mapping_from_node(node)
        )

    return convert


def _pad_without_axes(base: Callable[..., Any]) -> Callable[..., Any]:
    def convert(node: Any, graph: Any) -> Any:
        if len(node.input_values) > 3 and node.input_values[3]:
            raise NotImplementedError("Pad with an axes input")
        return base(node, graph)

    return convert


def _pool_without_dilations(base: Callable[..., Any]) -> Callable[..., Any]:
    def convert(node: Any, graph: Any) -> Any:
        if any(d != 1 for d in node.attributes.get("dilations", [])):
            raise NotImplementedError("AveragePool with dilations")
        return base(node, graph)

    return convert


def _materialize_identities(model: onnx.ModelProto) -> None:
    """Replace each ``Identity`` of an initializer by an initializer of its own (in place).

    The TorchScript exporter shares equal initializers between layers through ``Identity``
    nodes (e.g. the zero biases of a freshly initialised network); onnx2torch cannot convert a
    Conv whose weight is a node output, and shared tensors could not be pruned per layer.
    """
    graph = model.graph
    while True:
        initializers = {t.name: t for t in graph.initializer}
        outputs = {o.name for o in graph.output}
        found = [
            n
            for n in graph.node
            if n.op_type == "Identity"
            and n.domain == ""
            and len(n.input) == 1
            and n.input[0] in initializers
            and n.output[0] not in outputs
        ]
        if not found:
            return
        for node in found:
            copy_of = graph.initializer.add()
            copy_of.CopyFrom(initializers[node.input[0]])
            copy_of.name = node.output[0]
            graph.node.remove(node)
        consumed = {i for n in graph.node for i in n.input} | outputs | _subgraph_inputs(graph)
        for source in {n.input[0] for n in found}:
            if source not in consumed:
                graph.initializer.remove(initializers[source])
                for value in [v for v in graph.input if v.name == source]:
                    graph.input.remove(value)


def _subgraph_inputs(graph: onnx.GraphProto) -> set[str]:
    """Names read inside subgraphs (If/Loop bodies may use outer-scope initializers)."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names |= {i for n in g.node for i in n.input} | _subgraph_inputs(g)
    return names


@contextmanager
def _recording() -> Iterator[list[tuple[str, Tensor]]]:
    """Record every initializer onnx2torch turns into a tensor, as ``(name, tensor)``."""
    from onnx2torch.onnx_tensor import OnnxTensor

    recorded: list[tuple[str, Tensor]] = []
    original = OnnxTensor.to_torch

    def to_torch(self: Any) -> Tensor:
        tensor = original(self)
        recorded.append((self.name, tensor))
        return tensor

    OnnxTensor.to_torch = to_torch  # type: ignore[method-assign]
    try:
        yield recorded
    finally:
        OnnxTensor.to_torch = original  # type: ignore[method-assign]


def _convert(model: onnx.ModelProto) -> fx.GraphModule:
    """onnx2torch's conversion of a copy of ``model``; the caller holds ``_convert_lock``."""
    from onnx2torch import converter

    _register_converters()
    try:
        work = _with_inferred_shapes(model)
        # shapes are inferred above, on the graph without its large weights: onnx2torch's own
        # inference would serialise, infer and parse back every weight (a third of the time)
        original = converter.safe_shape_inference
        converter.safe_shape_inference = lambda m, **_: m  # type: ignore[assignment]
        try:
            module = converter.convert(work)
        finally:
            converter.safe_shape_inference = original
    except NotImplementedError as exc:
        raise CheckpointError(f"onnx2torch cannot convert this graph: {exc}") from None
    except Exception as exc:  # shape inference and converters raise anything on odd graphs
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise CheckpointError(
            f"onnx2torch failed to convert this graph: {type(exc).__name__}: {first}"
        ) from None
    return module.eval()


# Floating types whose large tensors no shape inference reads (shapes, axes, pads are integers).
_WEIGHT_TYPES = (1, 10, 11, 16)
_SMALL = 1024


def _with_inferred_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose ``value_info`` holds the inferred shapes of every value."""
    import onnx

    big = [
        t
        for t in model.graph.initializer
        if t.data_type in _WEIGHT_TYPES and math.prod(t.dims) > _SMALL and t.raw_data
    ]
    held = [(t, t.raw_data) for t in big]
    for t in big:
        t.ClearField("raw_data")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    finally:
        for t, data in held:
            t.raw_data = data
    work = onnx.ModelProto()
    work.CopyFrom(model)
    del work.graph.value_info[:]
    work.graph.value_info.extend(inferred.graph.value_info)
    return work


def to_torch(model_proto: onnx.ModelProto) -> fx.GraphModule:
    """Convert a checked ONNX model to a ``torch.fx.GraphModule`` (float32, eval mode).

    ``Conv``/``Gemm`` become ``nn.Conv2d``/``nn.Linear`` (so pruning, fine-tuning and the
    analyses treat them as usual); module names are the node names with ``.`` replaced by
    ``/``. ``Identity`` nodes of initializers are first rewritten in place into initializers
    (see :func:`to_torch_with_sources`).
    """
    return to_torch_with_sources(model_proto)[0]


def to_torch_with_sources(
    model_proto: onnx.ModelProto,
) -> tuple[fx.GraphModule, dict[str, dict[str, Any]]]:
    """:func:`to_torch`, plus where each ``state_dict`` entry came from.

    The model is rewritten in place first (an ``Identity`` of an initializer becomes an
    initializer of its own), so pass the returned sources with this same model to
    :func:`strip_weights`.

    Returns:
        ``(module, sources)``: ``sources[key] = {"initializer": name, "transpose": bool,
        "scale": float}`` when ``state_dict()[key] == scale * initializer`` (transposed for
        a ``Gemm`` without ``transB``); entries a converter made from anything else
        (attributes, ``Constant`` nodes) have no source.
    """
    _materialize_identities(model_proto)
    with _convert_lock, _recording() as recorded:
        module = _convert(model_proto)
    sources = _sources(module, model_proto, recorded)
    # PruneScope works in float32: half or double exports become float32 (export casts back).
    return module.float(), sources


def _sources(
    module: fx.GraphModule, model: onnx.ModelProto, recorded: list[tuple[str, Tensor]]
) -> dict[str, dict[str, Any]]:
    from onnx2torch.onnx_graph import OnnxGraph

    nodes = OnnxGraph(model.graph).nodes
    by_storage: dict[int, list[tuple[str, Tensor]]] = {}
    for init_name, tensor in recorded:
        if tensor.numel():
            by_storage.setdefault(tensor.untyped_storage().data_ptr(), []).append(
                (init_name, tensor)
            )
    sources: dict[str, dict[str, Any]] = {}
    for key, value in module.state_dict(keep_vars=True).items():
        value = value.detach()
        module_name = key.rpartition(".")[0]
        node = nodes.get(module_name)
        allowed = set(node.input_values) if node is not None else None
        scales = {1.0}
        if node is not None:
            scales |= {float(node.attributes.get(a, 1.0)) for a in ("alpha", "beta")}
        found = None
        if value.numel():
            for init_name, tensor in by_storage.get(value.untyped_storage().data_ptr(), []):
                if allowed is not None and init_name not in allowed:
                    continue
                found = _match(value, tensor, init_name, {1.0})
                if found is not None:
                    break
        if found is None and allowed is not None:
            for init_name, tensor in recorded:
                if init_name in allowed:
                    found = _match(value, tensor, init_name, scales)
                    if found is not None:
                        break
        if found is not None:
            sources[key] = found
    return sources


def _match(value: Tensor, tensor: Tensor, name: str, scales: set[float]) -> dict[str, Any] | None:
    """How ``value`` derives from the initializer ``tensor``, if it does exactly."""
    if value.numel() != tensor.numel() or value.dtype != tensor.dtype:
        return None
    candidates = [(False, tensor)]
    if tensor.dim() == 2:
        candidates.append((True, tensor.T))
    for transpose, base in candidates:
        if base.shape != value.shape:
            continue
        for scale in sorted(scales):
            expected = base if scale == 1.0 else base * scale
            if torch.equal(value, expected):
                return {"initializer": name, "transpose": transpose, "scale": scale}
    return None


# --- storage and export ----------------------------------------------------------------------

_TYPED_FIELDS = (
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
)


def strip_weights(
    model_proto: onnx.ModelProto, sources: Mapping[str, Mapping[str, Any]] | None = None
) -> bytes:
    """The graph without the weights the checkpoint holds: the stored artifact of a model.

    Initializers that became parameters or buffers of converted layers (``nn.Conv2d``,
    ``nn.Linear``, ...) keep their name, type and shape but lose their data; small constants
    a layer takes as an input (shapes, axes) stay. ``metadata_props[META_KEY]`` records the
    sources (see :func:`to_torch_with_sources`) and which initializers were stripped.

    Args:
        model_proto: The model as converted by :func:`to_torch_with_sources` (rewritten).
        sources: Its sources; computed (one more conversion) when None.

    Returns:
        Deterministic serialised bytes; their sha256 is the model's ``graph_sha``.
    """
    if sources is None:
        probe = type(model_proto)()
        probe.CopyFrom(model_proto)
        _, sources = to_torch_with_sources(probe)
        _materialize_identities(model_proto)
    stripped = sorted(
        {
            str(src["initializer"])
            for key, src in sources.items()
            if key.rpartition(".")[0] != "initializers"
        }
    )
    out = type(model_proto)()
    out.CopyFrom(model_proto)
    wanted = set(stripped)
    for tensor in out.graph.initializer:
        if tensor.name in wanted:
            tensor.ClearField("raw_data")
            for name in _TYPED_FIELDS:
                tensor.ClearField(name)  # type: ignore[arg-type]
    _set_meta(out, {"version": META_VERSION, "sources": dict(sources), "stripped": stripped})
    return out.SerializeToString(deterministic=True)


def _set_meta(model: onnx.ModelProto, meta: Mapping[str, Any] | None) -> None:
    for entry in [e for e in model.metadata_props if e.key == META_KEY]:
        model.metadata_props.remove(entry)
    if meta is not None:
        entry = model.metadata_props.add()
        entry.key = META_KEY
        entry.value = json.dumps(meta, sort_keys=True)


def _stored(graph_bytes: bytes) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """A stored graph and its PruneScope metadata."""
    model = _parse(graph_bytes, "the stored ONNX graph")
    raw = next((e.value for e in model.metadata_props if e.key == META_KEY), None)
    try:
        meta = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
        raise CheckpointError(f"the stored ONNX graph has no valid {META_KEY!r} metadata")
    return model, meta


def _from_stripped(graph_bytes: bytes) -> fx.GraphModule:
    """The module of a stored graph, its stripped weights zeros (the checkpoint fills them)."""
    model, meta = _stored(graph_bytes)
    stripped = set(meta["stripped"])
    total = 0
    for tensor in model.graph.initializer:
        if tensor.name in stripped:
            if tensor.data_type not in _ITEMSIZE:
                raise CheckpointError(f"the stored ONNX graph: {tensor.name!r} has a bad type")
            n_bytes = math.prod(tensor.dims) * _ITEMSIZE[tensor.data_type]
            total += n_bytes
            if any(d < 0 for d in tensor.dims) or total > _PROTOBUF_LIMIT:
                raise CheckpointError("the stored ONNX graph declares an impossible size")
            tensor.raw_data = bytes(n_bytes)
    with _convert_lock:
        module = _convert(model)
    return module.float()


def _effective_state(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state_dict`` with pruned pairs ``<p>_orig`` + ``<p>_mask`` folded into ``<p>``."""
    state = dict(state_dict)
    for key in [k for k in state if k.endswith("_orig")]:
        plain = key[: -len("_orig")]
        mask = state.get(plain + "_mask")
        if plain not in state and mask is not None:
            state[plain] = state[key] * mask
    return state


def export_onnx(graph_bytes: bytes, state_dict: Mapping[str, Tensor]) -> bytes:
    """The original ONNX graph with its initializers replaced by a module's (pruned) weights.

    Args:
        graph_bytes: The stored graph (:func:`strip_weights`).
        state_dict: A ``state_dict`` of the model's fx module: plain weights, pruned weights
            as ``torch.nn.utils.prune`` keeps them (``weight_orig`` + ``weight_mask``), or
            :func:`models.checkpoint.state_dict_for_save`'s effective weights + masks.

    Returns:
        A serialised ``onnx.ModelProto`` any ONNX runtime can run; each initializer keeps its
        original name, shape and type.

    Raises:
        ValueError: The stored graph lacks its metadata, a stripped weight is missing from
            ``state_dict`` or does not fit, or one initializer would get two different values.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    model, meta = _stored(graph_bytes)
    state = _effective_state(state_dict)
    initializers = {t.name: t for t in model.graph.initializer}
    values: dict[str, tuple[str, np.ndarray]] = {}
    for key, src in meta["sources"].items():
        if key not in state:
            continue
        name = str(src["initializer"])
        tensor = initializers.get(name)
        if tensor is None:
            raise ValueError(f"the stored ONNX graph has no initializer {name!r} for {key!r}")
        value = state[key].detach().cpu()
        if value.is_floating_point():
            value = value.double()  # exact for float32 and float16; cast to the type below
        if float(src["scale"]) != 1.0:
            value = value / float(src["scale"])
        if src["transpose"]:
            value = value.T
        if value.numel() != math.prod(tensor.dims):
            raise ValueError(
                f"{key!r} has shape {tuple(state[key].shape)}, which does not fit initializer "
                f"{name!r} of dims {list(tensor.dims)}"
            )
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        array = np.ascontiguousarray(value.numpy().reshape(tuple(tensor.dims))).astype(dtype)
        if name in values and not np.array_equal(values[name][1], array):
            raise ValueError(
                f"{values[name][0]!r} and {key!r} share initializer {name!r} but differ; the "
                "original graph can hold only one of them"
            )
        values[name] = (key, array)
    missing = [n for n in meta["stripped"] if n not in values]
    if missing:
        raise ValueError(
            f"the state_dict lacks the weights of {len(missing)} initializers: "
            + ", ".join(repr(n) for n in missing[:_MAX_LISTED])
        )
    for name, (_key, array) in values.items():
        initializers[name].CopyFrom(numpy_helper.from_array(array, name=name))
    _set_meta(model, None)
    return model.SerializeToString()
