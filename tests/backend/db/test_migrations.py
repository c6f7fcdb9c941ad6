from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from backend.db.session import alembic_config, get_engine, migrate
from backend.db.tables import Base


def test_migrations_build_exactly_the_declared_schema(settings):
    """On SQLite and PostgreSQL: upgrade, downgrade to nothing, upgrade again; the result is
    exactly what tables.py declares."""
    url = settings.database_url
    migrate(url)
    migrate(url)  # idempotent
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(get_engine(url)).get_table_names()) <= {"alembic_version"}
    migrate(url)
    engine = get_engine(url)
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"tables.py and the migrations disagree: {diff}"
