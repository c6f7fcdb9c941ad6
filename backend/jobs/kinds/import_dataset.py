"""The import_dataset job: read an uploaded dataset file and register it.

The raw upload is in the artifact store (``spec.upload_sha``); :func:`backend.data.formats.
read_dataset` checks archives before reading anything (no absolute paths, no '..', no links,
bounded sizes and compression ratios), unpickles CIFAR batches with an allow-list only, and
validates shapes, dtypes and labels. Before any data is read, the memory the import needs is
computed from the upload's headers and refused above ``PRUNESCOPE_MAX_IMPORT_MEMORY``; the
arrays are then read once, written chunk by chunk in the stored form
(:mod:`backend.data.stored`: uint8 stays uint8) and registered with the upload's summary
(format, class balance, normalisation statistics) in the row's params. The job checks for
cancellation between chunks.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.data.formats import DatasetFormatError, import_dataset
from backend.data.stored import spooled
from backend.db.tables import DatasetRow, JobRow
from backend.jobs.common import JobInputError, forget_upload
from backend.jobs.context import JobContext
from backend.jobs.specs import ImportDatasetSpec


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = ImportDatasetSpec.model_validate(job.spec)
    ctx.report(0.05, "reading the dataset", force=True)
    with spooled(ctx.store) as out:
        try:
            with ctx.store.local_path(spec.upload_sha) as path:
                summary = import_dataset(
                    path,
                    out,
                    spec.format,
                    test_fraction=spec.test_fraction,
                    seed=spec.seed,
                    corruption=spec.corruption,
                    severity=spec.severity,
                    max_memory=ctx.settings.max_import_memory,
                    check=ctx.check_cancelled,
                )
        except DatasetFormatError as exc:
            forget_upload(ctx, spec.upload_sha)
            shown = repr(spec.filename) if spec.filename else "the upload"
            message = (
                str(exc).replace(f"'{spec.upload_sha}'", shown).replace(spec.upload_sha, shown)
            )
            raise DatasetFormatError(message) from None
        ctx.check_cancelled()
        ctx.report(0.8, "storing the arrays", force=True)
        sha = ctx.store.put_file(out)
    name = spec.name or PurePath(spec.filename).name or f"upload {spec.upload_sha[:8]}"
    options = spec.model_dump(exclude={"upload_sha", "filename", "name"})
    taken = f"a dataset named {name!r} already exists; choose another name"
    try:
        with ctx.session() as s:
            # a retried job updates what its earlier attempt registered
            row = s.scalars(select(DatasetRow).where(DatasetRow.name == name)).first()
            if row is not None and row.upload_sha != spec.upload_sha:
                raise JobInputError(taken)
            if row is None:
                row = DatasetRow(name=name)
                s.add(row)
            row.source = f"upload:{summary['format']}"
            row.params = {**options, "filename": spec.filename, "summary": summary}
            row.num_classes = summary["num_classes"]
            row.class_names = summary["class_names"]
            row.input_shape = summary["input_shape"]
            row.n_train, row.n_test = summary["n_train"], summary["n_test"]
            row.artifact_sha = sha
            row.upload_sha = spec.upload_sha
            s.flush()
            dataset_id = row.id
    except IntegrityError:  # another upload of the same name registered first
        raise JobInputError(taken) from None
    return {"dataset_id": dataset_id, "summary": summary}
