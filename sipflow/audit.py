"""The audit log: who (key, tenant) started, changed or cancelled what, and who created or
revoked which key. Written by the API beside the change it records; read by a tenant's admins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, func
from sqlmodel import Field, Session, SQLModel, col, select

from sipflow.models import utcnow


class AuditEventRow(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, index=True))
    tenant: str = Field(index=True, max_length=64)
    key_id: str | None = Field(default=None, max_length=32)
    # session.create, session.rate, session.cancel, key.create, key.revoke
    action: str = Field(max_length=32)
    object_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


def record(
    db: Session,
    tenant: str,
    key_id: str | None,
    action: str,
    object_id: str | None,
    detail: dict[str, Any] | None = None,
) -> AuditEventRow:
    row = AuditEventRow(
        time=utcnow(),
        tenant=tenant,
        key_id=key_id,
        action=action,
        object_id=object_id,
        detail=detail,
    )
    db.add(row)
    db.commit()
    return row


def events(
    db: Session, tenant: str, *, limit: int = 50, offset: int = 0, action: str | None = None
) -> tuple[Sequence[AuditEventRow], int]:
    """A tenant's events, newest first, and how many there are."""
    q = select(AuditEventRow).where(AuditEventRow.tenant == tenant)
    if action:
        q = q.where(AuditEventRow.action == action)
    total = db.exec(select(func.count()).select_from(q.subquery())).one()
    order = (col(AuditEventRow.time).desc(), col(AuditEventRow.id).desc())
    rows = db.exec(q.order_by(*order).offset(offset).limit(limit)).all()
    return rows, total
