"""Per-step results of a session (scenarios with `sipflow-step` marks, e.g. the built-in flows):
the runners' step counts (their done messages, stored once on the runner row) added up per role
and step, and the step metrics thresholds judge:

    step_passed_<step>   calls through the step, callers' side
    step_failed_<step>   calls failed in the step, all roles
    step_time_ms_<step>  mean time of the step's rtd (request -> final answer), callers' side

A callee script's steps (sipflow/callee_script.py) are named callee_s<i>_..., no caller step's
name: their passed and time are the callees' own.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from sipflow.callee_script import STEP_PREFIX as CALLEE_STEP_PREFIX
from sipflow.messages import StepCounts
from sipflow.models import RunnerRow


class StepSummary(BaseModel):
    """One step of one role, over its runners."""

    role: str
    step: str
    passed: int = 0
    failed: int = 0
    failed_by: dict[str, int] = {}
    time_count: int = 0
    time_mean_ms: float | None = None
    time_max_ms: float | None = None


def step_table(runners: Iterable[RunnerRow]) -> list[StepSummary]:
    """Callers first, then callees; steps in scenario order."""
    rows: dict[tuple[str, str], StepSummary] = {}
    sums: dict[tuple[str, str], float] = {}
    for r in sorted(runners, key=lambda r: (r.role != "caller", r.runner_id)):
        for raw in r.steps or []:
            c = StepCounts.model_validate(raw)
            key = (r.role, c.step)
            row = rows.setdefault(key, StepSummary(role=r.role, step=c.step))
            row.passed += c.passed
            row.failed += c.failed
            for kind, n in c.failed_by.items():
                row.failed_by[kind] = row.failed_by.get(kind, 0) + n
            row.time_count += c.time_count
            sums[key] = sums.get(key, 0.0) + c.time_sum_ms
            if c.time_count:
                row.time_max_ms = max(row.time_max_ms or 0.0, c.time_max_ms)
    for key, row in rows.items():
        if row.time_count:
            row.time_mean_ms = sums[key] / row.time_count
    return list(rows.values())


def step_metrics(table: list[StepSummary]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for row in table:
        failed = f"step_failed_{row.step}"
        out[failed] = (out.get(failed) or 0.0) + row.failed
        if row.role == "caller" or row.step.startswith(CALLEE_STEP_PREFIX):
            out[f"step_passed_{row.step}"] = float(row.passed)
            out[f"step_time_ms_{row.step}"] = row.time_mean_ms
    return out
