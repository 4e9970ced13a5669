"""runner_host_reservation: agent slots a placement took on a runner host, until the session
ends (or the reservation expires), so placements between two heartbeats do not count the same
free slots twice

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runner_host_reservation",
        sa.Column("session_id", sa.String(length=32), primary_key=True),
        sa.Column(
            "key_id", sa.String(length=32), sa.ForeignKey("runner_host.key_id"), primary_key=True
        ),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.String(length=64), nullable=False),
        sa.Column("task_queue", sa.String(length=200), nullable=False),
        sa.Column("runner_ids", sa.JSON(), nullable=False),
        sa.Column("agents", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_runner_host_reservation_key_id", "runner_host_reservation", ["key_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_runner_host_reservation_key_id", table_name="runner_host_reservation")
    op.drop_table("runner_host_reservation")
