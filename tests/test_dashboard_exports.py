"""Exports of a stored session (real rows via sipflow.store, on SQLite and PostgreSQL): the report
as JSON and CSV, the verdict as JUnit XML; and the spec editor's field-located errors."""

from __future__ import annotations

import csv
import io

import defusedxml.ElementTree as safe_xml
from fastapi.testclient import TestClient

from api.dashboard.spec_editor import check, example_yaml
from tests.api_fixtures import UI_URL, api_client_fixture, finish, seed_session  # noqa: F401


def test_junit_csv_json_of_a_failed_session(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "exp1")
    finish(database_url, "exp1", "fail", measured={"success_rate": 93.3})

    r = api_client.get("/v1/sessions/exp1/junit.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = safe_xml.fromstring(r.content)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "sipflow.team-a.api-test"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {
        "threshold: success_rate >= 90",
        "threshold: response_time_p95_ms <= 100",
        "verdict",
    }
    assert cases["threshold: success_rate >= 90"].find("failure") is None
    failure = cases["threshold: response_time_p95_ms <= 100"].find("failure")
    assert failure is not None and "measured 80" in (failure.get("message") or "")
    verdict = cases["verdict"].find("failure")
    assert verdict is not None and "response_time_p95_ms <= 100 not met" in (verdict.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["sipflow.verdict"] == "fail"
    assert props["sipflow.temporal_ui"] == f"{UI_URL}/namespaces/default/workflows/session-exp1"

    r = api_client.get("/v1/sessions/exp1/report.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    callers = [row for row in rows if row["role"] == "caller"]
    assert [row["t_s"] for row in callers] == ["0", "1", "2"]
    # Both callers' intervals of a second are merged: 10 created, 9 ok, 1 failed.
    assert {
        (row["calls_created"], row["successful_calls"], row["failed_calls"]) for row in callers
    } == {("10", "9", "1")}
    assert callers[0]["runners"] == "2" and callers[0]["response_time_p95_ms"] == "80.0"
    assert len([row for row in rows if row["role"] == "callee"]) == 3

    r = api_client.get("/v1/sessions/exp1/report.csv", params={"per": "runner"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 9
    c1 = [row for row in rows if row["runner_id"] == "caller-1"]
    assert [row["seq"] for row in c1] == ["1", "2", "3"]
    assert c1[0]["failed_by_cause"] == "unexpected_message=1"

    body = api_client.get("/v1/sessions/exp1/report.json").json()
    assert body["session"]["verdict"] == "fail" and body["thresholds_final"] is True
    assert body["measured"]["total_calls"] == 30 and body["measured"]["failed_calls"] == 3
    assert len(body["series"]["merged"]["caller"]) == 3
    assert {s["runner_id"] for s in body["series"]["runners"]} == {
        "caller-0",
        "caller-1",
        "callee-0",
    }
    assert body["links"]["temporal_ui"].endswith("/workflows/session-exp1")


def test_junit_of_a_passing_session_and_of_a_running_one(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "exp2")
    assert api_client.get("/v1/sessions/exp2/junit.xml").status_code == 409  # not finished
    assert api_client.get("/v1/sessions/exp2/report.json").json()["thresholds_final"] is False
    finish(database_url, "exp2", "pass", measured={"success_rate": 93.3})
    root = safe_xml.fromstring(api_client.get("/v1/sessions/exp2/junit.xml").content)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "0")
    assert not list(root.iter("failure")) and not list(root.iter("error"))
    assert api_client.get("/v1/sessions/nope/junit.xml").status_code == 404


def test_sessions_list_has_calls_and_success_rate(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "lst1")
    seed_session(database_url, "lst2")
    finish(database_url, "lst2", "pass", measured={"success_rate": 93.3})
    body = api_client.get("/dashboard/api/sessions", params={"status": "running"}).json()
    assert body["total"] == 1
    (item,) = body["items"]
    assert (item["id"], item["calls"], item["failed_calls"]) == ("lst1", 30, 3)
    assert item["success_rate"] == 90.0 and item["duration_s"] is not None
    assert body["tenants"] == ["team-a"]
    page = api_client.get("/dashboard/api/sessions", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and len(page["items"]) == 1


def test_spec_errors_point_at_the_line_of_their_field() -> None:
    good = example_yaml()
    assert check(good)["ok"]
    lines = good.splitlines()
    rate_line = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("rate:"))
    result = check(good.replace("rate: 20", "rate: -5"))
    assert not result["ok"]
    (err,) = result["errors"]
    assert err["path"] == "roles.callers.rate" and err["line"] == rate_line
    assert "greater than 0" in err["msg"]
    bad_yaml = check("roles:\n  callers: [1,\n")
    assert not bad_yaml["ok"] and bad_yaml["errors"][0]["line"] == 3
