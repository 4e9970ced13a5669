"""Names and payloads shared by the workflow, its starters (API, CLI, schedules) and activities.

Kept apart from `workflows/` so that the API can start and query sessions without importing
workflow code.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey

WORKFLOW_NAME = "TestSessionWorkflow"
QUERY_PROGRESS = "progress"
UPDATE_SET_RATE = "set_rate"
SIGNAL_RUNNER_EVENT = "runner_event"
SIGNAL_PROGRESS = "progress_report"
# A queued session asks for admission again now (a running session ended).
SIGNAL_ADMISSION = "admission_wake"

# Custom search attributes, registered on the Temporal server (see sipflow.stack).
SA_TENANT = SearchAttributeKey.for_keyword("SipflowTenant")
SA_STATUS = SearchAttributeKey.for_keyword("SipflowStatus")
SA_VERDICT = SearchAttributeKey.for_keyword("SipflowVerdict")
SA_TARGET = SearchAttributeKey.for_keyword("SipflowTarget")
# The schedule a session was started by (its launcher and the session itself carry it).
SA_SCHEDULE = SearchAttributeKey.for_keyword("SipflowSchedule")
SEARCH_ATTRIBUTES = (SA_TENANT, SA_STATUS, SA_VERDICT, SA_TARGET, SA_SCHEDULE)

LAUNCHER_NAME = "ScheduledRunWorkflow"


def ingest_task_queue(task_queue: str) -> str:
    """Where a session's ingest activity runs: a queue with a slot budget of its own."""
    return f"{task_queue}-ingest"


def workflow_id(session_id: str) -> str:
    return f"session-{session_id}"


def schedule_id(schedule: str) -> str:
    """Temporal's id of a sipflow schedule (its launcher workflows: this id plus the time)."""
    return f"schedule-{schedule}"


class SessionInput(BaseModel):
    session_id: str
    tenant: str
    spec: dict[str, Any]  # a validated SessionSpec, as JSON


class RunnerEvent(BaseModel):
    """Sent by the metrics-ingest activity when a runner's state changes."""

    runner_id: str
    state: str
    detail: str | None = None


class ProgressReport(BaseModel):
    """Sent by the ingest activity every few seconds: totals of the stored intervals."""

    calls_created: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    current_calls: int = 0
    call_rate: float = 0.0
    retransmissions: int = 0
    intervals: int = 0


class Progress(BaseModel):
    """Answer of the `progress` query."""

    session_id: str
    phase: str
    status: str
    verdict: str | None = None
    runners: dict[str, str] = {}
    rate: float | None = None
    expected_calls: int | None = None
    totals: ProgressReport = ProgressReport()
    reasons: list[str] = []


class SetRate(BaseModel):
    rate: float  # calls/s across all caller agents


class SessionResult(BaseModel):
    session_id: str
    status: str
    verdict: str
    reasons: list[str]
    measured: dict[str, float | None]
    thresholds: list[dict[str, Any]]


class ScheduledRun(BaseModel):
    """What a schedule passes to every launcher: the same each time (the launcher mints the
    session id). `spec` holds the clear passwords: the payload codec encrypts it."""

    schedule_id: str
    tenant: str
    spec: dict[str, Any]
    target: str | None = None
    alert_attempts: int = 5
    alert_backoff_s: float = 1.0
    alert_max_backoff_s: float = 30.0
    late_after_s: float = 60.0
    # A capacity schedule: each run is this capacity search (sipflow.capacity.CapacitySearchSpec
    # as JSON, clear passwords) instead of one session of `spec`.
    capacity: dict[str, Any] | None = None


class ScheduledRunResult(BaseModel):
    session_id: str
    verdict: str
    state: str
    alert: str | None = None


# -- capacity search -------------------------------------------------------------------------------
CAPACITY_NAME = "CapacitySearchWorkflow"
QUERY_CAPACITY = "capacity"


def capacity_workflow_id(search_id: str) -> str:
    return f"capacity-{search_id}"


class CapacityInput(BaseModel):
    search_id: str
    tenant: str
    spec: dict[str, Any]  # sipflow.capacity.CapacitySearchSpec as JSON (clear passwords)
