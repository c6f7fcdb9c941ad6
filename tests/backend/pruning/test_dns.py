"""Dynamic network surgery (Guo et al. 2016) and the straight-through masks it shares with RigL."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import prune

from backend.pruning.dns import (
    DynamicNetworkSurgery,
    SurgeryHook,
    calibrated_threshold,
    project_to_sparsity,
    splice_mask,
    surgery_probability,
)
from backend.pruning.finetune import TrainConfig, TrainHook, train
from backend.pruning.masks import apply_masks, current_mask, prunable_layers
from backend.pruning.registry import create
from backend.pruning.session import PruneSession
from backend.pruning.straight_through import (
    StraightThroughMask,
    disable_all_straight_through,
    enable_straight_through,
    is_straight_through,
)
from models.checkpoint import load_checkpoint, save_checkpoint
from models.registry import create as create_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int = 128, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = torch.tensor([[-2.0] * 8, [2.0] * 8])[y] + torch.randn(n, 8, generator=gen)
    return x.view(n, 1, 2, 4), y


MLP_KWARGS = {"input_shape": [1, 2, 4], "num_classes": 2, "hidden": [32, 16]}


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", **MLP_KWARGS)


def session(epochs: int = 2) -> PruneSession:
    X, y = blobs()
    return PruneSession(X, y, TrainConfig(epochs=epochs, batch_size=16, lr=1e-2), small_mlp)


def pruning_hooks(module: nn.Module) -> list[prune.BasePruningMethod]:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


# --- straight-through masks -------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_straight_through_forward_is_masked_and_gradient_dense(layer: str) -> None:
    torch.manual_seed(0)
    module: nn.Module
    if layer == "linear":
        module, x = nn.Linear(6, 4), torch.randn(5, 6)
    else:
        module, x = nn.Conv2d(2, 3, 3), torch.randn(2, 2, 5, 5)
    mask = (torch.rand_like(module.weight) > 0.5).float()
    enable_straight_through(module, mask)
    assert prune.is_pruned(module) and is_straight_through(module)
    assert torch.equal(module.weight_mask, mask)
    assert torch.equal(module.weight, module.weight_orig * mask)

    # The reference: the same module with the masked weight as a plain parameter.
    dense = copy.deepcopy(module)
    disable_all_straight_through(dense)
    prune.remove(dense, "weight")
    out = module(x)
    expected = dense(x)
    assert torch.equal(out, expected)  # value: exactly the masked forward
    out.square().sum().backward()
    expected.square().sum().backward()
    grad = module.weight_orig.grad
    assert grad is not None and dense.weight.grad is not None
    torch.testing.assert_close(grad, dense.weight.grad)  # the dense gradient, everywhere
    assert bool((grad[mask == 0] != 0).any())  # masked weights do receive gradients
    # An ordinary prune mask would have zeroed them.
    plain = copy.deepcopy(dense)
    prune.custom_from_mask(plain, "weight", mask)
    plain(x).square().sum().backward()
    assert torch.all(plain.weight_orig.grad[mask == 0] == 0)


def test_straight_through_round_trip_to_standard_mask() -> None:
    model = small_mlp()
    create("random", sparsity=0.5).apply(model)
    create("random", sparsity=0.7).apply(model)  # a PruningContainer
    masks = {n: current_mask(m) for n, m in prunable_layers(model)}
    for _, m in prunable_layers(model):
        enable_straight_through(m)
        assert len(pruning_hooks(m)) == 1 and isinstance(pruning_hooks(m)[0], StraightThroughMask)
    assert disable_all_straight_through(model) == 3
    for name, m in prunable_layers(model):
        (hook,) = pruning_hooks(m)
        assert type(hook) is prune.CustomFromMask
        assert torch.equal(hook.mask, masks[name]) and torch.equal(m.weight_mask, masks[name])
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
    copy.deepcopy(model)  # no autograd history left on module.weight


# --- the surgery step -------------------------------------------------------------------------


def test_splice_mask_prunes_and_splices_with_hysteresis() -> None:
    w = torch.tensor([0.05, 0.5, 0.9, 0.95, 1.05, 1.1, 1.2, 2.0])
    ones, zeros = torch.ones(8), torch.zeros(8)
    # thr = 1: prune |w| <= 0.9, splice |w| > 1.1, keep the band (0.9, 1.1] as it is.
    assert splice_mask(w, ones, 1.0).tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert splice_mask(w, zeros, 1.0).tolist() == [0, 0, 0, 0, 0, 0, 1, 1]  # spliced back
    allowed = torch.tensor([1.0, 1, 1, 1, 1, 1, 0, 1])
    assert splice_mask(w, zeros, 1.0, allowed).tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    assert splice_mask(w, zeros, 0.0).tolist() == [1] * 8  # thr = max(mu + c sigma, 0) = 0


def test_probability_and_calibrated_threshold() -> None:
    assert surgery_probability(0, 1e-4, 1.0) == 1.0
    assert surgery_probability(10_000, 1e-4, 1.0) == pytest.approx(0.5)
    assert surgery_probability(10_000, 1e-4, 2.0) == pytest.approx(0.25)
    live = torch.tensor([0.4, 0.1, 0.3, 0.2])
    assert calibrated_threshold(live, 2) == pytest.approx(0.25)
    assert calibrated_threshold(live, 0) == 0.0


def test_layer_thresholds_calibrated_to_target() -> None:
    model = small_mlp()
    method = DynamicNetworkSurgery(sparsity=0.75)
    for name, m in prunable_layers(model):
        c, thr = method.layer_thresholds(model)[name]
        w = m.weight.detach().abs().double()
        assert int((w <= thr).sum()) == round(0.75 * w.numel()), name
        assert thr == pytest.approx(max(float(w.mean() + c * w.std(unbiased=False)), 0.0))
    # An explicit c gives thr = max(mu + c sigma, 0).
    explicit = DynamicNetworkSurgery(sparsity=0.75, c=0.5).layer_thresholds(model)
    w = model.classifier.weight.detach().abs().double()
    assert explicit["classifier"] == (0.5, pytest.approx(float(w.mean() + 0.5 * w.std(False))))


class MaskRecorder(TrainHook):
    def __init__(self) -> None:
        self.masks: list[dict[str, Tensor]] = []

    def on_train_begin(self, model: nn.Module, optimizer: object, total_steps: int) -> None:
        self.masks.append({n: current_mask(m) for n, m in prunable_layers(model)})

    def after_step(self, model: nn.Module, step: int) -> None:
        self.masks.append({n: current_mask(m) for n, m in prunable_layers(model)})
        for _, m in prunable_layers(model):
            assert is_straight_through(m)


def test_surgery_hook_revives_weights_during_training() -> None:
    X, y = blobs()
    model = small_mlp()
    method = DynamicNetworkSurgery(sparsity=0.9, c=0.0)  # thr = mu: far below the 90% quantile
    thresholds = {n: thr for n, (_, thr) in method.layer_thresholds(model).items()}
    initial = method.apply(model)  # 90% per layer by magnitude
    hook = SurgeryHook(prunable_layers(model), thresholds, seed=0)
    recorder = MaskRecorder()
    train(model, X, y, TrainConfig(epochs=1, batch_size=16, lr=1e-2), hooks=[hook, recorder])
    revived = sum(int(((initial[n] == 0) & (recorder.masks[0][n] == 1)).sum()) for n in initial)
    assert revived > 0  # iteration 0 spliced weights back
    assert hook.n_updates >= 2  # probability ~1 for the first iterations
    for name, m in prunable_layers(model):
        assert type(pruning_hooks(m)[0]) is prune.CustomFromMask, name  # standard again


# --- run() ------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [None, 0.0, -0.5])
def test_run_exact_sparsity_per_layer_and_standard_masks(c: float | None, tmp_path: Path) -> None:
    model = small_mlp()
    out = create("dynamic_network_surgery", sparsity=0.8, c=c).run(model, session())
    assert out is model
    for name, m in prunable_layers(model):
        assert int((m.weight_mask == 0).sum()) == round(0.8 * m.weight_mask.numel()), name
        (hook,) = pruning_hooks(m)
        assert type(hook) is prune.CustomFromMask, name
        assert torch.equal(hook.mask, m.weight_mask)
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
    copy.deepcopy(model)
    # Checkpoint round trip: the standard format, pruned exactly as before.
    path = tmp_path / "dns.safetensors"
    save_checkpoint(model, "mlp", MLP_KWARGS, path)
    loaded, _ = load_checkpoint(path)
    X, _ = blobs(16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), model.eval()(X))
    for (name, a), (_, b) in zip(prunable_layers(model), prunable_layers(loaded), strict=True):
        assert torch.equal(a.weight_mask, b.weight_mask), name


def test_run_never_revives_weights_pruned_before() -> None:
    model = small_mlp()
    apply_masks(model, create("random", sparsity=0.5, seed=3).compute_masks(model))
    before = {n: current_mask(m) for n, m in prunable_layers(model)}
    create("dynamic_network_surgery", sparsity=0.8, c=-1.0).run(model, session())
    for name, m in prunable_layers(model):
        assert torch.all(m.weight_mask[before[name] == 0] == 0), name
        assert int((m.weight_mask == 0).sum()) == round(0.8 * m.weight_mask.numel()), name


def test_project_to_sparsity_prefers_live_then_largest() -> None:
    w = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    allowed = torch.tensor([1.0, 1, 1, 1, 1, 0])
    # Too many live: keep the largest live.
    mask = torch.tensor([0.0, 1, 1, 1, 1, 0])
    assert project_to_sparsity(w, mask, allowed, 0.5).tolist() == [0, 1, 1, 1, 0, 0]
    # Too few live: add the largest pruned allowed weights.
    mask = torch.tensor([0.0, 0, 0, 0, 1, 0])
    assert project_to_sparsity(w, mask, allowed, 0.5).tolist() == [1, 1, 0, 0, 1, 0]
    # Never keeps a weight outside `allowed`.
    assert project_to_sparsity(w, mask, allowed, 0.0).tolist() == [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"gamma": -1.0}, "gamma=-1.0"), ({"power": "x"}, "power='x'"), ({"c": "a"}, "c='a'")],
)
def test_invalid_parameters(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        create("dynamic_network_surgery", sparsity=0.5, **kwargs)


def test_forward_matches_masked_weights_after_run() -> None:
    model = small_mlp()
    create("dynamic_network_surgery", sparsity=0.6).run(model, session(1))
    X, _ = blobs(8)
    h = X.flatten(1)
    layers = [m for _, m in prunable_layers(model)]
    for i, m in enumerate(layers):
        h = F.linear(h, m.weight_orig * m.weight_mask, m.bias)
        h = h.relu() if i < len(layers) - 1 else h
    with torch.no_grad():
        torch.testing.assert_close(model(X), h.detach())
