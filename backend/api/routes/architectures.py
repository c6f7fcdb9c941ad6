"""Neural-network architectures that train jobs and uploaded checkpoints can name."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from backend.api.catalogue import catalogue_key, load_or_build, search_entries
from backend.api.deps import SettingsDep
from backend.api.schemas import ErrorPublic, errors
from backend.config import Settings

router = APIRouter(prefix="/architectures", tags=["architectures"])


class ArchitecturePublic(BaseModel):
    name: str = Field(description="e.g. resnet20, timm/resnet18, torchvision/mobilenet_v2")
    doc: str = Field(description="first line of the factory's docstring")
    defaults: dict[str, Any] = Field(
        description="keyword arguments with their defaults (timm/torchvision: the ones "
        "PruneScope fills from the dataset)"
    )
    required: list[str] = Field(description="keyword arguments without a default")
    source: str = Field(description="builtin, plugin, onnx, torchvision or timm")


class ArchitecturesPublic(BaseModel):
    data: list[ArchitecturePublic]
    count: int = Field(description="entries on this page")
    total: int = Field(description="entries matching q")


# per installation (catalogue_key), not per data folder: one build per process at most
_cache: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()
UNAVAILABLE = "The architecture listing could not be built"


def catalogue(settings: Settings) -> list[dict[str, Any]]:
    """Every architecture with its description (:mod:`models.catalogue`): from memory, else the
    cache file, else built once in a child process, so that this process never imports torch.
    The server's start-up warm-up calls this, so the first visitor does not wait for it."""
    key = catalogue_key()
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:  # one build, however many requests arrive meanwhile
        if key not in _cache:
            _cache[key] = _load(settings)
        return _cache[key]


def _load(settings: Settings) -> list[dict[str, Any]]:
    """From the machine-wide cache (one build per installation, whatever the data folder), or
    the data folder's when that one cannot be written."""
    assert settings.cache_dir is not None
    try:
        return load_or_build(settings.cache_dir)
    except OSError:
        return load_or_build(settings.data_dir / "cache")


@router.get(
    "",
    response_model=ArchitecturesPublic,
    responses={**errors(422), 503: {"model": ErrorPublic, "description": UNAVAILABLE}},
)
def list_architectures(
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(
            max_length=200,
            description="case-insensitive; every word must occur in the name",
        ),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ArchitecturesPublic:
    """Architectures by name: built-ins and plug-ins first, then torchvision's and timm's."""
    if "\x00" in q:
        raise HTTPException(status_code=422, detail="q: NUL is not allowed")
    try:
        entries = catalogue(settings)
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise HTTPException(status_code=503, detail=UNAVAILABLE) from exc
    page, total = search_entries(entries, q, limit=limit, offset=offset)
    data = [ArchitecturePublic(**entry) for entry in page]
    return ArchitecturesPublic(data=data, count=len(data), total=total)
