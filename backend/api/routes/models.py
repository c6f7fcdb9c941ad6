"""Models (networks): list, read and download. Models are created by train and prune jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, get_args

import anyio
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
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
from backend.api.deps import SessionDep, StoreDep, get_or_404
from backend.api.public import MODEL_NOT_FOUND, model_public
from backend.api.schemas import (
    DeletionPublic,
    IdPath,
    IdQuery,
    ModelPublic,
    ModelsPublic,
    errors,
)
from backend.db.tables import DatasetRow, JobRow, ModelRow
from backend.storage import ArtifactCorrupted, ArtifactNotFound, ArtifactStore, VerifyingReader

router = APIRouter(prefix="/models", tags=["models"])
log = logging.getLogger(__name__)

NOT_FOUND = MODEL_NOT_FOUND


@router.get("", response_model=ModelsPublic, responses=errors(422))
def list_models(session: SessionDep, parent_id: IdQuery = None) -> ModelsPublic:
    """All models, optionally only the children of one parent."""
    stmt = select(ModelRow).order_by(ModelRow.id)
    if parent_id is not None:
        stmt = stmt.where(ModelRow.parent_id == parent_id)
    rows = session.scalars(stmt).all()
    return ModelsPublic(data=[model_public(r) for r in rows], count=len(rows))


@router.get("/{model_id}/report", responses=errors(404, 422))
def read_model_report(model_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """The model's compression report: per-layer sparsity, FLOPs, measured latency."""
    row = get_or_404(session, ModelRow, model_id, NOT_FOUND)
    return dict(row.sparsity_report or {})


PRUNING_LIMIT_MISSING = (
    "no pruning limit yet: submit a job of kind 'pruning_limit' for this model "
    '(POST /api/jobs {"kind": "pruning_limit", "spec": {"model_id": ...}})'
)


@router.get("/{model_id}/pruning-limit", responses=errors(404, 422))
def read_pruning_limit(model_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """The model's predicted pruning limit (SCIENCE.md sect. 7): the result of its latest
    succeeded ``pruning_limit`` job, with that job's id and spec."""
    get_or_404(session, ModelRow, model_id, NOT_FOUND)
    jobs = session.scalars(
        select(JobRow)
        .where(JobRow.kind == "pruning_limit", JobRow.status == "succeeded")
        .order_by(JobRow.id.desc())
    )
    for job in jobs:
        if (job.spec or {}).get("model_id") == model_id and job.result:
            return {**job.result, "job_id": job.id, "spec": job.spec}
    raise HTTPException(status_code=404, detail=PRUNING_LIMIT_MISSING)


INSTABILITY_MISSING = (
    "no instability yet: submit a job of kind 'instability' for this model "
    '(POST /api/jobs {"kind": "instability", "spec": {"model_id": ...}}); it needs a model '
    "with a rewind point (a lottery ticket, or any model a prune job made)"
)


@router.get("/{model_id}/instability", responses=errors(404, 422))
def read_instability(model_id: IdPath, session: SessionDep) -> dict[str, Any]:
    """The model's instability (Frankle et al., ICML 2020; SCIENCE.md sect. 4): the test error
    along the linear path between two copies trained from its rewind point and the error
    barrier, from its latest succeeded ``instability`` job, with that job's id and spec."""
    get_or_404(session, ModelRow, model_id, NOT_FOUND)
    jobs = session.scalars(
        select(JobRow)
        .where(JobRow.kind == "instability", JobRow.status == "succeeded")
        .order_by(JobRow.id.desc())
    )
    for job in jobs:
        if (job.spec or {}).get("model_id") == model_id and job.result:
            return {**job.result, "job_id": job.id, "spec": job.spec}
    raise HTTPException(status_code=404, detail=INSTABILITY_MISSING)


@router.get("/{model_id}", response_model=ModelPublic, responses=errors(404, 422))
def read_model(model_id: IdPath, session: SessionDep) -> ModelPublic:
    """One model with its sparsity and accuracy."""
    return model_public(get_or_404(session, ModelRow, model_id, NOT_FOUND))


@router.delete(
    "/{model_id}",
    response_model=DeletionPublic,
    responses=DELETE_RESPONSES,
    dependencies=[NoBody],
)
def delete_model(
    model_id: IdPath,
    session: SessionDep,
    store: StoreDep,
    who: WhoDep,
    cascade: CascadeQuery = False,
    dry_run: DeleteDryRunQuery = False,
) -> DeletionPublic:
    """Delete a model and its analyses: 409 naming the comparisons that use it and the models
    pruned from it, unless `cascade=true` (those comparisons go too, with their share links;
    the pruned models stay, as originals); 409 while a job works on it (README, Deleting)."""
    return delete_answer(session, store, "model", model_id, who, cascade=cascade, dry_run=dry_run)


# download -------------------------------------------------------------------------------------
# The formats other than "prunescope" need torch (models/export.py): it is imported only when a
# conversion is built, once per (checkpoint, format), in a worker thread; the file is then
# stored and served from the artifact store like any other artifact.

DownloadFormat = Literal["safetensors", "pt", "onnx", "prunescope"]
DOWNLOAD_FORMATS: tuple[str, ...] = get_args(DownloadFormat)
# = models.export.EXTENSIONS (not imported: that module needs torch; a test keeps them equal)
EXTENSIONS = {
    "safetensors": "safetensors",
    "pt": "pt",
    "onnx": "onnx",
    "prunescope": "prunescope.safetensors",
}
EXPORT_VERSION = 1  # part of every cache key: bump it when what an export holds changes
DERIVED_DIR = "derived"  # <store root>/derived/<sha[:2]>/<checkpoint sha>/<key>.json
DOWNLOAD_CHUNK = 4 << 20  # fewer thread hops: ~20% less server CPU per download than 1 MiB
MAX_HEADER_BYTES = 100_000_000  # the safetensors library refuses larger headers too
SHA_HEADER = "X-Content-SHA256"
FormatQuery = Annotated[
    DownloadFormat,
    Query(
        alias="format",
        description="safetensors / pt: plain state_dict, masks folded into the weights "
        "(structurally pruned: the smaller network's, with its kept channels); onnx: the "
        "pruned network; prunescope: PruneScope's checkpoint (masks, metadata, lineage)",
    ),
]
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, streamed; Content-Disposition names it "
        "'<model-name-slug>-<id>.<extension>'",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {
            SHA_HEADER: {"description": "sha256 of the body, hex", "schema": {"type": "string"}},
        },
    },
    **errors(404, 409, 422),
}

