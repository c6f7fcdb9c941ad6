"""Conformance tests parametrised over every registered pruning method, plus independent checks
against torch.nn.utils.prune (PyTorch test/nn/test_pruning.py invariants)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

import backend.pruning as bp
from backend.pruning.masks import (
    apply_masks,
    current_mask,
    effective_weight,
    masks_from_scores,
    prunable_layers,
    sparsity_report,
)
from backend.pruning.registry import PruningMethod, UnknownNameError, create, list_methods
from models.registry import create as create_model

ARCHS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "digits_cnn": ({"num_classes": 10}, (1, 8, 8)),
    "mlp": ({"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32, 16]}, (1, 8, 8)),
}
SPARSITIES = [0.0, 0.5, 0.9]


def make_model(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kwargs, _ = ARCHS[arch]
    return create_model(arch, **kwargs).eval()


def make_batch(arch: str, n: int = 16) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(123)
    _, shape = ARCHS[arch]
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def prune_with(method: PruningMethod, model: nn.Module, arch: str) -> dict[str, Tensor]:
    batch = make_batch(arch) if method.needs_batch else None
    return method.apply(model, batch)


def method_layers(method: PruningMethod, model: nn.Module) -> list[tuple[str, nn.Module]]:
    return prunable_layers(model, method.params.get("include_classifier", True))


def assert_sparsity(method: PruningMethod, model: nn.Module, sparsity: float) -> None:
    """Achieved sparsity (zeros of the masks) within one weight of the target."""
    layers = method_layers(method, model)
    zeros = [int((current_mask(m) == 0).sum()) for _, m in layers]
    sizes = [m.weight.numel() for _, m in layers]
    if method.scope == "structured":
        # Whole output rows, within one channel of the target in every layer but the classifier
        # (whose outputs are the logits); see backend/pruning/structured.py.
        for (name, m), z in zip(layers, zeros, strict=True):
            rows = (current_mask(m).flatten(1) == 0).all(dim=1)
            assert z == int(rows.sum()) * m.weight[0].numel(), name
            target = 0 if m is getattr(model, "classifier", None) else sparsity * rows.numel()
            assert abs(int(rows.sum()) - target) <= 1, (name, int(rows.sum()), rows.numel())
    elif method.scope == "layer":
        for (name, _), z, n in zip(layers, zeros, sizes, strict=True):
            assert abs(z - sparsity * n) <= 1, (name, z, n)
    else:
        assert abs(sum(zeros) - sparsity * sum(sizes)) <= 1, (sum(zeros), sum(sizes))


def outputs(model: nn.Module, arch: str) -> Tensor:
    with torch.no_grad():
        return model(make_batch(arch)[0])


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("name", list_methods())
def test_mask_invariants(name: str, arch: str, sparsity: float) -> None:
    model = make_model(arch)
    before = copy.deepcopy(model.state_dict())
    method = create(name, sparsity=sparsity)
    batch = make_batch(arch) if method.needs_batch else None
    masks = method.compute_masks(model, batch)

    # compute_masks does not touch the model.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    modules = dict(model.named_modules())
    prunable = {n for n, _ in prunable_layers(model)}
    assert set(masks) <= prunable
    for layer, mask in masks.items():
        assert mask.shape == modules[layer].weight.shape
        assert mask.is_floating_point()
        assert bool(((mask == 0) | (mask == 1)).all())

    apply_masks(model, masks)
    for layer, mask in masks.items():
        m = modules[layer]
        assert prune.is_pruned(m)
        assert torch.equal(m.weight_mask, mask)
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        assert torch.equal(m.weight_orig, before[f"{layer}.weight"])  # orig is untouched
    assert_sparsity(method, model, sparsity)

    # sparsity_report counts the same zeros (random init weights have no exact zeros).
    report = sparsity_report(model)
    mask_zeros = sum(int((mask == 0).sum()) for mask in masks.values())
    assert report["prunable_numel"] - report["prunable_nonzero"] == mask_zeros
    json.dumps(report)


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("name", list_methods())
def test_zero_sparsity_changes_nothing(name: str, arch: str) -> None:
    model = make_model(arch)
    expected = outputs(model, arch)
    masks = prune_with(create(name, sparsity=0.0), model, arch)
    assert all(bool((mask == 1).all()) for mask in masks.values())
    assert torch.equal(outputs(model, arch), expected)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_all_ones_mask_changes_nothing(arch: str) -> None:
    model = make_model(arch)
    expected = outputs(model, arch)
    weights = {n: m.weight.detach().clone() for n, m in prunable_layers(model)}
    apply_masks(model, {n: torch.ones_like(w) for n, w in weights.items()})
    assert torch.equal(outputs(model, arch), expected)
    for n, m in prunable_layers(model):
        assert torch.equal(m.weight, weights[n])


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("name", list_methods())
def test_pruning_twice_never_revives(name: str, arch: str) -> None:
    model = make_model(arch)
    prune_with(create(name, sparsity=0.5), model, arch)
    first = {n: current_mask(m) for n, m in prunable_layers(model)}
    method = create(name, sparsity=0.8)
    prune_with(method, model, arch)
    for n, m in prunable_layers(model):
        second = current_mask(m)
        assert torch.all(second[first[n] == 0] == 0), n  # never revived
        assert torch.all(m.weight[second == 0] == 0)
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
    assert_sparsity(method, model, 0.8)
    # Asking for less than what is already pruned changes nothing.
    again = create(name, sparsity=0.3)
    masks = prune_with(again, model, arch)
    for n, m in prunable_layers(model):
        if n in masks:
            assert torch.equal(masks[n], current_mask(m))


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.1, "a", float("nan"), True, None])
@pytest.mark.parametrize("name", list_methods())
def test_invalid_sparsity_raises(name: str, value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        create(name, sparsity=value)
    assert f"sparsity={value!r}" in str(excinfo.value)


def test_sparsity_message_format() -> None:
    with pytest.raises(ValueError, match=r"^sparsity=1\.1 should be in \[0, 1\)$"):
        create("global_magnitude", sparsity=1.1)


def test_unknown_method_raises() -> None:
    with pytest.raises(UnknownNameError) as excinfo:
        create("x", sparsity=0.5)
    assert isinstance(excinfo.value, ValueError)
    assert str(excinfo.value) == f"unknown pruning method 'x'; known: {', '.join(list_methods())}"


def test_unknown_parameter_raises() -> None:
    with pytest.raises(ValueError, match="no_such_param"):
        create("global_magnitude", sparsity=0.5, no_such_param=1)
    with pytest.raises(ValueError, match="include_classifier='yes'"):
        create("global_magnitude", sparsity=0.5, include_classifier="yes")
    with pytest.raises(ValueError, match="seed=-1"):
        create("random", sparsity=0.5, seed=-1)


@pytest.mark.parametrize("name", list_methods())
def test_method_info_and_describe(name: str) -> None:
    info = bp.method_info(name)
    assert info["name"] == name and info["doc"]
    assert "sparsity" not in info["defaults"]
    method = create(name, sparsity=0.25, **info["defaults"])
    described = method.describe()
    assert described == {"method": name, "sparsity": 0.25, "params": info["defaults"]}
    json.dumps([info, described])
    # describe() recreates the same method.
    assert create(described["method"], sparsity=described["sparsity"], **described["params"])


@pytest.mark.parametrize(
    "name", [n for n in list_methods() if "include_classifier" in bp.method_info(n)["defaults"]]
)
def test_include_classifier_false_spares_classifier(name: str) -> None:
    model = make_model("digits_cnn")
    method = create(name, sparsity=0.9, include_classifier=False)
    masks = prune_with(method, model, "digits_cnn")
    assert "classifier" not in masks
    assert not prune.is_pruned(model.classifier)
    assert_sparsity(method, model, 0.9)


# --- independent checks against torch.nn.utils.prune ------------------------------------------


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_global_magnitude_matches_torch_global_unstructured(arch: str, sparsity: float) -> None:
    ours, theirs = make_model(arch), make_model(arch)
    create("global_magnitude", sparsity=sparsity).apply(ours)
    params = [(m, "weight") for _, m in prunable_layers(theirs)]
    total = sum(m.weight.numel() for m, _ in params)
    prune.global_unstructured(
        params, pruning_method=prune.L1Unstructured, amount=round(sparsity * total)
    )
    for (n, a), (_, b) in zip(prunable_layers(ours), prunable_layers(theirs), strict=True):
        assert torch.equal(a.weight_mask, b.weight_mask), n


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_layer_magnitude_matches_torch_l1_unstructured(arch: str, sparsity: float) -> None:
    ours, theirs = make_model(arch), make_model(arch)
    create("layer_magnitude", sparsity=sparsity).apply(ours)
    for _, m in prunable_layers(theirs):
        prune.l1_unstructured(m, "weight", amount=sparsity)
    for (n, a), (_, b) in zip(prunable_layers(ours), prunable_layers(theirs), strict=True):
        assert torch.equal(a.weight_mask, b.weight_mask), n


def test_global_magnitude_keeps_largest_over_all_layers() -> None:
    model = make_model("mlp")
    create("global_magnitude", sparsity=0.6).apply(model)
    kept = torch.cat([m.weight_orig[m.weight_mask == 1].abs() for _, m in prunable_layers(model)])
    dropped = torch.cat(
        [m.weight_orig[m.weight_mask == 0].abs() for _, m in prunable_layers(model)]
    )
    assert kept.min() >= dropped.max()


def test_random_is_seeded_and_global() -> None:
    a, b, c = make_model("mlp"), make_model("mlp"), make_model("mlp")
    ma = create("random", sparsity=0.5, seed=1).compute_masks(a)
    mb = create("random", sparsity=0.5, seed=1).compute_masks(b)
    mc = create("random", sparsity=0.5, seed=2).compute_masks(c)
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    assert any(not torch.equal(ma[n], mc[n]) for n in ma)
    # Nested: 0.5 then 0.8 equals 0.8 directly.
    d, e = make_model("mlp"), make_model("mlp")
    create("random", sparsity=0.5, seed=3).apply(d)
    create("random", sparsity=0.8, seed=3).apply(d)
    create("random", sparsity=0.8, seed=3).apply(e)
    for (n, x), (_, y) in zip(prunable_layers(d), prunable_layers(e), strict=True):
        assert torch.equal(x.weight_mask, y.weight_mask), n


def test_masks_from_scores_breaks_ties_by_position() -> None:
    scores = {"a": torch.ones(2, 3), "b": torch.ones(4)}
    current = {"a": torch.ones(2, 3), "b": torch.ones(4)}
    out = masks_from_scores(scores, current, 0.4)  # round(0.4 * 10) = 4 zeros
    assert out["a"].flatten().tolist() == [0, 0, 0, 0, 1, 1]
    assert out["b"].tolist() == [1, 1, 1, 1]
    # Already-pruned entries count towards the target and stay pruned.
    current["b"] = torch.tensor([1.0, 0.0, 0.0, 1.0])
    out = masks_from_scores(scores, current, 0.4)
    assert out["a"].flatten().tolist() == [0, 0, 1, 1, 1, 1]
    assert out["b"].tolist() == [1, 0, 0, 1]


# --- apply_masks validation and sparsity_report -----------------------------------------------


def test_apply_masks_wrong_shape_raises_and_leaves_model_unchanged() -> None:
    model = make_model("digits_cnn")
    apply_masks(model, {"classifier": (torch.rand(10, 64) > 0.5).float()})
    before = copy.deepcopy(model.state_dict())
    expected = outputs(model, "digits_cnn")
    good = torch.zeros_like(model.features[0].weight)
    bad = torch.ones(3, 3)
    with pytest.raises(ValueError) as excinfo:
        apply_masks(model, {"features.0": good, "classifier": bad, "features.3": good[:1]})
    message = str(excinfo.value)
    assert "classifier" in message and "(3, 3)" in message and "(10, 64)" in message
    assert not prune.is_pruned(model.features[0])
    assert model.state_dict().keys() == before.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(outputs(model, "digits_cnn"), expected)


def test_apply_masks_rejects_unknown_layer_and_non_binary() -> None:
    model = make_model("mlp")
    with pytest.raises(ValueError, match="'nope'"):
        apply_masks(model, {"nope": torch.ones(1)})
    with pytest.raises(ValueError, match="only 0 and 1"):
        apply_masks(model, {"classifier": torch.full_like(model.classifier.weight, 0.5)})
    assert not any(prune.is_pruned(m) for _, m in prunable_layers(model))


def test_prunable_layers() -> None:
    model = make_model("digits_cnn")
    names = [n for n, _ in prunable_layers(model)]
    assert names == ["features.0", "features.2", "features.5", "features.9", "classifier"]
    assert [n for n, _ in prunable_layers(model, include_classifier=False)] == names[:-1]


def test_sparsity_report_matches_independent_count() -> None:
    model = make_model("digits_cnn")
    create("global_magnitude", sparsity=0.7).apply(model)
    report = sparsity_report(model)

    # Independent count: make the pruning permanent on a copy and count its parameters.
    dense = copy.deepcopy(model)
    for _, m in prunable_layers(dense):
        prune.remove(m, "weight")
    n_params = sum(p.numel() for p in dense.parameters())
    n_nonzero = sum(int((p != 0).sum()) for p in dense.parameters())
    weights = [m.weight for _, m in prunable_layers(dense)]
    prunable = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)

    assert (
        report["n_params"]
        == n_params
        == sum(p.numel() for p in make_model("digits_cnn").parameters())
    )
    assert report["n_nonzero"] == n_nonzero
    assert report["compression_ratio"] == pytest.approx(n_params / n_nonzero)
    assert report["prunable_numel"] == prunable
    assert report["sparsity"] == pytest.approx(zeros / prunable)
    assert abs(zeros - round(0.7 * prunable)) <= 1
    by_name = {layer["name"]: layer for layer in report["layers"]}
    for name, m in prunable_layers(model):
        w = effective_weight(m)
        assert by_name[name]["numel"] == w.numel()
        assert by_name[name]["nonzero"] == int((w != 0).sum())


def test_unpruned_report() -> None:
    model = make_model("mlp")
    report = sparsity_report(model)
    assert report["sparsity"] == 0.0
    assert report["compression_ratio"] == 1.0
    assert report["n_params"] == sum(p.numel() for p in model.parameters())
