"""RigL (Evci et al. 2020): ERK densities, the drop-and-grow schedule, constant layer sparsity."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.finetune import TrainConfig, TrainHook, train
from backend.pruning.masks import current_mask, prunable_layers
from backend.pruning.registry import create
from backend.pruning.rigl import (
    RigL,
    RigLHook,
    erk_counts,
    erk_densities,
    erk_densities_for_shapes,
    rigl_drop_fraction,
)
from backend.pruning.session import PruneSession
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


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", input_shape=[1, 2, 4], num_classes=2, hidden=[32, 16])


MODELS = {
    "mlp": lambda: small_mlp(),
    "digits_cnn": lambda: create_model("digits_cnn", num_classes=10),
    "resnet20": lambda: create_model("resnet20", num_classes=10),
}


def reference_erk(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """The RigL reference loop (sparse_utils.get_sparsities_erdos_renyi, no custom sparsities):
    make the layer(s) with the largest raw density dense, one round at a time."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / numel[n] for n, s in shapes.items()}
    target = (1 - sparsity) * sum(numel.values())
    dense: set[str] = set()
    while True:
        rhs = target - sum(numel[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in shapes if n not in dense)
        eps = rhs / divisor
        free_raw = [raw[n] for n in shapes if n not in dense]
        if max(free_raw) * eps > 1:
            dense |= {n for n in shapes if n not in dense and raw[n] == max(free_raw)}
        else:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


# --- ERK --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.98])
@pytest.mark.parametrize("arch", list(MODELS))
def test_erk_weighted_sum_hits_target(arch: str, sparsity: float) -> None:
    model = MODELS[arch]()
    layers = prunable_layers(model)
    densities = erk_densities(model, sparsity)
    numels = {n: m.weight.numel() for n, m in layers}
    total = sum(numels.values())
    assert all(0 < d <= 1 for d in densities.values())
    assert sum(densities[n] * numels[n] for n in numels) == pytest.approx((1 - sparsity) * total)
    # Uncapped layers follow (sum of dims) / (product of dims), up to one factor eps.
    shapes = {n: tuple(m.weight.shape) for n, m in layers}
    ratios = [densities[n] * numels[n] / sum(shapes[n]) for n in shapes if densities[n] < 1]
    assert max(ratios) == pytest.approx(min(ratios))
    assert densities == pytest.approx(reference_erk(shapes, sparsity))
    # The masks: floor or ceil of density * numel per layer, exactly the target in total.
    masks = create("rigl", sparsity=sparsity).compute_masks(model)
    live = {n: int(masks[n].sum()) for n in masks}
    assert all(abs(live[n] - densities[n] * numels[n]) <= 1 for n in numels)
    assert sum(live.values()) == total - round(sparsity * total)


def test_erk_dense_capped_layer_by_hand() -> None:
    # raw: big 200/10000 = 0.02, small 102/200 = 0.51. Target 5100 of 10200 weights.
    # eps = 5100 / (0.02 * 10000 + 0.51 * 200) = 16.89 -> small would be 8.6 > 1: dense.
    # Then eps = (5100 - 200) / (0.02 * 10000) = 24.5 -> big: 0.49.
    shapes = {"big": (100, 100), "small": (2, 100)}
    densities = erk_densities_for_shapes(shapes, 0.5)
    assert densities["small"] == 1.0
    assert densities["big"] == pytest.approx(0.49)
    assert densities["big"] * 10000 + 200 == pytest.approx(5100)
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 2))
    by_name = erk_densities(model, 0.5)
    assert by_name == {"0": pytest.approx(0.49), "2": 1.0}
    masks = create("rigl", sparsity=0.5).compute_masks(model)
    assert bool((masks["2"] == 1).all()) and int(masks["0"].sum()) == 4900


def test_erk_counts_largest_remainder() -> None:
    densities = {"a": 0.25, "b": 0.5, "c": 0.7}
    numels = {"a": 10, "b": 3, "c": 3}  # exact 2.5, 1.5, 2.1 -> floors 2, 1, 2; 1 to spare
    caps = {"a": 10, "b": 3, "c": 3}
    assert erk_counts(densities, numels, 6, caps) == {"a": 3, "b": 1, "c": 2}
    assert erk_counts(densities, numels, 7, caps) == {"a": 3, "b": 2, "c": 2}


def test_compute_masks_seeded_and_nested() -> None:
    a = create("rigl", sparsity=0.8, seed=1).compute_masks(small_mlp())
    b = create("rigl", sparsity=0.8, seed=1).compute_masks(small_mlp())
    c = create("rigl", sparsity=0.8, seed=2).compute_masks(small_mlp())
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


# --- the drop fraction ------------------------------------------------------------------------


def test_drop_fraction_formula() -> None:
    assert rigl_drop_fraction(0, 100) == pytest.approx(0.3)
    assert rigl_drop_fraction(50, 100) == pytest.approx(0.15)
    assert rigl_drop_fraction(25, 100, alpha=0.5) == pytest.approx(0.25 * (1 + math.sqrt(0.5)))
    assert rigl_drop_fraction(100, 100) == 0.0
    assert rigl_drop_fraction(150, 100) == 0.0


# --- training ---------------------------------------------------------------------------------


