"""Job specifications: what a client may ask for, validated before anything is written."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JOB_KINDS = ("train", "prune", "analyze")
JobKind = Literal["train", "prune", "analyze"]
JobStatus = Literal["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainSettings(_Spec):
    """Training / fine-tuning hyper-parameters (backend.pruning.finetune.TrainConfig)."""

    epochs: int = Field(default=15, ge=0, le=10_000)
    lr: float = Field(default=1e-3, gt=0, le=10)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(default=0.9, ge=0, lt=1)
    seed: int = 0


class TrainSpec(TrainSettings):
    """Train a network from scratch on a registered dataset."""

    dataset_id: int
    architecture: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, max_length=200)


class PruneSpec(_Spec):
    """Prune a registered model, then fine-tune it on its dataset's training split."""

    model_id: int
    method: str = "global_magnitude"
    sparsity: float = Field(ge=0, lt=1, description="fraction of prunable weights set to zero")
    params: dict[str, Any] = Field(default_factory=dict)
    finetune: TrainSettings = Field(default_factory=lambda: TrainSettings(epochs=3))
    name: str | None = Field(default=None, max_length=200)


class AnalyzeSpec(_Spec):
    """Evaluate a model on a dataset split and store per-sample results."""

    model_id: int
    dataset_id: int | None = None
    split: Literal["train", "test"] = "test"


SPEC_TYPES: dict[str, type[_Spec]] = {
    "train": TrainSpec,
    "prune": PruneSpec,
    "analyze": AnalyzeSpec,
}
