"""How a stored session is shown: its brief, links, duration, outcome (thresholds and reasons),
and its time series, per runner and merged per role and second.

The API's routes, the exports and the dashboard's live charts all take their views from here, so
they cannot show one session differently. The live charts feed MergedSeries one interval at a
time; `merged_series` feeds it every stored interval at once: the same points either way.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from api.schemas import (
    DurationBucket,
    Links,
    MergedPoint,
    MetricPoint,
    PlannedRate,
    RunnerOut,
    RunnerSeries,
    SessionBrief,
)
from sipflow import histogram, plan
from sipflow.flows import FLOWS, final_code_of
from sipflow.models import Interval, IntervalCounts, MetricInterval, RunnerRow, SessionRow
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.step_results import StepSummary, step_metrics
from sipflow.summary import SessionMetrics, failure_reasons, summarize
from sipflow.thresholds import ThresholdResult, evaluate
from sipflow.workflow_types import workflow_id

log = logging.getLogger(__name__)

# A merged point sums these over its runners; its percentiles come from the merged histograms.
SUMMED = tuple(IntervalCounts.model_fields)
PERCENTILES = {"response_time_p50_ms": 50, "response_time_p95_ms": 95, "response_time_p99_ms": 99}
PDD_PERCENTILES = {"pdd_p50_ms": 50, "pdd_p95_ms": 95}


def finite(v: float | None) -> float | None:
    """JSON has no infinity (a percentile above the last histogram bound): report null."""
    return v if v is None or math.isfinite(v) else None


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


# -- the session -----------------------------------------------------------------------------
def brief(row: SessionRow) -> SessionBrief:
    return SessionBrief(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        status=row.status,
        verdict=row.verdict,
        target=row.target,
        created_at=_utc(row.created_at) or row.created_at,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
    )


def links(request: Request, settings: Settings, session_id: str) -> Links:
    ns = settings.temporal_namespace
    return Links(
        self=str(request.url_for("get_session", session_id=session_id)),
        metrics=str(request.url_for("get_session_metrics", session_id=session_id)),
        temporal_ui=f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{ns}/workflows/"
        f"{workflow_id(session_id)}",
    )


def duration_s(row: SessionRow, now: datetime | None = None) -> float | None:
    """Seconds from start to finish (to `now` while it runs); None before it started."""
    shown = brief(row)
    if shown.started_at is None:
        return None
    end = shown.finished_at or (now or datetime.now(UTC))
    return round((end - shown.started_at).total_seconds(), 3)


def thresholds(
    row: SessionRow, measured: dict[str, float | None]
) -> tuple[list[ThresholdResult], bool]:
    """The workflow's results if it stored them (True), else the spec's thresholds on
    `measured` (False)."""
    stored = (row.summary or {}).get("thresholds")
    if isinstance(stored, list):
        try:
            return _finite_results(ThresholdResult.model_validate(t) for t in stored), True
        except ValidationError:
            log.warning("session %s: unexpected thresholds in summary", row.id)
    try:
        spec = SessionSpec.model_validate(row.spec)
    except ValidationError:
        return [], False
    return _finite_results(evaluate(spec.parsed_thresholds(), measured)), False


def flow_name(spec: Mapping[str, Any]) -> str | None:
    """The callers' built-in flow of a stored spec (sipflow/flows.py), if any."""
    flow = ((spec.get("roles") or {}).get("callers") or {}).get("flow")
    return flow.get("name") if isinstance(flow, dict) else None


def runners_out(spec: Mapping[str, Any], rows: Iterable[RunnerRow]) -> list[RunnerOut]:
    """The session's runners, each with the named party it runs (by its spec's numbering)."""
    try:
        parties = plan.party_runners(SessionSpec.model_validate(spec))
    except ValidationError:  # a spec stored by an older version: its runners, unnamed
        parties = {}
    return [
        RunnerOut.model_validate(r, from_attributes=True).model_copy(
            update={"party": parties.get(r.runner_id)}
        )
        for r in rows
    ]


def flow_entry(spec: Mapping[str, Any]) -> dict[str, object] | None:
    """The catalogue entry of the session's flow (steps, messages, success), if it has one."""
    name = flow_name(spec)
    return FLOWS[name].describe() if name in FLOWS else None


def _finite_results(results: Iterable[ThresholdResult]) -> list[ThresholdResult]:
    return [r.model_copy(update={"measured": finite(r.measured)}) for r in results]


@dataclass(frozen=True)
class Outcome:
    """What a session's stored intervals and runners say about it."""

    metrics: SessionMetrics
    measured: dict[str, float | None]  # metrics.measured without infinities
    thresholds: list[ThresholdResult]
    thresholds_final: bool  # the workflow's results, not an evaluation of the metrics so far
    reasons: list[str]


