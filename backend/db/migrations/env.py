"""Alembic environment: runs migrations against the URL the caller put in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from backend.db.tables import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "alembic config has no sqlalchemy.url"
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


run_migrations()
