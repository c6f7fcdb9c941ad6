"""Gradual magnitude pruning during training (Zhu & Gupta 2017; SCIENCE.md sect. 4).

Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
compression", ICLR workshop 2018 (arXiv:1710.01878, 2017). The sparsity rises from s_i to s_f
along the cubic schedule

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3,   t in {t0, t0 + dt, ..., t0 + n dt},

and at every such step the weights with the smallest |w| are masked until the layer set has
sparsity s_t; pruned weights stay pruned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from backend.pruning.finetune import TrainHook
from backend.pruning.masks import current_mask, effective_weight, masks_from_scores, prunable_layers
from backend.pruning.registry import (
    PruningMethod,
    check_bool,
    check_int,
    check_number,
    register_method,
)
from backend.pruning.straight_through import ensure_pruned, write_mask

if TYPE_CHECKING:
    from backend.pruning.session import PruneSession

__all__ = [
    "GradualMagnitude",
    "GradualMagnitudeHook",
    "magnitude_masks",
    "schedule_steps",
    "update_steps",
    "zhu_gupta_sparsity",
]

Ranking = Literal["global", "layer"]


def _check_schedule(
    final_sparsity: float, initial_sparsity: float, begin_step: int, end_step: int, frequency: int
) -> None:
    check_number("final_sparsity", final_sparsity, 0.0, 1.0, high_closed=False)
    check_number("initial_sparsity", initial_sparsity, 0.0, 1.0, high_closed=False)
    check_int("begin_step", begin_step, 0)
    check_int("end_step", end_step, begin_step)
    check_int("frequency", frequency, 1)


def update_steps(begin_step: int, end_step: int, frequency: int) -> list[int]:
    """The steps at which the schedule prunes: t0, t0 + dt, ... below ``end_step``, and
    ``end_step`` itself.

    When ``end_step - begin_step`` is a multiple of ``frequency`` these are exactly the paper's
    t0 + k dt, k = 0..n. Otherwise a last update is added at ``end_step`` so that the schedule
    always ends exactly at s_f (the paper assumes n dt = end - t0).

    Raises:
        ValueError: If ``begin_step < 0``, ``end_step < begin_step`` or ``frequency < 1``.
    """
    check_int("begin_step", begin_step, 0)
    check_int("end_step", end_step, begin_step)
    check_int("frequency", frequency, 1)
    return [*range(begin_step, end_step, frequency), end_step]


def zhu_gupta_sparsity(
    step: int,
    final_sparsity: float,
    initial_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int,
) -> float:
    """Target sparsity in effect at ``step`` under the cubic schedule of Zhu & Gupta 2017.

    s_t = s_f + (s_i - s_f)(1 - (t - t0) / (n dt))^3 with n dt = ``end_step - begin_step``,
    evaluated at the most recent update step t <= ``step`` (see :func:`update_steps`): the
    value is constant between updates, equals s_i before t0 and s_f from ``end_step`` on.
    SCIENCE.md sect. 4.

    Args:
        step: Training step, counted from 0.
        final_sparsity: s_f in [0, 1).
        initial_sparsity: s_i in [0, 1).
        begin_step: t0, the first update, >= 0.
        end_step: t0 + n dt, the last update, >= ``begin_step``.
        frequency: dt, steps between updates, >= 1.

    Returns:
        The sparsity s_t.

    Raises:
        ValueError: For values outside the ranges above.
    """
    _check_schedule(final_sparsity, initial_sparsity, begin_step, end_step, frequency)
    if step < begin_step:
        return float(initial_sparsity)
    if step >= end_step:
        return float(final_sparsity)
    last_update = begin_step + ((step - begin_step) // frequency) * frequency
    remaining = 1.0 - (last_update - begin_step) / (end_step - begin_step)
    # = s_f + (s_i - s_f) remaining^3, written so that t0 gives s_i exactly and rounding keeps
    # the sequence monotone.
    return float(initial_sparsity + (final_sparsity - initial_sparsity) * (1.0 - remaining**3))


def schedule_steps(total_steps: int, begin_fraction: float, end_fraction: float) -> tuple[int, int]:
    """``(begin_step, end_step)`` of a schedule spanning the given fractions of training.

    ``begin_step = round(begin_fraction * T)`` and ``end_step = round(end_fraction * T)``, both
    clipped to the last step ``T - 1`` so that the final update happens during training.
    """
    last = max(int(total_steps), 1) - 1
    begin = min(round(begin_fraction * total_steps), last)
    end = max(begin, min(round(end_fraction * total_steps), last))
    return begin, end


def magnitude_masks(
    layers: list[tuple[str, nn.Module]], sparsity: float, ranking: Ranking = "global"
) -> dict[str, Tensor]:
    """Magnitude masks at ``sparsity`` building on the current masks (never reviving).

    Args:
        layers: ``[(name, module)]`` from :func:`~backend.pruning.masks.prunable_layers`.
        sparsity: Target fraction of zeros, over all layers jointly (``"global"``) or in every
            layer (``"layer"``).
        ranking: Scope of the |w| ranking.

    Returns:
        ``{name: 0/1 mask}``.
    """
    scores = {name: effective_weight(m).detach().abs() for name, m in layers}
    current = {name: current_mask(m) for name, m in layers}
    if ranking == "global":
        return masks_from_scores(scores, current, sparsity)
    masks: dict[str, Tensor] = {}
    for name in scores:
        masks.update(masks_from_scores({name: scores[name]}, {name: current[name]}, sparsity))
    return masks


class GradualMagnitudeHook(TrainHook):
    """Prunes to :func:`zhu_gupta_sparsity` at every update step, after the optimiser step.

    The schedule's steps are derived from the training length in :meth:`on_train_begin`
    (:func:`schedule_steps`). Masks are rewritten in place (no growing ``PruningContainer``);
    new masks build on the current ones, so nothing is ever revived.

    Attributes:
        history: ``[(step, target sparsity)]`` of the updates made so far.
    """

    def __init__(self, method: GradualMagnitude) -> None:
        self.method = method
        self.layers: list[tuple[str, nn.Module]] = []
        self.begin_step = self.end_step = 0
        self._updates: set[int] = set()
        self.history: list[tuple[int, float]] = []

    def on_train_begin(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int
    ) -> None:
        m = self.method
        self.layers = prunable_layers(model, m.include_classifier)
        for _, module in self.layers:
            ensure_pruned(module)  # keeps the parameter object the optimiser holds
        self.begin_step, self.end_step = schedule_steps(
            total_steps, m.begin_fraction, m.end_fraction
        )
        self._updates = set(update_steps(self.begin_step, self.end_step, m.frequency))

    def target(self, step: int) -> float:
        """Target sparsity in effect at ``step`` of the current training."""
        m = self.method
        return zhu_gupta_sparsity(
            step, m.sparsity, m.initial_sparsity, self.begin_step, self.end_step, m.frequency
        )

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if step not in self._updates:
            return
        sparsity = self.target(step)
        masks = magnitude_masks(self.layers, sparsity, self.method.ranking)
        for name, module in self.layers:
            write_mask(module, masks[name])
        self.history.append((step, sparsity))


@register_method("gradual_magnitude")
class GradualMagnitude(PruningMethod):
    """Gradual magnitude pruning (Zhu & Gupta 2017): cubic sparsity schedule during training.

    SCIENCE.md sect. 4. :meth:`run` fine-tunes the trained model it is given for the session's
    epochs and prunes by magnitude every ``frequency`` steps from ``begin_fraction`` to
    ``end_fraction`` of those steps following the cubic schedule
    s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 (:func:`zhu_gupta_sparsity`); the remaining
    steps fine-tune at the final sparsity, as in the paper. The last update reaches exactly
    ``round(sparsity * total)`` zeros; after training the target is enforced once more (a no-op
    unless training had no steps). :meth:`compute_masks` is one-shot magnitude pruning to the
    target, i.e. where the schedule ends.

    Deviations from the paper: step counts are derived from the session's training length
    (fractions, not absolute steps); if ``end - t0`` is not a multiple of ``frequency``, an extra
    last update at ``end`` reaches s_f; weights are ranked over all prunable layers jointly by
    default (``ranking="global"``; the paper prunes each layer to s_t, ``ranking="layer"``).

    Args:
        sparsity: Final sparsity s_f in [0, 1).
        initial_sparsity: s_i in [0, sparsity], the sparsity of the first update at t0.
        begin_fraction: t0 as a fraction of the training steps, in [0, 1].
        end_fraction: t0 + n dt as a fraction of the training steps, in [begin_fraction, 1].
        frequency: dt, steps between updates, >= 1.
        include_classifier: Whether ``model.classifier`` is prunable.
        ranking: ``"global"`` (one |w| threshold over all prunable layers; ``sparsity`` is met
            jointly) or ``"layer"`` (every layer pruned to s_t).
    """

    scope = "global"
    schedule = "during_training"

    def __init__(
        self,
        sparsity: float,
        initial_sparsity: float = 0.0,
        begin_fraction: float = 0.0,
        end_fraction: float = 0.75,
        frequency: int = 10,
        include_classifier: bool = True,
        ranking: Ranking = "global",
    ) -> None:
        initial_sparsity = check_number(
            "initial_sparsity", initial_sparsity, 0.0, 1.0, high_closed=False
        )
        begin_fraction = check_number("begin_fraction", begin_fraction, 0.0, 1.0)
        end_fraction = check_number("end_fraction", end_fraction, 0.0, 1.0)
        frequency = check_int("frequency", frequency, 1)
        include_classifier = check_bool("include_classifier", include_classifier)
        if ranking not in ("global", "layer"):
            raise ValueError(f"ranking={ranking!r} should be 'global' or 'layer'")
        super().__init__(
            sparsity,
            initial_sparsity=initial_sparsity,
            begin_fraction=begin_fraction,
            end_fraction=end_fraction,
            frequency=frequency,
            include_classifier=include_classifier,
            ranking=ranking,
        )
        if initial_sparsity > self.sparsity:
            raise ValueError(
                f"initial_sparsity={initial_sparsity!r} should be <= sparsity={self.sparsity!r}"
            )
        if end_fraction < begin_fraction:
            raise ValueError(
                f"end_fraction={end_fraction!r} should be >= begin_fraction={begin_fraction!r}"
            )
        self.initial_sparsity = initial_sparsity
        self.begin_fraction = begin_fraction
        self.end_fraction = end_fraction
        self.frequency = frequency
        self.include_classifier = include_classifier
        self.ranking: Ranking = ranking

    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """One-shot magnitude masks at the final sparsity (where the schedule ends)."""
        return magnitude_masks(
            prunable_layers(model, self.include_classifier), self.sparsity, self.ranking
        )

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        """Fine-tune ``model`` for the session's epochs while pruning it gradually.

        Returns:
            The same model, pruned to exactly the target.
        """
        session.progress(0.0, f"pruning: {self.name} to {self.sparsity:.0%}")
        hook = GradualMagnitudeHook(self)
        session.train(model, hooks=[hook], stage=f"gradual pruning to {self.sparsity:.0%}")
        # Exact final target (only changes something when training had no update step).
        layers = prunable_layers(model, self.include_classifier)
        masks = self.compute_masks(model)
        for name, module in layers:
            ensure_pruned(module)
            write_mask(module, masks[name])
        return model
