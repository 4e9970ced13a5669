"""call_media: DTMF (RFC 4733 events) per call, sent and detected; call scripts' expectations;
the longest silence per stream (hold/resume with media)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("call_media", sa.Column("dtmf_sent", sa.String(length=64), nullable=True))
    op.add_column("call_media", sa.Column("dtmf_received", sa.String(length=64), nullable=True))
    op.add_column("call_media", sa.Column("expect_step", sa.String(length=64), nullable=True))
    op.add_column("call_media", sa.Column("expect_what", sa.String(length=80), nullable=True))
    op.add_column("call_media", sa.Column("max_gap_ms", sa.Float(), nullable=True))
    op.add_column("call_media", sa.Column("after_gap_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_media") as batch:
        batch.drop_column("after_gap_ms")
        batch.drop_column("max_gap_ms")
        batch.drop_column("expect_what")
        batch.drop_column("expect_step")
        batch.drop_column("dtmf_received")
        batch.drop_column("dtmf_sent")
