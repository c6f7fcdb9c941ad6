"""Datasets: register built-ins, list, read, and serve sample images."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deleting import (
    DELETE_RESPONSES,
    CascadeQuery,
    DeleteDryRunQuery,
    NoBody,
    WhoDep,
    delete_answer,
)
from backend.api.deps import SessionDep, StoreDep, get_or_404, load_dataset_arrays
from backend.api.errors import DATASET_NAME_TAKEN
from backend.api.public import DATASET_NOT_FOUND
from backend.api.schemas import (
    DatasetCreate,
    DatasetPublic,
    DatasetsPublic,
    DeletionPublic,
    IdPath,
    IndexPath,
    errors,
)
from backend.data import ArrayDataset, UnknownDatasetError
from backend.data import create as create_dataset
from backend.data.images import sample_png
from backend.data.stored import float_inputs, store_dataset
from backend.db.tables import DatasetRow
from backend.storage import ArtifactStore

router = APIRouter(prefix="/datasets", tags=["datasets"])

NOT_FOUND = DATASET_NOT_FOUND


@router.get("", response_model=DatasetsPublic)
def list_datasets(session: SessionDep) -> DatasetsPublic:
    """All registered datasets."""
    rows = session.scalars(select(DatasetRow).order_by(DatasetRow.id)).all()
    return DatasetsPublic(data=[DatasetPublic.model_validate(r) for r in rows], count=len(rows))


@router.post("", response_model=DatasetPublic, status_code=201, responses=errors(400, 409, 422))
def create_dataset_route(body: DatasetCreate, session: SessionDep, store: StoreDep) -> DatasetRow:
    """Register a built-in dataset (stored once as an artifact)."""
    name = body.name or body.builtin
    if session.scalars(select(DatasetRow).where(DatasetRow.name == name)).first():
        raise HTTPException(status_code=409, detail=DATASET_NAME_TAKEN)
    try:
        ds = create_dataset(body.builtin, **body.params)
    except UnknownDatasetError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=f"bad dataset params: {exc}") from exc
    return register_arrays(session, store, ds, name=name, source=f"builtin:{body.builtin}")


def register_arrays(
    session: Session, store: ArtifactStore, ds: ArrayDataset, *, name: str, source: str
) -> DatasetRow:
    """Store a dataset's arrays and add its row (shared by the API and the CLI)."""
    sha = store_dataset(store, ds)
    row = DatasetRow(
        name=name,
        source=source,
        params=ds.params,
        num_classes=ds.num_classes,
        class_names=ds.class_names,
        input_shape=ds.input_shape,
        n_train=len(ds.y_train),
        n_test=len(ds.y_test),
        artifact_sha=sha,
    )
    session.add(row)
    session.commit()
    return row


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=errors(404, 422))
def read_dataset(dataset_id: IdPath, session: SessionDep) -> DatasetRow:
    """One dataset."""
    return get_or_404(session, DatasetRow, dataset_id, NOT_FOUND)  # type: ignore[no-any-return]


@router.delete(
    "/{dataset_id}",
    response_model=DeletionPublic,
    responses=DELETE_RESPONSES,
    dependencies=[NoBody],
)
def delete_dataset(
    dataset_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    who: WhoDep,
    cascade: CascadeQuery = False,
    dry_run: DeleteDryRunQuery = False,
) -> DeletionPublic:
    """Delete a dataset: 409 naming the models, analyses and comparisons that use it, unless
    `cascade=true` (they go too, as with a model's cascade); 409 while a job works on it."""
    return delete_answer(
        session, store, "dataset", dataset_id, who, cascade=cascade, dry_run=dry_run
    )


@router.get(
    "/{dataset_id}/images/{split}/{index}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **errors(404, 422)},
)
def read_sample_image(
    dataset_id: IdPath,
    split: Literal["train", "test"],
    index: IndexPath,
    session: SessionDep,
    store: StoreDep,
) -> Response:
    """One sample of a dataset as a PNG image."""
    row = get_or_404(session, DatasetRow, dataset_id, NOT_FOUND)
    ds = load_dataset_arrays(store, row.artifact_sha)
    x, _ = ds.split(split)
    if not 0 <= index < len(x):
        raise HTTPException(status_code=404, detail="Sample not found")
    try:
        png = sample_png(float_inputs(x[index]))
    except ValueError as exc:
        raise HTTPException(status_code=422, detail="Dataset samples are not images") from exc
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})
