"""Iterative magnitude pruning with rewinding (lottery tickets).

Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019; Frankle et al., "Linear Mode
Connectivity and the Lottery Ticket Hypothesis", ICML 2020 (SCIENCE.md sect. 4): train, prune
a fraction of the remaining weights globally by magnitude, reset the survivors to their values
at step k (k = 0 is the original lottery ticket), and repeat until the target sparsity.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from backend.pruning.finetune import TrainHook
from backend.pruning.magnitude import GlobalMagnitude
from backend.pruning.masks import refresh_pruned_weights
from backend.pruning.registry import (
    PruningMethod,
    check_bool,
    check_int,
    check_number,
    register_method,
)
from backend.pruning.session import PruneSession


def round_sparsities(target: float, fraction: float) -> list[float]:
    """Cumulative sparsity after each round: 1 - (1 - fraction)^r, the last one exactly target.

    Example: target 0.9, fraction 0.2 gives 11 rounds (0.2, 0.36, 0.488, ..., 0.893, 0.9).
    """
    if target <= 0.0:
        return []
    rounds = max(1, math.ceil(math.log(1.0 - target) / math.log(1.0 - fraction) - 1e-9))
    out = [1.0 - (1.0 - fraction) ** r for r in range(1, rounds)]
    return [s for s in out if s < target] + [target]


def _state_key(name: str) -> str:
    # weight_orig of a pruned layer is the weight of the unpruned network
    return name[: -len("_orig")] if name.endswith("_orig") else name


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """Copy of every parameter and buffer under the unpruned names (masks excluded)."""
    out = {_state_key(n): p.detach().clone() for n, p in model.named_parameters()}
    for n, b in model.named_buffers():
        if not n.endswith("_mask"):
            out[n] = b.detach().clone()
    return out


def rewind(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Reset weights (and BatchNorm statistics) to ``state``, keeping the masks."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(state[_state_key(n)])
        for n, b in model.named_buffers():
            if not n.endswith("_mask"):
                b.copy_(state[n])
    refresh_pruned_weights(model)


class _Snapshot(TrainHook):
    """Records the network's state after ``step`` optimiser steps."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.state: dict[str, Tensor] | None = None

    def on_train_begin(self, model: nn.Module, optimizer: object, total_steps: int) -> None:
        if self.step == 0:
            self.state = snapshot(model)

    def after_step(self, model: nn.Module, step: int) -> None:
        if step + 1 == self.step:
            self.state = snapshot(model)


@register_method("lottery_ticket")
class LotteryTicket(PruningMethod):
    """Iterative magnitude pruning with rewinding to step k (lottery tickets).

    Frankle & Carbin 2019 (k = 0) and Frankle et al. 2020 (k > 0); SCIENCE.md sect. 4. Each
    round prunes ``prune_fraction`` of the remaining prunable weights by global magnitude,
    rewinds the survivors (and BatchNorm statistics) to their values after ``rewind_step``
    optimiser steps, and trains again for the session's epochs. The last round prunes exactly
    to the target. Every round but the last is handed to ``session.record_round`` so the
    lineage is kept.

    Deviation, stated here: the run starts from a fresh initialisation (seeded by the training
    seed) rather than from the trained model it is given, because the values at step k of the
    given model's training are not stored; with the parent's training settings the first round
    reproduces the parent's training on the CPU. Each round retrains for the full number of
    epochs (not T - k steps).

    Args:
        sparsity: Target fraction of zero prunable weights, in [0, 1).
        prune_fraction: Fraction of the remaining weights pruned per round, in (0, 1)
            (default 0.2).
        rewind_step: Optimiser step whose weights the survivors are reset to (0 = init).
        include_classifier: Whether ``model.classifier`` is prunable.
    """

    schedule: ClassVar = "iterative"  # type: ignore[misc]

    def __init__(
        self,
        sparsity: float,
        prune_fraction: float = 0.2,
        rewind_step: int = 0,
        include_classifier: bool = True,
    ) -> None:
        prune_fraction = check_number(
            "prune_fraction", prune_fraction, 0.0, 1.0, low_closed=False, high_closed=False
        )
        rewind_step = check_int("rewind_step", rewind_step, low=0)
        include_classifier = check_bool("include_classifier", include_classifier)
        super().__init__(
            sparsity,
            prune_fraction=prune_fraction,
            rewind_step=rewind_step,
            include_classifier=include_classifier,
        )
        self.prune_fraction = prune_fraction
        self.rewind_step = rewind_step
        self.include_classifier = include_classifier

    def rounds(self) -> list[float]:
        return round_sparsities(self.sparsity, self.prune_fraction)

    def _magnitude(self, sparsity: float) -> GlobalMagnitude:
        return GlobalMagnitude(sparsity, include_classifier=self.include_classifier)

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """One round's masks, to the final target (the masks IMP's last round computes)."""
        return self._magnitude(self.sparsity).compute_masks(model)

    def validate_schedule(self, total_steps: int) -> None:
        """Refuse a rewind step the training never reaches."""
        if self.rewind_step > total_steps:
            raise ValueError(
                f"rewind_step={self.rewind_step} is beyond training ({total_steps} steps)"
            )

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        steps = session.config.epochs * session.steps_per_epoch
        self.validate_schedule(steps)
        rounds = self.rounds()
        n = len(rounds) + 1  # dense training, then one training per round
        net = session.fresh_model()
        hook = _Snapshot(self.rewind_step)
        session.train(net, hooks=[hook], span=(0.0, 1.0 / n), stage="round 0 (dense)")
        assert hook.state is not None
        for r, target in enumerate(rounds, start=1):
            self._magnitude(target).apply(net)
            rewind(net, hook.state)
            session.train(
                net,
                span=(r / n, (r + 1) / n),
                stage=f"round {r}/{len(rounds)} ({target:.1%})",
            )
            if r < len(rounds) and session.record_round is not None:
                session.record_round(net, {"round": r, "sparsity": target})
        return net
