"""share links remember the view they were created from (the compare page's query)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("share_links") as batch:
        batch.add_column(sa.Column("view", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("share_links") as batch:
        batch.drop_column("view")
