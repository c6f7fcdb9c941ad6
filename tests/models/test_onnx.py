"""models.onnx_graph: ONNX models from both of torch's exporters become torch.fx modules with
real Conv2d/Linear layers that compute what the original computed; the stored graph rebuilds
the same module; pruned weights go back into the original graph; hostile files are refused
before anything they name is read or anything they claim is allocated."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from torch.nn.utils import prune

from models import onnx_graph
from models.checkpoint import load_checkpoint, save_checkpoint, state_dict_for_save
from models.heads import find_classifier
from models.importer import CheckpointError, read_checkpoint
from models.onnx_graph import export_onnx, read_onnx, strip_weights, to_torch_with_sources

TOL = 1e-4


def resnet18() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def export_legacy(
    model: nn.Module, path: Path | io.BytesIO, sample: torch.Tensor
) -> Path | io.BytesIO:
    torch.onnx.export(
        model,
        (sample,),
        path if isinstance(path, io.BytesIO) else str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def export_dynamo(model: nn.Module, folder: Path, sample: torch.Tensor) -> Path:
    """torch's default exporter: weights in ``model.onnx.data``, zipped with the graph."""
    pytest.importorskip("onnxscript")
    folder.mkdir()
    torch.onnx.export(
        model,
        (sample,),
        str(folder / "model.onnx"),
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    assert (folder / "model.onnx.data").is_file()  # what a plain upload cannot carry
    archive = folder / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "model.onnx", "model.onnx")
        zf.write(folder / "model.onnx.data", "model.onnx.data")
    return archive


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resnet")
    model, sample = resnet18(), torch.randn(2, 3, 32, 32)
    return {
        "legacy": Path(export_legacy(model, folder / "legacy.onnx", sample)),  # type: ignore[arg-type]
        "dynamo": export_dynamo(model, folder / "dynamo", sample),
    }


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def tiny_proto(model: nn.Module | None = None) -> onnx.ModelProto:
    torch.manual_seed(1)
    buf = io.BytesIO()
    export_legacy(model or TinyNet().eval(), buf, torch.randn(1, 3, 4, 4))
    return onnx.load_from_string(buf.getvalue())


def write(path: Path, proto: onnx.ModelProto) -> Path:
    path.write_bytes(proto.SerializeToString())
    return path


