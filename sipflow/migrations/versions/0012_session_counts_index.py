"""session (tenant, status, verdict) index: /metrics counts sessions from the index alone

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 23:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_session_tenant_status_verdict", "session", ["tenant", "status", "verdict"])


def downgrade() -> None:
    op.drop_index("ix_session_tenant_status_verdict", table_name="session")
