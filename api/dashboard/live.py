"""Live aggregation of one session's stats intervals, as the dashboard charts show them.

Fed from the database (what the worker stored so far) and from the MQTT stream (what runners
publish now); `(runner, seq)` is counted once whatever the source. The merged points come from
the same MergedSeries as `GET /v1/sessions/{id}/metrics` `merged` (api.session_views), so a chart
drawn from history and then extended live shows one consistent series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from api.session_views import MergedSeries
from sipflow.messages import RunnerState, StatsMessage
from sipflow.models import Interval, IntervalPoint, RunnerRow

FINAL_RUNNER_STATES = {"done", "failed", "lost"}


# Of a runner's latest interval, what the dashboard's runners table shows.
RUNNER_TABLE = (
    "current_calls", "call_rate",
    "cum_calls_created", "cum_successful_calls", "cum_failed_calls", "cum_retransmissions",
)  # fmt: skip


@dataclass
class RunnerLive:
    runner_id: str
    role: str
    state: str = "starting"
    detail: str | None = None
    intervals: int = 0
    latest: IntervalPoint | None = None  # the interval with the highest seq

    def as_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "runner_id": self.runner_id,
            "role": self.role,
            "state": self.state,
            "detail": self.detail,
            "last_seq": latest.seq if latest else 0,
            "last_time": latest.time if latest else None,
            "intervals": self.intervals,
            **{k: getattr(latest, k) if latest else 0 for k in RUNNER_TABLE},
        }


class LiveSession:
    """Merged per-second points per role and the latest per-runner counters of one session."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._seen: set[tuple[str, int]] = set()
        self._merged = MergedSeries()
        self.runners: dict[str, RunnerLive] = {}

    def add(self, iv: Interval) -> dict[str, Any] | None:
        """Count one interval; the updated merged point of its role and second, or None if the
        interval was already counted."""
        key = (iv.runner_id, iv.seq)
        if key in self._seen:
            return None
        self._seen.add(key)
        second = self._merged.add(iv)
        r = self._runner(iv.runner_id, iv.role)
        r.intervals += 1
        if r.latest is None or iv.seq > r.latest.seq:
            r.latest = iv
            if r.state in ("starting", "registering", "ready"):
                r.state = "running"
        return self._merged.point(iv.role, second).model_dump()

    def add_message(self, msg: StatsMessage) -> dict[str, Any] | None:
        return self.add(Interval.from_message(msg))

    def add_rows(self, rows: Iterable[Interval]) -> None:
        for row in rows:
            self.add(row)

    def set_runner(self, row: RunnerRow) -> None:
        r = self._runner(row.runner_id, row.role)
        self._set_state(r, row.state, row.detail)

    def set_state(self, msg: RunnerState, role: str | None = None) -> dict[str, Any] | None:
        """Apply a runner's state message; its row if the state changed, else None."""
        r = self._runner(msg.runner_id, role or "")
        return r.as_dict() if self._set_state(r, msg.state, msg.detail) else None

    @staticmethod
    def _set_state(r: RunnerLive, state: str, detail: str | None) -> bool:
        # A runner's state only moves forward (a late retained "running" must not undo "done").
        final = FINAL_RUNNER_STATES
        if r.state == state or (r.state in final and state not in final):
            return False
        if r.state in ("done", "failed") and state == "lost":
            return False
        r.state, r.detail = state, detail
        return True

    def _runner(self, runner_id: str, role: str) -> RunnerLive:
        r = self.runners.get(runner_id)
        if r is None:
            r = self.runners[runner_id] = RunnerLive(runner_id=runner_id, role=role)
        elif role and not r.role:
            r.role = role
        return r

    def runner(self, runner_id: str) -> dict[str, Any] | None:
        r = self.runners.get(runner_id)
        return r.as_dict() if r is not None else None

    def points(self) -> dict[str, list[dict[str, Any]]]:
        return {
            role: [p.model_dump() for p in points] for role, points in self._merged.points().items()
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "points": self.points(),
            "runners": [r.as_dict() for _, r in sorted(self.runners.items())],
        }