def logits(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def run_onnx(data: bytes, x: torch.Tensor) -> np.ndarray:
    try:
        import onnxruntime as ort
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(onnx.load_from_string(data))
        return np.asarray(evaluator.run(None, {evaluator.input_names[0]: x.numpy()})[0])
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


# --- both exporters --------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_both_exporters_give_real_layers_and_the_same_logits(exporter, resnet_files):
    proto, _notes = read_onnx(resnet_files[exporter])
    module, sources = to_torch_with_sources(proto)
    kinds = [type(m) for m in module.modules()]
    assert kinds.count(nn.Conv2d) == 20 and kinds.count(nn.Linear) == 1
    x = torch.randn(3, 3, 32, 32)  # another batch size than the export's
    torch.testing.assert_close(logits(module, x), logits(resnet18(), x), atol=TOL, rtol=TOL)
    name, classifier = find_classifier(module)
    assert classifier.out_features == 10 and name in dict(module.named_modules())
    # every weight of every layer is traced to the initializer it came from
    prunable = [
        f"{n}.{p}"
        for n, m in module.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
        for p, _ in m.named_parameters(recurse=False)
    ]
    assert prunable and all(key in sources for key in prunable)


def test_the_default_dynamo_export_alone_is_refused_with_how_to_upload_it(resnet_files):
    folder = resnet_files["dynamo"].parent
    with pytest.raises(CheckpointError, match="external file 'model.onnx.data'.*zip"):
        read_onnx(folder / "model.onnx")


def test_shared_initializers_become_one_per_layer(resnet_files):
    """The TorchScript exporter shares equal biases through Identity nodes (fresh BatchNorms
    fold into zero biases); after the rewrite each Conv owns its tensors."""
    raw = onnx.load(str(resnet_files["legacy"]))
    assert any(n.op_type == "Identity" for n in raw.graph.node)
    proto, _ = read_onnx(resnet_files["legacy"])
    module, _ = to_torch_with_sources(proto)
    assert not any(n.op_type == "Identity" for n in proto.graph.node)
    conv_inputs = [i for n in proto.graph.node if n.op_type == "Conv" for i in n.input[1:]]
    assert len(conv_inputs) == len(set(conv_inputs)) == 40
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    pointers = {c.bias.data_ptr() for c in convs if c.bias is not None}
    assert len(pointers) == len(convs)


# --- import, storage, reload, export ---------------------------------------------------------


@pytest.fixture
def graphs() -> dict[str, bytes]:
    """An in-memory artifact store for the "onnx" architecture."""
    stored: dict[str, bytes] = {}
    onnx_graph.set_graph_loader(stored.__getitem__)
    yield stored
    onnx_graph.set_graph_loader(None)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_import_stores_a_weightless_graph_that_rebuilds_the_model(
    exporter, resnet_files, graphs, tmp_path
):
    imported = read_checkpoint(resnet_files[exporter], None)
    assert (imported.architecture, imported.format) == ("onnx", "onnx")
    assert imported.graph is not None
    sha = hashlib.sha256(imported.graph).hexdigest()
    assert imported.arch_kwargs == {"graph_sha": sha}
    assert len(imported.graph) < 200_000  # the weights live in the checkpoint only
    assert [layer["kind"] for layer in imported.layers].count("Conv2d") == 20
    assert imported.masks == "none" and imported.sparsity == 0.0
    graphs[sha] = imported.graph
    path = tmp_path / "model.safetensors"
    save_checkpoint(imported.model, imported.architecture, imported.arch_kwargs, path)
    reloaded, meta = load_checkpoint(path)
    assert meta["architecture"] == "onnx"
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(logits(reloaded, x), logits(resnet18(), x), atol=TOL, rtol=TOL)


def test_architecture_must_be_onnx_or_none(resnet_files):
    with pytest.raises(CheckpointError, match="ONNX model.*'resnet20'"):
        read_checkpoint(resnet_files["legacy"], "resnet20")
    assert read_checkpoint(resnet_files["legacy"], "onnx").architecture == "onnx"


def test_the_onnx_architecture_needs_its_graph_loader():
    onnx_graph.set_graph_loader(None)
    with pytest.raises(CheckpointError, match="no graph loader"):
        onnx_graph.onnx_graph("0" * 64)


@pytest.mark.parametrize("layout", ["prune", "for_save"])
def test_pruned_weights_go_back_into_the_original_graph(layout, resnet_files):
    imported = read_checkpoint(resnet_files["legacy"], None)
    module = imported.model
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            prune.l1_unstructured(m, "weight", amount=0.5)
    state = module.state_dict() if layout == "prune" else state_dict_for_save(module)
    assert imported.graph is not None
    data = export_onnx(imported.graph, state)
    exported = onnx.load_from_string(data)
    onnx.checker.check_model(exported)
    assert not any(p.key == onnx_graph.META_KEY for p in exported.metadata_props)
    stored = onnx.load_from_string(imported.graph)
    assert [(t.name, list(t.dims)) for t in exported.graph.initializer] == [
        (t.name, list(t.dims)) for t in stored.graph.initializer
    ]
    assert [n.op_type for n in exported.graph.node] == [n.op_type for n in stored.graph.node]
    conv = next(n for n in exported.graph.node if n.op_type == "Conv")
    weight = next(t for t in exported.graph.initializer if t.name == conv.input[1])
    assert (numpy_helper.to_array(weight) == 0).mean() == pytest.approx(0.5, abs=0.01)
    x = torch.randn(2, 3, 32, 32)
    np.testing.assert_allclose(run_onnx(data, x), logits(module, x).numpy(), atol=TOL, rtol=TOL)


def test_export_refuses_weights_that_do_not_fit(resnet_files):
    imported = read_checkpoint(resnet_files["legacy"], None)
    assert imported.graph is not None
    state = dict(imported.model.state_dict())
    key = next(k for k in state if k.endswith("weight"))
    with pytest.raises(ValueError, match="does not fit"):
        export_onnx(imported.graph, {**state, key: torch.zeros(3)})
    with pytest.raises(ValueError, match="lacks the weights"):
        export_onnx(imported.graph, {k: v for k, v in state.items() if k != key})


def test_exact_zeros_of_an_onnx_model_become_masks(tmp_path):
    model = TinyNet().eval()
    with torch.no_grad():
        model.conv.weight[:2] = 0
    imported = read_checkpoint(write(tmp_path / "m.onnx", tiny_proto(model)), None)
    assert imported.masks == "zeros"
    conv = next(layer for layer in imported.layers if layer["kind"] == "Conv2d")
    assert conv["masked"] and conv["sparsity"] == pytest.approx(0.5)


def test_strip_weights_without_sources_is_the_same_artifact():
    proto = tiny_proto()
    _, sources = to_torch_with_sources(proto)
    assert strip_weights(proto) == strip_weights(proto, sources)


# --- converters for what torch 2.14.1's exporters write --------------------------------------


def graph_of(node: onnx.NodeProto, inits: list[onnx.TensorProto], shape_in, shape_out):
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_18_takes_its_axes_as_an_input(keepdims):
    axes = numpy_helper.from_array(np.array([-1, -2], dtype=np.int64), "axes")
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)
    model = graph_of(node, [axes], [2, 3, 4, 5], None)
    module, _ = to_torch_with_sources(model)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(module(x), x.mean(dim=(-1, -2), keepdim=bool(keepdims)))


