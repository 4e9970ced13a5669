"""A scheduled regression test as a user submits it: a session spec, when it runs, what it is
compared with, what counts as a regression and whom to tell.

Validation errors carry the wrong field's path like the session spec's (a rule on an unknown
metric: `rules.<metric>.[key]`); nothing is created for an invalid schedule.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, ValidationError, model_validator

from sipflow.capacity import CAPACITY_METRICS, STEP_FIELDS, CapacityPlan, scheduled_search
from sipflow.regression import parse_change
from sipflow.spec import SessionSpec, Strict, Text
from sipflow.thresholds import METRICS, STEP_METRIC

MASK = "***"
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# minute, hour, day of month, month, day of week: what each field may hold
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = {
    3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
_CRON_ITEM = re.compile(r"^(\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?$")


def _cron_value(text: str, field: int) -> int:
    names = _CRON_NAMES.get(field, [])
    if text.upper() in names:
        return names.index(text.upper()) + (1 if field == 3 else 0)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    lo, hi = _CRON_RANGES[field]
    if not lo <= int(text) <= hi:
        raise ValueError(f"{text} is outside {lo}-{hi}")
    return int(text)


def check_cron(expr: str) -> str:
    """A 5-field cron expression (or a macro such as @daily), checked before Temporal sees it."""
    text = expr.strip()
    if text in _CRON_MACROS:
        return text
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r}: a cron expression has 5 fields (minute hour dom month dow)")
    for i, field in enumerate(fields):
        for item in field.split(","):
            m = _CRON_ITEM.match(item)
            if not m:
                raise ValueError(f"{expr!r}: field {i + 1} ({field!r}) is not valid")
            if m.group(1) != "*":
                for part in m.group(1).split("-"):
                    try:
                        _cron_value(part, i)
                    except ValueError as exc:
                        raise ValueError(f"{expr!r}: field {i + 1}: {exc}") from exc
            if m.group(2) is not None and int(m.group(2)) == 0:
                raise ValueError(f"{expr!r}: field {i + 1}: a step of 0")
    return text


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (IANA names, e.g. Europe/Berlin)") from exc
    return name


def _metric(name: str) -> str:
    # Steps of a flow (step_failed_hold, step_time_ms_prack, ...) too: sipflow/step_results.py;
    # a capacity schedule's answer (capacity, capacity_broken_at): sipflow/capacity.py.
    if name not in METRICS and name not in CAPACITY_METRICS and not STEP_METRIC.match(name):
        steps = ["step_failed_STEP", "step_passed_STEP", "step_time_ms_STEP"]
        known = ", ".join([*METRICS, *steps, *CAPACITY_METRICS])
        raise ValueError(f"unknown metric {name!r}; known: {known}")
    return name


def _change(text: str) -> str:
    parse_change(text)
    return text


Cron = Annotated[str, AfterValidator(check_cron)]
Metric = Annotated[str, AfterValidator(_metric)]
Change = Annotated[str, AfterValidator(_change)]


class Timing(Strict):
    """When runs are due: the union of the cron expressions and the intervals."""

    cron: list[Cron] = Field(default=[], max_length=20)
    every_s: list[Annotated[float, Field(ge=1, le=366 * 86400)]] = Field(default=[], max_length=20)
    time_zone: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    jitter_s: Annotated[float, Field(ge=0, le=86400)] = 0
    start_at: datetime | None = None
    end_at: datetime | None = None

    @model_validator(mode="after")
    def _some_time(self) -> Timing:
        if not self.cron and not self.every_s:
            raise ValueError("give at least one cron expression or interval (every_s)")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class Baseline(Strict):
    """A pinned session, else the median of the schedule's last `median_of` passing runs."""

    pinned_session: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None
    median_of: Annotated[int, Field(ge=1, le=100)] = 5
    # Runs needed before a median baseline is trusted (fewer: "not enough history").
    min_runs: Annotated[int, Field(ge=1, le=100)] = 1


class WebhookChannel(Strict):
    kind: Literal["webhook"]
    name: Text = "webhook"
    url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2000)]
    # "json": sipflow's own body; "slack": {"text": ...} for Slack-compatible incoming webhooks
    format: Literal["json", "slack"] = "json"
    # Sent as `Authorization: Bearer <token>`; write-only ("***" keeps the stored one).
    token: Annotated[Text | None, Field(max_length=1000)] = None