class Checker(TrainHook):
    """After every step: per-layer live counts unchanged; new connections are exactly 0."""

    def __init__(self, rigl: RigLHook) -> None:
        self.rigl = rigl
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.grown_checked = 0
        self.masks: dict[str, Tensor] = {}
        self.optimizer: torch.optim.Optimizer | None = None

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        self.optimizer = optimizer
        self.counts = {n: int(m.weight_mask.sum()) for n, m in prunable_layers(model)}
        self.masks = {n: current_mask(m) for n, m in prunable_layers(model)}

    def after_step(self, model: nn.Module, step: int) -> None:
        self.steps += 1
        grown = self.rigl.grown if self.rigl.history and self.rigl.history[-1][0] == step else {}
        for name, m in prunable_layers(model):
            mask = current_mask(m)
            assert int(mask.sum()) == self.counts[name], (step, name)
            if name in grown:
                new = grown[name].reshape(mask.shape)
                assert torch.equal(new, (mask == 1) & (self.masks[name] == 0))
                assert torch.all(m.weight_orig[new] == 0)  # grown weights start at 0
                assert self.optimizer is not None
                for value in self.optimizer.state[m.weight_orig].values():
                    if value.shape == m.weight_orig.shape:
                        assert torch.all(value[new] == 0)  # optimiser state reset
                self.grown_checked += int(new.sum())
            elif not self.rigl.history or self.rigl.history[-1][0] != step:
                assert torch.equal(mask, self.masks[name]), (step, name)  # no update
            self.masks[name] = mask


def test_training_keeps_layer_sparsity_and_follows_schedule() -> None:
    X, y = blobs()
    model = small_mlp()
    method = RigL(sparsity=0.8, delta_t=3, end_fraction=0.75, alpha=0.3)
    method.apply(model)
    hook = RigLHook(prunable_layers(model), method.delta_t, method.end_fraction, method.alpha)
    checker = Checker(hook)
    train(model, X, y, TrainConfig(epochs=3, batch_size=16, lr=1e-2), hooks=[hook, checker])
    assert checker.steps == 24
    assert hook.end_step == 18
    assert [s for s, _, _ in hook.history] == [3, 6, 9, 12, 15]
    for step, fraction, dropped in hook.history:
        assert fraction == pytest.approx(0.15 * (1 + math.cos(math.pi * step / 18)))
        for name in checker.counts:
            assert dropped[name] == math.floor(fraction * checker.counts[name])
    assert checker.grown_checked > 0
    for _, m in prunable_layers(model):
        (h,) = [h for h in m._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        assert type(h) is prune.CustomFromMask
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)


def test_grow_uses_dense_gradient_and_drop_smallest_magnitude() -> None:
    """One update on a single layer, checked against an independent computation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    X, y = blobs(16)
    method = RigL(sparsity=0.5, delta_t=1, end_fraction=1.0, alpha=0.3)
    method.apply(model)
    layers = [("1", model[1])]
    hook = RigLHook(layers, delta_t=1, end_fraction=1.0, alpha=0.3)
    seen: dict[str, Tensor] = {}

    class Before(TrainHook):  # runs before the RigL hook
        def after_backward(self, m: nn.Module, step: int) -> None:
            if step == 1:
                seen["grad"] = model[1].weight_orig.grad.detach().clone()

        def after_step(self, m: nn.Module, step: int) -> None:
            if step == 1:
                seen["mask"] = current_mask(model[1])
                seen["weight"] = model[1].weight_orig.detach().clone()

    class After(TrainHook):  # runs after it
        def after_step(self, m: nn.Module, step: int) -> None:
            if step == 1:
                seen["after"] = current_mask(model[1])
                seen["weight_after"] = model[1].weight_orig.detach().clone()

    hooks = [Before(), hook, After()]
    train(model, X, y, TrainConfig(epochs=1, batch_size=8, lr=1e-2), hooks=hooks)
    before, after, grad, weight = seen["mask"], seen["after"], seen["grad"], seen["weight"]
    assert bool((grad[before == 0] != 0).any())  # dense gradient on inactive weights
    n_drop = math.floor(rigl_drop_fraction(1, 2, 0.3) * int(before.sum()))
    assert hook.history == [(1, pytest.approx(0.15), {"1": n_drop})] and n_drop > 0
    # Independent computation: drop the n smallest active |w|, grow the n largest |grad| among
    # the rest.
    flat_active = before.flatten() == 1
    active_idx = flat_active.nonzero().flatten()
    dropped = active_idx[weight.flatten()[active_idx].abs().argsort()[:n_drop]]
    kept = flat_active.clone()
    kept[dropped] = False
    candidates = (~kept).nonzero().flatten()
    grow = candidates[grad.flatten()[candidates].abs().argsort(descending=True)[:n_drop]]
    expected = kept.clone()
    expected[grow] = True
    assert torch.equal(after.flatten() == 1, expected)
    new = (after == 1) & (before == 0)
    assert torch.all(seen["weight_after"][new] == 0)


def test_run_trains_a_fresh_sparse_network() -> None:
    X, y = blobs()
    session = PruneSession(X, y, TrainConfig(epochs=2, batch_size=16, lr=1e-2), small_mlp)
    trained = small_mlp(seed=5)
    out = create("rigl", sparsity=0.9, delta_t=2).run(trained, session)
    assert out is not trained
    assert not any(prune.is_pruned(m) for _, m in prunable_layers(trained))
    layers = prunable_layers(out)
    total = sum(m.weight_mask.numel() for _, m in layers)
    zeros = sum(int((m.weight_mask == 0).sum()) for _, m in layers)
    assert zeros == round(0.9 * total)
    # The per-layer counts are those of the initial ERK masks.
    initial = create("rigl", sparsity=0.9).compute_masks(small_mlp())
    for name, m in layers:
        assert int(m.weight_mask.sum()) == int(initial[name].sum()), name


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"delta_t": 0}, "delta_t=0"), ({"alpha": 1.5}, "alpha=1.5"), ({"end_fraction": -1}, "end")],
)
def test_invalid_parameters(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        create("rigl", sparsity=0.5, **kwargs)
