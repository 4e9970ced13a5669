"""The merged per-role, per-second series is one computation: the API's `merged` (and the exports
built from it) and the dashboard's live aggregation give the same points for the same intervals,
failure causes included, whatever order and duplicates the live feed brings."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api import session_views as views
from api.dashboard.live import LiveSession
from api.schemas import MergedPoint
from sipflow import histogram, store
from sipflow.db import session_scope
from sipflow.messages import StatsMessage
from sipflow.models import Interval, MetricInterval
from tests.api_fixtures import api_client_fixture, seed_session, stats  # noqa: F401

T0 = 1_700_000_000.0


def _messages() -> list[StatsMessage]:
    """Two callers and a callee over three seconds, with failure causes, a response time above
    the last histogram bound (an infinite p99) and a callee interval without a histogram."""
    msgs = []
    for seq in (1, 2, 3):
        t = T0 + seq
        msgs += [
            stats("s", "caller-0", "caller", seq, t + 0.2, created=5, ok=5, samples_ms=(10, 20))
            .model_copy(update={"pdd_histogram": histogram.from_samples([7, 9, 300 * seq])}),
            stats("s", "caller-1", "caller", seq, t + 0.7, created=5, ok=3, failed=2,
                  samples_ms=(40, 90_000), causes={"unexpected_message": 1, "timeout": seq}),
            stats("s", "callee-0", "callee", seq, t + 0.5, ok=8, failed=seq % 2,
                  causes={"cancelled": seq % 2}),
        ]  # fmt: skip
    no_histogram = stats("s", "callee-0", "callee", 4, T0 + 3.9, ok=1)
    return [*msgs, no_histogram.model_copy(update={"histogram": []})]


def _rows(msgs: list[StatsMessage]) -> list[MetricInterval]:
    """The messages as the API reads them back from the table."""
    return [
        MetricInterval(session_id=m.session_id, **Interval.from_message(m).model_dump())
        for m in msgs
    ]


def _jsonable(merged: dict[str, list[MergedPoint]]) -> dict[str, list[dict[str, Any]]]:
    return {role: [p.model_dump() for p in points] for role, points in merged.items()}


def test_batch_and_live_merge_give_the_same_points() -> None:
    msgs = _messages()
    batch = views.merged_series(_rows(msgs))

    # Live: part of it stored before the viewer came, the rest (overlapping, newest first) from
    # MQTT; the updated point after each new interval is what the browser draws.
    live = LiveSession("s")
    live.add_rows(_rows(msgs[:5]))
    drawn: dict[tuple[str, int], dict[str, Any]] = {}
    for m in reversed(msgs[3:]):
        point = live.add_message(m)
        if point is not None:
            drawn[(m.role, point["time"])] = point
    assert live.add_message(msgs[0]) is None  # counted once

    assert live.points() == _jsonable(batch)
    for (role, second), point in drawn.items():
        assert point == next(p.model_dump() for p in batch[role] if p.time == second)

    first = batch["caller"][0]
    assert (first.time, first.runners, first.calls_created, first.failed_calls) == (
        T0 + 1,
        2,
        10,
        2,
    )
    assert first.failed_by_cause == {"unexpected_message": 1, "timeout": 1}
    assert (first.response_time_p50_ms, first.response_time_p99_ms) == (20.0, None)  # inf: null
    # Post-dial delays merged per second like response times (caller-1 measured none).
    assert [(p.pdd_p50_ms, p.pdd_p95_ms) for p in batch["caller"]] == [
        (10.0, 300.0), (10.0, 600.0), (10.0, 1000.0)]  # fmt: skip
    callee = batch["callee"]
    assert [p.failed_by_cause for p in callee] == [
        {"cancelled": 1},
        {"cancelled": 0},
        {"cancelled": 1},
    ]
    assert callee[-1].runners == 2  # seq 3 and the interval without a histogram


def test_the_api_merged_series_is_what_the_live_view_loads(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "merged0000001")
    merged = api_client.get("/v1/sessions/merged0000001/metrics").json()["merged"]
    report = api_client.get("/v1/sessions/merged0000001/report.json").json()
    live = LiveSession("merged0000001")
    with session_scope(database_url) as db:
        live.add_rows(store.intervals(db, "merged0000001"))
    assert merged == report["series"]["merged"] == live.points()
    assert merged["caller"][0]["failed_by_cause"] == {"unexpected_message": 1}
