"""Streaming multipart uploads: memory stays bounded whatever the file's size.

FastAPI's ``UploadFile`` would first spool the whole body to a temporary file and only then
call the handler, so a size limit could only be enforced after the fact. Here the request body
is fed chunk by chunk to python-multipart's push parser; the file part goes straight to a
temporary file inside the artifact store (so publishing it is a rename on the same
filesystem), hashed with sha256 on the way, and the upload is refused with 413 the moment it
passes the limit (or before reading anything, when Content-Length already says so).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024  # form fields are names and small JSON, never data


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"Upload too large: the limit is {limit} bytes ({limit / 2**20:.0f} MiB); "
        "set PRUNESCOPE_MAX_UPLOAD_BYTES to change it",
    )


@dataclass
class Received:
    """One uploaded file on local disk plus the form's text fields."""

    path: Path
    filename: str
    size: int
    sha256: str
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def receive_upload(request: Request, limit: int, tmp_dir: Path | None = None) -> Received:
    """Read a multipart/form-data request with exactly one file part (named ``file``).

    Args:
        request: the incoming request; its body is consumed here.
        limit: largest accepted file in bytes (413 beyond).
        tmp_dir: where the file is spooled (default: the system temp folder).

    Raises:
        HTTPException: 413 when too large, 422 when the body is not a multipart form with one
            ``file`` part.
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise HTTPException(
            status_code=422, detail="Send the file as multipart/form-data with a 'file' part"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise too_large(limit)  # refused before a single byte is read

    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-", suffix=".tmp")
    out = os.fdopen(fd, "wb")
    digest = hashlib.sha256()
    state: dict[str, Any] = {"headers": {}, "field": b"", "header": b"", "value": b""}
    fields: dict[str, bytearray] = {}
    files: list[str] = []
    size = 0

    def on_part_begin() -> None:
        state["headers"], state["part"] = {}, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disp:
            if files:
                raise HTTPException(status_code=422, detail="Send one file per upload")
            files.append(disp[b"filename"].decode("utf-8", "replace"))
            state["part"] = ("file", name)
        else:
            fields[name] = bytearray()
            state["part"] = ("field", name)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal size
        kind, name = state["part"]
        chunk = data[start:end]
        if kind == "file":
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            digest.update(chunk)
            out.write(chunk)
        else:
            fields[name] += chunk
            if len(fields[name]) > MAX_FIELD_BYTES:
                raise HTTPException(status_code=422, detail=f"Form field {name!r} is too long")

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    }
    parser = MultipartParser(params[b"boundary"], callbacks)
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise HTTPException(status_code=422, detail=f"Malformed multipart body: {exc}") from exc
        out.flush()
        os.fsync(out.fileno())
        out.close()
        if not files:
            raise HTTPException(status_code=422, detail="The form has no 'file' part")
        if size == 0:
            raise HTTPException(status_code=422, detail="The uploaded file is empty")
    except BaseException:
        out.close()
        os.unlink(tmp_name)
        raise
    return Received(
        path=Path(tmp_name),
        filename=files[0],
        size=size,
        sha256=digest.hexdigest(),
        fields={k: v.decode("utf-8", "replace") for k, v in fields.items()},
    )
