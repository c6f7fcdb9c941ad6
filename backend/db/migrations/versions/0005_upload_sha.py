"""uploaded models and datasets remember the sha256 of the file they came from

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("upload_sha", sa.String(length=64), nullable=True))
        batch.create_index("ix_models_upload_sha", ["upload_sha"])
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("upload_sha", sa.String(length=64), nullable=True))
        batch.create_index("ix_datasets_upload_sha", ["upload_sha"])


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_index("ix_datasets_upload_sha")
        batch.drop_column("upload_sha")
    with op.batch_alter_table("models") as batch:
        batch.drop_index("ix_models_upload_sha")
        batch.drop_column("upload_sha")
