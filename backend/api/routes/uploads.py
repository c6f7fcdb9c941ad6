"""Uploads: checkpoints and datasets, streamed to the artifact store, validated by a job.

The request body is streamed to disk while it is hashed (memory stays bounded whatever the
size; :mod:`backend.api.uploads`), refused with 413 past ``Settings.max_upload_bytes``, checked
for the right kind of file from its first bytes (422 otherwise), deduplicated by sha256, and
only then published to the store and handed to an ``import_model`` / ``import_dataset`` job,
which reads it without trusting it and registers the model or dataset. The API process never
imports torch for an upload.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path, PurePath
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import ExecutorDep, SessionDep, SettingsDep, StoreDep, refused
from backend.api.errors import DATASET_NAME_TAKEN
from backend.api.schemas import UploadPublic, errors
from backend.api.uploads import Received, receive_upload
from backend.db.tables import DatasetRow, ModelRow
from backend.jobs import submit
from backend.jobs.executor import Executor
from backend.jobs.specs import ImportDatasetSpec, ImportModelSpec
from backend.storage import ArtifactStore

router = APIRouter(tags=["uploads"])

BODY_DOC = (
    "multipart/form-data with one part `file` (streamed; the answer comes once it is stored) "
    "and the text fields listed in the description"
)

MULTIPART = {"requestBody": {"content": {"multipart/form-data": {}}, "description": BODY_DOC}}
DEDUPLICATED = "The identical file was already imported with these options: nothing new is stored"


def sniff_checkpoint(path: Path) -> str:
    """What a checkpoint file is, from its first bytes; 422 when it is none of the formats."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        size = fh.seek(0, 2)
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        if n <= size - 8:
            return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "onnx zip" if _zip_holds_onnx(path) else "torch zip"
    if head[:1] == b"\x80":  # a pickle stream: torch's legacy format (read weights-only)
        return "torch legacy"
    # an onnx.ModelProto: field 1 (ir_version, a small varint), then another ModelProto field
    # (the test of models.onnx_graph.looks_like_onnx, which this torch-free module cannot import)
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 0x7F and head[2] in _ONNX_TAGS:
        return "onnx"
    shown = head[:8].hex(" ")
    raise HTTPException(
        status_code=422,
        detail=f"Not a checkpoint: the file starts with bytes {shown}; upload a safetensors "
        "file, a state_dict saved with torch.save, or an ONNX model (.onnx, or a .zip of it "
        "and its external data)",
    )


ONNX_FORMATS = ("onnx", "onnx zip")  # what sniff_checkpoint calls an ONNX model
_ONNX_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xAA})


