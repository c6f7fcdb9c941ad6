"""The import_model job: validate an uploaded checkpoint and register it as a model.

The raw upload is already in the artifact store (``spec.upload_sha``); it is read with
:func:`models.importer.read_checkpoint` (never unpickled beyond torch's weights-only
allow-list, keys and shapes checked against the named architecture, non-finite weights
refused), evaluated on its dataset when one is named, and stored in PruneScope's own
checkpoint format with its masks, so jobs and comparisons use it like any other model. An
upload named as the pruned child of another model (``parent_id``) gets the same compression
report a prune job writes, so it compares with its original as if it had been pruned here.
An ONNX upload (:mod:`models.onnx_graph`) also stores its graph without weights, from which the
architecture ``"onnx"`` rebuilds it, and must run on a few of its dataset's samples.
"""

from __future__ import annotations

from typing import Any

import torch

from backend.data.batches import model_input
from backend.data.registry import ArrayDataset
from backend.db.tables import DatasetRow, JobRow, ModelRow
from backend.jobs.common import (
    JobInputError,
    accuracy,
    forget_upload,
    load_dataset,
    load_model,
    save_model,
    tensors,
)
from backend.jobs.context import JobContext
from backend.jobs.specs import ImportModelSpec
from backend.pruning.report import compression_report
from models.importer import CheckpointError, read_checkpoint
from models.registry import fill_kwargs, is_known


def import_kwargs(
    ctx: JobContext, spec: ImportModelSpec, parent: ModelRow | None, dataset_id: int | None
) -> dict[str, Any]:
    """The architecture's kwargs: the user's, over the parent's (a pruned child keeps its
    original's architecture), completed from the dataset (classes, channels, image size for
    ViTs) as a train job would, so that a timm/torchvision checkpoint needs no arguments."""
    kwargs = dict(spec.arch_kwargs)
    if spec.architecture is None or not is_known(spec.architecture):
        return kwargs  # PruneScope's own files carry theirs; unknown names fail in the reader
    if parent is not None and parent.architecture == spec.architecture:
        kwargs = {**parent.arch_kwargs, **kwargs}
    if dataset_id is not None:
        with ctx.session() as s:
            ds = s.get(DatasetRow, dataset_id)
            if ds is not None:
                kwargs = fill_kwargs(spec.architecture, kwargs, ds.input_shape, ds.num_classes)
    return kwargs


LEAVE_EMPTY = "; leave the architecture empty to take the parent's, with its arguments"


def parent_note(spec: ImportModelSpec, parent: ModelRow | None, message: str) -> str:
    """What the message of a checkpoint refused for its architecture (one naming it) adds
    about the parent: that the architecture tried was the parent's (the server fills it in
    when the upload names none), or that it is not the parent's."""
    if parent is None or spec.architecture is None or spec.architecture not in message:
        return ""
    if spec.architecture == parent.architecture:
        return (
            f" (the architecture and its arguments are those of the parent model {parent.id}, "
            "which a pruned model keeps)"
        )
    return (
        f" (parent model {parent.id} is a {parent.architecture}: a pruned model keeps its "
        f"original's architecture{LEAVE_EMPTY})"
    )


