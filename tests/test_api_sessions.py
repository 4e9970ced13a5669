"""The API on real SQLite and PostgreSQL databases, Temporal unreachable (no mocks)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from sipflow import store
from sipflow.db import session_scope
from tests.api_fixtures import (
    UI_URL,
    VALID_SPEC,
    api_client_fixture,  # noqa: F401
    finish,
    seed_session,
)


def test_invalid_spec_is_422_naming_the_field_and_stores_nothing(
    api_client: TestClient, database_url: str
) -> None:
    spec = copy.deepcopy(VALID_SPEC)
    spec["roles"]["callers"]["rate"] = -5
    r = api_client.post("/v1/sessions", json=spec)
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["body", "roles", "callers", "rate"] in locs
    with session_scope(database_url) as db:
        assert store.list_sessions(db)[1] == 0

    spec = copy.deepcopy(VALID_SPEC)
    spec["thresholds"] = ["jitter_ms < 5"]
    r = api_client.post("/v1/sessions", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "thresholds", 0]
    assert "unknown metric 'jitter_ms'" in r.json()["detail"][0]["msg"]

    # A check across fields points at the field it names, not at the whole body.
    spec = copy.deepcopy(VALID_SPEC)
    spec["target"] = {"host": "127.0.0.1", "port": 5090}
    r = api_client.post("/v1/sessions", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "roles", "callees", "accounts"]


def test_post_with_temporal_down_is_503_and_marks_the_row_error(
    api_client: TestClient, database_url: str
) -> None:
    r = api_client.post("/v1/sessions", json=VALID_SPEC)
    assert r.status_code == 503, r.text
    assert "unreachable" in r.json()["detail"]
    with session_scope(database_url) as db:
        rows, total = store.list_sessions(db)
    assert total == 1
    row = rows[0]
    assert (row.status, row.verdict, row.tenant) == ("error", "error", "team-a")
    assert row.reasons and "could not be started" in row.reasons[0]
    assert row.finished_at is not None


def test_unknown_session_is_404(api_client: TestClient) -> None:
    assert api_client.get("/v1/sessions/nope").status_code == 404
    assert api_client.get("/v1/sessions/nope/metrics").status_code == 404
    assert api_client.post("/v1/sessions/nope/cancel").status_code == 404
    assert api_client.post("/v1/sessions/nope/rate", json={"rate": 5}).status_code == 404


def test_detail_while_running_and_after_finish(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "a1b2c3d4e5f6")
    r = api_client.get("/v1/sessions/a1b2c3d4e5f6")
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["status"], d["verdict"], d["tenant"]) == ("running", None, "team-a")
    assert d["workflow_id"] == "session-a1b2c3d4e5f6"
    assert d["progress"] is None  # Temporal is down: no live progress, but no failure either
    assert (
        d["links"]["temporal_ui"] == f"{UI_URL}/namespaces/default/workflows/session-a1b2c3d4e5f6"
    )
    assert d["links"]["self"].endswith("/v1/sessions/a1b2c3d4e5f6")
    assert d["links"]["metrics"].endswith("/v1/sessions/a1b2c3d4e5f6/metrics")
    caller = d["roles"]["caller"]
    assert (caller["runners"], caller["calls_created"], caller["successful_calls"]) == (2, 30, 27)
    assert caller["failed_by_cause"] == {"unexpected_message": 3}
    assert d["roles"]["callee"]["successful_calls"] == 27
    assert d["measured"]["success_rate"] == 90.0
    assert d["measured"]["response_time_p95_ms"] == 80.0
    assert d["intervals"] == 9
    # Not finished: the spec's thresholds on the metrics so far.
    assert d["thresholds_final"] is False
    assert [(t["threshold"], t["passed"]) for t in d["thresholds"]] == [
        ("success_rate >= 90", True),
        ("response_time_p95_ms <= 100", True),
    ]
    assert {r["runner_id"]: r["state"] for r in d["runners"]} == {
        "callee-0": "starting",
        "caller-0": "running",
        "caller-1": "running",
    }
    started = datetime.fromisoformat(d["started_at"])
    assert started.tzinfo is not None and abs(datetime.now(UTC) - started) < timedelta(minutes=5)

    finish(database_url, "a1b2c3d4e5f6", "fail", measured={"success_rate": 90.0})
    d = api_client.get("/v1/sessions/a1b2c3d4e5f6").json()
    assert (d["status"], d["verdict"]) == ("completed", "fail")
    assert d["thresholds_final"] is True
    assert [t["passed"] for t in d["thresholds"]] == [True, False]
    assert d["summary"]["measured"] == {"success_rate": 90.0}
    assert d["reasons"] == ["response_time_p95_ms <= 100 not met"]
    assert {r["runner_id"]: r["state"] for r in d["runners"]}["caller-1"] == "failed"
    assert d["roles"]["caller"]["failure_reasons"] == {"unexpected_message": 3}
    assert d["finished_at"] is not None


def test_metrics_per_runner_and_merged_per_second(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "feedc0ffee01")
    m = api_client.get("/v1/sessions/feedc0ffee01/metrics").json()
    assert [s["runner_id"] for s in m["runners"]] == ["callee-0", "caller-0", "caller-1"]
    caller1 = m["runners"][2]
    assert [p["seq"] for p in caller1["points"]] == [1, 2, 3]
    p = caller1["points"][0]
    assert (p["calls_created"], p["successful_calls"], p["failed_calls"]) == (5, 4, 1)
    assert p["current_calls"] == 0 and p["call_rate"] == 5.0
    assert p["failed_by_cause"] == {"unexpected_message": 1}
    assert set(m["merged"]) == {"caller", "callee"}
    callers = m["merged"]["caller"]
    assert [c["time"] for c in callers] == [1_700_000_001, 1_700_000_002, 1_700_000_003]
    c = callers[0]
    assert (c["runners"], c["calls_created"], c["successful_calls"], c["failed_calls"]) == (
        2,
        10,
        9,
        1,
    )
    assert (c["response_time_p50_ms"], c["response_time_p95_ms"]) == (20.0, 80.0)
    assert m["merged"]["callee"][0]["response_time_p50_ms"] is None  # no samples


def test_list_filters_and_pagination(api_client: TestClient, database_url: str) -> None:
    for i in range(5):
        spec = {**VALID_SPEC, "tenant": "team-a" if i % 2 == 0 else "team-b", "name": f"s{i}"}
        seed_session(database_url, f"00000000000{i}", spec=spec)
    finish(database_url, "000000000000", "pass", measured={"success_rate": 100.0})

    # The key is team-a's: team-b's two sessions are not there, whatever the query says.
    page = api_client.get("/v1/sessions", params={"limit": 2}).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 2, 0, 2)
    rest = api_client.get("/v1/sessions", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1
    ids = {i["id"] for i in page["items"]} | {i["id"] for i in rest["items"]}
    assert ids == {"000000000000", "000000000002", "000000000004"}

    assert api_client.get("/v1/sessions", params={"tenant": "team-b"}).json()["total"] == 0
    assert api_client.get("/v1/sessions", params={"tenant": "team-a"}).json()["total"] == 3
    done = api_client.get("/v1/sessions", params={"status": "completed"}).json()
    assert [i["id"] for i in done["items"]] == ["000000000000"]
    passed = api_client.get("/v1/sessions", params={"verdict": "pass"}).json()
    assert passed["total"] == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api_client.get("/v1/sessions", params={"since": future}).json()["total"] == 0
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert api_client.get("/v1/sessions", params={"since": past}).json()["total"] == 3
    # At datetime's ends, where the conversion to UTC overflows (schemathesis found it).
    for edge, total in (("0001-01-01T00:00:00+01:00", 3), ("9999-12-31T23:59:59-01:00", 0)):
        r = api_client.get("/v1/sessions", params={"since": edge})
        assert (r.status_code, r.json()["total"]) == (200, total), r.text
    assert api_client.get("/v1/sessions", params={"limit": 0}).status_code == 422


def test_cancel_and_rate_of_a_finished_session_are_409(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "0123456789ab")
    finish(database_url, "0123456789ab", "pass", measured={"success_rate": 100.0})
    assert api_client.post("/v1/sessions/0123456789ab/cancel").status_code == 409
    r = api_client.post("/v1/sessions/0123456789ab/rate", json={"rate": 5})
    assert r.status_code == 409
    assert api_client.post("/v1/sessions/0123456789ab/rate", json={"rate": 0}).status_code == 422


def test_cancel_with_temporal_down_is_503(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "0123456789ac")
    assert api_client.post("/v1/sessions/0123456789ac/cancel").status_code == 503


def test_health_reports_each_part(api_client: TestClient) -> None:
    r = api_client.get("/v1/health")
    assert r.status_code == 503
    body = r.json()
    assert body["ok"] is False
    assert body["database"] == {"ok": True, "detail": None}
    assert body["temporal"]["ok"] is False and "unreachable" in body["temporal"]["detail"]


def test_openapi_has_example_specs(api_client: TestClient) -> None:
    doc = api_client.get("/v1/openapi.json").json()
    body = doc["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]
    examples = body["examples"]
    assert {"local", "proxy"} <= set(examples)
    assert examples["local"]["value"]["roles"]["callers"]["max_calls"] == 200
    assert "SessionSpec" in doc["components"]["schemas"]
