"""What a pruning method may do besides computing masks: see data, train, re-initialise.

:meth:`backend.pruning.registry.PruningMethod.run` receives a :class:`PruneSession`. One-shot
methods use it to fine-tune; methods that prune at initialisation (SNIP, RigL) ask it for a
freshly initialised network; methods that prune during training (GMP, DNS, RigL) pass their
:class:`~backend.pruning.finetune.TrainHook` to :meth:`PruneSession.train`; iterative methods
(IMP) train several times and report each round through :meth:`PruneSession.record_round`.
Every training records the weights it starts from (:attr:`PruneSession.start_weights`), from
which the prune job measures the learning distance (backend/pruning/learning.py).
The prune job builds the session; tests build one directly from tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from backend.data.batches import model_input
from backend.pruning.finetune import TrainConfig, TrainHook, train
from backend.pruning.learning import effective_weights

ProgressFn = Callable[[float, str], None]


def _no_progress(_fraction: float, _stage: str) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class PruneSession:
    """Data, training settings and services for one pruning run.

    Attributes:
        x: (N, ...) training inputs (on the CPU; batches are moved to ``config.device``).
        y: (N,) integer training labels.
        config: Training hyper-parameters for fine-tuning (or for training from scratch, for
            methods that prune at initialisation).
        make_model: ``make_model(seed)`` returns a freshly initialised network of the same
            architecture (used by SNIP, RigL and lottery-ticket rewinding to step 0).
        progress: ``progress(fraction, stage)`` for the whole run, fraction in [0, 1].
        should_stop: True once the run should be cancelled.
        record_round: Called by iterative methods with each intermediate model and a small
            description (e.g. ``{"round": 3, "sparsity": 0.488}``) so that every round is kept.
        start_weights: The effective weights (``orig * mask``, on the CPU) of every
            prunable-type layer at the start of the latest :meth:`train` call, keyed
            ``"<layer>.weight"`` (backend/pruning/learning.py); None before any training.
    """

    x: Tensor
    y: Tensor
    config: TrainConfig
    make_model: Callable[[int], nn.Module]
    progress: ProgressFn = _no_progress
    should_stop: Callable[[], bool] = _never
    record_round: Callable[[nn.Module, dict[str, Any]], None] | None = None
    _span: tuple[float, float] = field(default=(0.0, 1.0), repr=False)
    start_weights: dict[str, Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def device(self) -> str:
        return self.config.device

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.y) // self.config.batch_size)

    def batch(self, size: int | None = None, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """A deterministic random batch ``(x, y)`` on the session's device.

        Args:
            size: Samples (default: the training batch size, at most N).
            seed: Chooses the samples (default: the config's seed).
        """
        n = min(len(self.y), size or self.config.batch_size)
        gen = torch.Generator().manual_seed(self.config.seed if seed is None else seed)
        idx = torch.randperm(len(self.y), generator=gen)[:n]
        return model_input(self.x[idx].to(self.device)), self.y[idx].to(self.device)

    def fresh_model(self, seed: int | None = None) -> nn.Module:
        """A newly initialised network of the same architecture, on the session's device."""
        return self.make_model(self.config.seed if seed is None else seed).to(self.device)

    def train(
        self,
        model: nn.Module,
        epochs: int | None = None,
        hooks: Sequence[TrainHook] = (),
        span: tuple[float, float] | None = None,
        stage: str = "fine-tuning",
        **overrides: Any,
    ) -> list[float]:
        """Train ``model`` in place with the session's settings.

        Args:
            model: The network (possibly carrying prune masks).
            epochs: Override of ``config.epochs``.
            hooks: Training hooks of the method.
            span: The part of the run's progress bar this training covers, e.g. (0.1, 0.9);
                default: the whole bar.
            stage: Label shown with the progress.
            **overrides: Other :class:`TrainConfig` fields to change for this training.

        Returns:
            Mean training loss per epoch.
        """
        changes: dict[str, Any] = dict(overrides)
        if epochs is not None:
            changes["epochs"] = epochs
        config = dataclasses.replace(self.config, **changes) if changes else self.config
        lo, hi = span or (0.0, 1.0)
        # theta_start of the learning distance: the last training's starting point
        self.start_weights = effective_weights(model)
        return train(
            model,
            self.x,
            self.y,
            config,
            progress=lambda f, msg: self.progress(lo + (hi - lo) * f, f"{stage}: {msg}"),
            should_stop=self.should_stop,
            hooks=hooks,
        )
