"""metric_interval.pdd_histogram, pdd_sum_ms: post-dial delays (INVITE -> first 18x)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("metric_interval", sa.Column("pdd_histogram", sa.JSON(), nullable=True))
    op.add_column("metric_interval", sa.Column("pdd_sum_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_interval") as batch:
        batch.drop_column("pdd_histogram")
        batch.drop_column("pdd_sum_ms")
