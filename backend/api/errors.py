"""Error answers that survive any input, and the one place a lost race for a unique row
becomes a 409.

FastAPI's own handlers echo what failed validation (``input``, ``ctx``) and an
``HTTPException``'s detail as they are: a lone surrogate (valid JSON as ``"\\ud800"``, but not
encodable as UTF-8) turned the 422 into a 500, and a megabyte of input came back three times.
The handlers here answer the same shapes with every string made encodable and cut to size.

A create route checks that a unique name is free before it writes, but two requests can both
pass that check; the database's unique constraint then refuses the second ``INSERT``. That
``IntegrityError`` is answered here with a 409 and a fixed detail for its table, on SQLite and
PostgreSQL alike, instead of a copy of the same ``try``/``except`` in every route.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

DATASET_NAME_TAKEN = "A dataset with this name already exists; choose another name"
MODEL_ALREADY_MEMBER = "The model is already in this comparison"
ROW_TAKEN = "Conflicts with a row written at the same time; read it again, or try again"
# Fixed details of unique violations by table (the ones a create route can lose a race on;
# any other table gets ROW_TAKEN). Token and share-link hashes are random: a clash is
# practically impossible, and a retry gets a new secret.
UNIQUE_DETAILS = {
    "datasets": DATASET_NAME_TAKEN,
    "comparison_models": MODEL_ALREADY_MEMBER,
    "api_tokens": "A token with this secret already exists; create another",
    "share_links": "A share link with this secret already exists; create another",
}

ECHO_CHARS = 200  # an echoed piece of the request (input, ctx, loc): enough to recognise it
DETAIL_CHARS = 10_000  # a message of the server's (msg, an HTTPException's detail)
ECHO_ITEMS = 20  # items of an echoed list or mapping
ECHO_DEPTH = 4  # levels of an echoed structure
MAX_ISSUES = 100  # validation issues in one answer
_INT_BITS = 64  # a larger integer is described, not written (str() refuses > 4300 digits)


def encodable(text: str, limit: int) -> str:
    """``text`` as UTF-8 can carry it, cut to ``limit`` characters.

    Args:
        text: Any Python string: lone surrogates, NUL, a megabyte.
        limit: The most characters kept; a longer text ends with "... (N characters)".

    Returns:
        The text with each unpaired surrogate written as its escape (``"\\ud800"``, six
        characters), NUL kept (JSON escapes it), and cut after ``limit`` characters.
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def echo(value: object, limit: int = ECHO_CHARS, depth: int = 0) -> Any:
    """A JSON-encodable copy of an echoed value, bounded in size.

    Strings go through :func:`encodable`; lists and mappings keep their first
    ``ECHO_ITEMS`` items (then one ``"..."`` marker) to ``ECHO_DEPTH`` levels; numbers stay
    numbers unless JSON cannot write them (non-finite floats, integers past 64 bits); anything
    else (an exception in ``ctx``) is written as its ``str``.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > _INT_BITS:
            return f"an integer of {value.bit_length()} bits"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return encodable(value, limit)
    if isinstance(value, bytes | bytearray):
        return encodable(bytes(value[: limit * 4]).decode("utf-8", "backslashreplace"), limit)
    if depth >= ECHO_DEPTH:
        return "..."
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {encodable(str(k), limit): echo(v, limit, depth + 1) for k, v in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            out["..."] = f"{len(items) - ECHO_ITEMS} more"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        kept = [echo(v, limit, depth + 1) for v in seq[:ECHO_ITEMS]]
        return kept + (["..."] if len(seq) > ECHO_ITEMS else [])
    return encodable(str(value), limit)


def issue(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation issue (``{"type", "loc", "msg", "input"?, "ctx"?}``, as FastAPI answers
    it) with every string encodable: ``loc`` can hold a key of the request (a ``params`` key),
    ``input`` and ``ctx`` are the request's own values."""
    out: dict[str, Any] = {
        "type": encodable(str(error.get("type", "")), ECHO_CHARS),
        "loc": [
            part if isinstance(part, int) and not isinstance(part, bool) else echo(str(part))
            for part in list(error.get("loc", ()))[: ECHO_ITEMS * 2]
        ],
        "msg": encodable(str(error.get("msg", "")), DETAIL_CHARS),
    }
    for key in ("input", "ctx"):
        if key in error:
            out[key] = echo(error[key])
    return out


def public_detail(detail: object) -> Any:
    """An ``HTTPException``'s detail made encodable and bounded: a message (which may quote
    the request), or a dry run's list of validation issues."""
    if isinstance(detail, str):
        return encodable(detail, DETAIL_CHARS)
    if isinstance(detail, list):
        return [
            issue(d) if isinstance(d, Mapping) else echo(d, DETAIL_CHARS)
            for d in detail[:MAX_ISSUES]
        ]
    return echo(detail, DETAIL_CHARS)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a request its schema refuses, surviving any string it echoes."""
    assert isinstance(exc, RequestValidationError)
    issues = [issue(e) for e in list(exc.errors())[:MAX_ISSUES]]
    return JSONResponse({"detail": issues}, status_code=422)


async def http_error(_request: Request, exc: Exception) -> Response:
    """An ``HTTPException`` answered as FastAPI does, its detail made safe to encode."""
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse(
        {"detail": public_detail(exc.detail)}, status_code=exc.status_code, headers=headers
    )


_SQLITE_UNIQUE = re.compile(r"^UNIQUE constraint failed: (\w+)\.")
_SQLITE_UNIQUE_CODES = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
_PG_UNIQUE_VIOLATION = "23505"


def unique_violation_table(exc: IntegrityError) -> str | None:
    """The table whose unique constraint (or primary key) ``exc`` violated; ``""`` when the
    driver does not say which; None when ``exc`` is another integrity error (a foreign key,
    NOT NULL), which stays a server error: it is a bug, not a race."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:  # psycopg
        return str(getattr(getattr(orig, "diag", None), "table_name", None) or "")
    found = _SQLITE_UNIQUE.match(str(orig))
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE_CODES or found:
        return found.group(1) if found else ""
    return None


async def unique_conflict(_request: Request, exc: Exception) -> Response:
    """409 with the table's fixed detail for a lost race on a unique row."""
    assert isinstance(exc, IntegrityError)
    table = unique_violation_table(exc)
    if table is None:
        raise exc
    return JSONResponse({"detail": UNIQUE_DETAILS.get(table, ROW_TAKEN)}, status_code=409)


def install(app: FastAPI) -> None:
    """Answer validation errors, ``HTTPException`` and unique violations as above."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(IntegrityError, unique_conflict)
