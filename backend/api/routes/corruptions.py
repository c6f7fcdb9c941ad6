"""The corruptions an analysis can evaluate."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/corruptions", tags=["corruptions"])


@router.get("")
def list_corruptions() -> dict[str, list[str] | list[int]]:
    """The 15 corruptions of Hendrycks & Dietterich (2019) and their severities."""
    from backend.data.corruptions import list_corruptions as names

    return {"data": names(), "severities": [1, 2, 3, 4, 5]}
