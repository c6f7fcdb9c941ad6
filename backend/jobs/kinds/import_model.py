"""The import_model job: validate an uploaded checkpoint and register it as a model.

The raw upload is already in the artifact store (``spec.upload_sha``); it is read with
:func:`models.importer.read_checkpoint` (never unpickled beyond torch's weights-only
allow-list, keys and shapes checked against the named architecture, non-finite weights
refused), evaluated on its dataset when one is named, and stored in PruneScope's own
checkpoint format with its masks, so jobs and comparisons use it like any other model. An
upload named as the pruned child of another model (``parent_id``) gets the same compression
report a prune job writes, so it compares with its original as if it had been pruned here.
"""

from __future__ import annotations

from typing import Any

from backend.db.tables import JobRow, ModelRow
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


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = ImportModelSpec.model_validate(job.spec)
    ctx.report(0.05, "reading the checkpoint", force=True)
    parent_row, parent = None, None
    if spec.parent_id is not None:
        parent_row, parent = load_model(ctx, spec.parent_id)
    dataset_id = spec.dataset_id or (parent_row.dataset_id if parent_row else None)
    try:
        with ctx.store.local_path(spec.upload_sha) as path:
            imported = read_checkpoint(path, spec.architecture, spec.arch_kwargs)
    except CheckpointError as exc:
        forget_upload(ctx, spec.upload_sha)
        # the stored copy is named by its sha256: say the user's file name instead
        shown = repr(spec.filename) if spec.filename else "the upload"
        message = str(exc).replace(f"'{spec.upload_sha}'", shown).replace(spec.upload_sha, shown)
        raise CheckpointError(message) from None
    model = imported.model.to(ctx.device).eval()
    ctx.check_cancelled()

    acc = None
    report = None
    if dataset_id is not None:
        ctx.report(0.4, "evaluating on the dataset", force=True)
        ds_row, ds = load_dataset(ctx, dataset_id)
        classes = imported.arch_kwargs.get("num_classes")
        if classes is not None and int(classes) != ds.num_classes:
            raise JobInputError(
                f"dataset {ds_row.id} ({ds_row.name!r}) has {ds.num_classes} classes but the "
                f"checkpoint predicts {classes}"
            )
        acc = accuracy(model, ds, ctx.device)
        if parent is not None:
            if parent_row is not None and parent_row.architecture != imported.architecture:
                raise JobInputError(
                    f"parent model {parent_row.id} is a {parent_row.architecture}, the upload a "
                    f"{imported.architecture}: a pruned model keeps its original's architecture"
                )
            ctx.report(0.7, "compression report against the parent", force=True)
            x, _ = tensors(ds, "test")
            report = compression_report(parent, model, x[:64].to(ctx.device), device=ctx.device)
    ctx.check_cancelled()
    ctx.report(0.9, "storing the model", force=True)
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
