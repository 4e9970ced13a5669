"""Database tables: sessions, their runners, and every stats interval each runner published.

An interval's fields are declared once, here (IntervalCounts < IntervalPoint < Interval): its
table, the store's insert, the API's series, the CSV export and the live charts derive from them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from sipflow.messages import StatsMessage

# A session in one of these has ended: it will not run, store or change again.
FINAL_STATUSES = ("completed", "cancelled", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class SessionRow(SQLModel, table=True):
    __tablename__ = "session"
    # /metrics counts sessions by these from the index alone (sipflow/metrics_db.py).
    __table_args__ = (Index("ix_session_tenant_status_verdict", "tenant", "status", "verdict"),)

    id: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(max_length=120)
    # pending -> running -> completed | cancelled | error
    status: str = Field(index=True, max_length=16, default="pending")
    verdict: str | None = Field(default=None, index=True, max_length=8)  # pass | fail | error
    target: str | None = Field(default=None, max_length=255)
    # A dns target as resolved at the start ({host, port, transport, via}): container runners'
    # configs are derived from the stored spec, which keeps the domain.
    resolved_target: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
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
    # A callee's REGISTER tries (sipflow.messages.RegistrationCounts), from its done message.
    registration: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Per-step counts of a scenario with step marks (sipflow.messages.StepCounts), from its done
    # message.
    steps: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class IntervalCounts(SQLModel):
    """What one runner counted in one interval. A role's runners' counts that end in the same
    second add up to the role's point of that second (the merged series)."""

    call_rate: float  # calls created per second
    current_calls: int
    calls_created: int
    successful_calls: int
    failed_calls: int
    retransmissions: int


class IntervalPoint(IntervalCounts):
    """One point of a runner's series: when, its counts, its running totals, its failures."""

    seq: int
    time: float
    cum_calls_created: int
    cum_successful_calls: int
    cum_failed_calls: int
    cum_retransmissions: int
    failed_by_cause: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON))

    @field_validator("failed_by_cause", mode="before")
    @classmethod
    def _no_causes(cls, v: Any) -> Any:
        return {} if v is None else v  # the JSON column is nullable


class Interval(IntervalPoint):
    """One stats message of one runner, flat: its point, whose it is, its response times."""

    runner_id: str = Field(max_length=64)
    role: str = Field(max_length=16)
    # Response-time counts on sipflow.histogram.BOUNDS_MS.
    histogram: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    # Post-dial delays (INVITE -> first 18x) on the same bounds; empty when none were measured.
    pdd_histogram: list[int] | None = Field(default=None, sa_column=Column(JSON))
    pdd_sum_ms: float | None = None
    # Answered calls' durations on sipflow.histogram.DURATION_BOUNDS_MS; empty when none ended.
    duration_histogram: list[int] | None = Field(default=None, sa_column=Column(JSON))
    duration_sum_ms: float | None = None

    @classmethod
    def from_message(cls, msg: StatsMessage) -> Interval:
        """Periodic counters keep their names, cumulative ones become `cum_<name>`."""
        cumulative = {f"cum_{k}": v for k, v in msg.cumulative.model_dump().items()}
        return cls.model_validate({**msg.model_dump(), **msg.periodic.model_dump(), **cumulative})


