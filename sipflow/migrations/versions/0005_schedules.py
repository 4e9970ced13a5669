"""schedules: scheduled regression tests, their runs and alert deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 17:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("tenant", _str(length=64), nullable=False),
        sa.Column("name", _str(length=120), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("note", _str(length=500), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schedule_tenant", "schedule", ["tenant"])
    op.create_table(
        "schedule_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", _str(length=32), nullable=False),
        sa.Column("session_id", _str(length=32), nullable=False),
        sa.Column("scheduled_at", _ts, nullable=True),
        sa.Column("started_at", _ts, nullable=False),
        sa.Column("late_s", sa.Float(), nullable=True),
        sa.Column("judged_at", _ts, nullable=True),
        sa.Column("state", _str(length=16), nullable=True),
        sa.Column("verdict", _str(length=8), nullable=True),
        sa.Column("regressed", sa.JSON(), nullable=True),
        sa.Column("baseline", sa.JSON(), nullable=True),
        sa.Column("note", _str(length=255), nullable=True),
        sa.Column("alert", _str(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
    )
    op.create_index("ix_schedule_run_schedule_id", "schedule_run", ["schedule_id"])
    op.create_table(
        "alert_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", _str(length=32), nullable=False),
        sa.Column("session_id", _str(length=32), nullable=False),
        sa.Column("kind", _str(length=16), nullable=False),
        sa.Column("channel", _str(length=120), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", _str(length=1000), nullable=True),
        sa.Column("at", _ts, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_delivery_schedule_id", "alert_delivery", ["schedule_id"])


def downgrade() -> None:
    op.drop_table("alert_delivery")
    op.drop_table("schedule_run")
    op.drop_table("schedule")
