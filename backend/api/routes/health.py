"""Liveness and configuration summary."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from sqlalchemy.engine import make_url

from backend.api.deps import ExecutorDep, SettingsDep
from backend.api.schemas import HealthPublic

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthPublic)
def read_health(settings: SettingsDep, executor: ExecutorDep) -> HealthPublic:
    """Server status, version, database engine, executor and whether jobs can be queued."""
    try:
        ver = version("prunescope")
    except PackageNotFoundError:  # running from a source tree without install
        ver = "0+unknown"
    return HealthPublic(
        status="ok",
        version=ver,
        database=make_url(settings.database_url).get_backend_name(),
        executor=settings.executor,
        job_queue=executor.health(),
    )