class MetricInterval(Interval, table=True):
    """One stats message of one runner. (session, runner, seq) is unique: exactly-once storage."""

    __tablename__ = "metric_interval"
    __table_args__ = (UniqueConstraint("session_id", "runner_id", "seq", name="uq_interval"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", index=True, max_length=32)


class TenantPolicyRow(SQLModel, table=True):
    """A tenant's policy (sipflow.tenant_policy.TenantPolicy as JSON); none: the settings'."""

    __tablename__ = "tenant_policy"

    tenant: str = Field(primary_key=True, max_length=64)
    policy: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts(nullable=False)


class SecretRow(SQLModel, table=True):
    """A tenant's named secret (a SIP password, later webhook/SMTP secrets), AES-GCM encrypted
    (sipflow.secret_store); its value is never returned by any endpoint."""

    __tablename__ = "secret"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_secret"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(max_length=255)
    key_id: str = Field(max_length=32)  # the keyring entry that encrypted it
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ScheduleRow(SQLModel, table=True):
    """A scheduled regression test (sipflow.schedule_spec.ScheduleSpec as JSON, its secrets as
    "***"; they live in the secret store). Temporal's schedule `schedule-<id>` runs it."""

    __tablename__ = "schedule"

    id: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(max_length=120)
    version: int = 1
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ScheduleRunRow(SQLModel, table=True):
    """One run of a schedule: its session and, once judged, its state against the baseline."""

    __tablename__ = "schedule_run"

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: str = Field(index=True, max_length=32)
    session_id: str = Field(unique=True, max_length=32)
    scheduled_at: datetime | None = _ts(nullable=True)
    started_at: datetime = _ts(nullable=False)
    # Seconds between the due time and the launcher's first step (workers down: late).
    late_s: float | None = None
    # Temporal's count of the schedule's runs missed (outside the catch-up window) by then.
    missed: int | None = None
    judged_at: datetime | None = _ts(nullable=True)
    # pass | fail | error | regressed; None until judged
    state: str | None = Field(default=None, max_length=16)
    verdict: str | None = Field(default=None, max_length=8)  # the session's own
    regressed: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    baseline: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    note: str | None = Field(default=None, max_length=255)
    alert: str | None = Field(default=None, max_length=16)  # the alert this run called for


class AlertDeliveryRow(SQLModel, table=True):
    """An alert's outcome on one channel: delivered, or its last error after the retries."""

    __tablename__ = "alert_delivery"

    id: int | None = Field(default=None, primary_key=True)
    schedule_id: str = Field(index=True, max_length=32)
    session_id: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    channel: str = Field(max_length=120)
    ok: bool
    attempts: int = 1
    error: str | None = Field(default=None, max_length=1000)
    at: datetime = _ts(nullable=False)


class CallMediaRow(SQLModel, table=True):
    """One direction of one call's audio (sipflow/media_store.py): the sending runner names the
    call (Call-ID) of a stream, the receiving runner measures it; both write the same row, found
    by the stream's key (the sender's media address and SSRC), in whichever order they arrive.
    A row whose receiver columns stay empty is a direction without audio."""

    __tablename__ = "call_media"
    __table_args__ = (UniqueConstraint("session_id", "stream_key", name="uq_call_media"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", index=True, max_length=32)
    stream_key: str = Field(max_length=96)  # "<ip>:<port>/<ssrc>"
    call_id: str | None = Field(default=None, index=True, max_length=255)
    direction: str | None = Field(default=None, max_length=24)  # caller_to_callee | ...
    sender_runner: str | None = Field(default=None, max_length=64)
    receiver_runner: str | None = Field(default=None, max_length=64)
    codec: str | None = Field(default=None, max_length=8)
    received: int | None = None
    expected: int | None = None
    lost: int | None = None
    loss_pct: float | None = None
    duplicates: int | None = None
    reordered: int | None = None
    jitter_ms: float | None = None
    r_factor: float | None = None
    mos: float | None = None
    pesq: float | None = None
    visqol: float | None = None
    first_time: float | None = None
    last_time: float | None = None
    # A DTMF row (RFC 4733 events of one play, runners/media_dtmf.py) rather than audio: the
    # digits the sender played and those the receiver detected ("" for none; NULL unknown).
    dtmf_sent: str | None = Field(default=None, max_length=64)
    dtmf_received: str | None = Field(default=None, max_length=64)
    # An expectation of a call script (`expect_dtmf 12`, `expect audio`) for this call, judged
    # from the call's other rows (stream_key "expect/<call>/<step>").
    expect_step: str | None = Field(default=None, max_length=64)
    expect_what: str | None = Field(default=None, max_length=80)  # "dtmf 12" | "audio"
    # The longest silence in the stream and the audio after it (hold/resume with media).
    max_gap_ms: float | None = None
    after_gap_ms: float | None = None
    # Moments, for a script's media steps judged at their step (NULL: rows of an older runner,
    # judged over the whole call): an audio row's runs of packets ([[first, last], ...] arrival,
    # epoch s); a DTMF row's arrival of each detected digit; an expectation's step moment and
    # the call's answer at the runner that logged it.
    spans: list[list[float]] | None = Field(default=None, sa_column=Column(JSON))
    dtmf_times: list[float] | None = Field(default=None, sa_column=Column(JSON))
    expect_at: float | None = None
    answered_at: float | None = None


class CallEvidenceRow(SQLModel, table=True):
    """One kept call of a session's SIP capture (sipflow/evidence.py): its pcap and ladder are
    files `<key>.pcap` / `<key>.json` in the session's runs folder (evidence/), purged with it."""

    __tablename__ = "call_evidence"
    __table_args__ = (UniqueConstraint("session_id", "call_id", name="uq_call_evidence"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", index=True, max_length=32)
    call_id: str = Field(max_length=255)
    key: str = Field(max_length=32)
    outcome: str = Field(max_length=16)  # answered | expected | failed
    reason: str | None = Field(default=None, max_length=255)
    final_code: int | None = None
    method: str = Field(default="", max_length=32)
    first_time: float = 0.0
    messages: int = 0
    partial: bool = False
