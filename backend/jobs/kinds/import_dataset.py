"""The import_dataset job: read an uploaded dataset file and register it.

The raw upload is in the artifact store (``spec.upload_sha``); :func:`backend.data.formats.
read_dataset` checks archives before reading anything (no absolute paths, no '..', no links,
bounded sizes and compression ratios), unpickles CIFAR batches with an allow-list only, and
validates shapes, dtypes and labels. The arrays are stored like a built-in dataset's, with the
upload's summary (format, class balance, normalisation statistics) in the row's params.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from sqlalchemy import select

from backend.data.formats import DatasetFormatError, read_dataset
from backend.db.tables import DatasetRow, JobRow
from backend.jobs.common import JobInputError, forget_upload
from backend.jobs.context import JobContext
from backend.jobs.specs import ImportDatasetSpec


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    spec = ImportDatasetSpec.model_validate(job.spec)
    ctx.report(0.05, "reading the dataset", force=True)
    try:
        with ctx.store.local_path(spec.upload_sha) as path:
            ds, summary = read_dataset(
                path,
                spec.format,
                test_fraction=spec.test_fraction,
                seed=spec.seed,
                corruption=spec.corruption,
                severity=spec.severity,
            )
    except DatasetFormatError as exc:
        forget_upload(ctx, spec.upload_sha)
        shown = repr(spec.filename) if spec.filename else "the upload"
        message = str(exc).replace(f"'{spec.upload_sha}'", shown).replace(spec.upload_sha, shown)
        raise DatasetFormatError(message) from None
    ctx.check_cancelled()
    ctx.report(0.8, "storing the arrays", force=True)
    name = spec.name or PurePath(spec.filename).name or f"upload {spec.upload_sha[:8]}"
    options = spec.model_dump(exclude={"upload_sha", "filename", "name"})
    sha = ctx.store.put_bytes(ds.to_npz_bytes())
    with ctx.session() as s:
        # a retried job updates what its earlier attempt registered
        row = s.scalars(select(DatasetRow).where(DatasetRow.name == name)).first()
        if row is not None and row.upload_sha != spec.upload_sha:
            raise JobInputError(f"a dataset named {name!r} already exists; choose another name")
        if row is None:
            row = DatasetRow(name=name)
            s.add(row)
        row.source = f"upload:{summary['format']}"
        row.params = {**options, "filename": spec.filename, "summary": summary}
        row.num_classes = ds.num_classes
        row.class_names = ds.class_names
        row.input_shape = ds.input_shape
        row.n_train, row.n_test = len(ds.y_train), len(ds.y_test)
        row.artifact_sha = sha
        row.upload_sha = spec.upload_sha
        s.flush()
        dataset_id = row.id
    return {"dataset_id": dataset_id, "summary": summary}
