"""call_media: ViSQOL speech MOS-LQO per direction (media mos: visqol)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("call_media", sa.Column("visqol", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_media") as batch:
        batch.drop_column("visqol")
