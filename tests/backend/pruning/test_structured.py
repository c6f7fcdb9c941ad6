"""Structured L1 filter pruning (Li et al. 2017): channel counts, filter choice, the surgery
checked against zeroing the same channels by hand, checkpoint rebuilds and the session run."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from backend.pruning.finetune import TrainConfig
from backend.pruning.masks import current_mask, prunable_layers
from backend.pruning.registry import create as create_method
from backend.pruning.session import PruneSession
from backend.pruning.structured import FilterGroup, plan_filter_pruning, prune_filters
from models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_tensors,
    read_checkpoint_meta,
    save_checkpoint,
    state_dict_for_save,
)
from models.registry import create as create_model
from models.structured import STRUCTURE_ATTR, rebuild_structure, validate_structure

ARCHS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "digits_cnn": ({"num_classes": 10}, (1, 8, 8)),
    "mlp": ({"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32, 16]}, (1, 8, 8)),
    "resnet20": ({"num_classes": 10}, (3, 16, 16)),  # 16x16 keeps the tests fast
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(arch: str, seed: int = 0) -> nn.Module:
    """A model whose BatchNorm layers have non-trivial statistics and affine parameters."""
    torch.manual_seed(seed)
    model = create_model(arch, **ARCHS[arch][0]).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def inputs(arch: str, n: int = 4, seed: int = 7) -> Tensor:
    return torch.randn(n, *ARCHS[arch][1], generator=torch.Generator().manual_seed(seed))


def outputs(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def out_channels(model: nn.Module) -> dict[str, int]:
    return {name: m.weight.shape[0] for name, m in prunable_layers(model)}


def batchnorm_after(name: str) -> str | None:
    """The BatchNorm fed by a convolution of the ResNet (None for the other models)."""
    if name == "conv1" or name.endswith((".conv1", ".conv2")):
        return name[: -len("conv1")] + "bn" + name[-1]
    if name.endswith("shortcut.0"):
        return name[:-1] + "1"
    return None


def expected_removed(arch: str, sparsity: float) -> dict[str, int]:
    """The counting rule: round(sparsity * c) channels, at least one kept, classifier intact."""
    model = make(arch)
    return {
        name: (0 if m is model.classifier else min(round(sparsity * c), c - 1))
        for name, m in prunable_layers(model)
        for c in [m.weight.shape[0]]
    }


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_channels_removed_per_layer(arch: str, sparsity: float) -> None:
    model = make(arch)
    before = out_channels(model)
    pruned = prune_filters(copy.deepcopy(model), sparsity, inputs(arch, 2))
    after = out_channels(pruned)
    assert list(after) == list(before)
    expected = expected_removed(arch, sparsity)
    for name in before:
        removed = before[name] - after[name]
        assert removed == expected[name], name
        if name != "classifier":  # within one channel of the target
            assert abs(removed - sparsity * before[name]) <= 1, name
    assert n_params(pruned) < n_params(model)
    assert outputs(pruned, inputs(arch)).shape == (4, 10)


def test_residual_groups_lose_the_same_channels() -> None:
    model = make("resnet20")
    plans = plan_filter_pruning(model, 0.5, inputs("resnet20", 2))
    coupled = {p.root: p for p in plans if len(p.layers) > 1}
    stage1 = frozenset({"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"})
    stage2 = frozenset(
        {"layer2.0.shortcut.0", "layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2"}
    )
    stage3 = frozenset(
        {"layer3.0.shortcut.0", "layer3.0.conv2", "layer3.1.conv2", "layer3.2.conv2"}
    )
    assert {frozenset(p.layers) for p in coupled.values()} == {stage1, stage2, stage3}
    for plan in coupled.values():
        removed = list(plan.layers.values())
        assert all(r == plan.remove for r in removed)
        assert len(plan.remove) == plan.channels // 2


def l1(model: nn.Module, name: str) -> Tensor:
    w = model.get_submodule(name).weight.detach()
    return w.abs().reshape(w.shape[0], -1).sum(1)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_removes_smallest_summed_l1_norms(arch: str) -> None:
    model = make(arch)
    plans = plan_filter_pruning(model, 0.5, inputs(arch, 2))
    assert {name for p in plans for name in p.layers} == {
        name for name, _ in prunable_layers(model, include_classifier=False)
    }
    for plan in plans:
        scores = sum(l1(model, name) for name in plan.layers)
        assert isinstance(scores, Tensor)
        assert torch.allclose(plan.scores, scores)
        removed = torch.zeros(plan.channels, dtype=torch.bool)
        removed[plan.remove] = True
        assert scores[~removed].min() >= scores[removed].max(), plan.root


def zero_channels(model: nn.Module, plans: list[FilterGroup]) -> nn.Module:
    """Independent of Torch-Pruning: zero the removed filters (weight rows and bias) and the
    affine parameters of the BatchNorm that follows them, so those channels output 0."""
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for plan in plans:
            for name, rows in plan.layers.items():
                layer = zeroed.get_submodule(name)
                layer.weight[rows] = 0
                if layer.bias is not None:
                    layer.bias[rows] = 0
                bn_name = batchnorm_after(name)
                if bn_name is not None:
                    bn = zeroed.get_submodule(bn_name)
                    bn.weight[rows] = 0
                    bn.bias[rows] = 0
    return zeroed


@pytest.mark.parametrize("arch", list(ARCHS))
def test_surgery_equals_zeroing_the_channels(arch: str) -> None:
    model = make(arch)
    x = inputs(arch, 8)
    plans = plan_filter_pruning(model, 0.5, x[:2])
    expected = outputs(zero_channels(model, plans), x)
    assert not torch.allclose(expected, outputs(model, x))  # the zeroing matters

    pruned = copy.deepcopy(model).train()  # tracing must not touch BatchNorm statistics
    prune_filters(pruned, 0.5, x[:2])
    assert pruned.training
    assert n_params(pruned) < n_params(model)
    torch.testing.assert_close(outputs(pruned, x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_compute_masks_zero_the_removed_filters(arch: str) -> None:
    model = make(arch)
    x = inputs(arch, 2)
    plans = plan_filter_pruning(model, 0.5, x)
    masks = create_method("l1_filter", sparsity=0.5).compute_masks(model, (x, torch.zeros(2)))
    removed = {name: rows for p in plans for name, rows in p.layers.items()}
    assert set(masks) == {name for name, _ in prunable_layers(model)}
    for name, mask in masks.items():
        zero_rows = (mask.flatten(1) == 0).all(1).nonzero().flatten().tolist()
        assert zero_rows == removed.get(name, []), name
        assert bool((mask.flatten(1) == 0).all(1).eq((mask.flatten(1) == 0).any(1)).all())


@pytest.mark.parametrize("arch", list(ARCHS))
def test_checkpoint_rebuilds_from_original_definition(arch: str, tmp_path: Path) -> None:
    model = make(arch)
    x = inputs(arch)
    pruned = prune_filters(copy.deepcopy(model), 0.5, x[:2])
    structure = getattr(pruned, STRUCTURE_ATTR)
    json.dumps(structure)
    assert structure["input_shape"] == list(ARCHS[arch][1])
    assert all(op["kind"] in ("conv_out", "linear_out") for op in structure["ops"])

    path = tmp_path / "pruned.safetensors"
    save_checkpoint(pruned, arch, ARCHS[arch][0], path)
    assert read_checkpoint_meta(path)["extra"]["structured"] == structure
    loaded, meta = load_checkpoint(path)
    assert meta["extra"]["structured"] == structure
    assert getattr(loaded, STRUCTURE_ATTR) == structure
    assert out_channels(loaded) == out_channels(pruned)
    assert torch.equal(outputs(loaded, x), outputs(pruned, x))
    # The loaded model saves again to the same file contents.
    again = tmp_path / "again.safetensors"
    save_checkpoint(loaded, arch, ARCHS[arch][0], again)
    assert read_checkpoint_meta(again) == read_checkpoint_meta(path)


def test_explicit_extra_structured_wins_and_plain_models_have_none(tmp_path: Path) -> None:
    model = make("mlp")
    save_checkpoint(model, "mlp", ARCHS["mlp"][0], tmp_path / "a.safetensors", extra={"k": 1})
    assert read_checkpoint_meta(tmp_path / "a.safetensors")["extra"] == {"k": 1}
    pruned = prune_filters(copy.deepcopy(model), 0.5, inputs("mlp", 2))
    # An explicit extra["structured"] is stored as given (here: none, so it cannot load).
    path = tmp_path / "b.safetensors"
    save_checkpoint(pruned, "mlp", ARCHS["mlp"][0], path, extra={"structured": None})
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path)


def test_unstructured_masks_survive_structured_pruning_and_checkpoint(tmp_path: Path) -> None:
    model = make("mlp")
    create_method("layer_magnitude", sparsity=0.5).apply(model)
    before = {name: current_mask(m) for name, m in prunable_layers(model)}
    x = inputs("mlp")
    plans = {p.root: p for p in plan_filter_pruning(model, 0.5, x[:2])}
    pruned = prune_filters(copy.deepcopy(model), 0.5, x[:2])

    def kept(name: str, n: int) -> list[int]:
        return [i for i in range(n) if name not in plans or i not in plans[name].remove]

    previous = None
    for name, m in prunable_layers(pruned):
        old = before[name]
        rows = kept(name, old.shape[0])
        cols = kept(previous, old.shape[1]) if previous else list(range(old.shape[1]))
        assert torch.equal(current_mask(m), old[rows][:, cols]), name
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        previous = name

    path = tmp_path / "m.safetensors"
    save_checkpoint(pruned, "mlp", ARCHS["mlp"][0], path)
    loaded, _ = load_checkpoint(path)
    assert torch.equal(outputs(loaded, x), outputs(pruned, x))
    for (name, a), (_, b) in zip(prunable_layers(loaded), prunable_layers(pruned), strict=True):
        assert torch.equal(current_mask(a), current_mask(b)), name


def test_pruning_twice_is_cumulative_and_rebuilds(tmp_path: Path) -> None:
    model = make("resnet20")
    x = inputs("resnet20")
    pruned = prune_filters(copy.deepcopy(model), 0.5, x[:2])
    prune_filters(pruned, 0.75, x[:2])
    expected = expected_removed("resnet20", 0.75)
    for name, c in out_channels(pruned).items():
        assert out_channels(model)[name] - c == expected[name], name
    path = tmp_path / "m.safetensors"
    save_checkpoint(pruned, "resnet20", ARCHS["resnet20"][0], path)
    loaded, _ = load_checkpoint(path)
    assert torch.equal(outputs(loaded, x), outputs(pruned, x))
    # Asking for less than what is already removed removes nothing.
    assert (
        prune_filters(pruned, 0.25, x[:2]).prunescope_structure["ops"]
        == (loaded.prunescope_structure["ops"])
    )


def test_bad_structure_raises() -> None:
    pruned = prune_filters(make("mlp"), 0.5, inputs("mlp", 2))
    tensors = state_dict_for_save(pruned)
    structure = copy.deepcopy(getattr(pruned, STRUCTURE_ATTR))
    structure["ops"][0]["module"] = "features.7"
    with pytest.raises(CheckpointError, match="'features.7'"):
        model_from_tensors("mlp", ARCHS["mlp"][0], tensors, structure=structure)
    structure["ops"][0].update(module="features.1", kind="conv_out")
    with pytest.raises(CheckpointError, match="kind='conv_out'"):
        model_from_tensors("mlp", ARCHS["mlp"][0], tensors, structure=structure)
    structure["ops"][0].update(kind="linear_out", idxs=list(range(40)))
    with pytest.raises(ValueError, match="idxs"):
        rebuild_structure(make("mlp"), structure)
    with pytest.raises(ValueError, match="format_version=2"):
        validate_structure({**structure, "format_version": 2})
    with pytest.raises(ValueError, match="input_shape"):
        validate_structure({**structure, "input_shape": []})


def test_run_through_session_returns_smaller_working_model() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 16, 16, generator=gen)
    y = torch.randint(0, 10, (48,), generator=gen)
    stages: list[str] = []
    session = PruneSession(
        x=x,
        y=y,
        config=TrainConfig(epochs=1, batch_size=16),
        make_model=lambda s: create_model("resnet20", num_classes=10),
        progress=lambda f, stage: stages.append(stage),
    )
    model = make("resnet20")
    dense = n_params(model)
    method = create_method("l1_filter", sparsity=0.5)
    out = method.run(model, session)
    assert n_params(out) < dense
    assert getattr(out, STRUCTURE_ATTR)["ops"]
    logits = outputs(out, x[:5])
    assert logits.shape == (5, 10) and bool(torch.isfinite(logits).all())
    assert any("fine-tuning" in s for s in stages)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sparsity": 1.0}, "sparsity=1.0"),
        ({"sparsity": -0.5}, "sparsity=-0.5"),
        ({"sparsity": 0.5, "include_linear": "yes"}, "include_linear='yes'"),
        ({"sparsity": 0.5, "channels": 3}, "channels"),
    ],
)
def test_bad_params_raise_naming_the_value(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_method("l1_filter", **params)
    with pytest.raises(ValueError, match="sparsity=1.5"):
        prune_filters(make("mlp"), 1.5, inputs("mlp", 2))


def test_model_without_prunable_layer_raises() -> None:
    linear = create_model("mlp", input_shape=[1, 8, 8], num_classes=10, hidden=[])
    x = inputs("mlp", 2)
    with pytest.raises(ValueError, match="no prunable layer"):
        prune_filters(linear, 0.5, x)
    with pytest.raises(ValueError, match="no prunable layer"):
        create_method("l1_filter", sparsity=0.5).compute_masks(linear, (x, torch.zeros(2)))
    with pytest.raises(ValueError, match="no prunable layer"):
        prune_filters(make("mlp"), 0.5, x, include_linear=False)
    with pytest.raises(ValueError, match="needs a batch"):
        create_method("l1_filter", sparsity=0.5).compute_masks(make("mlp"))


def test_untraceable_input_raises_and_leaves_model_unchanged() -> None:
    model = make("digits_cnn")
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"cannot trace the model with an input of shape"):
        prune_filters(model, 0.5, torch.randn(2, 1, 12, 12))  # digits_cnn needs 8x8
    assert not hasattr(model, STRUCTURE_ATTR)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
