"""Turns stored intervals and runner results into the measured metrics that thresholds judge."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from sipflow import histogram, kpis
from sipflow.messages import RegistrationCounts
from sipflow.models import MetricInterval, RunnerRow
from sipflow.step_results import StepSummary, step_metrics, step_table


class RegistrationSummary(BaseModel):
    """What a role's registrations came to (callees that register), over its runners."""

    registered: int = 0  # runners whose first registration succeeded
    attempts: int = 0  # every REGISTER try: first registrations, refreshes, removals
    failures: dict[str, int] = {}  # failed tries by reason
    refreshes: int = 0
    unregistered: int = 0  # bindings removed at the end
    errors: list[str] = []  # final reasons, e.g. "registration failed after 3 attempts: ..."

    def add(self, counts: RegistrationCounts) -> None:
        self.attempts += counts.attempts
        self.refreshes += counts.refreshes
        self.unregistered += 1 if counts.unregistered else 0
        for reason, n in counts.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n
        first_failed = counts.error is not None and counts.error.startswith("registration ")
        if counts.attempts_to_register and not first_failed:
            self.registered += 1
        if counts.error:
            self.errors.append(counts.error)


class RoleSummary(BaseModel):
    runners: int = 0
    calls_created: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    retransmissions: int = 0
    failed_by_cause: dict[str, int] = {}
    failure_reasons: dict[str, int] = {}
    states: dict[str, int] = {}
    registration: RegistrationSummary | None = None


class SessionMetrics(BaseModel):
    measured: dict[str, float | None]
    roles: dict[str, RoleSummary]
    histogram: list[int]
    intervals: int
    # Answered calls' durations of the callers on sipflow.histogram.DURATION_BOUNDS_MS.
    duration_histogram: list[int] = Field(default_factory=list)
    # Per role and step (scenarios with step marks: sipflow/step_results.py).
    steps: list[StepSummary] = []


DURATION_BUCKETS = len(histogram.DURATION_BOUNDS_MS) + 1


