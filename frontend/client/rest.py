"""What scripts need besides the dashboard's endpoints: files streamed up (multipart, never read
into memory whole) and down (hashed while they are written, checked against the server's
``X-Content-SHA256``), and jobs followed to the end with progress bars. ``backend.cli`` and the
notebook client (``from prunescope import Client``) are both a :class:`RestClient`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import httpx

from frontend.client.api import ApiClient
from frontend.client.types import JobPublic, UploadPublic

# uploads: the answer comes once the server has stored and hashed the whole file; downloads: the
# server may export (ONNX) before the first byte
TRANSFER_READ_TIMEOUT_S = 600.0
UPLOAD_CHUNK_BYTES = 1 << 20
DOWNLOAD_CHUNK_BYTES = 1 << 20
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")
SHA256_HEADER = "X-Content-SHA256"
# GET /api/models/{id}/download?format=...: the formats and the file suffix of each
DOWNLOAD_FORMATS: dict[str, str] = {
    "safetensors": ".safetensors",
    "pt": ".pt",
    "onnx": ".onnx",
    "prunescope": ".prunescope.safetensors",
}


class ClientError(Exception):
    """A failure on this side, told in one line: a missing file, a file that changed while it was
    sent, a download that does not match its checksum, a job that did not succeed."""


class ChecksumError(ClientError):
    """A download whose bytes do not match the server's ``X-Content-SHA256`` (or its length)."""


class JobFailedError(ClientError):
    """A followed job ended ``failed`` or ``cancelled``; ``job`` is its last state."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.job = dict(job)
        super().__init__(f"job {job['id']} ({job['kind']}) {job['status']}: {job.get('error')}")


# ------------------------------------------------------------------------------------ uploads
def _header_value(text: str) -> str:
    """A quoted Content-Disposition parameter, escaped as browsers do (WHATWG form encoding)."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFile:
    """A multipart/form-data body streamed from a file, never read into memory whole.

    The text fields come first, then the file part in ``chunk_size`` pieces, then the closing
    boundary. Everything but the file's bytes is built up front, so the exact Content-Length is
    known before the first byte is sent (no chunked transfer encoding).

    Args:
        path: the file to send.
        fields: text fields; None values are left out.
        file_field: the name of the file part.
        boundary: the multipart boundary (random when None).
        chunk_size: bytes read from the file at a time.
        filename: the file name the server is told (default: ``path``'s).

    Raises:
        ClientError: when ``path`` is not a file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fields: Mapping[str, str | None],
        *,
        file_field: str = "file",
        boundary: str | None = None,
        chunk_size: int = UPLOAD_CHUNK_BYTES,
        filename: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ClientError(f"{self.path}: no such file")
        self.filename = filename or self.path.name
        self.boundary = boundary or f"prunescope-{secrets.token_hex(16)}"
        self.chunk_size = chunk_size
        self.file_size = self.path.stat().st_size
        dash = f"--{self.boundary}\r\n"
        parts = [
            f'{dash}Content-Disposition: form-data; name="{_header_value(name)}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
            if value is not None
        ]
        parts.append(
            f'{dash}Content-Disposition: form-data; name="{_header_value(file_field)}"; '
            f'filename="{_header_value(self.filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        self.head = "".join(parts).encode("utf-8")
        self.tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        self.length = len(self.head) + self.file_size + len(self.tail)

    @property
    def headers(self) -> dict[str, str]:
        """Content-Type (with the boundary) and the exact Content-Length."""
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.length),
        }

    def chunks(self, progress: Callable[[int], object] | None = None) -> Iterator[bytes]:
        """The body, piece by piece; ``progress(n)`` follows each file chunk once it is sent.

        Raises:
            ClientError: when the file changed size since the body was measured.
        """
        yield self.head
        sent = 0
        with open(self.path, "rb") as fh:
            while chunk := fh.read(self.chunk_size):
                sent += len(chunk)
                if sent > self.file_size:
                    break
                yield chunk
                if progress is not None:
                    progress(len(chunk))
        if sent != self.file_size:
            raise ClientError(f"{self.path} changed while it was being uploaded; try again")
        yield self.tail


# ---------------------------------------------------------------------------------- downloads
@dataclass(frozen=True)
class DownloadedFile:
    """A file written by :meth:`RestClient.stream_to_file`, its bytes checked."""

    path: Path
    sha256: str
    size: int


def attachment_filename(header: str | None, fallback: str) -> str:
    """The file name of a ``Content-Disposition: attachment`` header, reduced to a bare name.

    ``filename*=UTF-8''...`` (RFC 6266) wins over ``filename="..."``; anything with a directory
    part keeps only its last component, so a server cannot make a client write outside the
    folder it chose. ``fallback`` when the header names nothing usable.
    """
    found: dict[str, str] = {}
    for part in (header or "").split(";")[1:]:
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        found[key.strip().lower()] = value
    name = ""
    if "filename*" in found:
        charset, _, rest = found["filename*"].partition("'")
        _lang, _, encoded = rest.partition("'")
        name = unquote(encoded, encoding=charset or "utf-8", errors="replace")
    elif "filename" in found:
        name = found["filename"].replace("%22", '"')
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    return name if name not in ("", ".", "..") else fallback


def _optional(value: Any) -> str | None:
    """A form field's text: None stays None (left out), numbers as Python writes them."""
    return None if value is None else repr(value) if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------- client
