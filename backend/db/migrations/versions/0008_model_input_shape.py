"""models record the input shape and class count they were proven to accept, and why linear
regions cannot be counted for them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("input_shape", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("num_classes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("regions_unsupported", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("regions_unsupported")
        batch.drop_column("num_classes")
        batch.drop_column("input_shape")
