"""Gradual magnitude pruning (Zhu & Gupta 2017): the cubic schedule, the training hook, run()."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.finetune import TrainConfig, TrainHook, train
from backend.pruning.gradual import (
    GradualMagnitude,
    GradualMagnitudeHook,
    schedule_steps,
    update_steps,
    zhu_gupta_sparsity,
)
from backend.pruning.masks import current_mask, prunable_layers, sparsity_report
from backend.pruning.registry import create
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


def zeros(model: nn.Module, include_classifier: bool = True) -> int:
    return sum(
        int((current_mask(m) == 0).sum()) for _, m in prunable_layers(model, include_classifier)
    )


# --- the schedule, by hand --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),  # t0: s_i
        (9, 0.0),  # no update between t0 and t0 + dt
        (10, 0.8 - 0.8 * 0.9**3),  # 0.2168
        (15, 0.8 - 0.8 * 0.9**3),  # constant until the next update
        (50, 0.8 - 0.8 * 0.5**3),  # 0.7
        (90, 0.8 - 0.8 * 0.1**3),  # 0.7992
        (99, 0.8 - 0.8 * 0.1**3),
        (100, 0.8),  # t0 + n dt: s_f
        (1000, 0.8),
    ],
)
def test_schedule_by_hand(step: int, expected: float) -> None:
    assert zhu_gupta_sparsity(step, 0.8, 0.0, 0, 100, 10) == pytest.approx(expected, abs=1e-12)


def test_schedule_with_initial_sparsity_and_late_start() -> None:
    # s_i = 0.1, t0 = 20, n dt = 80, dt = 20.
    assert zhu_gupta_sparsity(0, 0.8, 0.1, 20, 100, 20) == 0.1  # before t0: s_i
    assert zhu_gupta_sparsity(20, 0.8, 0.1, 20, 100, 20) == pytest.approx(0.1)
    # t = 40: 0.8 + (0.1 - 0.8)(1 - 20/80)^3 = 0.8 - 0.7 * 0.421875
    assert zhu_gupta_sparsity(40, 0.8, 0.1, 20, 100, 20) == pytest.approx(0.5046875)
    assert zhu_gupta_sparsity(59, 0.8, 0.1, 20, 100, 20) == pytest.approx(0.5046875)
    assert zhu_gupta_sparsity(100, 0.8, 0.1, 20, 100, 20) == 0.8


def test_schedule_unaligned_end_gets_a_last_update() -> None:
    assert update_steps(0, 25, 10) == [0, 10, 20, 25]
    assert update_steps(0, 30, 10) == [0, 10, 20, 30]
    assert update_steps(5, 5, 10) == [5]
    assert zhu_gupta_sparsity(24, 0.5, 0.0, 0, 25, 10) == zhu_gupta_sparsity(
        20, 0.5, 0.0, 0, 25, 10
    )
    assert zhu_gupta_sparsity(25, 0.5, 0.0, 0, 25, 10) == 0.5


@pytest.mark.parametrize(("s_i", "t0", "end", "dt"), [(0.0, 0, 100, 10), (0.3, 7, 53, 4)])
def test_schedule_is_monotone(s_i: float, t0: int, end: int, dt: int) -> None:
    values = [zhu_gupta_sparsity(t, 0.9, s_i, t0, end, dt) for t in range(end + 20)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert values[0] == s_i and values[-1] == 0.9
    # It changes only at update steps.
    changes = {t for t in range(1, len(values)) if values[t] != values[t - 1]}
    assert changes <= set(update_steps(t0, end, dt))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"frequency": 0}, "frequency=0"),
        ({"end_step": 3, "begin_step": 5}, "end_step=3"),
        ({"final_sparsity": 1.0}, "final_sparsity=1.0"),
        ({"initial_sparsity": -0.1}, "initial_sparsity=-0.1"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs: dict[str, float], needle: str) -> None:
    args = {
        "step": 0,
        "final_sparsity": 0.5,
        "initial_sparsity": 0.0,
        "begin_step": 0,
        "end_step": 10,
        "frequency": 1,
    }
    with pytest.raises(ValueError, match=needle):
        zhu_gupta_sparsity(**{**args, **kwargs})  # type: ignore[arg-type]


def test_schedule_steps_from_fractions() -> None:
    assert schedule_steps(100, 0.0, 0.75) == (0, 75)
    assert schedule_steps(100, 0.1, 1.0) == (10, 99)  # the last update happens during training
    assert schedule_steps(1, 0.0, 0.75) == (0, 0)


# --- the hook during training -----------------------------------------------------------------


class Recorder(TrainHook):
    """Checks, after every step, the pruned count against the schedule and that nothing revives."""

    def __init__(self, gmp: GradualMagnitudeHook, include_classifier: bool = True) -> None:
        self.gmp = gmp
        self.include_classifier = include_classifier
        self.steps: list[tuple[int, int, int]] = []
        self.previous: dict[str, Tensor] = {}

    def after_step(self, model: nn.Module, step: int) -> None:
        layers = prunable_layers(model, self.include_classifier)
        total = sum(m.weight_orig.numel() for _, m in layers)
        expected = round(self.gmp.target(step) * total) if step >= self.gmp.begin_step else 0
        self.steps.append((step, zeros(model, self.include_classifier), expected))
        for name, m in layers:
            mask = current_mask(m)
            if name in self.previous:
                assert torch.all(mask[self.previous[name] == 0] == 0), (step, name)  # no revival
            self.previous[name] = mask


@pytest.mark.parametrize("ranking", ["global", "layer"])
def test_hook_follows_schedule_and_never_revives(ranking: str) -> None:
    X, y = blobs()
    model = small_mlp()
    method = GradualMagnitude(sparsity=0.8, frequency=3, end_fraction=0.75, ranking=ranking)
    hook = GradualMagnitudeHook(method)
    recorder = Recorder(hook)
    train(model, X, y, TrainConfig(epochs=3, batch_size=16, lr=1e-2), hooks=[hook, recorder])
    total_steps = 3 * 8
    assert (hook.begin_step, hook.end_step) == (0, 18)
    assert [s for s, _ in hook.history] == update_steps(0, 18, 3)
    for step, achieved, expected in recorder.steps:
        if ranking == "global":
            assert achieved == expected, step
        else:  # per layer rounding: within one weight per layer
            assert abs(achieved - expected) <= 3, step
    assert len(recorder.steps) == total_steps
    # After t0 + n dt the target is held exactly (per layer for ranking="layer").
    for name, m in prunable_layers(model):
        if ranking == "layer":
            assert int((m.weight_mask == 0).sum()) == round(0.8 * m.weight_mask.numel()), name
    assert hook.history[-1] == (18, 0.8)


def run_session(epochs: int = 2) -> PruneSession:
    X, y = blobs()
    return PruneSession(X, y, TrainConfig(epochs=epochs, batch_size=16, lr=1e-2), small_mlp)


@pytest.mark.parametrize("epochs", [2, 0])
def test_run_reaches_exact_target(epochs: int) -> None:
    model = small_mlp()
    original = {n: m.weight.detach().clone() for n, m in prunable_layers(model)}
    out = create("gradual_magnitude", sparsity=0.7, frequency=2).run(model, run_session(epochs))
    assert out is model
    total = sum(m.weight_orig.numel() for _, m in prunable_layers(model))
    assert zeros(model) == round(0.7 * total)
    report = sparsity_report(model)
    assert report["prunable_numel"] - report["prunable_nonzero"] == round(0.7 * total)
    for name, m in prunable_layers(model):
        assert prune.is_pruned(m)
        hooks = [h for h in m._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        assert len(hooks) == 1 and isinstance(hooks[0], prune.CustomFromMask), name
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        if epochs == 0:  # one-shot magnitude pruning of the untouched weights
            assert torch.equal(m.weight_orig, original[name])
    if epochs == 0:
        expected = create("global_magnitude", sparsity=0.7).compute_masks(small_mlp())
        for name, m in prunable_layers(model):
            assert torch.equal(m.weight_mask, expected[name]), name


def test_run_keeps_earlier_pruning_and_spares_classifier() -> None:
    model = small_mlp()
    create("random", sparsity=0.3, seed=1).apply(model)
    before = {n: current_mask(m) for n, m in prunable_layers(model)}
    method = create("gradual_magnitude", sparsity=0.6, include_classifier=False, frequency=2)
    method.run(model, run_session())
    for name, m in prunable_layers(model):
        assert torch.all(m.weight_mask[before[name] == 0] == 0), name
    assert torch.equal(model.classifier.weight_mask, before["classifier"])
    total = sum(m.weight_orig.numel() for _, m in prunable_layers(model, False))
    assert zeros(model, include_classifier=False) == round(0.6 * total)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"initial_sparsity": 0.6}, "initial_sparsity=0.6"),
        ({"begin_fraction": 0.8}, "end_fraction=0.75"),
        ({"end_fraction": 1.5}, "end_fraction=1.5"),
        ({"frequency": 0}, "frequency=0"),
        ({"ranking": "row"}, "ranking='row'"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        create("gradual_magnitude", sparsity=0.5, **kwargs)
