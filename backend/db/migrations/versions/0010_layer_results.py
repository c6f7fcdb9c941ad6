"""layer results (per-layer comparison of A and each B, SCIENCE.md sect. 7)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "layer_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparisons.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.ForeignKeyConstraint(["model_b_id"], ["models.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("comparison_id", "model_b_id"),
    )
    with op.batch_alter_table("layer_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_layer_results_comparison_id"), ["comparison_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("layer_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_layer_results_comparison_id"))
    op.drop_table("layer_results")
