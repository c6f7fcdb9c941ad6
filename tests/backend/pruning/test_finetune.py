"""The shared training loop: determinism, learning, masks surviving, cancellation, progress."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.finetune import (
    TrainConfig,
    TrainHook,
    TrainingCancelled,
    lr_factor,
    predict,
    train,
)
from backend.pruning.masks import current_mask, prunable_layers
from backend.pruning.registry import create as create_method
from models.registry import create as create_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train fastest single-threaded (and do not fight other test processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int = 256, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two well-separated Gaussian blobs in 8-D, shaped (N, 1, 2, 4) to exercise Flatten."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    centres = torch.tensor([[-2.0] * 8, [2.0] * 8])
    x = centres[y] + torch.randn(n, 8, generator=gen)
    return x.view(n, 1, 2, 4), y


def small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("mlp", input_shape=[1, 2, 4], num_classes=2, hidden=[16, 16])


def test_deterministic_same_seed_same_weights() -> None:
    X, y = blobs()
    a, b = small_mlp(), small_mlp()
    config = TrainConfig(epochs=3, batch_size=32, seed=5)
    ha = train(a, X, y, config)
    hb = train(b, X, y, config)
    assert ha == hb
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    # A different seed shuffles differently.
    c = small_mlp()
    train(c, X, y, TrainConfig(epochs=3, batch_size=32, seed=6))
    assert not torch.equal(c.classifier.weight, a.classifier.weight)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_reduces_loss(optimizer: str) -> None:
    X, y = blobs()
    model = small_mlp()
    lr = 1e-2 if optimizer == "adam" else 5e-2
    history = train(model, X, y, TrainConfig(epochs=5, lr=lr, batch_size=32, optimizer=optimizer))
    assert len(history) == 5
    assert all(math.isfinite(h) for h in history)
    assert history[-1] < 0.5 * history[0]
    accuracy = (predict(model, X).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95


CONFIGS = [
    TrainConfig(epochs=3, lr=1e-2, batch_size=32),
    TrainConfig(epochs=3, lr=1e-2, batch_size=32, weight_decay=0.1),
    TrainConfig(epochs=3, lr=5e-2, batch_size=32, optimizer="sgd", momentum=0.9, weight_decay=1e-2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["adam", "adam-wd", "sgd-momentum-wd"])
@pytest.mark.parametrize("arch", ["mlp", "digits_cnn"])
def test_masks_survive_finetuning(arch: str, config: TrainConfig) -> None:
    torch.manual_seed(0)
    if arch == "mlp":
        model = small_mlp()
        X, y = blobs(128)
    else:
        model = create_model("digits_cnn", num_classes=2)
        X, y = torch.randn(128, 1, 8, 8), torch.randint(0, 2, (128,))
    create_method("global_magnitude", sparsity=0.7).apply(model)
    masks = {n: current_mask(m) for n, m in prunable_layers(model)}
    before = {n: m.weight.detach().clone() for n, m in prunable_layers(model)}

    train(model, X, y, config)

    for n, m in prunable_layers(model):
        assert prune.is_pruned(m)
        assert torch.equal(m.weight_mask, masks[n]), n
        assert torch.all(m.weight[masks[n] == 0] == 0), n  # exactly zero
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask), n  # current, not stale
        assert not torch.equal(m.weight, before[n]), n  # it did train
    # The effective weights are what the forward pass uses.
    dense = copy.deepcopy(model)
    for _, m in prunable_layers(dense):
        prune.remove(m, "weight")
    with torch.no_grad():
        assert torch.allclose(dense(X), model(X))


def test_should_stop_raises_training_cancelled() -> None:
    X, y = blobs()
    model = small_mlp()
    create_method("random", sparsity=0.5).apply(model)
    mask = model.classifier.weight_mask.clone()
    with pytest.raises(TrainingCancelled):
        train(model, X, y, TrainConfig(epochs=3), should_stop=lambda: True)

    calls: list[int] = []

    def stop_in_second_epoch() -> bool:
        calls.append(1)
        return len(calls) >= 2

    epochs_seen: list[str] = []
    with pytest.raises(TrainingCancelled, match="2/5"):
        train(
            model,
            X,
            y,
            TrainConfig(epochs=5),
            progress=lambda f, msg: epochs_seen.append(msg),
            should_stop=stop_in_second_epoch,
        )
    assert len(epochs_seen) == 1  # the first epoch completed and reported
    assert torch.equal(model.classifier.weight_mask, mask)
    assert torch.equal(model.classifier.weight, model.classifier.weight_orig * mask)


def test_progress_non_decreasing_and_ends_at_one() -> None:
    X, y = blobs(100)
    calls: list[tuple[float, str]] = []
    train(
        small_mlp(),
        X,
        y,
        TrainConfig(epochs=4, batch_size=16),
        progress=lambda f, m: calls.append((f, m)),
    )
    fractions = [f for f, _ in calls]
    assert len(calls) >= 4
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert calls[-1][1].startswith("epoch 4/4 loss ")
    assert all(isinstance(m, str) and m for _, m in calls)


def test_zero_epochs_trains_nothing() -> None:
    X, y = blobs(32)
    model = small_mlp()
    before = copy.deepcopy(model.state_dict())
    calls: list[float] = []
    assert train(model, X, y, TrainConfig(epochs=0), progress=lambda f, m: calls.append(f)) == []
    assert calls == [1.0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_train_restores_mode_and_rejects_bad_data() -> None:
    X, y = blobs(32)
    model = small_mlp().eval()
    train(model, X, y, TrainConfig(epochs=1))
    assert not model.training
    with pytest.raises(ValueError, match="shape"):
        train(model, X, y[:-1], TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="integer"):
        train(model, X, y.float(), TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="empty"):
        train(model, X[:0], y[:0], TrainConfig(epochs=1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", -1),
        ("epochs", 1.5),
        ("epochs", True),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("lr", "fast"),
        ("batch_size", 0),
        ("weight_decay", -0.1),
        ("optimizer", "rmsprop"),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("seed", -1),
        ("device", ""),
        ("device", "not-a-device"),
    ],
)
def test_invalid_train_config_raises(field: str, value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert f"{field}={value!r}" in str(excinfo.value)


def test_train_config_dict_round_trip() -> None:
    config = TrainConfig(epochs=2, optimizer="sgd")
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_predict_matches_forward_and_restores_mode() -> None:
    X, _ = blobs(50)
    model = small_mlp().train()
    logits = predict(model, X, batch_size=7)
    assert model.training
    assert logits.shape == (50, 2)
    assert not logits.requires_grad
    with torch.no_grad():
        expected = model.eval()(X)
    torch.testing.assert_close(logits, expected)
    assert predict(model, X[:0]).shape == (0, 2)
    # float64 inputs (from numpy) are cast to the model's dtype.
    torch.testing.assert_close(predict(model, X.double()), logits)


def test_digits_cnn_learns_sklearn_digits() -> None:
    """The contract of digits_cnn: >90% test accuracy after 15 epochs of Adam 1e-3, batch 64."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    X = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train_idx, test_idx = perm[:1400], perm[1400:]
    torch.manual_seed(0)
    model = create_model("digits_cnn")
    train(model, X[train_idx], y[train_idx], TrainConfig(epochs=15, lr=1e-3, batch_size=64))
    accuracy = (predict(model, X[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    assert accuracy > 0.9


# --- learning-rate schedules and mixed precision ----------------------------------------------


class LrRecorder(TrainHook):
    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.total_steps = 0
        self.optimizer: torch.optim.Optimizer | None = None

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        self.optimizer, self.total_steps = optimizer, total_steps

    def after_backward(self, model: nn.Module, step: int) -> None:
        assert self.optimizer is not None
        self.lrs.append(self.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("lr_schedule", "linear"), ("lr_schedule", None), ("amp", "yes"), ("amp", 1)],
)
def test_invalid_schedule_or_amp_raises(field: str, value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        TrainConfig(**{field: value})  # type: ignore[arg-type]
    assert f"{field}={value!r}" in str(excinfo.value)


def test_new_fields_round_trip_and_default() -> None:
    config = TrainConfig(lr_schedule="cosine", amp=True)
    assert config.to_dict()["lr_schedule"] == "cosine" and config.to_dict()["amp"] is True
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().lr_schedule == "constant" and TrainConfig().amp is False


def test_cosine_schedule_anneals_to_zero() -> None:
    X, y = blobs(160)
    recorder = LrRecorder()
    config = TrainConfig(epochs=4, lr=1e-2, batch_size=16, lr_schedule="cosine")
    train(small_mlp(), X, y, config, hooks=[recorder])
    lrs = recorder.lrs
    assert len(lrs) == recorder.total_steps == 40
    assert lrs[0] == 1e-2
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False))  # strictly decreasing
    assert lrs[20] == pytest.approx(0.5e-2)  # half-way: half the rate
    assert lrs[-1] < 1e-2 * 1e-2  # ~0 at the end: (pi / 80)^2 ~ 1.5e-3 of the base rate
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(1e-2 * lr_factor("cosine", t, 40))


def test_step_and_constant_schedules() -> None:
    X, y = blobs(64)
    recorder = LrRecorder()
    train(
        small_mlp(),
        X,
        y,
        TrainConfig(epochs=1, lr=1.0, batch_size=8, lr_schedule="step"),
        hooks=[recorder],
    )
    assert recorder.lrs == pytest.approx([1.0] * 4 + [0.1] * 2 + [0.01] * 2)
    recorder = LrRecorder()
    train(small_mlp(), X, y, TrainConfig(epochs=1, lr=0.5, batch_size=8), hooks=[recorder])
    assert recorder.lrs == [0.5] * 8
    with pytest.raises(ValueError, match="lr_schedule='nope'"):
        lr_factor("nope", 0, 10)


def test_amp_is_ignored_on_cpu() -> None:
    X, y = blobs(64)
    a, b = small_mlp(), small_mlp()
    ha = train(a, X, y, TrainConfig(epochs=2, batch_size=16, amp=True))
    hb = train(b, X, y, TrainConfig(epochs=2, batch_size=16, amp=False))
    assert ha == hb
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bfloat16 autocast needs a CUDA device")
def test_amp_trains_on_cuda() -> None:
    X, y = blobs()
    model = small_mlp()
    history = train(
        model, X, y, TrainConfig(epochs=5, lr=1e-2, batch_size=32, amp=True, device="cuda")
    )
    assert all(math.isfinite(h) for h in history) and history[-1] < 0.5 * history[0]
    assert next(model.parameters()).dtype == torch.float32
