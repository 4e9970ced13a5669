"""Capacity search: the highest call rate a system under test carries while stated criteria hold.

Each step is an ordinary session at one constant rate: `warmup` seconds that are not judged,
then `window` seconds whose stored intervals are judged against the criteria (the same
expressions as thresholds). Between steps the SUT rests `settle` seconds. The rate grows by
`factor` from `start` until a step breaks or `ceiling` is reached; then it bisects between the
highest rate that held and the lowest that broke until they are `resolution_pct` apart, or
`max_steps` steps ran. Pure functions: the workflow calls them to decide, deterministically.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sipflow.caps import Caps
from sipflow.load_profile import Seconds
from sipflow.spec import SessionSpec, ThresholdText

Rate = Annotated[float, Field(gt=0, le=Caps.RATE)]
StopReason = Literal["ceiling", "resolution", "max_steps", "first_step_broke"]


# A capacity run's results as metrics: what schedules' regression rules compare across runs
# ("capacity: -10%": the highest rate that held dropped by more than 10 % of the baseline).
CAPACITY_METRICS: dict[str, str] = {
    "capacity": "capacity search: the highest call rate (calls/s) at which the criteria held",
    "capacity_broken_at": "capacity search: the lowest rate above it at which they broke",
}
# Callers' fields each step sets; a session that a search runs leaves them out.
STEP_FIELDS = ("profile", "max_calls", "duration_s", "rate")


class CapacityPlan(BaseModel):
    """How a search steps and judges, without the session it runs (a schedule's `capacity`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    criteria: Annotated[list[ThresholdText], Field(min_length=1, max_length=Caps.THRESHOLDS)]
    start: Rate
    ceiling: Rate
    factor: Annotated[float, Field(gt=1, le=10)] = 2.0
    resolution_pct: Annotated[float, Field(gt=0, le=100)] = 10.0
    max_steps: Annotated[int, Field(ge=1, le=50)] = 12
    warmup: Seconds = 5.0
    window: Annotated[Seconds, Field(gt=0)] = 20.0
    settle: Seconds = 10.0

    @model_validator(mode="after")
    def _range(self) -> CapacityPlan:
        if self.ceiling < self.start:
            raise ValueError(f"ceiling: below start ({self.start:g})")
        return self


class CapacitySearchSpec(CapacityPlan):
    name: Annotated[str, Field(min_length=1, max_length=Caps.NAME_CHARS)] = "capacity"
    # The session each step runs, with its callers' rate set per step (no profile, no
    # max_calls, no duration_s: the search sets them).
    session: dict[str, Any]

    @field_validator("session")
    @classmethod
    def _session(cls, v: dict[str, Any]) -> dict[str, Any]:
        callers = (v.get("roles") or {}).get("callers") or {}
        for field in STEP_FIELDS:
            if field in callers:
                raise ValueError(f"roles.callers.{field}: the search sets it per step")
        SessionSpec.model_validate(step_session(v, 1.0, 1.0))  # the rest must be a valid spec
        return v

    def step_spec(self, rate: float, index: int) -> dict[str, Any]:
        spec = step_session(self.session, rate, self.warmup + self.window)
        spec["name"] = f"{self.name} step {index + 1}: {rate:g} calls/s"
        return spec


def step_session(session: dict[str, Any], rate: float, duration_s: float) -> dict[str, Any]:
    spec = copy.deepcopy(session)
    callers = spec.setdefault("roles", {}).setdefault("callers", {})
    callers["rate"], callers["duration_s"] = rate, duration_s
    return spec


class Step(BaseModel):
    index: int
    rate: float
    session_id: str
    verdict: str | None = None  # the step session's own (its thresholds)
    held: bool
    measured: dict[str, float | None]  # in the judged window
    failed: list[str] = []  # criteria that did not hold, or why the step did not count
    achieved_rate: float | None = None


class SearchResult(BaseModel):
    highest_held: float | None  # None: not even `start` held
    lowest_broken: float | None  # None: nothing broke up to the ceiling
    stop: StopReason | None  # None: still searching (or cancelled)
    steps: list[Step]


def next_rate(spec: CapacitySearchSpec, steps: list[Step]) -> float | StopReason:
    """The next step's rate, or why the search ends."""
    if not steps:
        return spec.start
    if len(steps) >= spec.max_steps:
        return "max_steps"
    held = [s.rate for s in steps if s.held]
    broken = [s.rate for s in steps if not s.held]
    if not held:
        return "first_step_broke"
    good = max(held)
    bad = min((r for r in broken if r > good), default=None)
    if bad is None:  # still growing
        if good >= spec.ceiling:
            return "ceiling"
        return min(good * spec.factor, spec.ceiling)
    if (bad - good) / good * 100 <= spec.resolution_pct:
        return "resolution"
    return round((good + bad) / 2, 3)


def result(steps: list[Step], stop: StopReason | None) -> SearchResult:
    held = [s.rate for s in steps if s.held]
    good = max(held, default=None)
    broken = [s.rate for s in steps if not s.held and (good is None or s.rate > good)]
    return SearchResult(
        highest_held=good, lowest_broken=min(broken, default=None), stop=stop, steps=steps
    )


def scheduled_search(name: str, session: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The search a schedule's run makes of its session and `capacity` plan (JSON): the
    session's own rate, length and profile give way to the steps'."""
    spec = copy.deepcopy(session)
    callers = spec.setdefault("roles", {}).setdefault("callers", {})
    for field in STEP_FIELDS:
        callers.pop(field, None)
    checked = CapacitySearchSpec.model_validate({**plan, "name": name, "session": spec})
    return checked.model_dump(mode="json")


def measured_of(res: Mapping[str, Any] | None) -> dict[str, float | None]:
    """A stored SearchResult (JSON) as the metrics of CAPACITY_METRICS."""
    res = res or {}
    return {"capacity": res.get("highest_held"), "capacity_broken_at": res.get("lowest_broken")}


def verdict_of(status: str, res: Mapping[str, Any] | None) -> str:
    """A search's verdict for schedules: pass when it completed with a rate that held; fail when
    even its first step broke; error when it did not complete."""
    if status != "completed":
        return "error"
    return "pass" if (res or {}).get("highest_held") is not None else "fail"
