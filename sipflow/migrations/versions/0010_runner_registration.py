"""runner.registration: a callee's REGISTER tries, failures, refreshes and final reason

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runner", sa.Column("registration", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runner") as batch:
        batch.drop_column("registration")
