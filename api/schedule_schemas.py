"""What the /v1/schedules routes take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from sipflow.models import AlertDeliveryRow, ScheduleRow, ScheduleRunRow
from sipflow.workflow_types import schedule_id


class ScheduleBrief(BaseModel):
    id: str
    name: str
    tenant: str
    version: int
    paused: bool
    note: str | None
    temporal_schedule_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ScheduleRow) -> ScheduleBrief:
        return cls(**row.model_dump(exclude={"spec"}), temporal_schedule_id=schedule_id(row.id))


class RunOut(BaseModel):
    session_id: str
    scheduled_at: datetime | None
    started_at: datetime
    late_s: float | None  # seconds from its due time to the launcher's first step
    missed: int | None = None  # Temporal's count of the schedule's missed runs by then
    judged_at: datetime | None
    state: str | None  # pass | fail | error | regressed; None while it runs
    verdict: str | None
    regressed: list[dict[str, Any]] | None
    baseline: dict[str, Any] | None
    note: str | None
    alert: str | None
    measured: dict[str, float | None] = {}  # the session's metrics (for trends)
    # "capacity": the run is a capacity search (session_id is its search id)
    kind: str = "session"

    @classmethod
    def of(
        cls,
        row: ScheduleRunRow,
        measured: dict[str, float | None] | None = None,
        kind: str = "session",
    ) -> RunOut:
        out = cls.model_validate(row, from_attributes=True)
        out.measured = measured or {}
        out.kind = kind
        return out


class DeliveryOut(BaseModel):
    session_id: str
    kind: str
    channel: str
    ok: bool
    attempts: int
    error: str | None
    at: datetime

    @classmethod
    def of(cls, row: AlertDeliveryRow) -> DeliveryOut:
        return cls.model_validate(row, from_attributes=True)


class ScheduleDetail(ScheduleBrief):
    spec: dict[str, Any]  # secrets as "***"
    next_runs: list[datetime] = []
    # Runs Temporal did not start (overlap "skip", or beyond the catch-up window).
    missed_runs: int | None = None
    runs: list[RunOut] = []
    alerts: list[DeliveryOut] = []  # recent deliveries, failures with their error


class ScheduleList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ScheduleBrief]


class Note(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class Backfill(BaseModel):
    start_at: datetime
    end_at: datetime
