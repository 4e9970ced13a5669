"""Request and response bodies of the API (the session spec itself is sipflow.spec.SessionSpec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sipflow.messages import RegistrationCounts
from sipflow.models import IntervalCounts, IntervalPoint
from sipflow.spec import Caps
from sipflow.step_results import StepSummary
from sipflow.summary import RoleSummary
from sipflow.thresholds import ThresholdResult
from sipflow.workflow_types import Progress

EXAMPLE_SPEC: dict[str, Any] = {
    "version": 1,
    "name": "smoke: 200 calls between local agents",
    "roles": {
        "callees": {"agents": 1, "scenario": "answer"},
        "callers": {
            "agents": 2,
            "scenario": "call",
            "rate": 20,
            "max_calls": 200,
            "max_concurrent": 50,
            "hold_ms": 500,
        },
    },
    "thresholds": ["success_rate >= 99.5", "response_time_p95_ms <= 200"],
    "timeout_s": 120,
}

EXAMPLE_SPEC_PROXY: dict[str, Any] = {
    "version": 1,
    "name": "through the proxy, register then call",
    "target": {"host": "10.0.0.5", "port": 5060, "transport": "udp", "domain": "example.test"},
    "roles": {
        "callees": {
            "agents": 2,
            "scenario": "answer",
            "accounts": [
                {"user": "1001", "password": "secret1"},
                {"user": "1002", "password": "secret2"},
            ],
        },
        "callers": {"agents": 1, "scenario": "call", "rate": 5, "duration_s": 60},
    },
    "thresholds": ["success_rate >= 99", "failed_calls <= 3", "lost_runners == 0"],
}


class Links(BaseModel):
    self: str
    metrics: str
    temporal_ui: str


class SessionCreated(BaseModel):
    id: str = Field(examples=["3f9c2a7d41b0"])
    workflow_id: str = Field(examples=["session-3f9c2a7d41b0"])
    status: str = Field(examples=["pending"])
    links: Links


class SessionBrief(BaseModel):
    id: str
    tenant: str
    name: str
    status: str = Field(
        description="pending, queued (waiting for admission), running, stopping, completed, "
        "cancelled or error"
    )
    verdict: str | None = Field(default=None, description="pass, fail or error once finished")
    target: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SessionList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SessionBrief]


class RunnerOut(BaseModel):
    runner_id: str
    role: str
    party: str | None = Field(
        default=None,
        description="the named party (roles.parties) this callee-side runner runs, e.g. a "
        "transfer target; null for a plain caller or callee",
    )
    address: str | None = None
    state: str
    detail: str | None = None
    exit_code: int | None = None
    ok: bool | None = None
    last_seq: int | None = None
    failure_reasons: dict[str, int] | None = None
    registration: RegistrationCounts | None = Field(
        default=None, description="a registering callee's REGISTER tries and their outcomes"
    )


class PlannedRate(BaseModel):
    at_s: float
    rate: float
    stage: int | None = Field(default=None, description="set where a stage of the profile begins")


class DurationBucket(BaseModel):
    le_s: float | None = Field(
        description="the bucket's upper bound in seconds; null: above the last"
    )
    calls: int


class SessionDetail(SessionBrief):
    workflow_id: str
    spec: dict[str, Any]
    measured: dict[str, float | None] = Field(
        description="metrics computed from the stored intervals (see sipflow.thresholds.METRICS)"
    )
    roles: dict[str, RoleSummary] = Field(description="per role: counters, causes, runner states")
    intervals: int = Field(description="stored stats intervals of all runners")
    thresholds: list[ThresholdResult] = Field(
        description="the workflow's results once finished, else the spec's thresholds on the "
        "metrics so far"
    )
    thresholds_final: bool = Field(description="true when `thresholds` are the workflow's results")
    summary: dict[str, Any] | None = Field(
        default=None, description="what the workflow stored when it finished"
    )
    reasons: list[str] = Field(description="plain-language failure reasons")
    flow: str | None = Field(default=None, description="the callers' built-in flow, if any")
    steps: list[StepSummary] = Field(
        default_factory=list,
        description="per role and step of a scenario with step marks (a flow): calls through "
        "it, calls failed in it, its mean and max time",
    )
    runners: list[RunnerOut]
    progress: Progress | None = Field(
        default=None, description="the workflow's live `progress` query, while it runs"
    )
    planned_rate: list[PlannedRate] | None = Field(
        default=None,
        description="with a load profile: the callers' rate the workflow sets, as steps "
        "(seconds since the callers started, calls/s of all callers); the last point is its end",
    )
    call_durations: list[DurationBucket] = Field(
        default_factory=list,
        description="the callers' answered calls by duration (200 OK -> BYE), per bucket; "
        "empty when none ended yet",
    )
    links: Links


# The interval's fields are declared once, in sipflow.models.
class MetricPoint(IntervalPoint):
    """One stats interval of one runner."""


class RunnerSeries(BaseModel):
    runner_id: str
    role: str
    points: list[MetricPoint]


class MergedPoint(IntervalCounts):
    """All runners of one role in one second (`time` is the whole second)."""

    time: int
    runners: int = Field(description="intervals merged into this point")
    failed_by_cause: dict[str, int] = {}
    response_time_p50_ms: float | None = None
    response_time_p95_ms: float | None = None
    response_time_p99_ms: float | None = None
    pdd_p50_ms: float | None = Field(default=None, description="post-dial delay (INVITE to 18x)")
    pdd_p95_ms: float | None = None


class SessionMetricsOut(BaseModel):
    session_id: str
    runners: list[RunnerSeries]
    merged: dict[str, list[MergedPoint]] = Field(description="per role, one point per second")


class RateChange(BaseModel):
    rate: float = Field(gt=0, le=Caps.RATE, description="calls per second, all caller agents")

    model_config = ConfigDict(allow_inf_nan=False, json_schema_extra={"examples": [{"rate": 50}]})


class RateChanged(BaseModel):
    id: str
    rate: float
    result: Any = None


class CancelRequested(BaseModel):
    id: str
    status: str = "cancel_requested"


class Check(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    ok: bool
    database: Check
    temporal: Check
