"""Iterative magnitude pruning with rewinding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend.pruning import create
from backend.pruning.finetune import TrainConfig, TrainHook, train
from backend.pruning.lottery import rewind, round_sparsities, snapshot
from backend.pruning.masks import current_mask, prunable_layers, sparsity_report
from backend.pruning.session import PruneSession
from models.registry import create as create_model


def make_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", input_shape=[6], num_classes=3, hidden=[16])


@pytest.fixture
def session_data():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


@pytest.mark.parametrize(
    "target, fraction, expected",
    [
        (0.2, 0.2, [0.2]),
        (0.5, 0.2, [0.2, 0.36, 0.488, 0.5]),
        (0.9, 0.5, [0.5, 0.75, 0.875, 0.9]),
        (0.0, 0.2, []),
    ],
)
def test_round_sparsities(target, fraction, expected):
    assert round_sparsities(target, fraction) == pytest.approx(expected)


def test_round_sparsities_follow_the_geometric_rule():
    rounds = round_sparsities(0.9, 0.2)
    assert len(rounds) == 11 and rounds[-1] == 0.9
    for r, s in enumerate(rounds[:-1], start=1):
        assert s == pytest.approx(1 - 0.8**r)


def test_rewind_restores_weights_and_keeps_masks(session_data):
    x, y = session_data
    model = make_mlp(0)
    state = snapshot(model)
    create("global_magnitude", sparsity=0.5).apply(model)
    masks = {n: current_mask(m).clone() for n, m in prunable_layers(model)}
    train(model, x, y, TrainConfig(epochs=2, batch_size=16))
    rewind(model, state)
    for name, module in prunable_layers(model):
        assert torch.equal(current_mask(module), masks[name])
        torch.testing.assert_close(module.weight_orig, state[f"{name}.weight"])
        torch.testing.assert_close(module.weight, state[f"{name}.weight"] * masks[name])


def test_run_keeps_every_round_and_never_revives(session_data):
    x, y = session_data
    rounds: list[tuple[nn.Module, dict]] = []

    def record(model: nn.Module, info: dict) -> None:
        zeros = {n: (current_mask(m) == 0).clone() for n, m in prunable_layers(model)}
        rounds.append((zeros, info))

    session = PruneSession(
        x, y, TrainConfig(epochs=1, batch_size=16), make_mlp, record_round=record
    )
    method = create("lottery_ticket", sparsity=0.6, prune_fraction=0.3)
    final = method.run(make_mlp(5), session)
    expected = round_sparsities(0.6, 0.3)
    assert [info["sparsity"] for _, info in rounds] == pytest.approx(expected[:-1])
    assert [info["round"] for _, info in rounds] == list(range(1, len(expected)))
    final_zeros = {n: current_mask(m) == 0 for n, m in prunable_layers(final)}
    later_zeros = [z for z, _ in rounds[1:]] + [final_zeros]
    for (earlier, _), later in zip(rounds, later_zeros, strict=True):
        for n in earlier:
            assert torch.all(later[n][earlier[n]]), "a pruned weight came back"
    total = sum(m.weight.numel() for _, m in prunable_layers(final))
    assert abs(sparsity_report(final)["sparsity"] * total - round(0.6 * total)) <= 1


class _EveryStep(TrainHook):
    """Independent record of the classifier weights after every optimiser step."""

    def __init__(self) -> None:
        self.after: list[torch.Tensor] = []

    def on_train_begin(self, model, optimizer, total_steps):  # type: ignore[no-untyped-def]
        self.initial = model.classifier.weight.detach().clone()

    def after_step(self, model, step):  # type: ignore[no-untyped-def]
        self.after.append(model.classifier.weight.detach().clone())


@pytest.mark.parametrize("k", [0, 3])
def test_each_round_starts_from_the_weights_after_k_steps(session_data, k):
    x, y = session_data
    config = TrainConfig(epochs=1, batch_size=16)
    # the dense run, replayed independently with the same seed and data order
    steps = _EveryStep()
    train(make_mlp(0), x, y, config, hooks=[steps])
    theta_k = steps.initial if k == 0 else steps.after[k - 1]

    session = PruneSession(x, y, config, make_mlp)
    starts: list[torch.Tensor] = []
    plain_train = session.train

    def spy(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        if hasattr(model.classifier, "weight_orig"):  # a pruning round, not the dense run
            starts.append(model.classifier.weight_orig.detach().clone())
        return plain_train(model, *args, **kwargs)

    session.train = spy  # type: ignore[method-assign]
    create("lottery_ticket", sparsity=0.5, prune_fraction=0.3, rewind_step=k).run(
        make_mlp(9), session
    )
    assert len(starts) == len(round_sparsities(0.5, 0.3))
    for start in starts:
        torch.testing.assert_close(start, theta_k)


def test_rewind_step_beyond_training_is_refused(session_data):
    x, y = session_data
    session = PruneSession(x, y, TrainConfig(epochs=1, batch_size=16), make_mlp)
    with pytest.raises(ValueError, match=r"rewind_step=7 is beyond training \(6 steps\)"):
        create("lottery_ticket", sparsity=0.5, rewind_step=7).run(make_mlp(0), session)


def test_bad_parameters_name_the_value():
    with pytest.raises(ValueError, match="prune_fraction=1.0 should be in"):
        create("lottery_ticket", sparsity=0.5, prune_fraction=1.0)
    with pytest.raises(ValueError, match="rewind_step=-1"):
        create("lottery_ticket", sparsity=0.5, rewind_step=-1)
