"""call_media: moments for a call script's media steps judged at their step (audio runs, DTMF
digit arrivals, the step's moment and the call's answer)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("spans", "dtmf_times", "expect_at", "answered_at")


def upgrade() -> None:
    op.add_column("call_media", sa.Column("spans", sa.JSON(), nullable=True))
    op.add_column("call_media", sa.Column("dtmf_times", sa.JSON(), nullable=True))
    op.add_column("call_media", sa.Column("expect_at", sa.Float(), nullable=True))
    op.add_column("call_media", sa.Column("answered_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_media") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
