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


def test_downgrade_one_step_and_back(settings):
    """On SQLite and PostgreSQL: from head, one step down lands on the previous revision and
    upgrading again restores exactly the declared schema."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = settings.database_url
    cfg = alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    previous = script.get_revision(head).down_revision
    migrate(url)
    command.downgrade(cfg, "-1")
    engine = get_engine(url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == previous
    migrate(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert ctx.get_current_revision() == head
        assert compare_metadata(ctx, Base.metadata) == []
