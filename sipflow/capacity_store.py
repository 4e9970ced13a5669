"""Capacity searches in the database: the spec, the state, and the steps as they run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, Session, SQLModel, col, func, select

from sipflow.models import utcnow

RUNNING, COMPLETED, CANCELLED, ERROR = "running", "completed", "cancelled", "error"


class CapacitySearchRow(SQLModel, table=True):
    __tablename__ = "capacity_search"

    id: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(max_length=120)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    # sipflow.capacity.SearchResult as JSON: the steps so far, and once ended the answer.
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


def create(db: Session, search_id: str, tenant: str, name: str, spec: dict[str, Any]) -> None:
    row = CapacitySearchRow(id=search_id, tenant=tenant, name=name, spec=spec, created_at=utcnow())
    db.add(row)
    db.commit()


def get(db: Session, search_id: str, tenant: str | None = None) -> CapacitySearchRow | None:
    row = db.get(CapacitySearchRow, search_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return row


def listing(
    db: Session, tenant: str, limit: int, offset: int
) -> tuple[Sequence[CapacitySearchRow], int]:
    q = select(CapacitySearchRow).where(CapacitySearchRow.tenant == tenant)
    total = db.exec(select(func.count()).select_from(q.subquery())).one()
    rows = db.exec(
        q.order_by(col(CapacitySearchRow.created_at).desc()).offset(offset).limit(limit)
    ).all()
    return rows, int(total)


def update(
    db: Session,
    search_id: str,
    status: str,
    result: dict[str, Any] | None,
    reason: str | None = None,
) -> None:
    row = db.get(CapacitySearchRow, search_id)
    if row is None:
        return
    row.status = status
    if result is not None:
        row.result = result
    row.reason = reason if reason is not None else row.reason
    if status != RUNNING:
        row.finished_at = row.finished_at or utcnow()
    db.add(row)
    db.commit()