def summarize(
    intervals: Sequence[MetricInterval],
    runners: Iterable[RunnerRow],
    final_code: int | None = 200,
) -> SessionMetrics:
    """final_code: what the callers' successful calls ended on (a flow's, sipflow.flows
    .final_code_of): 200 answered; 486, 603, 487 a flow's expected rejection; None no call."""
    roles: dict[str, RoleSummary] = {}
    runner_list = list(runners)
    for r in runner_list:
        role = roles.setdefault(r.role, RoleSummary())
        role.runners += 1
        role.states[r.state] = role.states.get(r.state, 0) + 1
        for reason, n in (r.failure_reasons or {}).items():
            role.failure_reasons[reason] = role.failure_reasons.get(reason, 0) + n
        if r.registration is not None:
            role.registration = role.registration or RegistrationSummary()
            role.registration.add(RegistrationCounts.model_validate(r.registration))
    for iv in intervals:
        role = roles.setdefault(iv.role, RoleSummary())
        role.calls_created += iv.calls_created
        role.successful_calls += iv.successful_calls
        role.failed_calls += iv.failed_calls
        role.retransmissions += iv.retransmissions
        for cause, n in (iv.failed_by_cause or {}).items():
            role.failed_by_cause[cause] = role.failed_by_cause.get(cause, 0) + n

    callers = roles.get("caller", RoleSummary())
    caller_hist = histogram.merge(iv.histogram for iv in intervals if iv.role == "caller")
    finished = callers.successful_calls + callers.failed_calls
    # Only intervals that created calls: SIPp also writes an empty row at start and at exit.
    caller_times = [iv.time for iv in intervals if iv.role == "caller" and iv.calls_created]
    # Each interval covers the second before its time stamp.
    span = (max(caller_times) - min(caller_times) + 1.0) if caller_times else 0.0
    measured: dict[str, float | None] = {
        "success_rate": (100.0 * callers.successful_calls / finished) if finished else None,
        "successful_calls": float(callers.successful_calls),
        "failed_calls": float(sum(r.failed_calls for r in roles.values())),
        "total_calls": float(callers.calls_created),
        "retransmissions": float(sum(r.retransmissions for r in roles.values())),
        "response_time_p50_ms": histogram.percentile(caller_hist, 50),
        "response_time_p95_ms": histogram.percentile(caller_hist, 95),
        "response_time_p99_ms": histogram.percentile(caller_hist, 99),
        "achieved_rate": (callers.calls_created / span) if span else None,
        "lost_runners": float(sum(1 for r in runner_list if r.state == "lost")),
    }
    callers_reasons = (r.failure_reasons or {} for r in runner_list if r.role == "caller")
    codes = dict(kpis.invite_codes(callers_reasons))
    answered = callers.successful_calls if final_code == 200 else 0
    if final_code is not None and final_code != 200 and callers.successful_calls:
        codes[final_code] = codes.get(final_code, 0) + callers.successful_calls
    measured |= kpis.telecom_kpis(
        callers.calls_created,
        answered,
        codes,
        (iv.pdd_histogram or [] for iv in intervals if iv.role == "caller"),
        sum(iv.pdd_sum_ms or 0.0 for iv in intervals if iv.role == "caller"),
        (iv.duration_histogram or [] for iv in intervals if iv.role == "caller"),
        sum(iv.duration_sum_ms or 0.0 for iv in intervals if iv.role == "caller"),
    )
    steps = step_table(runner_list)
    measured |= step_metrics(steps)
    return SessionMetrics(
        measured=measured,
        roles=roles,
        histogram=caller_hist,
        intervals=len(intervals),
        duration_histogram=histogram.merge(
            (
                h
                for iv in intervals
                if iv.role == "caller" and len(h := iv.duration_histogram or []) == DURATION_BUCKETS
            ),
            histogram.DURATION_BOUNDS_MS,
        ),
        steps=steps,
    )


def failed_by_calls(r: RunnerRow) -> bool:
    """A runner that failed only because calls failed (SIPp exit 1, failed calls counted): what
    thresholds on call outcomes judge. Any other failure is the runner's own."""
    failed_calls = int((r.summary or {}).get("failed_calls") or 0)
    return (r.state == "failed" or r.ok is False) and r.exit_code == 1 and failed_calls > 0


def runner_faults(runners: Iterable[RunnerRow]) -> list[str]:
    """The runner reasons that fail a session whatever its thresholds: lost, failed for another
    reason than failed calls (those are the thresholds' to judge), a caller that placed no
    call."""
    return [reason for r, reason in _runner_reasons(runners) if not failed_by_calls(r)]


def failure_reasons(metrics: SessionMetrics, runners: Iterable[RunnerRow]) -> list[str]:
    """Plain-language reasons a session failed, beyond which thresholds it missed."""
    return [reason for _, reason in _runner_reasons(runners)]


def _runner_reasons(runners: Iterable[RunnerRow]) -> list[tuple[RunnerRow, str]]:
    out: list[tuple[RunnerRow, str]] = []
    for r in runners:
        if r.state == "lost":
            out.append((r, f"runner {r.runner_id} lost (its agent vanished)"))
        elif r.state == "failed" or r.ok is False:
            why = ", ".join(f"{k} x{v}" for k, v in (r.failure_reasons or {}).items())
            reason = f"runner {r.runner_id} failed" + (f": {why}" if why else "")
            if r.detail and not why:
                reason += f": {r.detail}"
            out.append((r, reason))
        elif (
            r.role == "caller" and r.state == "done" and not (r.summary or {}).get("calls_created")
        ):
            # SIPp stopped cleanly before its first call: no failure, but nothing was tested.
            out.append((r, f"runner {r.runner_id} placed no call"))
    return out


def as_jsonable(metrics: SessionMetrics) -> dict[str, Any]:
    return metrics.model_dump(mode="json")
