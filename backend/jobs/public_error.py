"""The text a failed job shows to every API reader: the problem, naming the user's file, never
a path of the server.

Readers of a job (anyone with a read token, or the dashboard) see its ``error``. Exceptions
from the readers underneath (safetensors, torch, numpy, the artifact store, the OS) name the
file they were given, and that is the stored artifact (``<artifact root>/ab/<sha256>``), a
download of it in a temporary folder, or a spooled upload: the server's layout, which is
nobody else's business and says nothing to the user, who knows the file by the name they
uploaded it under. :func:`public_error` is the one place that turns an exception into that
text; the full traceback stays in the job row's ``traceback`` column and the worker's log.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import PurePath

ERROR_CHARS = 2000
NEUTRAL = "a stored file"
# what a job that reads one upload calls it when the upload had no file name
NEUTRAL_BY_KIND = {"import_model": "the checkpoint", "import_dataset": "the upload"}

# characters of a path as messages quote it: not whitespace, quotes, brackets or the
# punctuation that follows a path in a sentence ("'/x/y': bad", "(/x/y)", "/x/y, ...")
_PART = r"[^\s'\"<>|,;:()\[\]{}]"
# an absolute path of at least two parts ("/srv/data", "C:\\data\\x"), not inside a word, a
# URL or a relative path; "/api/..." is this server's REST API, which messages cite
_ABSOLUTE = (
    rf"(?<![\w.~:/\\-])(?P<q>['\"]?)"
    rf"(?P<path>/(?!api/){_PART}+(?:/{_PART}*)+|[A-Za-z]:\\{_PART}+(?:\\{_PART}*)*)"
    r"(?P=q)"
)
_ABSOLUTE_RE = re.compile(_ABSOLUTE)


def shown_name(filename: str | None, neutral: str = NEUTRAL) -> str:
    """How a message names the user's file: its name as they uploaded it, quoted
    (``'model.safetensors'``; a client that sent a whole path gets its last part), or
    ``neutral`` without one."""
    if filename:
        name = PurePath(filename.replace("\\", "/")).name
        if name:
            return repr(name)
    return neutral


def server_roots(*roots: str | os.PathLike[str] | None) -> list[str]:
    """The folders whose paths a public message must not show: ``roots`` (data folder,
    artifact store root and URL, spool folder) and the system temporary folder, each also as
    its resolved path (a symlinked /tmp shows either)."""
    found: set[str] = set()
    for root in (*roots, tempfile.gettempdir()):
        if root is None:
            continue
        text = os.fspath(root).rstrip("/\\")
        if len(text) < 2:  # "" or "/": not a root worth hiding, and it would hide everything
            continue
        found.add(text)
        if "://" not in text:
            found.add(os.path.realpath(text))
    return sorted(found, key=len, reverse=True)  # longest first: a root inside another


def scrub_paths(
    text: str,
    *,
    roots: Iterable[str] = (),
    shown: str = NEUTRAL,
    upload_sha: str | None = None,
) -> str:
    """``text`` with every server path replaced by ``shown``.

    Replaced, with the quotes around them: paths under ``roots`` (which may hold spaces),
    every other absolute path, and anything naming the upload's digest (the stored artifact,
    its temporary download ``artifact-<sha[:12]>-...``, the bare digest).

    Args:
        text: A message.
        roots: Server folders, as :func:`server_roots` gives them.
        shown: What to say instead (:func:`shown_name`).
        upload_sha: sha256 of the job's upload, when it has one.
    """

    def say(_match: re.Match[str]) -> str:
        return shown

    for root in roots:
        escaped = re.escape(root)
        # not inside a relative path ("data/tmp/x" when the root is /tmp)
        text = re.sub(rf"(?<![\w.~-])(['\"]?){escaped}(?:{_PART}|[/\\])*\1", say, text)
    if upload_sha:
        text = re.sub(rf"(['\"]?){_PART}*{re.escape(upload_sha[:12])}{_PART}*\1", say, text)
    return _ABSOLUTE_RE.sub(say, text)


def public_error(
    exc: BaseException,
    *,
    roots: Iterable[str] = (),
    filename: str | None = None,
    upload_sha: str | None = None,
    neutral: str = NEUTRAL,
    limit: int = ERROR_CHARS,
) -> str:
    """The error a failed job shows: ``"<ExceptionType>: <message>"`` without server paths.

    Args:
        exc: What the job raised.
        roots: Server folders (:func:`server_roots`).
        filename: The user's name for the job's upload (``spec.filename``), if it has one.
        upload_sha: The upload's sha256 (``spec.upload_sha``), if it has one.
        neutral: What to call the file without a file name ("the checkpoint").
        limit: The most characters kept.
    """
    shown = shown_name(filename, neutral)
    text = f"{type(exc).__name__}: {exc}"
    return scrub_paths(text, roots=roots, shown=shown, upload_sha=upload_sha)[:limit]
