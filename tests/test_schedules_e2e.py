"""Scheduled regression tests on real parts: a Temporal Schedule on the embedded stack starts
launcher workflows, which run ordinary sessions (SIPp on loopback), judge them and alert a real
local HTTP receiver on changes of state only."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from entrypoints.stack import free_port
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings
from tests.conftest import RunningStack, start_stack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    screenshot,
    sign_in,
)
from tests.sut.kamailio import kamailio

# Short timers for the tests: intervals of seconds, quick alert retries.
STACK_ENV = {
    "SIPFLOW_SCHEDULE_MIN_INTERVAL_S": "1",
    "SIPFLOW_ALERT_ATTEMPTS": "3",
    "SIPFLOW_ALERT_BACKOFF_S": "0.2",
    "SIPFLOW_ALERT_MAX_BACKOFF_S": "0.5",
    "SIPFLOW_ALERT_TIMEOUT_S": "2",
    "SIPFLOW_SCHEDULE_LATE_AFTER_S": "3",
}


@pytest.fixture(scope="module")
def sched_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from start_stack(tmp_path_factory.mktemp("stack-schedules"), extra_env=STACK_ENV)


class Receiver:
    """A local HTTP server that keeps every JSON body POSTed to it, by path."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", 0))
                received.append((self.path, json.loads(self.rfile.read(size))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def on(self, path: str) -> list[dict[str, Any]]:
        return [b for p, b in self.bodies if p == path]


class Mailbox:
    """A real local SMTP server (aiosmtpd) that keeps every message it gets."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                mailbox.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    m = Mailbox()
    yield m
    m.controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def tiny_session(thresholds: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": "scheduled",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 20, "max_calls": 5},
        },
        "thresholds": thresholds or ["success_rate >= 99"],
    }


def schedule_body(every_s: float, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "nightly",
        "session": tiny_session(),
        "schedule": {"every_s": [every_s]},
        "rules": {"response_time_p95_ms": "+1000%"},
    }
    body.update(kw)
    return body


def until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.3)
    return value


def judged(rs: RunningStack, sched: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = rs.http.get(f"/v1/schedules/{sched}/runs").json()
    return [r for r in runs if r["state"] is not None]


def create(rs: RunningStack, body: dict[str, Any]) -> str:
    r = rs.http.post("/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_interval_fires_runs_on_its_own_then_pause_stops_them(sched_stack: RunningStack) -> None:
    sched = create(sched_stack, schedule_body(3))
    try:
        runs = until(lambda: len(judged(sched_stack, sched)) >= 2 and judged(sched_stack, sched),
                     90, "two scheduled runs judged")  # fmt: skip
        for run in runs:
            assert run["state"] == "pass" and run["verdict"] == "pass", run
            assert run["scheduled_at"] is not None  # started by the schedule, due time known
            session = sched_stack.http.get(f"/v1/sessions/{run['session_id']}").json()
            assert session["workflow_id"] == f"session-{run['session_id']}"
            assert session["verdict"] == "pass"
        # The Web UI lists the schedule's runs by its search attribute.
        sids = asyncio.run(_sessions_of(sched_stack, sched))
        assert {r["session_id"] for r in runs} <= sids
        r = sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={"note": "maintenance"})
        assert r.status_code == 200 and r.json()["paused"], r.text
        time.sleep(1)  # a run already started when paused may still record itself
        count = len(sched_stack.http.get(f"/v1/schedules/{sched}/runs").json())
        time.sleep(7)  # more than two intervals
        assert len(sched_stack.http.get(f"/v1/schedules/{sched}/runs").json()) == count
        detail = sched_stack.http.get(f"/v1/schedules/{sched}").json()
        assert detail["paused"] and detail["note"] == "maintenance"
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


async def _sessions_of(rs: RunningStack, sched: str) -> set[str]:
    client = await Client.connect(
        rs.stack.temporal_address,
        data_converter=data_converter(Settings(data_dir=rs.stack.data_dir)),
    )
    query = f'SipflowSchedule = "{sched}" AND WorkflowType = "TestSessionWorkflow"'
    deadline = time.monotonic() + 10
    while True:
        found = {wf.id.removeprefix("session-") async for wf in client.list_workflows(query)}
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.3)


def _trigger_and_judge(rs: RunningStack, sched: str, n_before: int) -> dict[str, Any]:
    r = rs.http.post(f"/v1/schedules/{sched}/trigger")
    assert r.status_code == 202, r.text
    runs = until(lambda: len(judged(rs, sched)) > n_before and judged(rs, sched), 90, "a run")
    return runs[0]


def test_alerts_on_changes_only_and_a_down_webhook_changes_nothing(
    sched_stack: RunningStack, receiver: Receiver, mailbox: Mailbox
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/down"
    body = schedule_body(
        3600,
        alerts=[
            {"kind": "webhook", "name": "ops", "url": f"{receiver.url}/hook", "token": "s3cret"},
            {"kind": "webhook", "name": "chat", "url": f"{receiver.url}/slack", "format": "slack"},
            {"kind": "webhook", "name": "down", "url": dead},
            {
                "kind": "email",
                "name": "oncall",
                "host": "127.0.0.1",
                "port": mailbox.port,
                "sender": "sipflow@example.net",
                "to": ["oncall@example.net"],
            },
        ],
    )
    sched = create(sched_stack, body)
    try:
        shown = sched_stack.http.get(f"/v1/schedules/{sched}").json()
        assert shown["spec"]["alerts"][0]["token"] == "***"  # write-only
        states = [_trigger_and_judge(sched_stack, sched, 0)["state"]]  # pass: nothing to tell
        broken = {**body, "session": tiny_session(["response_time_p95_ms < 0"])}
        assert sched_stack.http.put(f"/v1/schedules/{sched}", json=broken).status_code == 200
        states.append(_trigger_and_judge(sched_stack, sched, 1)["state"])  # -> fail: alert
        states.append(_trigger_and_judge(sched_stack, sched, 2)["state"])  # still fail: none
        fixed = {**broken, "session": tiny_session()}
        assert sched_stack.http.put(f"/v1/schedules/{sched}", json=fixed).status_code == 200
        states.append(_trigger_and_judge(sched_stack, sched, 3)["state"])  # -> pass: recovered
        assert states == ["pass", "fail", "fail", "pass"]

        def delivered() -> bool:
            alerts = sched_stack.http.get(f"/v1/schedules/{sched}").json()["alerts"]
            return len([a for a in alerts if a["channel"].endswith("down")]) >= 2

        until(delivered, 30, "the down channel's failures recorded")
        hooks = receiver.on("/hook")
        assert [h["kind"] for h in hooks] == ["failed", "recovered"], hooks
        for h in hooks:
            assert h["report_url"].endswith(f"/dashboard/sessions/{h['session_id']}")
            assert f"/workflows/session-{h['session_id']}" in h["temporal_url"]
        slack = receiver.on("/slack")
        assert len(slack) == 2 and "FAILED" in slack[0]["text"] and "RECOVERED" in slack[1]["text"]
        alerts = sched_stack.http.get(f"/v1/schedules/{sched}").json()["alerts"]
        down = [a for a in alerts if a["channel"].endswith("down")]
        assert [(a["ok"], a["attempts"]) for a in down] == [(False, 3), (False, 3)], down
        assert all(a["error"] for a in down)
        assert sorted(a["kind"] for a in alerts if a["ok"]) == sorted(["failed", "recovered"] * 3)
        subjects = [m["Subject"] for m in mailbox.messages]
        assert subjects == ["[sipflow] nightly: failed", "[sipflow] nightly: recovered"]
        assert "Temporal: " in str(mailbox.messages[0].get_payload())
        # The verdicts stay what the sessions said, whatever the channels did.
        runs = sched_stack.http.get(f"/v1/schedules/{sched}/runs").json()
        assert [r["state"] for r in reversed(runs)] == ["pass", "fail", "fail", "pass"]
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_cli_creates_shows_pauses_and_deletes_the_example(
    sched_stack: RunningStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The nightly Kamailio example through `sipflow schedules` (nightly: no run fires here)."""
    from typer.testing import CliRunner

    from entrypoints.cli import app

    monkeypatch.setenv("SIPFLOW_API_KEY", str(sched_stack.stack.api_key))
    api = ["--api", sched_stack.stack.api_url]
    cli = CliRunner()
    example = Path(__file__).parent.parent / "examples" / "schedules" / "nightly-regression.yaml"
    made = cli.invoke(app, ["schedules", "create", str(example), *api])
    assert made.exit_code == 0, made.output
    sched = made.stdout.strip()
    listed = cli.invoke(app, ["schedules", "list", "--json", *api])
    assert sched in listed.stdout
    paused = cli.invoke(app, ["schedules", "pause", sched, "--note", "holiday", *api])
    assert paused.exit_code == 0, paused.output
    shown = cli.invoke(app, ["schedules", "show", sched, "--json", *api])
    body = json.loads(shown.stdout)
    assert body["paused"] and body["note"] == "holiday" and body["name"] == "kamailio-nightly"
    assert body["spec"]["session"]["roles"]["callees"]["accounts"][0]["password"] == "***"
    assert cli.invoke(app, ["schedules", "delete", sched, *api]).exit_code == 0
    gone = cli.invoke(app, ["schedules", "show", sched, *api])
    assert gone.exit_code == 3 and "404" in gone.output
    bad = example.read_text().replace('success_rate: "-0.5"', 'jitter_ms: "-0.5"')
    bad_file = tmp_path / "bad-schedule.yaml"
    bad_file.write_text(bad)
    refused = cli.invoke(app, ["schedules", "create", str(bad_file), *api])
    assert refused.exit_code == 2 and "rules.jitter_ms.[key]" in refused.output, refused.output


def test_overlap_skip_with_a_run_that_outlasts_the_interval(sched_stack: RunningStack) -> None:
    session = tiny_session()
    session["roles"]["callers"].update({"rate": 5, "max_calls": None, "duration_s": 6})
    sched = create(sched_stack, schedule_body(2, session=session, overlap="skip"))
    try:
        until(lambda: len(judged(sched_stack, sched)) >= 2, 90, "two runs judged")
        sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={})
        detail = sched_stack.http.get(f"/v1/schedules/{sched}").json()
        assert detail["missed_runs"] >= 3, detail["missed_runs"]  # due every 2 s, runs take ~8 s
        runs = sorted(judged(sched_stack, sched), key=lambda r: r["started_at"])
        for before, after in itertools.pairwise(runs):
            assert after["started_at"] >= before["judged_at"], (before, after)  # never two at once
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_a_network_made_worse_regresses_then_recovers(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    """The same session over a lossy network (SIP retransmissions: response times of 500 ms and
    more) against the median of the passing runs: regressed, told once; fixed: recovered."""
    session = tiny_session(["total_calls >= 1"])
    session["roles"]["callers"].update({"max_calls": 20, "rate": 20})
    body = schedule_body(
        3600,
        session=session,
        rules={"response_time_p95_ms": "+100%"},
        baseline={"median_of": 3, "min_runs": 1},
        alerts=[{"kind": "webhook", "url": f"{receiver.url}/sut"}],
    )
    sched = create(sched_stack, body)
    try:
        states = [_trigger_and_judge(sched_stack, sched, n)["state"] for n in range(2)]
        lossy = {**body, "session": {**session, "network": {"loss_pct": 20}}}
        assert sched_stack.http.put(f"/v1/schedules/{sched}", json=lossy).status_code == 200
        worse = _trigger_and_judge(sched_stack, sched, 2)
        states.append(worse["state"])
        assert sched_stack.http.put(f"/v1/schedules/{sched}", json=body).status_code == 200
        states.append(_trigger_and_judge(sched_stack, sched, 3)["state"])
        assert states == ["pass", "pass", "regressed", "pass"], worse
        (broken,) = worse["regressed"]
        assert broken["metric"] == "response_time_p95_ms" and broken["rule"] == "+100%"
        measured, base = broken["measured"], broken["baseline"]
        if measured is not None:  # None: no call got an answer at all, which breaks it too
            assert measured > 2 * base and abs(broken["delta"] - (measured - base)) < 1e-3
        sent = until(lambda: len(receiver.on("/sut")) >= 2 and receiver.on("/sut"), 30, "alerts")
        assert [a["kind"] for a in sent] == ["regressed", "recovered"]
        assert sent[0]["regressed"][0]["metric"] == "response_time_p95_ms"
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_a_capacity_schedule_regresses_when_the_sut_carries_less(
    sched_stack: RunningStack, receiver: Receiver, tmp_path: Path
) -> None:
    """Each run a capacity search against a rate-limited Kamailio: 60 calls/s at first (the
    search stops at its 40 calls/s ceiling), then 25 (it finds 20): "capacity: -10%" regressed,
    told once."""
    port = free_port()
    session = {
        "name": "capacity",
        "target": {"host": "127.0.0.1", "port": port, "domain": "127.0.0.1", "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"agents": 1, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["total_calls >= 1"],
    }
    plan = {"criteria": ["success_rate >= 99"], "start": 20, "ceiling": 40, "resolution_pct": 60,
            "warmup": 1, "window": 3, "settle": 1}  # fmt: skip
    body = schedule_body(
        3600,
        session=session,
        capacity=plan,
        rules={"capacity": "-10%"},
        baseline={"median_of": 3, "min_runs": 1},
        alerts=[{"kind": "webhook", "url": f"{receiver.url}/capacity"}],
    )
    config = Path(__file__).parent / "sut" / "kamailio-ratelimited.cfg"
    sched = create(sched_stack, body)
    try:
        with kamailio(port, tmp_path / "k60", config=config):
            first = _trigger_and_judge(sched_stack, sched, 0)
        with kamailio(port, tmp_path / "k25", config=config, defines=("LIMIT_25",)):
            second = _trigger_and_judge(sched_stack, sched, 1)
        assert (first["state"], first["kind"], first["measured"]["capacity"]) == (
            "pass", "capacity", 40), first  # fmt: skip
        assert (second["state"], second["measured"]["capacity"]) == ("regressed", 20), second
        (broken,) = second["regressed"]
        assert (broken["metric"], broken["baseline"], broken["delta"]) == ("capacity", 40, -20)
        search = sched_stack.http.get(f"/v1/capacity/{second['session_id']}").json()
        assert [(s["rate"], s["held"]) for s in search["result"]["steps"]] == [
            (20, True), (40, False), (30, False)]  # fmt: skip
        assert search["spec"]["session"]["roles"]["callees"]["accounts"][0]["password"] == "***"
        sent = until(lambda: receiver.on("/capacity"), 30, "the alert")
        assert [a["kind"] for a in sent] == ["regressed"]
        assert sent[0]["regressed"][0]["metric"] == "capacity"
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_a_capacity_schedule_is_refused_with_the_field_that_is_wrong(
    sched_stack: RunningStack,
) -> None:
    session = tiny_session()  # its callers' rate and max_calls: the search's to set
    bare = tiny_session()
    bare["roles"]["callers"] = {"agents": 1}
    plan = {"criteria": ["success_rate >= 99"], "start": 10, "ceiling": 40}
    cases = [
        (schedule_body(60, session=bare, capacity=plan), ["body", "rules", "response_time_p95_ms"]),
        (schedule_body(60, rules={"capacity": "-10%"}), ["body", "rules", "capacity"]),
        (schedule_body(60, session=session, capacity=plan, rules={}),
         ["body", "session", "roles", "callers", "max_calls"]),
        (schedule_body(60, session=bare, capacity={**plan, "criteria": ["mos > 4"]}, rules={}),
         ["body", "capacity", "criteria", 0]),
    ]  # fmt: skip
    for body, loc in cases:
        r = sched_stack.http.post("/v1/schedules", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"][: len(loc)] == loc, r.json()


def test_buffer_one_runs_back_to_back_with_one_alert(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    """Due every 2 s, runs of ~5 s that fail: one is buffered behind each run, and the failure
    is told once, not once per run."""
    session = tiny_session(["response_time_p95_ms < 0"])
    session["roles"]["callers"].update({"rate": 5, "max_calls": None, "duration_s": 3})
    alerts = [{"kind": "webhook", "url": f"{receiver.url}/buffered"}]
    body = schedule_body(2, session=session, overlap="buffer_one", alerts=alerts)
    sched = create(sched_stack, body)
    try:
        until(lambda: len(judged(sched_stack, sched)) >= 3, 120, "three runs judged")
        sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={})
        runs = sorted(judged(sched_stack, sched), key=lambda r: r["started_at"])
        assert {r["state"] for r in runs} == {"fail"}
        for before, after in itertools.pairwise(runs):
            assert after["started_at"] >= before["judged_at"]  # one after the other
        assert [b["kind"] for b in receiver.on("/buffered")] == ["failed"]
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_backfill_runs_the_due_times_of_a_past_range(sched_stack: RunningStack) -> None:
    sched = create(sched_stack, schedule_body(3600))  # due on every full hour (UTC)
    try:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        window = {
            "start_at": (hour - timedelta(minutes=1)).isoformat(),
            "end_at": (hour + timedelta(minutes=1)).isoformat(),
        }
        r = sched_stack.http.post(f"/v1/schedules/{sched}/backfill", json=window)
        assert r.status_code == 202, r.text
        (run,) = until(lambda: judged(sched_stack, sched), 90, "the backfilled run judged")
        due = datetime.fromisoformat(run["scheduled_at"])
        assert (due if due.tzinfo else due.replace(tzinfo=UTC)) == hour
        assert run["state"] == "pass"
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_schedule_page_shows_runs_and_trends(sched_stack: RunningStack, page: Any) -> None:
    sched = create(sched_stack, schedule_body(3600))
    try:
        run = _trigger_and_judge(sched_stack, sched, 0)
        api = sched_stack.stack.api_url
        sign_in(page, api, str(sched_stack.stack.api_key))
        page.goto(f"{api}/dashboard/schedules")
        page.wait_for_selector(f"tr[data-id='{sched}']")
        page.goto(f"{api}/dashboard/schedules/{sched}")
        page.wait_for_selector("#runs tr[data-state=pass]")
        assert run["session_id"] in page.inner_text("#runs")
        points = page.evaluate(
            "() => Chart.getChart(document.querySelector('canvas[data-metric]'))"
            ".data.datasets.map(d => d.data.filter(v => v !== null).length)"
        )
        assert points[0] == 1  # the run's p95; no baseline yet (first run)
        screenshot(page, "dashboard-schedule.png")
        page.select_option("#filter", "fail")
        page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 0")
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_a_run_due_while_the_workers_are_down_is_alerted_late(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    alerts = [{"kind": "webhook", "url": f"{receiver.url}/late"}]
    sched = create(sched_stack, schedule_body(3600, alerts=alerts))
    sched_stack.stack.kill_process("worker")
    try:
        r = sched_stack.http.post(f"/v1/schedules/{sched}/trigger")  # due now; nobody runs it
        assert r.status_code == 202, r.text
        time.sleep(5)  # longer than SIPFLOW_SCHEDULE_LATE_AFTER_S
    finally:
        sched_stack.stack.start_worker()
    (run,) = until(lambda: judged(sched_stack, sched), 90, "the late run judged")
    assert run["late_s"] >= 5 and run["state"] == "pass"
    (alert,) = until(lambda: receiver.on("/late"), 30, "the late alert")
    assert alert["kind"] == "late" and alert["session_id"] == run["session_id"]
    assert "after its due time" in json.dumps(alert) or alert["late_s"] >= 5
    sched_stack.http.delete(f"/v1/schedules/{sched}")


DEGRADED = Path(__file__).parent / "sut" / "kamailio-degraded.cfg"


def test_a_kamailio_made_worse_regresses_then_recovers(
    sched_stack: RunningStack, receiver: Receiver, tmp_path: Path
) -> None:
    """Runs through a real Kamailio; between runs it is replaced, on the same port, by one that
    answers every 10th INVITE with 503, then restored: regressed, told once; fixed: recovered."""
    port = free_port()
    session = {
        "name": "through-kamailio",
        "target": {"host": "127.0.0.1", "port": port, "domain": "127.0.0.1", "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": 20, "max_calls": 20, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["total_calls >= 1"],  # the rule, not a threshold, judges the drop
    }
    body = schedule_body(
        3600,
        session=session,
        rules={"success_rate": "-0.5"},
        baseline={"median_of": 3, "min_runs": 1},
        alerts=[{"kind": "webhook", "url": f"{receiver.url}/kamailio"}],
    )
    sched = create(sched_stack, body)
    try:
        with kamailio(port, tmp_path / "healthy-1"):
            states = [_trigger_and_judge(sched_stack, sched, 0)["state"]]
        with kamailio(port, tmp_path / "degraded", config=DEGRADED):
            worse = _trigger_and_judge(sched_stack, sched, 1)
            states.append(worse["state"])
        with kamailio(port, tmp_path / "healthy-2"):
            states.append(_trigger_and_judge(sched_stack, sched, 2)["state"])
            states.append(_trigger_and_judge(sched_stack, sched, 3)["state"])  # still fine: quiet
        assert states == ["pass", "regressed", "pass", "pass"], worse
        (broken,) = worse["regressed"]
        assert broken["metric"] == "success_rate" and broken["measured"] < broken["baseline"]
        until(lambda: len(receiver.on("/kamailio")) >= 2, 30, "two alerts")
        time.sleep(1)  # a duplicate would arrive about now
        sent = receiver.on("/kamailio")
        assert [a["kind"] for a in sent] == ["regressed", "recovered"], sent
        assert sent[0]["session_id"] == worse["session_id"]
        assert sent[0]["regressed"][0]["metric"] == "success_rate"
    finally:
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_a_run_over_the_concurrent_sessions_quota_is_skipped_and_told_once(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    """Tenant "default" may run one session at once; one runs: scheduled runs are stored as
    skipped with the reason, not started, and told once; once it ended, the next run passes."""
    from sipflow import tenant_policy
    from sipflow.db import session_scope

    url = sched_stack.stack.settings.resolved_database_url
    with session_scope(url) as db:
        policy = tenant_policy.load(db, "default", sched_stack.stack.settings)
        quotas = policy.quotas.model_copy(update={"concurrent_sessions": 1})
        tenant_policy.save(db, "default", policy.model_copy(update={"quotas": quotas}))
    alerts = [{"kind": "webhook", "url": f"{receiver.url}/quota"}]
    sched = create(sched_stack, schedule_body(3600, alerts=alerts))
    long = tiny_session()
    long["roles"]["callers"].update({"rate": 2, "max_calls": None, "duration_s": 10})
    busy = sched_stack.submit(long)
    try:
        states = [_trigger_and_judge(sched_stack, sched, 0)["state"]]
        # A run's workflow id ends in its due second: a second trigger in it would be dropped.
        time.sleep(1.1)
        states.append(_trigger_and_judge(sched_stack, sched, 1)["state"])
        skipped = judged(sched_stack, sched)
        assert states == ["skipped", "skipped"], skipped
        assert sched_stack.wait(busy, 90)["verdict"] == "pass"  # it ran as if alone
        states.append(_trigger_and_judge(sched_stack, sched, 2)["state"])
        assert states == ["skipped", "skipped", "pass"], skipped
        for run in skipped:
            assert "concurrent_sessions" in run["note"], run
            # Never started: no session of that id.
            assert sched_stack.http.get(f"/v1/sessions/{run['session_id']}").status_code == 404
        time.sleep(1)  # a second alert would arrive about now
        (alert,) = receiver.on("/quota")
        assert alert["kind"] == "skipped" and "concurrent_sessions" in alert["reason"], alert
        assert alert["session_id"] == skipped[-1]["session_id"]  # the first skipped run
    finally:
        with session_scope(url) as db:
            tenant_policy.delete(db, "default")
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def test_overlap_cancel_other_cancels_the_running_run(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    """Due every 3 s, runs that would take 30 s: each new run cancels the one going, which is
    judged "cancelled" (its session cancelled) and alerts nobody."""
    session = tiny_session()
    session["roles"]["callers"].update({"rate": 2, "max_calls": None, "duration_s": 30})
    alerts = [{"kind": "webhook", "url": f"{receiver.url}/cancel"}]
    sched = create(sched_stack, schedule_body(3, session=session, overlap="cancel_other",
                                              alerts=alerts))  # fmt: skip
    try:
        cancelled = until(
            lambda: [r for r in judged(sched_stack, sched) if r["state"] == "cancelled"],
            60,
            "a run cancelled by the next one",
        )
        run = cancelled[-1]

        def later() -> list[dict[str, Any]]:
            runs = sched_stack.http.get(f"/v1/schedules/{sched}/runs").json()
            return [r for r in runs if r["started_at"] > run["started_at"]]

        until(later, 30, "the run that cancelled it")  # starts once the cancelled one closed
        sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={})
        session_row = sched_stack.wait(run["session_id"], 60)
        assert session_row["status"] == "cancelled", session_row
        assert receiver.on("/cancel") == []  # a cancelled run is no change of state
    finally:
        sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={})
        for r in sched_stack.http.get(f"/v1/schedules/{sched}/runs").json():
            sched_stack.http.post(f"/v1/sessions/{r['session_id']}/cancel")
        sched_stack.http.delete(f"/v1/schedules/{sched}")


def missed_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    return [a for a in receiver.on("/missed") if a["kind"] == "missed"]


def test_schedule_survives_a_restart_of_the_whole_stack_and_tells_the_missed_runs(
    sched_stack: RunningStack, receiver: Receiver
) -> None:
    """Last in this module: stops and starts the module's stack on the same data directory.
    Due every 4 s with a catch-up window of 10 s, down for longer: Temporal counts the runs it
    missed, and the first run after the restart tells them once ("missed")."""
    alerts = [{"kind": "webhook", "url": f"{receiver.url}/missed"}]
    body = schedule_body(4, alerts=alerts, catchup_window_s=10, overlap="skip")
    sched = create(sched_stack, body)
    sched_stack.stack.stop()
    time.sleep(16)  # more than the catch-up window plus one interval
    sched_stack.stack.start()
    until(lambda: sched_stack.http.get("/v1/health").status_code == 200, 60, "API healthy again")
    (alert,) = until(lambda: missed_alerts(receiver), 60, "the missed alert")
    assert alert["kind"] == "missed" and alert["missed"] >= 1, alert
    until(lambda: len(judged(sched_stack, sched)) >= 2, 60, "a second run after the restart")
    sched_stack.http.post(f"/v1/schedules/{sched}/pause", json={})
    detail = sched_stack.http.get(f"/v1/schedules/{sched}").json()
    assert detail["next_runs"], detail  # Temporal still has the schedule
    runs = judged(sched_stack, sched)
    assert max(r["missed"] or 0 for r in runs) == alert["missed"]
    n = len(sched_stack.http.get(f"/v1/schedules/{sched}/runs").json())
    time.sleep(1)  # a run started when paused records itself
    assert _trigger_and_judge(sched_stack, sched, n)["state"] in ("pass", "regressed")
    # Told once: later runs saw the same count.
    assert missed_alerts(receiver) == [alert]
    sched_stack.http.delete(f"/v1/schedules/{sched}")