def onnx_classes(model: torch.nn.Module, ds: ArrayDataset, device: str, dataset_id: int) -> int:
    """The number of logits an imported ONNX graph gives on a few of the dataset's samples;
    a graph that does not run on them (fixed batch size, other input shape) is refused."""
    x, _ = tensors(ds, "test")
    batch = model_input(x[:3].to(device))  # 3: not the 1 or 2 a fixed-batch export was traced with
    try:
        with torch.no_grad():
            logits = model(batch)
    except Exception as exc:  # whatever the converted graph raises, the user gets one reason
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise JobInputError(
            f"the ONNX graph does not run on a batch of {tuple(batch.shape)} from dataset "
            f"{dataset_id}: {first}. Export it with a dynamic batch dimension and the "
            "dataset's input shape (see README, ONNX)"
        ) from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(batch):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise JobInputError(
            f"the ONNX graph gives {shape} for a batch of {len(batch)}; PruneScope needs logits "
            "of shape (N, classes)"
        )
    return int(logits.shape[1])


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = ImportModelSpec.model_validate(job.spec)
    ctx.report(0.05, "reading the checkpoint", force=True)
    parent_row, parent = None, None
    if spec.parent_id is not None:
        parent_row, parent = load_model(ctx, spec.parent_id)
    dataset_id = spec.dataset_id or (parent_row.dataset_id if parent_row else None)
    arch_kwargs = import_kwargs(ctx, spec, parent_row, dataset_id)
    try:
        with ctx.store.local_path(spec.upload_sha) as path:
            imported = read_checkpoint(
                path, spec.architecture, arch_kwargs, max_params=ctx.settings.max_params
            )
    except CheckpointError as exc:
        forget_upload(ctx, spec.upload_sha)
        # the stored copy is named by its sha256: say the user's file name instead
        shown = repr(spec.filename) if spec.filename else "the upload"
        message = str(exc).replace(f"'{spec.upload_sha}'", shown).replace(spec.upload_sha, shown)
        raise CheckpointError(message + parent_note(spec, parent_row, message)) from None
    model = imported.model.to(ctx.device).eval()
    ctx.check_cancelled()

    acc = None
    report = None
    if dataset_id is not None:
        ctx.report(0.4, "evaluating on the dataset", force=True)
        ds_row, ds = load_dataset(ctx, dataset_id)
        classes = imported.arch_kwargs.get("num_classes")
        if imported.format == "onnx":
            classes = onnx_classes(model, ds, ctx.device, ds_row.id)
        if classes is not None and int(classes) != ds.num_classes:
            raise JobInputError(
                f"dataset {ds_row.id} ({ds_row.name!r}) has {ds.num_classes} classes but the "
                f"checkpoint predicts {classes}"
            )
        acc = accuracy(model, ds, ctx.device, should_stop=ctx.should_stop)
        if parent is not None:
            if parent_row is not None and parent_row.architecture != imported.architecture:
                leave = "" if imported.format == "onnx" else LEAVE_EMPTY
                raise JobInputError(
                    f"parent model {parent_row.id} is a {parent_row.architecture}, the upload a "
                    f"{imported.architecture}: a pruned model keeps its original's architecture"
                    f"{leave}"
                )
            ctx.report(0.7, "compression report against the parent", force=True)
            x, _ = tensors(ds, "test")
            example = model_input(x[:64].to(ctx.device))
            report = compression_report(parent, model, example, device=ctx.device)
    ctx.check_cancelled()
    ctx.report(0.9, "storing the model", force=True)
    if imported.graph is not None:
        # an imported ONNX model is rebuilt from its stored graph (the "onnx" architecture)
        stored = ctx.store.put_bytes(imported.graph)
        assert stored == imported.arch_kwargs["graph_sha"]
    name = spec.name or spec.filename or f"uploaded {imported.architecture}"
    model_id = save_model(
        ctx,
        job,
        model,
        name=name,
        architecture=imported.architecture,
        arch_kwargs=imported.arch_kwargs,
        dataset_id=dataset_id,
        accuracy=acc,
        parent_id=spec.parent_id,
        pruning_method="external" if imported.sparsity > 0 or spec.parent_id else None,
        pruning_params={
            "source": "upload",
            "filename": spec.filename,
            "format": imported.format,
            "masks": imported.masks,
        },
        report=report,
    )
    with ctx.session() as s:
        row = s.get(ModelRow, model_id)
        assert row is not None
        row.upload_sha = spec.upload_sha
    return {
        "model_id": model_id,
        "architecture": imported.architecture,
        "arch_kwargs": imported.arch_kwargs,
        "format": imported.format,
        "masks": imported.masks,
        "sparsity": imported.sparsity,
        "n_params": imported.n_params,
        "n_nonzero": imported.n_nonzero,
        "layers": imported.layers,
        "accuracy": acc,
        "warnings": imported.warnings,
    }