class RestClient(ApiClient):
    """:class:`~frontend.client.api.ApiClient` plus streamed uploads and downloads and job
    following; the base of the CLI's client and of ``prunescope.Client``.

    Besides :class:`~frontend.client.api.ApiError` it raises :class:`ClientError` for failures
    on this side. Arguments as :class:`~frontend.client.api.ApiClient`'s (a longer default
    timeout; uploads and downloads wait longer still for the server).
    """

    default_timeout = 30.0

    def progress_bar(self, **kwargs: Any) -> Any:
        """A tqdm bar (the terminal kind here; the notebook client shows widgets)."""
        from tqdm import tqdm

        return tqdm(**kwargs)

    def _byte_bar(self, total: int | None, desc: str, show: bool) -> Any:
        return self.progress_bar(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc[:40],
            leave=True,
            disable=not show,
        )

    # uploads --------------------------------------------------------------------------------
    def upload_file(
        self,
        path: str,
        file: str | os.PathLike[str],
        fields: Mapping[str, str | None],
        *,
        filename: str | None = None,
        show_progress: bool = True,
    ) -> Any:
        """POST ``file`` to ``path`` as multipart/form-data (part ``file`` plus the text
        ``fields``), streamed with a byte progress bar; returns the API's answer.

        Raises:
            ClientError: the file is missing or changed while it was sent.
            ApiError: the server refused it (413 too large, 422 not a checkpoint, ...).
        """
        body = MultipartFile(file, fields, filename=filename)
        timeout = httpx.Timeout(self.timeout, read=TRANSFER_READ_TIMEOUT_S)
        with self._byte_bar(body.file_size, f"upload {body.filename}", show_progress) as bar:
            content = body.chunks(bar.update)
            return self._request(
                "POST", path, content=content, headers=body.headers, timeout=timeout
            )

    def upload_model_file(
        self,
        file: str | os.PathLike[str],
        *,
        architecture: str | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
        parent_id: int | None = None,
        dataset_id: int | None = None,
        name: str | None = None,
    ) -> UploadPublic:
        """``POST /api/models/upload``: a checkpoint (safetensors, a ``torch.save`` state_dict,
        a PruneScope checkpoint, ONNX); its import job validates and registers it
        (:meth:`follow_import`)."""
        fields = {
            "architecture": architecture,
            "arch_kwargs": json.dumps(dict(arch_kwargs)) if arch_kwargs else None,
            "name": name,
            "parent_id": _optional(parent_id),
            "dataset_id": _optional(dataset_id),
        }
        return self.upload_file("/api/models/upload", file, fields)

    def upload_dataset_file(
        self, file: str | os.PathLike[str], **options: str | float | int | None
    ) -> UploadPublic:
        """``POST /api/datasets/upload``: a dataset file (npz, CIFAR-10(-C), MNIST idx, image
        folder); ``options``: ``format``, ``name``, ``test_fraction``, ``seed``,
        ``corruption``, ``severity`` (None: the server's default)."""
        fields = {key: _optional(value) for key, value in options.items()}
        return self.upload_file("/api/datasets/upload", file, fields)

    def follow_import(self, answer: Mapping[str, Any]) -> dict[str, Any] | None:
        """The result of an upload's import job, followed to its end; None for a file imported
        before with the same options (``answer``'s ``model_id``/``dataset_id`` name it)."""
        if answer.get("job_id") is None:
            return None
        (job,) = self.follow([int(answer["job_id"])], [f"validate {answer['filename']}"[:40]])
        return dict(job["result"] or {})

    # downloads ------------------------------------------------------------------------------
    def stream_to_file(
        self,
        path: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        params: dict[str, Any] | None = None,
        fallback_name: str = "download",
        show_progress: bool = True,
    ) -> DownloadedFile:
        """GET ``path`` and stream the answer into a file, with a byte progress bar.

        The bytes go to a hidden temporary file beside the target, are hashed on the way, and
        the file is renamed into place only when their sha256 equals the ``X-Content-SHA256``
        header and their count the ``Content-Length``; otherwise nothing is left behind.

        Args:
            path: the route, from the server root.
            dest: the file to write, or an existing folder to write the server's file name
                (``Content-Disposition``) into; None: that name in the current folder.
            params: query parameters.
            fallback_name: the file name when the server sends none.
            show_progress: draw the progress bar.

        Raises:
            ApiError: a non-2xx answer (404 no such model, 422 unknown format, ...).
            ChecksumError: the bytes do not match the header(s).
            ClientError: the server sent no ``X-Content-SHA256``.
        """
        timeout = httpx.Timeout(self.timeout, read=TRANSFER_READ_TIMEOUT_S)
        response = self.send("GET", path, params=params, timeout=timeout, stream=True)
        try:
            return self._save_stream(response, dest, fallback_name, show_progress)
        finally:
            response.close()

    def _save_stream(
        self,
        response: httpx.Response,
        dest: str | os.PathLike[str] | None,
        fallback_name: str,
        show_progress: bool,
    ) -> DownloadedFile:
        expected = (response.headers.get(SHA256_HEADER) or "").strip().lower()
        if not expected:
            raise ClientError(
                f"{response.request.url.path}: the server sent no {SHA256_HEADER} header, so the "
                "download cannot be checked; is the server older than this client?"
            )
        name = attachment_filename(response.headers.get("content-disposition"), fallback_name)
        target = Path(dest) if dest is not None else Path.cwd() / name
        if target.is_dir():
            target = target / name
        if not target.parent.is_dir():
            raise ClientError(f"{target.parent}: no such folder to write {target.name} into")
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                open(part, "wb") as fh,
                self._byte_bar(total, f"download {target.name}", show_progress) as bar,
            ):
                try:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        fh.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
                except httpx.TransportError as exc:
                    raise ChecksumError(
                        f"download of {target.name} broke off after {size} bytes ({exc}); "
                        "nothing was written, try again"
                    ) from exc
            got = digest.hexdigest()
            if total is not None and size != total:
                raise ChecksumError(
                    f"download of {target.name} stopped after {size} of {total} bytes; try again"
                )
            if got != expected:
                raise ChecksumError(
                    f"download of {target.name} is corrupt: its sha256 is {got}, the server "
                    f"announced {expected}; nothing was written"
                )
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return DownloadedFile(target, got, size)

    def download_model(
        self,
        model_id: int,
        dest: str | os.PathLike[str] | None = None,
        *,
        format: str = "prunescope",
        show_progress: bool = True,
    ) -> DownloadedFile:
        """``GET /api/models/{id}/download?format=``, streamed into ``dest`` (see
        :meth:`stream_to_file`) and checked against its ``X-Content-SHA256``.

        Raises:
            ValueError: ``format`` is not one of :data:`DOWNLOAD_FORMATS`.
        """
        if format not in DOWNLOAD_FORMATS:
            raise ValueError(f"format={format!r} should be one of {', '.join(DOWNLOAD_FORMATS)}")
        return self.stream_to_file(
            f"/api/models/{int(model_id)}/download",
            dest,
            params={"format": format},
            fallback_name=f"model-{int(model_id)}{DOWNLOAD_FORMATS[format]}",
            show_progress=show_progress,
        )

    # jobs -----------------------------------------------------------------------------------
    def follow(
        self,
        job_ids: Sequence[int],
        labels: Sequence[str] | None = None,
        *,
        poll_s: float = 0.25,
        timeout_s: float | None = None,
        show_progress: bool = True,
    ) -> list[JobPublic]:
        """Poll jobs until all have ended, with a progress bar each (status: stage).

        Returns:
            The jobs' final states, in the order of ``job_ids``.

        Raises:
            JobFailedError: for the first job that did not succeed (after all have ended).
            TimeoutError: when ``timeout_s`` passes first.
        """
        ids = [int(j) for j in job_ids]
        names = list(labels) if labels is not None else [f"job {j}" for j in ids]
        bars = [
            self.progress_bar(
                total=100,
                desc=label,
                position=i,
                leave=True,
                bar_format="{l_bar}{bar}| {postfix}",
                disable=not show_progress,
            )
            for i, label in enumerate(names)
        ]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        done: dict[int, JobPublic] = {}
        try:
            while True:
                for job_id, bar in zip(ids, bars, strict=True):
                    if job_id in done:
                        continue
                    job = self.get_job(job_id)
                    bar.n = round(100 * job["progress"])
                    bar.set_postfix_str(f"{job['status']}: {job['stage']}"[:60], refresh=False)
                    bar.refresh()
                    if job["status"] in FINAL_JOB_STATUSES:
                        done[job_id] = job
                if len(done) == len(ids):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    running = [j for j in ids if j not in done]
                    raise TimeoutError(f"jobs {running} still running after {timeout_s} s")
                time.sleep(poll_s)
        finally:
            for bar in bars:
                bar.close()
        for job_id in ids:
            if done[job_id]["status"] != "succeeded":
                raise JobFailedError(dict(done[job_id]))
        return [done[j] for j in ids]
