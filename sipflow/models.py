"""Database tables: sessions, their runners, and every stats interval each runner published."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

# A session in one of these has ended: it will not run, store or change again.
FINAL_STATUSES = ("completed", "cancelled", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class SessionRow(SQLModel, table=True):
    __tablename__ = "session"

    id: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(max_length=120)
    # pending -> running -> completed | cancelled | error
    status: str = Field(index=True, max_length=16, default="pending")
    verdict: str | None = Field(default=None, index=True, max_length=8)  # pass | fail | error
    target: str | None = Field(default=None, max_length=255)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    reasons: list[str] | None = Field(default=None, sa_column=Column(JSON))
    created_at: datetime = _ts(nullable=False, index=True)
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)


class RunnerRow(SQLModel, table=True):
    __tablename__ = "runner"
    __table_args__ = (UniqueConstraint("session_id", "runner_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", index=True, max_length=32)
    runner_id: str = Field(max_length=64)
    role: str = Field(max_length=16)
    address: str | None = Field(default=None, max_length=64)
    state: str = Field(default="starting", max_length=16)
    detail: str | None = None
    exit_code: int | None = None
    ok: bool | None = None
    last_seq: int | None = None
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    failure_reasons: dict[str, int] | None = Field(default=None, sa_column=Column(JSON))


class MetricInterval(SQLModel, table=True):
    """One stats message of one runner. (session, runner, seq) is unique: exactly-once storage."""

    __tablename__ = "metric_interval"
    __table_args__ = (UniqueConstraint("session_id", "runner_id", "seq", name="uq_interval"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", index=True, max_length=32)
    runner_id: str = Field(max_length=64)
    role: str = Field(max_length=16)
    seq: int
    time: float
    current_calls: int = 0
    call_rate: float = 0.0
    calls_created: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    retransmissions: int = 0
    cum_calls_created: int = 0
    cum_successful_calls: int = 0
    cum_failed_calls: int = 0
    cum_retransmissions: int = 0
    failed_by_cause: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))
    histogram: list[int] = Field(default_factory=list, sa_column=Column(JSON))
