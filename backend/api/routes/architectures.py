"""Neural-network architectures that train jobs and uploaded checkpoints can name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

router = APIRouter(prefix="/architectures", tags=["architectures"])


class ArchitecturePublic(BaseModel):
    name: str
    doc: str = Field(description="first line of the factory's docstring")
    defaults: dict[str, Any] = Field(description="keyword arguments with their defaults")
    required: list[str] = Field(description="keyword arguments without a default")


class ArchitecturesPublic(BaseModel):
    data: list[ArchitecturePublic]
    count: int


@router.get("", response_model=ArchitecturesPublic)
def list_architectures() -> ArchitecturesPublic:
    """Every registered architecture with a one-line doc and its keyword arguments."""
    # The registry lives with the torch code (models/); it is imported once, on first use, so
    # that starting the API and its other reads stay free of torch.
    from models import list_models, model_info

    data = [ArchitecturePublic(**model_info(name)) for name in list_models()]
    return ArchitecturesPublic(data=data, count=len(data))
