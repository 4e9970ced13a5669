"""Load profiles: how the callers' rate changes over a session (ramp, steps, spike, stages).

A profile compiles to stages (ramp to a rate over a time, or hold the rate), and the stages to
the rate commands the workflow sends at their times. A ramp is carried out as a staircase of at
most RAMP_STEPS steps of at least RAMP_TICK_S each; each step's rate is the ramp's mean over the
step, so the calls a ramp makes are the ones the plan says.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sipflow.caps import Caps

RAMP_TICK_S = 1.0  # the shortest step of a ramp's staircase
RAMP_STEPS = 100  # the most steps of one ramp (a long ramp takes longer steps)
# SIPp cannot place calls at 0/s; a rate of 0 in a profile is carried as this.
MIN_RATE = 0.1
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(v: object) -> object:
    """60, 60.5, "60s", "5m", "1h", "500ms" -> seconds."""
    if isinstance(v, str):
        m = _DURATION.match(v)
        if not m:
            raise ValueError(f"{v!r} is no duration: a number of seconds, or e.g. 30s, 5m, 1h")
        return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    return v


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, le=Caps.DURATION_S)]
Rate = Annotated[float, Field(ge=0, le=Caps.RATE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Stage(_Strict):
    """`{to: 200, over: 60s}` ramps (over 0: jumps) to a rate; `{hold: 300s}` keeps it."""

    to: Rate | None = None
    over: Seconds = 0.0
    hold: Seconds | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Stage:
        if (self.to is None) == (self.hold is None):
            raise ValueError("a stage is either {to: RATE, over: TIME} or {hold: TIME}")
        if self.hold is not None and self.over:
            raise ValueError("'over' belongs to a {to: ...} stage")
        return self

    @property
    def duration_s(self) -> float:
        return self.hold if self.hold is not None else self.over


class Segment(BaseModel):
    """One stage laid out in time: from t0 to t1 the rate goes linearly from r0 to r1."""

    stage: int
    t0: float
    t1: float
    r0: float
    r1: float


class RateCommand(BaseModel):
    at_s: float  # since the callers started
    rate: float | None = None  # calls/s, all callers together; None: no change
    stage: int | None = None  # set on the first command of a stage: the workflow marks it


class _Profile(_Strict):
    start: Rate  # the rate at t = 0

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _bounded(self) -> _Profile:
        stages = self.stages()
        if not stages:
            raise ValueError("a profile needs at least one stage")
        if len(stages) > Caps.PROFILE_STAGES:
            raise ValueError(f"{len(stages)} stages; at most {Caps.PROFILE_STAGES}")
        total = sum(s.duration_s for s in stages)
        if not 0 < total <= Caps.DURATION_S:
            raise ValueError(f"the stages last {total:g} s; give 0 < total <= {Caps.DURATION_S:g}")
        return self

    # -- the plan --------------------------------------------------------------------------------
    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        t, r = 0.0, self.start
        for i, s in enumerate(self.stages()):
            r1 = r if s.to is None else s.to
            out.append(Segment(stage=i, t0=t, t1=t + s.duration_s, r0=r, r1=r1))
            t, r = t + s.duration_s, r1
        return out

    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages())

    def peak(self) -> float:
        return max([self.start, *(s.to for s in self.stages() if s.to is not None)])

    def planned_calls(self) -> float:
        """The calls the plan makes: the area under its rate."""
        return sum((g.t1 - g.t0) * (g.r0 + g.r1) / 2 for g in self.segments())

    def planned_rate(self, t: float) -> float:
        """The rate the plan has at t seconds after the callers started."""
        rate = self.start
        for g in self.segments():
            if t < g.t0:
                break
            if t < g.t1:
                return g.r0 + (g.r1 - g.r0) * (t - g.t0) / (g.t1 - g.t0)
            rate = g.r1
        return rate

    def commands(self) -> list[RateCommand]:
        """What the workflow does, in time order: each stage's start is marked (one command
        with its `stage`), each change of rate is sent. The rate in effect at 0 after the
        commands at 0 is the one the callers start with (`initial_rate`)."""
        out: list[RateCommand] = []
        current = _carried(self.start)
        for g in self.segments():
            if g.r0 != g.r1 and g.t1 > g.t0:  # a ramp: a staircase of each step's mean rate
                n = max(1, min(RAMP_STEPS, math.floor((g.t1 - g.t0) / RAMP_TICK_S)))
                step = (g.t1 - g.t0) / n
                for k in range(n):
                    rate = _carried(g.r0 + (g.r1 - g.r0) * (k + 0.5) / n)
                    out.append(
                        RateCommand(
                            at_s=g.t0 + k * step,
                            rate=rate if rate != current else None,
                            stage=g.stage if k == 0 else None,
                        )
                    )
                    current = rate
            rate = _carried(g.r1)  # a jump, a hold, or where a ramp ends
            out.append(
                RateCommand(at_s=g.t1 if g.t1 > g.t0 and g.r0 != g.r1 else g.t0,
                            rate=rate if rate != current else None,
                            stage=None if g.r0 != g.r1 and g.t1 > g.t0 else g.stage)
            )  # fmt: skip
            current = rate
        return [c for c in out if c.rate is not None or c.stage is not None]

    def initial_rate(self) -> float:
        """The callers' rate at their start: after every command at 0."""
        rate = _carried(self.start)
        for c in self.commands():
            if c.at_s > 0:
                break
            rate = c.rate if c.rate is not None else rate
        return rate


