"""Exports of a pruned model (models/export.py): what a user loads into their own code must
give the logits PruneScope computed, with no PruneScope code involved."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load
from torch import nn
from torch.nn.utils import prune

from models.checkpoint import load_checkpoint, save_checkpoint
from models.export import (
    EXTENSIONS,
    FORMATS,
    ExportError,
    export_bytes,
    fold_masks,
    kept_channels,
    plain_state_dict,
)
from models.registry import create
from models.structured import STRUCTURE_ATTR, apply_structure_ops, new_structure, rebuild_structure


def _randomise_bn(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def _global_prune(model: nn.Module, amount: float = 0.6) -> nn.Module:
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return model.eval()


def _meta(architecture: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"architecture": architecture, "kwargs": kwargs, "extra": {}}


def _load_safetensors(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = safetensors_load(data)
    # the metadata, read as a user would (safe_open wants a file)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(data)
        f.flush()
        with safe_open(f.name, framework="pt") as opened:
            metadata = opened.metadata()
    return tensors, metadata


def _no_prune_keys(state: dict[str, torch.Tensor]) -> None:
    assert not [k for k in state if k.endswith(("_mask", "_orig"))]


@pytest.fixture
def pruned_cnn() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create("resnet20", num_classes=10)
    _randomise_bn(model)
    _global_prune(model)
    return model, torch.randn(4, 3, 16, 16)


def test_plain_state_dict_folds_masks_under_original_keys(pruned_cnn) -> None:  # type: ignore[no-untyped-def]
    model, _x = pruned_cnn
    state = plain_state_dict(model)
    fresh_keys = set(create("resnet20", num_classes=10).state_dict())
    assert set(state) == fresh_keys
    _no_prune_keys(state)
    name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    key = f"{name}.weight"
    assert torch.equal(state[key], conv.weight_orig * conv.weight_mask)
    # masks stay on the model: exporting changes nothing
    assert hasattr(conv, "weight_mask")


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_global_unstructured_export_loads_strictly_with_identical_logits(
    pruned_cnn, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    model, x = pruned_cnn
    data = export_bytes(model, _meta("resnet20", {"num_classes": 10}), fmt)
    if fmt == "safetensors":
        state, metadata = _load_safetensors(data)
        assert metadata["architecture"] == "resnet20"
        assert json.loads(metadata["kwargs"]) == {"num_classes": 10}
        assert "kept_channels" not in metadata
    else:
        state = torch.load(io.BytesIO(data), weights_only=True)
    _no_prune_keys(state)
    fresh = create("resnet20", num_classes=10).eval()
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    zeros = sum(int((v == 0).sum()) for k, v in state.items() if k.endswith("weight"))
    assert zeros > 0  # the sparsity survived the export


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_timm_resnet18_export_loads_into_a_fresh_timm_model(fmt: str) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    _randomise_bn(model)
    _global_prune(model, 0.5)
    x = torch.randn(2, 3, 32, 32)
    data = export_bytes(model, _meta("timm/resnet18", {"num_classes": 10}), fmt)
    state = (
        _load_safetensors(data)[0]
        if fmt == "safetensors"
        else torch.load(io.BytesIO(data), weights_only=True)
    )
    _no_prune_keys(state)
    fresh = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    fresh.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def _structured_resnet20() -> tuple[nn.Module, torch.Tensor]:
    """resnet20 with channels removed from a stem-coupled conv and an inner conv (the stem's
    outputs are tied to every residual of the first stage, so its cut spreads)."""
    torch.manual_seed(0)
    model = create("resnet20", num_classes=10)
    _randomise_bn(model)
    structure = new_structure(model, [3, 16, 16])
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    ops = [
        {"module": convs[0], "kind": "conv_out", "idxs": [1, 4, 9]},
        {"module": convs[1], "kind": "conv_out", "idxs": [0, 2]},
    ]
    apply_structure_ops(model, ops, torch.zeros(2, 3, 16, 16))
    structure["ops"] = ops
    setattr(model, STRUCTURE_ATTR, structure)
    return model.eval(), torch.randn(3, 3, 16, 16)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_structured_export_carries_kept_channels_and_loads_into_the_rebuilt_model(
    fmt: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    model, x = _structured_resnet20()
    # through a stored checkpoint, as the API does (the loaded model keeps its masks too)
    _global_prune(model, 0.3)
    path = tmp_path / "m.safetensors"
    save_checkpoint(fold_masks(model), "resnet20", {"num_classes": 10}, path)
    loaded, meta = load_checkpoint(path)
    data = export_bytes(loaded, meta, fmt)
    if fmt == "safetensors":
        state, metadata = _load_safetensors(data)
        kept = json.loads(metadata["kept_channels"])
        structure = json.loads(metadata["structure"])
    else:
        payload = torch.load(io.BytesIO(data), weights_only=True)
        assert set(payload) == {
            "state_dict",
            "kept_channels",
            "structure",
            "architecture",
            "kwargs",
        }
        state, kept, structure = (
            payload["state_dict"],
            payload["kept_channels"],
            payload["structure"],
        )
    _no_prune_keys(state)
    convs = [
        n for n, m in create("resnet20", num_classes=10).named_modules() if isinstance(m, nn.Conv2d)
    ]
    # the ops' own modules, with exactly the channels they did not remove
    assert kept[convs[0]] == [c for c in range(16) if c not in (1, 4, 9)]
    assert kept[convs[1]] == [c for c in range(16) if c not in (0, 2)]
    # ... and the layers coupled to the stem by residual additions were cut the same way
    assert sum(1 for v in kept.values() if v == kept[convs[0]]) > 1
    rebuilt = rebuild_structure(create("resnet20", num_classes=10), structure).eval()
    rebuilt.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert kept == kept_channels("resnet20", {"num_classes": 10}, structure)


def _onnx_logits(data: bytes, x: torch.Tensor) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    (out,) = session.run(["logits"], {"input": x.numpy()})
    return torch.from_numpy(out)


def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(pruned_cnn) -> None:  # type: ignore[no-untyped-def]
    model, x = pruned_cnn
    data = export_bytes(model, _meta("resnet20", {"num_classes": 10}), "onnx", x[:1])
    with torch.no_grad():
        want = model(x)
    # the batch dimension is dynamic: traced on 1, run on 4
    torch.testing.assert_close(_onnx_logits(data, x), want, atol=1e-4, rtol=1e-4)


def test_onnx_export_of_a_structured_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, x = _structured_resnet20()
    data = export_bytes(model, _meta("resnet20", {"num_classes": 10}), "onnx", x[:1])
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(_onnx_logits(data, x), want, atol=1e-4, rtol=1e-4)


def test_freshly_pruned_model_is_not_modified_by_fold_masks(pruned_cnn) -> None:  # type: ignore[no-untyped-def]
    model, x = pruned_cnn
    with torch.no_grad():
        before = model(x)
    folded = fold_masks(model)
    assert not any(k.endswith(("_mask", "_orig")) for k in folded.state_dict())
    assert any(k.endswith("_mask") for k in model.state_dict())
    with torch.no_grad():
        assert torch.equal(folded.eval()(x), before)
        assert torch.equal(model(x), before)


def test_prunescope_format_round_trips_with_masks(pruned_cnn) -> None:  # type: ignore[no-untyped-def]
    model, x = pruned_cnn
    data = export_bytes(model, _meta("resnet20", {"num_classes": 10}), "prunescope")
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(data)
        f.flush()
        loaded, _meta_back = load_checkpoint(f.name)
    assert any(k.endswith("_mask") for k in loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_bad_requests_raise_export_error(pruned_cnn) -> None:  # type: ignore[no-untyped-def]
    model, _x = pruned_cnn
    with pytest.raises(ExportError, match="format='h5' should be one of safetensors, pt"):
        export_bytes(model, _meta("resnet20", {}), "h5")
    with pytest.raises(ExportError, match="example input"):
        export_bytes(model, _meta("resnet20", {}), "onnx")
    assert set(EXTENSIONS) == set(FORMATS)


def test_an_imported_onnx_graph_exports_through_its_own_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """architecture "onnx": the pruned weights are written back into the user's own graph
    (models.onnx_graph.export_onnx), which onnxruntime runs with the pruned model's logits."""
    onnx_graph = pytest.importorskip("models.onnx_graph")
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5)
    ).eval()
    x = torch.randn(3, 3, 8, 8)
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        net, (x[:1],), str(path), dynamo=False, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )  # fmt: skip
    proto, _notes = onnx_graph.read_onnx(path)
    module, sources = onnx_graph.to_torch_with_sources(proto)
    graph = onnx_graph.strip_weights(proto, sources)
    _global_prune(module, 0.5)
    meta = _meta("onnx", {"graph_sha": "0" * 64})
    data = export_bytes(module, meta, "onnx", x[:1], onnx_graph=graph)
    with torch.no_grad():
        want = module(x)
    torch.testing.assert_close(_onnx_logits(data, x), want, atol=1e-4, rtol=1e-4)
    import onnx

    names = {t.name for t in onnx.load_from_string(data).graph.initializer}
    assert names == {t.name for t in onnx.load_from_string(path.read_bytes()).graph.initializer}
