"""call_evidence: the calls kept from a session's SIP capture (failed ones and a sample)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "call_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", _str(length=32), nullable=False),
        sa.Column("call_id", _str(length=255), nullable=False),
        sa.Column("key", _str(length=32), nullable=False),
        sa.Column("outcome", _str(length=16), nullable=False),
        sa.Column("reason", _str(length=255), nullable=True),
        sa.Column("final_code", sa.Integer(), nullable=True),
        sa.Column("method", _str(length=32), nullable=False),
        sa.Column("first_time", sa.Float(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["session.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "call_id", name="uq_call_evidence"),
    )
    op.create_index("ix_call_evidence_session_id", "call_evidence", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_call_evidence_session_id", table_name="call_evidence")
    op.drop_table("call_evidence")