def test_reshape_with_allowzero_as_the_dynamo_exporter_writes_it():
    shape = numpy_helper.from_array(np.array([-1, 12], dtype=np.int64), "shape")
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)
    module, _ = to_torch_with_sources(graph_of(node, [shape], [2, 3, 4], [2, 12]))
    x = torch.randn(5, 3, 4)
    torch.testing.assert_close(module(x), x.reshape(-1, 12))


# --- hostile and broken files ----------------------------------------------------------------


def with_external(proto: onnx.ModelProto, location: str, **extra: str) -> onnx.ModelProto:
    """The first initializer's data moved to an external ``location``."""
    tensor = proto.graph.initializer[0]
    n_bytes = len(tensor.raw_data) or len(numpy_helper.to_array(tensor).tobytes())
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": str(n_bytes)}.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, extra.get(key, value)
    return proto


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_external_data_in_a_plain_file_is_never_read(tmp_path, monkeypatch):
    opened: list[str] = []
    real_open = open

    def spy(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    path = write(tmp_path / "m.onnx", with_external(tiny_proto(), "../../etc/passwd"))
    monkeypatch.setattr("builtins.open", spy)
    with pytest.raises(CheckpointError, match="external file '../../etc/passwd'"):
        read_checkpoint(path, None)
    assert not any("passwd" in f for f in opened)


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("../outside.bin", "not a plain relative file name"),
        ("/etc/passwd", "not a plain relative file name"),
        ("sub/../weights.bin", "not a plain relative file name"),
        ("C:\\weights.bin", "not a plain relative file name"),
        ("missing.bin", "not in the archive"),
    ],
)
def test_zip_external_data_must_stay_inside_the_archive(location, why, tmp_path):
    proto = tiny_proto()
    data = proto.graph.initializer[0].raw_data
    graph = with_external(proto, location).SerializeToString()
    archive = zipped(tmp_path / "m.zip", {"model.onnx": graph, "weights.bin": data})
    with pytest.raises(CheckpointError, match=why):
        read_checkpoint(archive, None)