def _carried(rate: float) -> float:
    return max(rate, MIN_RATE)


class CustomProfile(_Profile):
    shape: Literal["custom"] = "custom"
    stage_list: list[Stage] = Field(alias="stages", min_length=1, max_length=Caps.PROFILE_STAGES)

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    def stages(self) -> list[Stage]:
        return self.stage_list


class ConstantProfile(_Profile):
    """`start` for `hold`: the same as a plain rate, with its stage in the history."""

    shape: Literal["constant"]
    hold: Seconds

    def stages(self) -> list[Stage]:
        return [Stage(hold=self.hold)]


class RampProfile(_Profile):
    """From `start` to `to` over `over`, then `hold` there."""

    shape: Literal["ramp"]
    to: Rate
    over: Seconds
    hold: Seconds = 0.0

    def stages(self) -> list[Stage]:
        ramp = [Stage(to=self.to, over=self.over)]
        return ramp + ([Stage(hold=self.hold)] if self.hold else [])


class StepsProfile(_Profile):
    """`start`, then `count` times up by `step`, each rate held for `every`."""

    shape: Literal["steps"]
    step: Annotated[float, Field(gt=0, le=Caps.RATE)]
    every: Seconds
    count: Annotated[int, Field(ge=1, le=Caps.PROFILE_STAGES // 2 - 1)]

    def stages(self) -> list[Stage]:
        out = [Stage(hold=self.every)]
        for k in range(1, self.count + 1):
            out += [Stage(to=min(self.start + k * self.step, Caps.RATE)), Stage(hold=self.every)]
        return out


class SpikeProfile(_Profile):
    """`start` until `at`, `peak` for `length`, back to `start` for `after`."""

    shape: Literal["spike"]
    peak_rate: Rate = Field(alias="peak")
    at: Seconds
    length: Seconds = Field(alias="for")
    after: Seconds

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    def stages(self) -> list[Stage]:
        out = [Stage(hold=self.at)] if self.at else []
        out += [Stage(to=self.peak_rate), Stage(hold=self.length), Stage(to=self.start)]
        return out + ([Stage(hold=self.after)] if self.after else [])


LoadProfile = Annotated[
    CustomProfile | ConstantProfile | RampProfile | StepsProfile | SpikeProfile,
    Field(discriminator="shape"),
]
