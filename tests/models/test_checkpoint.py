"""Checkpoint round trips, plain and pruned (PyTorch test/nn/test_pruning.py invariants)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune

from models.checkpoint import (
    META_KEY,
    CheckpointError,
    load_checkpoint,
    model_from_tensors,
    read_checkpoint_meta,
    save_checkpoint,
    state_dict_for_save,
)
from models.registry import UnknownNameError, create, list_models

CASES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32, 16]}, (1, 8, 8)),
    "digits_cnn": ({"num_classes": 10}, (1, 8, 8)),
    "resnet20": ({"num_classes": 10}, (3, 16, 16)),
}


def _randomise_bn(model: nn.Module) -> None:
    """Give BatchNorm non-default statistics so that a lost buffer would show in the outputs."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.num_batches_tracked.fill_(7)


def _make(name: str) -> tuple[nn.Module, dict[str, Any], torch.Tensor]:
    torch.manual_seed(0)
    kwargs, shape = CASES[name]
    model = create(name, **kwargs).eval()
    _randomise_bn(model)
    return model, kwargs, torch.randn(5, *shape)


# "onnx" rebuilds a stored graph: its checkpoint round trip is in tests/models/test_onnx.py
LOCAL = [name for name in list_models() if name != "onnx"]


@pytest.mark.parametrize("name", LOCAL)
def test_round_trip_identical_outputs(name: str, tmp_path: Path) -> None:
    model, kwargs, x = _make(name)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, name, kwargs, path)
    loaded, meta = load_checkpoint(path)
    assert meta["architecture"] == name
    assert meta["kwargs"] == json.loads(json.dumps(kwargs))
    assert read_checkpoint_meta(path)["architecture"] == name
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)
    # No temporary file is left next to the checkpoint.
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _prune_some(model: nn.Module) -> dict[str, torch.Tensor]:
    """Prune every Conv2d/Linear weight with a random mask, twice (so torch combines them)."""
    gen = torch.Generator().manual_seed(3)
    masks = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            prune.custom_from_mask(m, "weight", (torch.rand(m.weight.shape, generator=gen) > 0.4))
            prune.custom_from_mask(m, "weight", (torch.rand(m.weight.shape, generator=gen) > 0.4))
            masks[name] = m.weight_mask.clone()
    return masks


@pytest.mark.parametrize("name", LOCAL)
def test_pruned_round_trip(name: str, tmp_path: Path) -> None:
    model, kwargs, x = _make(name)
    masks = _prune_some(model)
    path = tmp_path / "pruned.safetensors"
    save_checkpoint(model, name, kwargs, path)

    saved = state_dict_for_save(model)
    assert not any(k.endswith("_orig") for k in saved)
    for layer, mask in masks.items():
        w = saved[f"{layer}.weight"]
        assert torch.equal(saved[f"{layer}.weight_mask"], mask)
        assert torch.all(w[mask == 0] == 0)  # zeros are permanent in the file

    loaded, _ = load_checkpoint(path)
    modules = dict(loaded.named_modules())
    for layer, mask in masks.items():
        m = modules[layer]
        assert prune.is_pruned(m)
        assert torch.equal(m.weight_mask, mask)
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        assert torch.equal(m.weight, dict(model.named_modules())[layer].weight)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(copy.deepcopy(loaded)(x), model(x))

    # Still a torch-pruned model: pruning further combines with the loaded mask.
    first = next(iter(masks))
    prune.l1_unstructured(modules[first], "weight", amount=0.5)
    assert torch.all(modules[first].weight_mask[masks[first] == 0] == 0)


def test_raw_torch_pruned_state_dict_is_accepted() -> None:
    model, kwargs, x = _make("digits_cnn")
    _prune_some(model)
    rebuilt = model_from_tensors("digits_cnn", kwargs, model.state_dict()).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_file_without_metadata_raises(tmp_path: Path) -> None:
    model, _, _ = _make("digits_cnn")
    path = tmp_path / "plain.safetensors"
    save_file(state_dict_for_save(model), str(path))
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="metadata"):
        read_checkpoint_meta(path)


def test_unknown_architecture_in_file_raises(tmp_path: Path) -> None:
    model, _, _ = _make("digits_cnn")
    path = tmp_path / "alien.safetensors"
    meta = {"format_version": 1, "architecture": "vgg99", "kwargs": {}}
    save_file(state_dict_for_save(model), str(path), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="unknown architecture 'vgg99'"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_raise(tmp_path: Path) -> None:
    model, _, _ = _make("digits_cnn")
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, "digits_cnn", {"num_classes": 10}, path)
    meta = read_checkpoint_meta(path)
    meta["kwargs"] = {"num_classes": 3}
    tensors = state_dict_for_save(model)
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path)


def test_not_a_safetensors_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_save_rejects_unknown_architecture_and_bad_kwargs(tmp_path: Path) -> None:
    model, _, _ = _make("digits_cnn")
    with pytest.raises(UnknownNameError):
        save_checkpoint(model, "nope", {}, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(model, "digits_cnn", {"num_classes": object()}, tmp_path / "b.safetensors")
    assert list(tmp_path.iterdir()) == []
