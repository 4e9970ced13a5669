"""capacity_search: capacity searches, their steps and answer

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 20:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString
_ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "capacity_search",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("tenant", _str(length=64), nullable=False),
        sa.Column("name", _str(length=120), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("status", _str(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("reason", _str(length=1000), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("finished_at", _ts, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_capacity_search_tenant", "capacity_search", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_capacity_search_tenant", table_name="capacity_search")
    op.drop_table("capacity_search")
