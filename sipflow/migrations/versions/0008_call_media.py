"""call_media: per call and direction, the audio a runner received (loss, jitter, E-model MOS)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "call_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", _str(length=32), nullable=False),
        sa.Column("stream_key", _str(length=96), nullable=False),
        sa.Column("call_id", _str(length=255), nullable=True),
        sa.Column("direction", _str(length=24), nullable=True),
        sa.Column("sender_runner", _str(length=64), nullable=True),
        sa.Column("receiver_runner", _str(length=64), nullable=True),
        sa.Column("codec", _str(length=8), nullable=True),
        sa.Column("received", sa.Integer(), nullable=True),
        sa.Column("expected", sa.Integer(), nullable=True),
        sa.Column("lost", sa.Integer(), nullable=True),
        sa.Column("loss_pct", sa.Float(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=True),
        sa.Column("reordered", sa.Integer(), nullable=True),
        sa.Column("jitter_ms", sa.Float(), nullable=True),
        sa.Column("r_factor", sa.Float(), nullable=True),
        sa.Column("mos", sa.Float(), nullable=True),
        sa.Column("pesq", sa.Float(), nullable=True),
        sa.Column("first_time", sa.Float(), nullable=True),
        sa.Column("last_time", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["session.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "stream_key", name="uq_call_media"),
    )
    op.create_index("ix_call_media_session_id", "call_media", ["session_id"])
    op.create_index("ix_call_media_call_id", "call_media", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_call_media_call_id", table_name="call_media")
    op.drop_index("ix_call_media_session_id", table_name="call_media")
    op.drop_table("call_media")