def _zip_holds_onnx(path: Path) -> bool:
    """A zip with an ``*.onnx`` file (and its external data) rather than torch's data.pkl."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False  # the import job says what is wrong with it
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return False
    return any(n.lower().endswith(".onnx") for n in names)


def sniff_dataset(path: Path) -> str:
    """What container a dataset upload is, from its first bytes (the job checks the rest)."""
    with open(path, "rb") as fh:
        head = fh.read(262)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    raise HTTPException(
        status_code=422,
        detail="Not a dataset archive: upload a .npz, a CIFAR-10 or CIFAR-10-C archive, MNIST "
        "idx files in a zip or tar, or a zip of an image folder",
    )


def _spec(session: Session, kind: str, received: Received) -> Any:
    """The import job's spec from the form's text fields and the stored file, validated as
    every spec is (backend.jobs.submit); 422 naming the first bad field ("parent_id: ...")."""
    try:
        fields = submit.form_fields(received.fields)
        raw = {**fields, "upload_sha": received.sha256, "filename": received.filename}
        return submit.validate(session, kind, raw)
    except submit.SpecInvalid as exc:
        raise refused(exc, prefix="") from exc


@router.post(
    "/models/upload",
    response_model=UploadPublic,
    status_code=201,
    responses={200: {"model": UploadPublic, "description": DEDUPLICATED}, **errors(413, 422, 503)},
    openapi_extra={
        "requestBody": {"content": {"multipart/form-data": {}}, "description": BODY_DOC}
    },
)
async def upload_model(
    request: Request,
    response: Response,
    session: SessionDep,
    store: StoreDep,
    executor: ExecutorDep,
    settings: SettingsDep,
) -> UploadPublic:
    """Upload a checkpoint (or an ONNX model): fields `architecture` (registry name; optional
    for PruneScope's own files and ONNX, and with `parent_id`: then the parent's, with its
    arguments), `arch_kwargs` (JSON object), `name`, `parent_id` (the original it was pruned
    from), `dataset_id`. Answers once stored; the import job validates and registers it."""
    received = await receive_upload(request, settings.max_upload_bytes, store.spool_dir())
    try:
        fmt = sniff_checkpoint(received.path)
        spec: ImportModelSpec = _spec(session, "import_model", received)
        given = submit.form_fields(received.fields)  # parsed by _spec already: no error
        if fmt in ONNX_FORMATS and "architecture" not in given:
            # an ONNX file carries its own architecture: the parent's is not filled in for it
            unfilled = {"architecture": None, "arch_kwargs": given.get("arch_kwargs", {})}
            spec = spec.model_copy(update=unfilled)
        same = session.scalars(
            select(ModelRow).where(ModelRow.upload_sha == received.sha256).order_by(ModelRow.id)
        ).all()
        for row in same:
            if (spec.architecture in (None, row.architecture)) and row.parent_id == spec.parent_id:
                received.discard()
                response.status_code = 200
                return _public(received, "model", fmt, model_id=row.id, deduplicated=True)
    except BaseException:
        received.discard()
        raise
    store.adopt(received.path, received.sha256)
    job = _submit(session, executor, store, "import_model", spec, received.sha256)
    return _public(received, "model", fmt, job_id=job)


@router.post(
    "/datasets/upload",
    response_model=UploadPublic,
    status_code=201,
    responses={
        200: {"model": UploadPublic, "description": DEDUPLICATED},
        **errors(409, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {"content": {"multipart/form-data": {}}, "description": BODY_DOC}
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    session: SessionDep,
    store: StoreDep,
    executor: ExecutorDep,
    settings: SettingsDep,
) -> UploadPublic:
    """Upload a dataset: fields `format` (npz, cifar10, cifar10c, mnist, imagefolder; default:
    detected), `name`, `test_fraction`, `seed`, `corruption` and `severity` (CIFAR-10-C).
    Answers once stored; the import job reads, validates and registers it."""
    received = await receive_upload(request, settings.max_upload_bytes, store.spool_dir())
    try:
        fmt = sniff_dataset(received.path)
        spec: ImportDatasetSpec = _spec(session, "import_dataset", received)
        name = spec.name or PurePath(received.filename).name
        existing = session.scalars(select(DatasetRow).where(DatasetRow.name == name)).first()
        if existing is not None:
            options = spec.model_dump(exclude={"upload_sha", "filename", "name"})
            params = existing.params or {}
            if existing.upload_sha == received.sha256 and all(
                params.get(k) == v for k, v in options.items()
            ):
                received.discard()
                response.status_code = 200
                return _public(received, "dataset", fmt, dataset_id=existing.id, deduplicated=True)
            raise HTTPException(status_code=409, detail=DATASET_NAME_TAKEN)
        spec = spec.model_copy(update={"name": name})
    except BaseException:
        received.discard()
        raise
    store.adopt(received.path, received.sha256)
    job = _submit(session, executor, store, "import_dataset", spec, received.sha256)
    return _public(received, "dataset", fmt, job_id=job)


def _submit(
    session: Session,
    executor: Executor,
    store: ArtifactStore,
    kind: str,
    spec: ImportModelSpec | ImportDatasetSpec,
    sha: str,
) -> int:
    try:
        return submit.enqueue(session, executor, kind, spec).id
    except submit.QueueUnavailable as exc:
        store.delete(sha)  # nothing will read the raw upload: do not keep it
        raise refused(exc) from exc


def _public(
    received: Received, kind: Literal["model", "dataset"], fmt: str, **values: Any
) -> UploadPublic:
    return UploadPublic(
        kind=kind,
        sha256=received.sha256,
        size=received.size,
        filename=received.filename,
        format=fmt,
        **values,
    )
