"""Backend tests that use `settings` run twice: on SQLite (the embedded default) and on the
real local PostgreSQL (the scaled deployment), each test on a database of its own."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.config import Settings

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(POSTGRES_ADMIN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN}: {exc}")


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield from _settings(request.param, tmp_path, port)


def _settings(engine: str, tmp_path: Path, port: int) -> Iterator[Settings]:
    common = {"data_dir": tmp_path / "data", "port": port, "warm_embeddings": False}
    if engine == "sqlite":
        yield Settings(**common)
        return
    _postgres_or_skip()
    import psycopg

    name = f"prunescope_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield Settings(**common, database_url=url)
    finally:
        from backend.db.session import get_engine

        get_engine(url).dispose()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh PostgreSQL database only (for the scaled stack's own tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield from _settings("postgres", tmp_path, port)
