"""End to end on real parts: API -> Temporal workflow -> SIPp runners -> MQTT -> DB -> verdict."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from backends.loopback import loopback_aliases
from backends.netns import namespace, namespaces
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings
from tests.conftest import RunningStack
from tests.sipp_files import stored_vs_sipp


def direct_spec(**callers: Any) -> dict[str, Any]:
    c = {"agents": 1, "scenario": "call", "rate": 50, "max_calls": 100}
    c.update(callers)
    return {
        "name": "e2e-direct",
        "roles": {"callees": {"agents": 1, "scenario": "answer"}, "callers": c},
        "thresholds": ["success_rate >= 99.5", "failed_calls == 0", "response_time_p95_ms < 300"],
    }


def no_leftovers(rs: RunningStack, sid: str) -> None:
    """Every process, namespace, rule and address the session made is gone."""
    assert f"lo:{sid}" not in loopback_aliases()
    assert namespace(sid) not in namespaces()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert namespace(sid) not in tables
    for pid_file in (rs.runs_dir / sid).glob("*/agent.pid"):
        stat = Path(f"/proc/{int(pid_file.read_text())}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z", pid_file
    ps = subprocess.run(["pgrep", "-f", f"runs/{sid}/"], capture_output=True, text=True)
    assert ps.stdout.strip() == "", f"processes of {sid} left: {ps.stdout}"


def test_direct_session_passes_and_cleans_up(stack: RunningStack) -> None:
    body = stack.run(direct_spec())
    sid = body["id"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    measured = body["summary"]["measured"]
    assert measured["successful_calls"] == 100
    assert measured["failed_calls"] == 0
    assert measured["success_rate"] == 100.0
    assert measured["response_time_p95_ms"] is not None
    assert all(t["passed"] for t in body["summary"]["thresholds"])
    stored_vs_sipp(stack, sid, body)
    no_leftovers(stack, sid)


def test_failed_threshold_gives_fail_verdict(sqlite_stack: RunningStack) -> None:
    spec = direct_spec(max_calls=20, rate=20)
    spec["thresholds"] = ["response_time_p50_ms < 0"]  # impossible: must fail, with the value
    body = sqlite_stack.run(spec)
    assert (body["status"], body["verdict"]) == ("completed", "fail")
    (t,) = body["summary"]["thresholds"]
    assert not t["passed"] and t["measured"] is not None
    assert any("threshold not met" in r for r in body["reasons"])


def test_cancel_stops_everything(sqlite_stack: RunningStack) -> None:
    sid = sqlite_stack.submit(direct_spec(rate=10, max_calls=None, duration_s=120))
    sqlite_stack.wait_phase(sid, "running callers")
    time.sleep(2)
    r = sqlite_stack.http.post(f"/v1/sessions/{sid}/cancel")
    assert r.status_code in (200, 202), r.text
    body = sqlite_stack.wait(sid, timeout=90)
    assert body["status"] == "cancelled"
    assert body["verdict"] == "fail"
    # What ran before the cancel is stored.
    assert body["summary"]["measured"]["total_calls"] > 0
    no_leftovers(sqlite_stack, sid)


def test_rate_change_by_update(sqlite_stack: RunningStack) -> None:
    sid = sqlite_stack.submit(direct_spec(rate=5, max_calls=None, duration_s=14))
    sqlite_stack.wait_phase(sid, "running callers")
    time.sleep(5)
    r = sqlite_stack.http.post(f"/v1/sessions/{sid}/rate", json={"rate": 40})
    assert r.status_code == 200, r.text
    body = sqlite_stack.wait(sid)
    assert body["verdict"] == "pass", body
    points = sqlite_stack.http.get(f"/v1/sessions/{sid}/metrics").json()["runners"]
    caller = next(p for p in points if p["runner_id"] == "caller-0")["points"]
    early = max(p["calls_created"] for p in caller[:4])
    late = max(p["calls_created"] for p in caller[-6:])
    assert early <= 7 and late >= 25, (early, late)


async def test_search_attributes_filter_sessions(sqlite_stack: RunningStack) -> None:
    body = sqlite_stack.run(direct_spec(max_calls=10))
    client = await Client.connect(
        sqlite_stack.stack.temporal_address,
        data_converter=data_converter(Settings(data_dir=sqlite_stack.stack.data_dir)),
    )
    wid = f"session-{body['id']}"
    query = f'WorkflowId = "{wid}" AND SipflowVerdict = "pass" AND SipflowTenant = "default"'
    # The stored status is final once finish_session ran; the workflow upserts the verdict right
    # after, and visibility lags behind: poll a little.
    deadline = time.monotonic() + 10
    while not (found := [wf.id async for wf in client.list_workflows(query)]):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert found == [f"session-{body['id']}"]
    none = [
        wf.id
        async for wf in client.list_workflows(
            f'WorkflowId = "session-{body["id"]}" AND SipflowVerdict = "fail"'
        )
    ]
    assert none == []


def test_worker_kill9_loses_no_metric(pg_stack: RunningStack) -> None:
    """A 20 s session; the worker is SIGKILLed mid-way and restarted; every interval lands once."""
    sid = pg_stack.submit(direct_spec(rate=20, max_calls=None, duration_s=20))
    pg_stack.wait_phase(sid, "running callers")
    time.sleep(5)
    pg_stack.stack.kill_process("worker")
    time.sleep(3)
    pg_stack.stack.start_worker()
    body = pg_stack.wait(sid, timeout=180)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    stored_vs_sipp(pg_stack, sid, body)
    assert body["summary"]["measured"]["successful_calls"] >= 350
    no_leftovers(pg_stack, sid)
    assert os.path.exists(pg_stack.stack.data_dir / "logs" / "worker.log")


def test_broker_kill9_loses_no_metric(sqlite_stack: RunningStack) -> None:
    """mosquitto is SIGKILLed mid-session and restarted: agents and the ingest reconnect, the
    broker's persisted queue delivers the rest, and the stored counts equal SIPp's own."""
    sid = sqlite_stack.submit(direct_spec(rate=20, max_calls=None, duration_s=15))
    sqlite_stack.wait_phase(sid, "running callers")
    time.sleep(4)
    sqlite_stack.stack.kill_process("mosquitto")
    time.sleep(2)
    sqlite_stack.stack.start_mosquitto()
    body = sqlite_stack.wait(sid, timeout=180)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    stored_vs_sipp(sqlite_stack, sid, body)
    assert body["summary"]["measured"]["successful_calls"] >= 250
    no_leftovers(sqlite_stack, sid)


def test_runner_kill9_is_lost_and_fails(sqlite_stack: RunningStack) -> None:
    """The caller's agent is SIGKILLed: its Last Will marks it lost, the session fails with that
    reason, what it sent before is kept, and its orphaned SIPp is cleaned up."""
    sid = sqlite_stack.submit(direct_spec(rate=10, max_calls=None, duration_s=60))
    sqlite_stack.wait_phase(sid, "running callers")
    time.sleep(3)
    pid = int((sqlite_stack.runs_dir / sid / "caller-0" / "agent.pid").read_text())
    os.kill(pid, 9)
    body = sqlite_stack.wait(sid, timeout=120)
    assert (body["status"], body["verdict"]) == ("completed", "fail"), body
    assert any("lost" in r and "caller-0" in r for r in body["reasons"]), body["reasons"]
    assert body["summary"]["measured"]["lost_runners"] == 1
    assert body["summary"]["measured"]["successful_calls"] > 0
    no_leftovers(sqlite_stack, sid)
