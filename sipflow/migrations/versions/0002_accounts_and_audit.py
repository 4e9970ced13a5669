"""API keys, dashboard sign-ins and the audit log

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        _ts("created_at", False),
        _ts("expires_at", True),
        _ts("revoked_at", True),
        _ts("last_used_at", True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_key_digest", "api_key", ["digest"], unique=True)
    op.create_index("ix_api_key_tenant", "api_key", ["tenant"])
    op.create_table(
        "web_login",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        _ts("created_at", False),
        _ts("expires_at", False),
        sa.ForeignKeyConstraint(["key_id"], ["api_key.id"]),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_web_login_key_id", "web_login", ["key_id"])
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("time", False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_event_time", "audit_event", ["time"])
    op.create_index("ix_audit_event_tenant", "audit_event", ["tenant"])


def downgrade() -> None:
    op.drop_table("audit_event")
    op.drop_table("web_login")
    op.drop_table("api_key")