_build_locks: dict[str, threading.Lock] = {}
_build_locks_guard = threading.Lock()
_served_intact: set[str] = set()  # artifacts this process streamed whole with a matching sha256


@dataclass(frozen=True)
class Download:
    """A file ready to stream: the artifact, its size and the name the browser saves it as."""

    sha: str
    size: int
    filename: str


class ExportFailed(Exception):
    """A conversion could not be built; the message says why (answered with 409)."""


def slug(name: str) -> str:
    """A file-name-safe form of a model's name: ASCII lower case, each run of anything else
    one "-", at most 60 characters ("model" when nothing is left)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    return text or "model"


def lineage(row: ModelRow) -> dict[str, Any]:
    """Where a model comes from, as its downloaded PruneScope checkpoint records it."""
    return {
        "model_id": row.id,
        "name": row.name,
        "parent_id": row.parent_id,
        "pruning_method": row.pruning_method,
        "pruning_params": row.pruning_params,
        "sparsity": row.sparsity,
        "dataset_id": row.dataset_id,
    }


def _index_path(store: ArtifactStore, checkpoint_sha: str, key: str) -> str:
    return f"{store.root}/{DERIVED_DIR}/{checkpoint_sha[:2]}/{checkpoint_sha}/{key}.json"


def read_derived(store: ArtifactStore, checkpoint_sha: str, key: str) -> dict[str, Any] | None:
    """The conversion ``key`` of a checkpoint, if it was built and is still stored."""
    where = _index_path(store, checkpoint_sha, key)
    try:
        raw = Path(where).read_bytes() if store.is_local else store.fs.cat_file(where)
        entry = json.loads(raw)
        return entry if store.exists(str(entry["sha"])) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not built yet, or unreadable: built (again)


def write_derived(
    store: ArtifactStore, checkpoint_sha: str, key: str, entry: dict[str, Any]
) -> None:
    """Record a conversion, atomically (temporary file + rename, as the store writes blobs)."""
    data = json.dumps(entry, sort_keys=True).encode()
    where = _index_path(store, checkpoint_sha, key)
    if store.is_local:
        Path(where).parent.mkdir(parents=True, exist_ok=True)
        # in the store's root: a crash leaves a .tmp that ArtifactStore.clean_temp removes
        fd, tmp = tempfile.mkstemp(dir=str(store.root), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, where)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    tmp = f"{store.root}/tmp/{uuid.uuid4().hex}.tmp"
    store.fs.pipe_file(tmp, data)
    store.fs.makedirs(where.rsplit("/", 1)[0], exist_ok=True)
    store.fs.mv(tmp, where)


class _Prefixed:
    """``head``, then the rest of ``tail``: a stream for ArtifactStore.put_stream."""

    def __init__(self, head: bytes, tail: VerifyingReader) -> None:
        self.head, self.tail, self.size = head, tail, 0

    def read(self, size: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head[:size], self.head[size:]
        else:
            out = self.tail.read(size)
        self.size += len(out)
        return out


def checkpoint_with_lineage(
    store: ArtifactStore, checkpoint_sha: str, facts: dict[str, Any]
) -> tuple[str, int]:
    """Store a copy of a PruneScope checkpoint whose metadata also records its lineage
    (``extra["lineage"]``); returns its sha256 and size. Only the safetensors header is
    rewritten (the tensors' offsets count from its end): no tensor is decoded, no torch."""
    with store.open(checkpoint_sha) as reader:
        (length,) = struct.unpack("<Q", reader.read(8))
        if not 2 <= length <= MAX_HEADER_BYTES:
            raise ExportFailed(f"the stored checkpoint's header is {length} bytes long")
        header = json.loads(reader.read(length))
        metadata = header.get("__metadata__") or {}
        if "prunescope" not in metadata:
            raise ExportFailed("the stored checkpoint has no PruneScope metadata")
        meta = json.loads(metadata["prunescope"])
        extra = meta.get("extra")
        meta["extra"] = {**(extra if isinstance(extra, dict) else {}), "lineage": facts}
        metadata["prunescope"] = json.dumps(meta, sort_keys=True)
        header["__metadata__"] = metadata
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # tensors stay 8-byte aligned, as safetensors writes
        stream = _Prefixed(struct.pack("<Q", len(text)) + text, reader)
        return store.put_stream(stream), stream.size  # type: ignore[arg-type]


def converted(
    store: ArtifactStore,
    checkpoint_sha: str,
    fmt: str,
    input_shape: list[int] | None,
    graph_sha: str | None,
) -> tuple[str, int]:
    """Convert a stored checkpoint to ``fmt`` (models/export.py) and store the file; returns
    its sha256 and size."""
    import torch

    from models.checkpoint import CheckpointError, load_checkpoint
    from models.export import ExportError, export_bytes

    if graph_sha is not None:
        # an imported ONNX graph: the "onnx" architecture reads it from this store
        from models import onnx_graph

        onnx_graph.set_graph_loader(store.get_bytes)
    try:
        with store.local_path(checkpoint_sha) as path:
            model, meta = load_checkpoint(path)
    except CheckpointError as exc:
        raise ExportFailed(f"its checkpoint does not load: {exc}") from None
    example = None
    if fmt == "onnx":
        extra = meta.get("extra") or {}
        shape = (
            input_shape
            or (extra.get("structured") or {}).get("input_shape")
            or meta["kwargs"].get("input_shape")
        )
        if shape:
            example = torch.zeros(2, *[int(d) for d in shape])  # 2: no batch-of-one shortcuts
    graph = store.get_bytes(graph_sha) if graph_sha else None
    try:
        data = export_bytes(model, meta, fmt, example, onnx_graph=graph)
    except ExportError as exc:
        raise ExportFailed(str(exc)) from None
    return store.put_bytes(data), len(data)


def _graph_sha(row: ModelRow) -> str | None:
    """For an imported ONNX graph (architecture "onnx"), the artifact holding the graph."""
    if row.architecture != "onnx":
        return None
    for key in ("graph_sha", "onnx_sha"):
        value = (row.arch_kwargs or {}).get(key)
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def _lock(key: str) -> threading.Lock:
    with _build_locks_guard:
        return _build_locks.setdefault(key, threading.Lock())


def _refused(model_id: int, fmt: str, why: str) -> HTTPException:
    return HTTPException(
        status_code=409, detail=f"Model {model_id} could not be exported as {fmt}: {why}"
    )


def _build(make: Callable[[], tuple[str, int]], model_id: int, fmt: str) -> tuple[str, int]:
    started = time.perf_counter()
    try:
        sha, size = make()
    except ExportFailed as exc:
        raise _refused(model_id, fmt, str(exc)) from None
    except (ArtifactNotFound, ArtifactCorrupted) as exc:
        raise _refused(model_id, fmt, f"its stored checkpoint is unreadable ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a failed conversion is a 409, never a 500
        log.exception("export of model %s as %s failed", model_id, fmt)
        raise _refused(model_id, fmt, f"{type(exc).__name__}: {exc}") from None
    log.info("model %s as %s: built in %.2f s", model_id, fmt, time.perf_counter() - started)
    return sha, size


def prepare_download(session: Session, store: ArtifactStore, model_id: int, fmt: str) -> Download:
    """The file of one download, built and cached on its first request (blocking: run it in a
    worker thread).

    Raises:
        HTTPException: 404 for an unknown model, 409 when its conversion fails.
    """
    row = get_or_404(session, ModelRow, model_id, NOT_FOUND)
    checkpoint_sha = row.checkpoint_sha
    make: Callable[[], tuple[str, int]]
    if fmt == "prunescope":
        facts = lineage(row)
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
        key = f"prunescope-v{EXPORT_VERSION}-{digest[:16]}"

        def make() -> tuple[str, int]:
            return checkpoint_with_lineage(store, checkpoint_sha, facts)

    else:
        # what the model was proven to accept at registration, else its dataset's samples
        proven = getattr(row, "input_shape", None)
        input_shape = [int(d) for d in proven] if proven else None
        if fmt == "onnx" and input_shape is None and row.dataset_id is not None:
            dataset = session.get(DatasetRow, row.dataset_id)
            input_shape = [int(d) for d in dataset.input_shape] if dataset is not None else None
        shape = "x".join(str(d) for d in input_shape or []) or "any"
        key = f"{fmt}-v{EXPORT_VERSION}" + (f"-{shape}" if fmt == "onnx" else "")
        graph_sha = _graph_sha(row)

        def make() -> tuple[str, int]:
            return converted(store, checkpoint_sha, fmt, input_shape, graph_sha)

    filename = f"{slug(row.name)}-{row.id}.{EXTENSIONS[fmt]}"
    session.close()  # a conversion takes seconds: hold no database connection meanwhile

    entry = read_derived(store, checkpoint_sha, key)
    if entry is None:
        with _lock(f"{store.url}:{checkpoint_sha}:{key}"):
            entry = read_derived(store, checkpoint_sha, key)  # built meanwhile by another request
            if entry is None:
                sha, size = _build(make, model_id, fmt)
                entry = {"sha": sha, "size": size, "format": fmt, "checkpoint_sha": checkpoint_sha}
                write_derived(store, checkpoint_sha, key, entry)
    sha = str(entry["sha"])
    try:
        size = store.path(sha).stat().st_size if store.is_local else int(entry["size"])
    except FileNotFoundError:
        raise _refused(model_id, fmt, "its file left the artifact store; try again") from None
    return Download(sha=sha, size=size, filename=filename)


def open_artifact(store: ArtifactStore, sha: str) -> BinaryIO:
    """The artifact for streaming. The first time this process serves it, the reader checks
    its sha256 on the way (a mismatch is logged at the end and aborts the response: the client
    sees a short body); after that a local file is read as it is, which halves the server's
    CPU per download (the client can check X-Content-SHA256 itself)."""
    if store.is_local and sha in _served_intact:
        try:
            return open(store.path(sha), "rb")  # noqa: SIM115 - closed by _chunks
        except FileNotFoundError:
            raise ArtifactNotFound(sha) from None
    return store.open(sha)  # type: ignore[return-value]


async def _chunks(reader: BinaryIO, sha: str) -> AsyncIterator[bytes]:
    """The artifact in chunks, each read in a worker thread."""
    try:
        while chunk := await anyio.to_thread.run_sync(reader.read, DOWNLOAD_CHUNK):
            yield chunk
        if isinstance(reader, VerifyingReader):
            _served_intact.add(sha)  # it reached its end: its digest matched
    except ArtifactCorrupted:
        log.exception("the artifact of a download is corrupted")
        raise
    finally:
        reader.close()


@router.get("/{model_id}/download", response_class=StreamingResponse, responses=DOWNLOAD_RESPONSES)
async def download_model(
    model_id: IdPath, session: SessionDep, store: StoreDep, fmt: FormatQuery = "safetensors"
) -> StreamingResponse:
    """The model as a file: plain weights (safetensors, pt), ONNX, or PruneScope's checkpoint."""
    download = await run_in_threadpool(prepare_download, session, store, model_id, fmt)
    try:
        reader = await run_in_threadpool(open_artifact, store, download.sha)
    except ArtifactNotFound:
        raise _refused(model_id, fmt, "its file left the artifact store; try again") from None
    return StreamingResponse(
        _chunks(reader, download.sha),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(download.size),
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            SHA_HEADER: download.sha,
        },
    )
