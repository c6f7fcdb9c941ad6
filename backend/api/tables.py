"""Paged, filterable per-sample tables: as records or as compact columns.

Tables can hold 10^5 rows; a request gets one page (``limit`` at most 10,000), filtered by
equality on a few named columns and by ranges (``range=margin:-1:0``), optionally sorted and
reduced to the columns asked for.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import HTTPException
from pydantic import BaseModel

MAX_LIMIT = 10_000


class TablePage(BaseModel):
    """One page of a per-sample table: ``data`` (records) or ``columns`` (column -> values)."""

    count: int
    offset: int
    limit: int
    column_names: list[str]
    data: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] | None = None


def _bad(detail: str) -> HTTPException:
    return HTTPException(status_code=422, detail=detail)


def filter_table(
    table: pd.DataFrame, equals: dict[str, Any], ranges: list[str], sort: str | None
) -> pd.DataFrame:
    """Rows matching every equality and range filter, sorted if asked."""
    keep = np.ones(len(table), dtype=bool)
    for column, value in equals.items():
        if value is None:
            continue
        if column not in table.columns:
            raise _bad(f"cannot filter on {column!r}: this table has no such column")
        keep &= (table[column] == value).to_numpy()
    for spec in ranges:
        parts = spec.split(":")
        if len(parts) != 3 or parts[0] not in table.columns:
            raise _bad(f"range={spec!r} should be column:min:max with a numeric column")
        column, lo, hi = parts
        values = pd.to_numeric(table[column], errors="coerce").to_numpy()
        try:
            if lo:
                keep &= values >= float(lo)
            if hi:
                keep &= values <= float(hi)
        except ValueError as exc:
            raise _bad(f"range={spec!r}: bounds must be numbers") from exc
    out = table[keep]
    if sort:
        column = sort.lstrip("-")
        if column not in out.columns:
            raise _bad(f"sort={sort!r}: this table has no column {column!r}")
        out = out.sort_values(column, ascending=not sort.startswith("-"), kind="stable")
    return out


def page(
    table: pd.DataFrame,
    offset: int,
    limit: int,
    fmt: Literal["records", "columns"],
    columns: list[str] | None,
) -> TablePage:
    """Slice one page and encode it; NaN becomes null."""
    if columns:
        unknown = [c for c in columns if c not in table.columns]
        if unknown:
            raise _bad(f"unknown column {unknown[0]!r}; known: {', '.join(table.columns)}")
        table = table[columns]
    part = table.iloc[offset : offset + limit]
    clean = part.astype(object).where(pd.notna(part), None)
    names = [str(c) for c in table.columns]
    result = TablePage(count=len(table), offset=offset, limit=limit, column_names=names)
    if fmt == "columns":
        result.columns = {str(c): clean[c].tolist() for c in clean.columns}
    else:
        result.data = clean.to_dict("records")  # type: ignore[assignment]
    return result