class EmailChannel(Strict):
    kind: Literal["email"]
    name: Text = "email"
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,253}$")]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    sender: Annotated[str, Field(pattern=r"^[^\s@]+@[^\s@]+$", max_length=254)]
    to: list[Annotated[str, Field(pattern=r"^[^\s@]+@[^\s@]+$", max_length=254)]] = Field(
        min_length=1, max_length=50
    )
    username: Text | None = None
    password: Annotated[Text | None, Field(max_length=1000)] = None  # write-only


Channel = Annotated[WebhookChannel | EmailChannel, Field(discriminator="kind")]
Overlap = Literal["skip", "buffer_one", "cancel_other"]


class ScheduleSpec(Strict):
    name: Annotated[Text, Field(min_length=1, max_length=120)]
    session: SessionSpec
    schedule: Timing
    overlap: Overlap = "skip"
    # Runs missed (workers or server down) are still started if at most this late.
    catchup_window_s: Annotated[float, Field(ge=10, le=366 * 86400)] = 60
    baseline: Baseline = Baseline()
    # Each run a capacity search of `session` (its callers' rate/length set per step) instead of
    # one session; its rules may then compare `capacity` ("capacity: -10%").
    capacity: CapacityPlan | None = None
    rules: dict[Metric, Change] = Field(default={}, max_length=len(METRICS) + len(CAPACITY_METRICS))
    alerts: list[Channel] = Field(default=[], max_length=10)

    @model_validator(mode="before")
    @classmethod
    def _capacity_session(cls, data: Any) -> Any:
        """A capacity schedule's session leaves the callers' rate and length to the steps; it is
        stored as its peak step (rate = the ceiling, length = warm-up + window), which is what
        the tenant's policy checks."""
        if not isinstance(data, dict) or not isinstance(data.get("capacity"), dict):
            return data
        session = data.get("session")
        roles = session.get("roles") if isinstance(session, dict) else None
        callers = roles.get("callers") if isinstance(roles, dict) else None
        if not isinstance(session, dict) or not isinstance(roles, dict):
            return data
        if not isinstance(callers, dict):
            return data
        try:
            plan = CapacityPlan.model_validate(data["capacity"])
        except ValidationError:
            # The plan's own validation names what is wrong; the session is not blamed for the
            # rate and length the plan would have set.
            filled = {"rate": 1.0, "duration_s": 1.0} | callers
            return {**data, "session": {**session, "roles": {**roles, "callers": filled}}}
        peak = {
            "rate": plan.ceiling,
            "duration_s": plan.warmup + plan.window,
            "profile": None,
            "max_calls": None,
        }
        # What the steps set may only be absent, or what a stored spec already holds (its peak).
        given = [f for f in STEP_FIELDS if callers.get(f) not in (None, peak[f])]
        if given:
            raise ValueError(
                f"session.roles.callers.{given[0]}: the capacity search sets it per step"
            )
        callers = {**callers, "rate": peak["rate"], "duration_s": peak["duration_s"]}
        return {**data, "session": {**session, "roles": {**roles, "callers": callers}}}

    @model_validator(mode="after")
    def _capacity_rules(self) -> ScheduleSpec:
        if self.capacity is None:
            wrong = [m for m in self.rules if m in CAPACITY_METRICS]
            if wrong:
                raise ValueError(f"rules.{wrong[0]}: a capacity metric needs `capacity` (a search)")
            return self
        wrong = [m for m in self.rules if m not in CAPACITY_METRICS]
        if wrong:
            known = ", ".join(CAPACITY_METRICS)
            raise ValueError(f"rules.{wrong[0]}: a capacity schedule's rules compare {known}")
        try:  # its steps' sessions must be valid sessions
            scheduled_search(
                self.name,
                self.session.model_dump(mode="json", exclude_unset=True),
                self.capacity.model_dump(mode="json"),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(p) for p in first["loc"]]
            where = ".".join(loc if loc[:1] == ["session"] else ["capacity", *loc])
            raise ValueError(f"{where}: {first['msg']}") from None
        return self


def channel_secret_fields(channel: WebhookChannel | EmailChannel) -> tuple[str, ...]:
    return ("token",) if isinstance(channel, WebhookChannel) else ("password",)
