"""metric_interval.duration_histogram, duration_sum_ms: answered calls' durations (200 -> BYE)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("metric_interval", sa.Column("duration_histogram", sa.JSON(), nullable=True))
    op.add_column("metric_interval", sa.Column("duration_sum_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metric_interval") as batch:
        batch.drop_column("duration_histogram")
        batch.drop_column("duration_sum_ms")
