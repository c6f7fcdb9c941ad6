"""Pruning methods and architectures that jobs can name."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.schemas import MethodPublic, MethodsPublic

router = APIRouter(prefix="/methods", tags=["methods"])


@router.get("", response_model=MethodsPublic)
def list_methods() -> MethodsPublic:
    """Every registered pruning method with its parameters and defaults."""
    # The registry lives with the torch code; it is imported once, on first use.
    from backend.pruning import list_methods as names
    from backend.pruning import method_info

    data = [MethodPublic(**method_info(n)) for n in names()]
    return MethodsPublic(data=data, count=len(data))
