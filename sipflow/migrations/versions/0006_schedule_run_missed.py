"""schedule_run.missed: Temporal's count of a schedule's missed runs when a run started

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("schedule_run", sa.Column("missed", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedule_run") as batch:
        batch.drop_column("missed")
