"""runner_host: the runner hosts of each tenant's pools, their capacity and heartbeat

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runner_host",
        sa.Column("key_id", sa.String(length=32), sa.ForeignKey("api_key.id"), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("pool", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.String(length=64), nullable=True),
        sa.Column("task_queue", sa.String(length=200), nullable=True),
        sa.Column("cores", sa.Integer(), nullable=False),
        sa.Column("max_agents", sa.Integer(), nullable=False),
        sa.Column("running_agents", sa.Integer(), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_runner_host_tenant", "runner_host", ["tenant"])
    op.create_index("ix_runner_host_pool", "runner_host", ["pool"])
    op.create_index("ix_runner_host_host_id", "runner_host", ["host_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_runner_host_host_id", table_name="runner_host")
    op.drop_index("ix_runner_host_pool", table_name="runner_host")
    op.drop_index("ix_runner_host_tenant", table_name="runner_host")
    op.drop_table("runner_host")
