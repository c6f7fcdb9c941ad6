"""Engine, sessions and migrations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


# Pool sizes for server databases (PostgreSQL); set from Settings by configure_pool().
_POOL = {"pool_size": 5, "max_overflow": 10}


def configure_pool(pool_size: int, max_overflow: int) -> None:
    """Pool sizes for engines created from now on in this process (Settings.db_pool_size,
    Settings.db_max_overflow)."""
    _POOL.update(pool_size=pool_size, max_overflow=max_overflow)


def dispose_engines(close: bool = True) -> None:
    """Forget every engine of this process. ``close=False`` in a forked child: the parent's
    connections must be dropped there without being closed (they are the parent's sockets)."""
    for engine in list(_ENGINES.values()):
        engine.dispose(close=close)
    _ENGINES.clear()


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(url: str) -> Engine:
    """One engine per database URL per process (engines pool connections)."""
    engine = _ENGINES.get(url)
    if engine is None:
        with _ENGINES_LOCK:
            engine = _ENGINES.get(url)
            if engine is None:
                engine = _ENGINES[url] = _create_engine(url)
    return engine


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the API read while a worker process writes; foreign keys are off by
            # default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # pre-ping: a connection the database dropped (restart, idle timeout) is replaced, not
    # handed out; recycle: long-lived workers do not hold one connection for days
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, **_POOL)


_FACTORIES: dict[str, sessionmaker[Session]] = {}


def session_factory(url: str) -> sessionmaker[Session]:
    """One sessionmaker per engine: a new one per call would make SQLAlchemy rebuild its
    event dispatch for every session (a quarter of a small request's database time)."""
    engine = get_engine(url)
    factory = _FACTORIES.get(url)
    if factory is None or factory.kw.get("bind") is not engine:
        factory = _FACTORIES[url] = sessionmaker(engine, expire_on_commit=False)
    return factory


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class DatabaseUnavailable(RuntimeError):
    """The database URL is wrong or the server does not answer."""


def check_database(url: str) -> None:
    """Open one connection to ``url``; raise ``DatabaseUnavailable`` saying what is wrong."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError as exc:
        raise DatabaseUnavailable(
            f"PRUNESCOPE_DATABASE_URL={url!r} is not a database URL "
            "(e.g. sqlite:///path/prunescope.db or postgresql+psycopg://user@host/db)"
        ) from exc
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnavailable(f"cannot open the database at {shown}: {reason}") from exc


def schema_is_current(url: str) -> bool:
    """True when the database has every migration applied (workers never migrate)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (idempotent)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
