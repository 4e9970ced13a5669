"""tenant policy: allowed targets and quotas per tenant

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-27 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import sqlmodel


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tenant_policy',
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant')
    )


def downgrade() -> None:
    op.drop_table('tenant_policy')