def test_zip_external_data_resolves_inside_the_archive(tmp_path):
    proto, x = tiny_proto(), torch.randn(2, 3, 4, 4)
    want = logits(read_checkpoint(write(tmp_path / "m.onnx", proto), None).model, x)
    data = proto.graph.initializer[0].raw_data
    graph = with_external(proto, "weights.bin").SerializeToString()
    archive = zipped(tmp_path / "m.zip", {"net/model.onnx": graph, "net/weights.bin": data})
    imported = read_checkpoint(archive, None)
    assert any("weights.bin" in w for w in imported.warnings)
    torch.testing.assert_close(logits(imported.model, x), want)


def test_zip_external_data_past_the_end_of_its_file(tmp_path):
    proto = tiny_proto()
    data = proto.graph.initializer[0].raw_data
    graph = with_external(proto, "weights.bin", offset="8").SerializeToString()
    archive = zipped(tmp_path / "m.zip", {"model.onnx": graph, "weights.bin": data})
    with pytest.raises(CheckpointError, match="holds only"):
        read_checkpoint(archive, None)


def test_a_zip_needs_exactly_one_graph(tmp_path):
    graph = tiny_proto().SerializeToString()
    archive = zipped(tmp_path / "m.zip", {"a.onnx": graph, "b.onnx": graph})
    with pytest.raises(CheckpointError, match="exactly one .onnx"):
        read_checkpoint(archive, None)


@pytest.mark.parametrize("limit", [None, 10**6])
def test_a_two_gigabyte_claim_is_refused_without_allocating_it(limit, tmp_path):
    proto = tiny_proto()
    huge = proto.graph.initializer.add()
    huge.name, huge.data_type = "huge", TensorProto.FLOAT
    huge.dims.extend([2**29])  # 2 GiB of float32, holding 16 bytes
    huge.raw_data = b"\0" * 16
    path = write(tmp_path / "m.onnx", proto)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="2147483648 bytes|more than the limit"):
            read_checkpoint(path, None, max_tensor_bytes=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_custom_operators_are_refused_naming_op_and_node(tmp_path):
    proto = tiny_proto()
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    relu.domain, relu.op_type, relu.name = "com.example", "Swish", "my_swish"
    proto.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(
        CheckpointError, match="custom operators com.example::Swish in node 'my_swish'"
    ):
        read_checkpoint(write(tmp_path / "m.onnx", proto), None)


def test_operators_onnx2torch_cannot_convert_are_refused_naming_op_and_node(tmp_path):
    proto = tiny_proto()
    relu = next(n for n in proto.graph.node if n.op_type == "Relu")
    relu.op_type, relu.name = "Hardmax", "odd_one"
    with pytest.raises(
        CheckpointError, match=r"cannot convert Hardmax \(opset \d+\) in node 'odd_one'"
    ):
        read_checkpoint(write(tmp_path / "m.onnx", proto), None)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: p.graph.initializer[0].ClearField("raw_data"), "holds 0 values"),
        (lambda p: setattr(p.graph.initializer[0], "raw_data", b"\0" * 4), "holds 4 bytes"),
        (lambda p: p.graph.output.append(p.graph.output[0]), "onnx.checker|1 outputs|2 outputs"),
        (lambda p: p.graph.node[0].input.__setitem__(0, "nowhere"), "onnx.checker"),
    ],
)
def test_broken_graphs_are_refused(damage: Callable[[onnx.ModelProto], object], why, tmp_path):
    proto = tiny_proto()
    damage(proto)
    with pytest.raises(CheckpointError, match=why):
        read_checkpoint(write(tmp_path / "m.onnx", proto), None)


def test_garbage_that_starts_like_onnx_is_refused(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x09\x12\xff\xff\xff" + b"\0" * 40)
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        read_checkpoint(path, None)


def test_a_torch_zip_is_not_taken_for_onnx(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(TinyNet().state_dict(), path)
    assert not onnx_graph.is_onnx_zip(path)
    assert not onnx_graph.looks_like_onnx(path.read_bytes()[:16])
    assert onnx_graph.looks_like_onnx(tiny_proto().SerializeToString()[:16])