def outcome(
    row: SessionRow,
    intervals: Sequence[MetricInterval],
    runners: Sequence[RunnerRow],
    media: Mapping[str, float | None] | None = None,
    judge: Callable[[list[StepSummary]], None] | None = None,
) -> Outcome:
    """media: the session's audio metrics (sipflow.media_store.measured), if any; judge: what
    judges a call script's media steps (sipflow.media_store.judge_steps), as the workflow's
    summary did."""
    metrics = summarize(intervals, runners, final_code_of(row.spec))
    metrics.measured.update(media or {})
    if judge is not None and metrics.steps:
        judge(metrics.steps)
        metrics.measured.update(step_metrics(metrics.steps))
    results, final = thresholds(row, metrics.measured)
    return Outcome(
        metrics=metrics,
        measured={k: finite(v) for k, v in metrics.measured.items()},
        thresholds=results,
        thresholds_final=final,
        reasons=row.reasons if row.reasons is not None else failure_reasons(metrics, runners),
    )


# -- its time series -------------------------------------------------------------------------
def runner_series(intervals: Iterable[Interval]) -> list[RunnerSeries]:
    """Each runner's points in seq order, runners by id."""
    series: dict[str, RunnerSeries] = {}
    for iv in intervals:
        s = series.setdefault(
            iv.runner_id, RunnerSeries(runner_id=iv.runner_id, role=iv.role, points=[])
        )
        s.points.append(MetricPoint.model_validate(iv, from_attributes=True))
    for s in series.values():
        s.points.sort(key=lambda p: p.seq)
    return sorted(series.values(), key=lambda s: s.runner_id)


@dataclass
class _Second:
    """The intervals of one role that end in one whole second."""

    time: int
    runners: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUMMED, 0))
    failed_by_cause: Counter[str] = field(default_factory=Counter)
    pdd: list[int] = field(default_factory=histogram.empty)  # before `histogram` shadows it
    histogram: list[int] = field(default_factory=histogram.empty)

    def add(self, iv: Interval) -> None:
        self.runners += 1
        for name in SUMMED:
            self.sums[name] += getattr(iv, name)
        self.failed_by_cause.update(iv.failed_by_cause or {})
        if len(iv.histogram or []) == histogram.N_BUCKETS:  # skips a runner's empty histogram
            self.histogram = histogram.merge((self.histogram, iv.histogram))
        if len(iv.pdd_histogram or []) == histogram.N_BUCKETS:
            self.pdd = histogram.merge((self.pdd, iv.pdd_histogram or []))

    def point(self) -> MergedPoint:
        return MergedPoint.model_validate(
            {
                "time": self.time,
                "runners": self.runners,
                **self.sums,
                "failed_by_cause": dict(self.failed_by_cause),
                **{
                    k: finite(histogram.percentile(self.histogram, p))
                    for k, p in PERCENTILES.items()
                },
                **{
                    k: finite(histogram.percentile(self.pdd, p)) for k, p in PDD_PERCENTILES.items()
                },
            }
        )


class MergedSeries:
    """Per role and whole second: the runners' counts summed, their failure causes added up,
    their response-time histograms merged into percentiles.

    Roles stay apart so that a call is not counted twice (once by its caller, once by its callee).
    """

    def __init__(self) -> None:
        self._roles: dict[str, dict[int, _Second]] = {}

    def add(self, iv: Interval) -> int:
        """Count one interval; the whole second it was counted in."""
        second = math.floor(iv.time)
        seconds = self._roles.setdefault(iv.role, {})
        seconds.setdefault(second, _Second(second)).add(iv)
        return second

    def point(self, role: str, second: int) -> MergedPoint:
        return self._roles[role][second].point()

    def points(self) -> dict[str, list[MergedPoint]]:
        return {
            role: [s.point() for _, s in sorted(seconds.items())]
            for role, seconds in sorted(self._roles.items())
        }


def merged_series(intervals: Iterable[Interval]) -> dict[str, list[MergedPoint]]:
    merged = MergedSeries()
    for iv in intervals:
        merged.add(iv)
    return merged.points()


def call_durations(counts: list[int]) -> list[DurationBucket]:
    """The duration histogram as buckets in seconds, trimmed of empty buckets at both ends."""
    if not any(counts):
        return []
    bounds = [b / 1000.0 for b in histogram.DURATION_BOUNDS_MS]
    buckets = [
        DurationBucket(le_s=bounds[i] if i < len(bounds) else None, calls=n)
        for i, n in enumerate(counts)
    ]
    first = next(i for i, b in enumerate(buckets) if b.calls)
    last = max(i for i, b in enumerate(buckets) if b.calls)
    return buckets[first : last + 1]


def planned_rate(spec: dict[str, Any]) -> list[PlannedRate] | None:
    """The rate steps of the spec's load profile (None: a constant rate, or no valid spec)."""
    try:
        profile = SessionSpec.model_validate(spec).roles.callers.profile
    except ValidationError:
        return None
    if profile is None:
        return None
    steps = [PlannedRate(at_s=0, rate=profile.initial_rate(), stage=0)]
    for c in profile.commands():
        if c.at_s == 0:
            continue  # in the initial rate
        if c.rate is not None:
            steps.append(PlannedRate(at_s=c.at_s, rate=c.rate, stage=c.stage))
        elif c.stage is not None:  # a stage that keeps the rate begins here
            steps.append(PlannedRate(at_s=c.at_s, rate=steps[-1].rate, stage=c.stage))
    return [*steps, PlannedRate(at_s=profile.duration_s(), rate=steps[-1].rate)]  # its end
