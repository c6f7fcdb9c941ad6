"""Dependencies shared by the routers, as Annotated aliases."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from backend.config import Settings
from backend.data import ArrayDataset
from backend.data.stored import load_from_store
from backend.db.session import session_factory
from backend.jobs.executor import Executor
from backend.jobs.submit import QueueUnavailable, SpecInvalid
from backend.storage import ArtifactStore


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    settings: Settings = request.app.state.settings
    session = session_factory(settings.database_url)()
    session.info["settings"] = settings  # the limits a submission checks (backend.jobs.submit)
    try:
        yield session
    finally:
        session.close()


def get_store(request: Request) -> ArtifactStore:
    return request.app.state.store  # type: ignore[no-any-return]


def get_executor(request: Request) -> Executor:
    return request.app.state.executor  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]


DryRunQuery = Annotated[
    bool,
    Query(
        description="validate only: answer 200 with the normalised request, or 422 with every "
        "problem as a list of {loc, msg, type}; nothing is written or queued"
    ),
]


def refused(
    exc: SpecInvalid | QueueUnavailable,
    dry_run: bool = False,
    root: str = "spec",
    prefix: str = "spec",
) -> HTTPException:
    """The answer to a refused submission: 503 for the job queue; 422 with every problem as
    FastAPI's validation-error list (``loc`` starting with ``root``) for a dry run, else with
    the first as one line (``"<prefix>.<loc>: <msg>"``)."""
    if isinstance(exc, QueueUnavailable):
        return HTTPException(status_code=503, detail=str(exc))
    detail = exc.issues(root) if dry_run else exc.detail(prefix)
    return HTTPException(status_code=422, detail=detail)


def get_or_404(session: Session, table: type, ident: int, detail: str):  # type: ignore[no-untyped-def]
    row = session.get(table, ident)
    if row is None:
        raise HTTPException(status_code=404, detail=detail)
    return row


# Artifacts are immutable (addressed by sha256), so caching them by digest is always safe.
@lru_cache(maxsize=32)
def _dataset_cached(url: str, sha: str) -> ArrayDataset:
    # memory-mapped from a local store: a thumbnail reads one sample's pages, not the dataset
    return load_from_store(ArtifactStore(url), sha)


@lru_cache(maxsize=64)
def _table_cached(url: str, sha: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(ArtifactStore(url).get_bytes(sha)))


def warm_imports() -> None:
    """Import what the first read of a per-sample table needs (pandas' parquet reader loads
    ``pyarrow.dataset`` lazily, ~0.1 s): the app calls this in a thread as it starts, so the
    first comparison page someone opens does not wait for it."""
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401


def load_dataset_arrays(store: ArtifactStore, sha: str) -> ArrayDataset:
    return _dataset_cached(store.url, sha)


def load_samples_table(store: ArtifactStore, sha: str) -> pd.DataFrame:
    return _table_cached(store.url, sha)


def prob_columns(table: pd.DataFrame) -> np.ndarray:
    cols = [c for c in table.columns if c.startswith("p") and c[1:].isdigit()]
    cols.sort(key=lambda c: int(c[1:]))
    return table[cols].to_numpy()
