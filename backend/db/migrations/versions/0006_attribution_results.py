"""attribution results: geometric attribution of one sample in A and one B of a comparison

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attribution_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("params_key", sa.String(length=100), nullable=False),
        sa.Column("artifact_sha", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparisons.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.ForeignKeyConstraint(["model_b_id"], ["models.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("comparison_id", "model_b_id", "sample_index", "params_key"),
    )
    with op.batch_alter_table("attribution_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attribution_results_comparison_id"), ["comparison_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("attribution_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attribution_results_comparison_id"))
    op.drop_table("attribution_results")
