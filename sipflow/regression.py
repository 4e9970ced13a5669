"""Regression rules and verdicts of scheduled runs. Pure functions: the launcher workflow decides
alerts from their results deterministically.

A rule names a metric and how far it may move in its bad direction from the baseline:
`response_time_p95_ms: +20%` (worse when it grows by more than 20 % of the baseline),
`success_rate: -0.5` (worse when it drops by more than 0.5, absolute), `achieved_rate: -5%`.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

_CHANGE = re.compile(r"^\s*([+-])\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*$")

# A run's state for alerting: its session's verdict, or "regressed" when it passed but broke a rule.
PASS, FAIL, REGRESSED = "pass", "fail", "regressed"


class Change(BaseModel):
    increase: bool  # the bad direction: up (+) or down (-)
    amount: float
    relative: bool  # % of the baseline, else absolute

    def limit(self, baseline: float) -> float:
        step = abs(baseline) * self.amount / 100 if self.relative else self.amount
        return baseline + step if self.increase else baseline - step


def parse_change(text: str) -> Change:
    m = _CHANGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not '+N', '-N', '+N%' or '-N%'")
    sign, amount, pct = m.groups()
    return Change(increase=sign == "+", amount=float(amount), relative=pct == "%")


class Regressed(BaseModel):
    metric: str
    rule: str
    measured: float | None
    baseline: float
    delta: float | None  # measured - baseline


class Judgement(BaseModel):
    state: str  # pass | fail | regressed | error (the session's verdict when not pass)
    regressed: list[Regressed] = []
    baseline: dict[str, float] = {}
    baseline_sessions: list[str] = []
    note: str | None = None  # e.g. "not enough history"


def median_baseline(
    runs: Sequence[Mapping[str, float | None]], metrics: Sequence[str]
) -> dict[str, float]:
    """Per metric, the median of the runs' values that exist."""
    out: dict[str, float] = {}
    for m in metrics:
        values = [float(v) for r in runs if (v := r.get(m)) is not None]
        if values:
            out[m] = float(statistics.median(values))
    return out


def judge(
    verdict: str,
    measured: Mapping[str, float | None],
    rules: Mapping[str, str],
    baseline: Mapping[str, float] | None,
) -> list[Regressed]:
    """The rules this run broke against `baseline` (a missing measurement breaks its rule)."""
    broken: list[Regressed] = []
    for metric, text in rules.items():
        if baseline is None or metric not in baseline:
            continue
        base, value = baseline[metric], measured.get(metric)
        change = parse_change(text)
        limit = change.limit(base)
        worse = value is None or (value > limit if change.increase else value < limit)
        if worse:
            delta = None if value is None else round(value - base, 6)
            broken.append(
                Regressed(metric=metric, rule=text, measured=value, baseline=base, delta=delta)
            )
    return broken


def state_of(verdict: str, regressed: Sequence[Regressed]) -> str:
    if verdict != PASS:
        return verdict
    return REGRESSED if regressed else PASS


def alert_kind(previous: str | None, current: str) -> str | None:
    """The alert a change of state calls for, None when nothing changed (or nothing is known).
    Before the first run the state counts as pass, so a first failing run is told."""
    before = previous or PASS
    if before == current:
        return None
    if current == PASS:
        return "recovered"
    if before == PASS:
        return "regressed" if current == REGRESSED else "failed"
    return None  # fail <-> regressed <-> error: still broken, already told
