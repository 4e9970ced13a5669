"""session.resolved_target: where a target given by domain (target.dns) was resolved to, for the
runners whose config the API derives from the stored spec (container backends)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("session", sa.Column("resolved_target", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.drop_column("resolved_target")
