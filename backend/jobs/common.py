"""Helpers the job kinds share: loading datasets and models, registering results."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select

from backend.artifacts import remove_unreferenced
from backend.data import ArrayDataset
from backend.data.stored import load_from_store
from backend.db.tables import DatasetRow, JobRow, ModelRow
from backend.jobs.context import JobContext
from backend.jobs.specs import TrainSettings
from backend.pruning import sparsity_report
from backend.pruning.finetune import TrainConfig, predict, train
from models.checkpoint import load_checkpoint, save_checkpoint
from models.heads import ProbeError, probe_input
from models.registry import fill_kwargs


class JobInputError(ValueError):
    """A job refers to something that is missing or unusable."""


def load_dataset(ctx: JobContext, dataset_id: int) -> tuple[DatasetRow, ArrayDataset]:
    with ctx.session() as s:
        row = s.get(DatasetRow, dataset_id)
        if row is None:
            raise JobInputError(f"dataset {dataset_id} does not exist")
    # memory-mapped: a job reads the batches it uses; uint8 inputs become float per batch
    return row, load_from_store(ctx.store, row.artifact_sha)


def load_model(ctx: JobContext, model_id: int) -> tuple[ModelRow, torch.nn.Module]:
    with ctx.session() as s:
        row = s.get(ModelRow, model_id)
        if row is None:
            raise JobInputError(f"model {model_id} does not exist")
    with ctx.store.local_path(row.checkpoint_sha) as path:
        model, _meta = load_checkpoint(path, map_location="cpu")
    return row, model.to(ctx.device)


def forget_upload(ctx: JobContext, upload_sha: str) -> None:
    """Delete a refused upload's raw bytes unless a row still names them (a model or dataset
    that came from the same file, another import of it): a refused upload must not linger in
    the artifact store (:mod:`backend.artifacts`; this job's own spec does not count)."""
    with ctx.session() as s:
        remove_unreferenced(s, ctx.store, {upload_sha}, except_jobs=(ctx.job_id,))


def fill_arch_kwargs(architecture: str, kwargs: dict[str, Any], ds: ArrayDataset) -> dict[str, Any]:
    """Complete an architecture's kwargs from the dataset (classes, input shape, channels,
    image size for timm/torchvision ViTs): :func:`models.registry.fill_kwargs`."""
    return fill_kwargs(architecture, kwargs, list(ds.input_shape), ds.num_classes)


def regions_unsupported(model: torch.nn.Module) -> str | None:
    """Why the exact linear-region counter cannot take ``model`` (shown by the dashboard's
    regions view instead of a button that would fail), or None."""
    from backend.analysis.linear_regions import UnsupportedModuleError, check_supported

    try:
        check_supported(model)
    except UnsupportedModuleError as exc:
        return str(exc)[:1000]
    except Exception:  # tracing failed for another reason: the job will say, not the row
        return None
    return None


def prove_input(model: torch.nn.Module, input_shape: list[int], device: str) -> int:
    """The number of logits one sample of ``input_shape`` gives (:func:`models.heads.probe_input`),
    recorded on the model row so that a dataset of another shape or class count is refused when a
    job is submitted (backend/api/routes/jobs.py), not inside the job.

    Raises:
        JobInputError: The model does not take such a sample or answers with no (1, C) logits.
    """
    try:
        return probe_input(model, input_shape, device)
    except ProbeError as exc:
        raise JobInputError(f"the model {exc}") from None


def store_checkpoint(
    ctx: JobContext, model: torch.nn.Module, architecture: str, arch_kwargs: dict[str, Any]
) -> str:
    """Save a checkpoint into the artifact store; returns its sha256."""
    # Next to a local store so put_file copies within one filesystem; a remote root is no folder.
    # ".tmp": a writer killed meanwhile leaves a folder ArtifactStore.clean_temp removes
    where = ctx.store.root if ctx.store.is_local else None
    with tempfile.TemporaryDirectory(dir=where, suffix=".tmp") as tmp:
        path = Path(tmp) / "model.safetensors"
        save_checkpoint(model, architecture, arch_kwargs, path)
        return ctx.store.put_file(path)


def fit(
    ctx: JobContext,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    hyper: TrainSettings,
    *,
    start: float,
    span: float,
    label: str,
) -> None:
    """Train in place with the job's device, mapping training progress to [start, start+span]
    of the job's progress bar and stopping when the job is cancelled."""
    fields = set(TrainConfig.__dataclass_fields__) - {"device"}
    config = TrainConfig(**hyper.model_dump(include=fields), device=ctx.device)
    train(
        model,
        x,
        y,
        config,
        progress=lambda f, stage: ctx.report(start + span * f, f"{label}: {stage}"),
        should_stop=ctx.should_stop,
    )


def tensors(ds: ArrayDataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ds.split(split)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def accuracy(
    model: torch.nn.Module,
    ds: ArrayDataset,
    device: str,
    split: str = "test",
    should_stop: Callable[[], bool] | None = None,
) -> float:
    """Top-1 accuracy on a split; ``should_stop`` (a job's) is checked between batches."""
    x, y = tensors(ds, split)
    logits = predict(model, x, device=device, should_stop=should_stop)
    return float((logits.argmax(1).cpu() == y).float().mean())


def own_report(model: torch.nn.Module) -> dict[str, Any]:
    """Sparsity figures of a model that keeps its original architecture (masks only)."""
    report = sparsity_report(model)
    report["params_dense"] = report["n_params"]
    report["params"], report["nonzero"] = report["n_params"], report["n_nonzero"]
    return report


def save_model(
    ctx: JobContext,
    job: JobRow,
    model: torch.nn.Module | None,
    *,
    name: str,
    architecture: str,
    arch_kwargs: dict[str, Any],
    dataset_id: int | None,
    accuracy: float | None,
    parent_id: int | None = None,
    pruning_method: str | None = None,
    pruning_params: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    checkpoint_sha: str | None = None,
) -> int:
    """Store the checkpoint and register (or, on a retried job, update) the model row.

    Args:
        report: compression report against the original (backend.pruning.report); default:
            the model's own sparsity report.
        checkpoint_sha: an already stored checkpoint (otherwise ``model`` is saved now).
            One job may register several models (IMP rounds); they differ by name.
    """
    if model is None and (checkpoint_sha is None or report is None):
        raise ValueError("save_model needs the model, or its stored checkpoint and report")
    if checkpoint_sha is None:
        assert model is not None
        checkpoint_sha = store_checkpoint(ctx, model, architecture, arch_kwargs)
    if report is None:
        assert model is not None
        report = own_report(model)
    input_shape: list[int] | None = None
    num_classes: int | None = None
    if dataset_id is not None:
        with ctx.session() as s:
            ds_row = s.get(DatasetRow, dataset_id)
            input_shape = [int(d) for d in ds_row.input_shape] if ds_row is not None else None
            classes = ds_row.num_classes if ds_row is not None else None
        if input_shape is not None:
            num_classes = (
                prove_input(model, input_shape, ctx.device) if model is not None else classes
            )
    values = dict(
        name=name,
        architecture=architecture,
        arch_kwargs=arch_kwargs,
        dataset_id=dataset_id,
        parent_id=parent_id,
        pruning_method=pruning_method,
        pruning_params=pruning_params,
        sparsity=float(report["sparsity"]),
        n_params=int(report["params"]),
        n_nonzero=int(report["nonzero"]),
        accuracy=accuracy,
        sparsity_report=report,
        checkpoint_sha=checkpoint_sha,
        input_shape=input_shape,
        num_classes=num_classes,
        regions_unsupported=regions_unsupported(model) if model is not None else None,
        job_id=job.id,
    )
    with ctx.session() as s:
        # A retried job updates the row its earlier attempt wrote: never two results.
        row = s.scalars(
            select(ModelRow).where(ModelRow.job_id == job.id, ModelRow.name == name)
        ).first()
        if row is None:
            row = ModelRow(**values)
            s.add(row)
        else:
            for k, v in values.items():
                setattr(row, k, v)
        s.flush()
        return row.id
