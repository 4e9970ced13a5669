"""Regression rules and verdicts: the rules' parsing, and the judge activity on a real database
(SQLite and PostgreSQL) against a baseline of three known runs, as median and as pinned."""

from __future__ import annotations

from typing import Any

import pytest

from activities.schedule_runs import JudgeRun, ScheduleActivities
from sipflow import schedule_store, store
from sipflow.db import session_scope
from sipflow.models import ScheduleRow, utcnow
from sipflow.regression import alert_kind, judge, parse_change
from sipflow.settings import Settings

RULES = {"response_time_p95_ms": "+20%", "success_rate": "-0.5", "achieved_rate": "-5%"}


def test_rule_directions_and_deltas() -> None:
    base = {"response_time_p95_ms": 100.0, "success_rate": 99.8, "achieved_rate": 50.0}
    ok = {"response_time_p95_ms": 119.0, "success_rate": 99.4, "achieved_rate": 47.6}
    assert judge("pass", ok, RULES, base) == []
    bad = {"response_time_p95_ms": 121.0, "success_rate": 99.2, "achieved_rate": 47.0}
    got = {r.metric: (r.measured, r.baseline, r.delta) for r in judge("pass", bad, RULES, base)}
    assert got == {
        "response_time_p95_ms": (121.0, 100.0, 21.0),
        "success_rate": (99.2, 99.8, -0.6),
        "achieved_rate": (47.0, 50.0, -3.0),
    }
    # A metric that was not measured breaks its rule; no baseline value: nothing to judge.
    assert [r.metric for r in judge("pass", {}, {"success_rate": "-1"}, base)] == ["success_rate"]
    assert judge("pass", {}, {"success_rate": "-1"}, {}) == []
    with pytest.raises(ValueError):
        parse_change("20%")


def test_alerts_only_on_changes_of_state() -> None:
    seq = ["pass", "pass", "regressed", "regressed", "fail", "pass", "fail", "fail", "pass"]
    kinds = [alert_kind(prev, cur) for prev, cur in zip([None, *seq], seq, strict=False)]
    assert kinds == [None, None, "regressed", None, None, "recovered", "failed", None, "recovered"]
    assert alert_kind(None, "fail") == "failed"  # a first run that fails is told


def _session(url: str, sid: str, verdict: str, measured: dict[str, float | None]) -> None:
    with session_scope(url) as db:
        store.create_session(db, sid, "team-a", "nightly", {"name": "nightly"}, None)
        store.finish_session(db, sid, "completed", verdict, {"measured": measured}, [])


def _schedule(url: str, baseline: dict[str, Any]) -> str:
    now = utcnow()
    spec = {"name": "nightly", "rules": RULES, "baseline": baseline, "alerts": []}
    with session_scope(url) as db:
        row = ScheduleRow(
            id="sch1", tenant="team-a", name="nightly", spec=spec, created_at=now, updated_at=now
        )
        schedule_store.create(db, row)
    return row.id


def _run(url: str, acts: ScheduleActivities, sched: str, sid: str, p95: float) -> Any:
    measured = {"response_time_p95_ms": p95, "success_rate": 100.0, "achieved_rate": 50.0}
    _session(url, sid, "pass", measured)
    with session_scope(url) as db:
        schedule_store.record_run(db, sched, sid, None)
    return acts.judge_scheduled_run(JudgeRun(schedule_id=sched, session_id=sid))


def test_median_of_known_runs(database_url: str) -> None:
    acts = ScheduleActivities(Settings(database_url=database_url))
    sched = _schedule(database_url, {"median_of": 3, "min_runs": 3})
    first = _run(database_url, acts, sched, "r1", 100.0)
    assert first.state == "pass" and first.note and "not enough history" in first.note
    assert _run(database_url, acts, sched, "r2", 300.0).state == "pass"  # 1 run: still too few
    assert _run(database_url, acts, sched, "r3", 110.0).note is not None
    # Baseline: median(100, 300, 110) = 110; +20 % allows 132.
    assert _run(database_url, acts, sched, "r4", 130.0).state == "pass"
    # Now the last three passing runs are 300, 110, 130: median 130, limit 156.
    regressed = _run(database_url, acts, sched, "r5", 160.0)
    assert regressed.state == "regressed" and regressed.previous == "pass"
    (r,) = regressed.regressed
    assert (r.metric, r.measured, r.baseline, r.delta) == ("response_time_p95_ms", 160.0, 130, 30)
    with session_scope(database_url) as db:
        stored = schedule_store.run(db, "r5")
        assert stored is not None and stored.state == "regressed"
        assert stored.baseline == {
            "values": {"response_time_p95_ms": 130.0, "success_rate": 100.0, "achieved_rate": 50.0},
            "sessions": ["r4", "r3", "r2"],
        }
    # A regressed run is not part of later baselines: still 300, 110, 130.
    assert _run(database_url, acts, sched, "r6", 150.0).state == "pass"


def test_pinned_session(database_url: str) -> None:
    acts = ScheduleActivities(Settings(database_url=database_url))
    _session(database_url, "golden", "pass", {"response_time_p95_ms": 50.0, "success_rate": 100.0,
                                               "achieved_rate": 50.0})  # fmt: skip
    sched = _schedule(database_url, {"pinned_session": "golden"})
    assert _run(database_url, acts, sched, "p1", 59.0).state == "pass"  # limit 60
    judged = _run(database_url, acts, sched, "p2", 61.0)
    assert judged.state == "regressed" and judged.regressed[0].baseline == 50.0
    assert _run(database_url, acts, sched, "p3", 55.0).previous == "regressed"
