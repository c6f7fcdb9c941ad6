"""The training loop shared by train and fine-tune jobs.

Masks applied with ``torch.nn.utils.prune`` survive training: the forward pass uses
``weight_orig * weight_mask``, so a pruned weight stays exactly zero whatever the optimiser
(weight decay, momentum) does to ``weight_orig``. After training, ``module.weight`` is
recomputed so that ``weight == weight_orig * weight_mask`` holds without a forward pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from backend.data.batches import input_dtype, model_input
from backend.pruning.masks import refresh_pruned_weights
from backend.pruning.registry import check_bool, check_int, check_number

__all__ = [
    "LR_SCHEDULES",
    "TrainConfig",
    "TrainHook",
    "TrainingCancelled",
    "lr_factor",
    "predict",
    "train",
]

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]

LR_SCHEDULES = ("constant", "cosine", "step")

# Within an epoch, progress and should_stop are called at most this often (seconds); they are
# always called at every epoch boundary. Callers may hit a database in either callback.
CALLBACK_INTERVAL_S = 1.0


class TrainingCancelled(Exception):
    """Raised by :func:`train` when ``should_stop()`` returns True."""


class TrainHook:
    """Callbacks through which a pruning method acts during training (GMP, DNS, RigL).

    Steps are counted from 0 over the whole run (``epochs * steps_per_epoch`` steps). Every
    method does nothing by default; subclasses override what they need.
    """

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        """Before the first step."""

    def after_backward(self, model: nn.Module, step: int) -> None:
        """Gradients of this step are in ``.grad``; the optimiser has not stepped yet."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """The optimiser has applied this step's update."""

    def on_train_end(self, model: nn.Module) -> None:
        """After the last step (also when training ends early by cancellation)."""


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`; every field is validated on construction.

    Attributes:
        epochs: Passes over the data (0 trains nothing).
        lr: Learning rate, > 0.
        batch_size: Samples per step, >= 1.
        weight_decay: L2 penalty coefficient passed to the optimiser, >= 0.
        optimizer: ``"adam"`` or ``"sgd"``.
        momentum: SGD momentum in [0, 1) (ignored by Adam).
        seed: Seeds ``torch.manual_seed`` and the shuffling generator, >= 0.
        device: Torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        lr_schedule: Learning-rate schedule over all training steps (see :func:`lr_factor`):
            ``"constant"``; ``"cosine"`` (cosine annealing from ``lr`` to 0 over all steps,
            Loshchilov & Hutter 2017, without restarts); ``"step"`` (``lr`` times 0.1 from 50%
            and again from 75% of the steps).
        amp: Automatic mixed precision: the forward pass and the loss run under
            ``torch.autocast`` with bfloat16 on CUDA devices (no gradient scaler is needed with
            bfloat16; parameters, gradients and optimiser state stay float32). Ignored on other
            devices, so ``amp=True`` on the CPU trains exactly as ``amp=False``.
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    seed: int = 0
    device: str = "cpu"
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    amp: bool = False

    def __post_init__(self) -> None:
        self.epochs = check_int("epochs", self.epochs, 0)
        self.batch_size = check_int("batch_size", self.batch_size, 1)
        self.seed = check_int("seed", self.seed, 0, 2**63 - 1)
        self.lr = check_number("lr", self.lr, 0.0, math.inf, low_closed=False, high_closed=False)
        self.weight_decay = check_number(
            "weight_decay", self.weight_decay, 0.0, math.inf, high_closed=False
        )
        self.momentum = check_number("momentum", self.momentum, 0.0, 1.0, high_closed=False)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer={self.optimizer!r} should be 'adam' or 'sgd'")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device={self.device!r} should be a device string such as 'cpu'")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ValueError(f"device={self.device!r} is not a valid torch device") from None
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} should be one of "
                + ", ".join(repr(s) for s in LR_SCHEDULES)
            )
        self.amp = check_bool("amp", self.amp)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a JSON object; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return dataclasses.asdict(self)


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

    Args:
        schedule: ``"constant"`` (1), ``"cosine"`` (``(1 + cos(pi * step / total_steps)) / 2``:
            1 at the first step, decreasing to 0 at the end of training; the last step uses
            ``(1 + cos(pi (T - 1) / T)) / 2 ~ (pi / 2T)^2``, the value ``CosineAnnealingLR``
            with ``T_max = T`` gives it) or ``"step"`` (1, then 0.1 from step
            ``floor(0.5 T)`` and 0.01 from step ``floor(0.75 T)``).
        step: Current step, counted from 0.
        total_steps: Steps of the whole training, >= 1.

    Raises:
        ValueError: For an unknown schedule.
    """
    total = max(int(total_steps), 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(max(step, 0), total) / total))
    if schedule == "step":
        drops = (step >= math.floor(0.5 * total)) + (step >= math.floor(0.75 * total))
        return 0.1**drops
    raise ValueError(
        f"lr_schedule={schedule!r} should be one of " + ", ".join(repr(s) for s in LR_SCHEDULES)
    )


def _check_data(X: Tensor, y: Tensor) -> None:
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise ValueError("X and y should be tensors")
    if y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X has shape {tuple(X.shape)} and y has shape {tuple(y.shape)}; expected X (N, ...) "
            "and y (N,)"
        )
    if X.shape[0] == 0:
        raise ValueError("cannot train on an empty dataset")
    if y.is_floating_point() or y.is_complex():
        raise ValueError(f"y should hold integer class labels, got dtype {y.dtype}")


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def train(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    config: TrainConfig,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    hooks: Sequence[TrainHook] = (),
) -> list[float]:
    """Train ``model`` in place with cross-entropy.

    Deterministic on CPU for a given ``config.seed``: ``torch.manual_seed(seed)`` is called and
    the data are shuffled every epoch with a ``torch.Generator`` seeded from ``seed``. The model
    is moved to ``config.device``; X and y may stay on the CPU (batches are moved). The model's
    train/eval mode is restored afterwards.

    Args:
        model: Maps X (B, ...) to logits (B, C); may carry prune masks, which survive.
        X: Inputs, shape (N, ...); floating inputs are cast to the model's dtype.
        y: Integer class labels, shape (N,).
        config: Hyper-parameters.
        progress: Called as ``progress(fraction_done, message)`` with non-decreasing fractions
            in [0, 1], at the end of every epoch (the last call has fraction 1.0) and at most
            every ``CALLBACK_INTERVAL_S`` seconds within an epoch.
        should_stop: Checked before every epoch and at most every ``CALLBACK_INTERVAL_S``
            seconds within an epoch; when it returns True, :class:`TrainingCancelled` is raised
            (the model keeps the updates made so far).
        hooks: :class:`TrainHook` objects called around every step, in order. The learning
            rate of the step (``config.lr_schedule``) is set in the optimiser's param groups
            before the forward pass, so hooks see it in ``after_backward``/``after_step``.

    Returns:
        Mean training loss of each epoch (sample-weighted), length ``config.epochs``.

    Raises:
        TrainingCancelled: If ``should_stop()`` returned True.
        ValueError: If X and y are inconsistent or empty.
    """
    _check_data(X, y)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    optimizer = _make_optimizer(model, config)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    # bfloat16 autocast on CUDA only (no GradScaler needed for bfloat16).
    use_amp = config.amp and device.type == "cuda"

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if use_amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    x_dtype = input_dtype(model, X)
    was_training = model.training
    n = X.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = max(config.epochs * steps_per_epoch, 1)
    history: list[float] = []
    last_callback = time.monotonic()

    def report(step: int, message: str) -> None:
        if progress is not None:
            progress(min(step / total_steps, 1.0), message)

    def check_stop(epoch: int) -> None:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training cancelled in epoch {epoch + 1}/{config.epochs}")

    model.train()
    for hook in hooks:
        hook.on_train_begin(model, optimizer, total_steps)
    try:
        if config.epochs == 0:
            report(total_steps, "epoch 0/0")
        for epoch in range(config.epochs):
            check_stop(epoch)
            order = torch.randperm(n, generator=generator)
            # Summed on the device: no host sync per step.
            loss_sum = torch.zeros((), device=device)
            for i in range(steps_per_epoch):
                idx = order[i * config.batch_size : (i + 1) * config.batch_size]
                xb = model_input(X[idx].to(device, non_blocking=True), x_dtype)
                yb = y[idx].to(device, dtype=torch.long, non_blocking=True)
                step = epoch * steps_per_epoch + i
                if config.lr_schedule != "constant":
                    factor = lr_factor(config.lr_schedule, step, total_steps)
                    for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
                        group["lr"] = base_lr * factor
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                for hook in hooks:
                    hook.after_backward(model, step)
                optimizer.step()
                for hook in hooks:
                    hook.after_step(model, step)
                loss_sum += loss.detach() * idx.numel()
                now = time.monotonic()
                if now - last_callback >= CALLBACK_INTERVAL_S and i + 1 < steps_per_epoch:
                    last_callback = now
                    check_stop(epoch)
                    report(
                        epoch * steps_per_epoch + i + 1,
                        f"epoch {epoch + 1}/{config.epochs} batch {i + 1}/{steps_per_epoch}",
                    )
            history.append(float(loss_sum) / n)
            last_callback = time.monotonic()
            report(
                (epoch + 1) * steps_per_epoch,
                f"epoch {epoch + 1}/{config.epochs} loss {history[-1]:.4f}",
            )
    finally:
        for hook in hooks:
            hook.on_train_end(model)
        refresh_pruned_weights(model)
        model.train(was_training)
    return history


@torch.no_grad()
def predict(
    model: nn.Module,
    X: Tensor,
    batch_size: int = 512,
    device: str = "cpu",
    should_stop: StopFn | None = None,
) -> Tensor:
    """Logits of ``model`` on ``X`` in eval mode without gradients.

    Args:
        model: Maps (B, ...) to logits (B, C); moved to ``device``; its train/eval mode is
            restored afterwards.
        X: Inputs, shape (N, ...); floating inputs are cast to the model's dtype.
        batch_size: Samples per forward pass.
        device: Torch device string.
        should_stop: Checked before every batch; when it returns True,
            :class:`TrainingCancelled` is raised (evaluating a large split takes minutes on a
            CPU).

    Returns:
        Logits, shape (N, C), on the CPU.

    Raises:
        TrainingCancelled: If ``should_stop()`` returned True.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} should be an integer >= 1")
    dev = torch.device(device)
    model.to(dev)
    was_training = model.training
    model.eval()
    try:
        x_dtype = input_dtype(model, X)
        if X.shape[0] == 0:
            return model(model_input(X.to(dev), x_dtype)).cpu()
        outs = []
        for i in range(0, X.shape[0], batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled(f"prediction cancelled at sample {i}/{X.shape[0]}")
            xb = model_input(X[i : i + batch_size].to(dev, non_blocking=True), x_dtype)
            outs.append(model(xb).cpu())
        return torch.cat(outs)
    finally:
        model.train(was_training)
