"""The fault suite: each fault hits a short session through Kamailio (callee registered with
digest auth, caller calling it through the proxy) and asserts (a) the verdict the fault should
give, (b) stored per-runner counts equal to SIPp's own statistics files with no interval stored
twice, (c) nothing of the session left. Each adds a row to the table printed at the end.

Moved here: the whole-stack crash (was tests/test_stack_crash.py), the workflow bug (was in
tests/test_workflow_faults.py). SIGTERM to `sipflow up` with sessions running cancels them (at the
end of the first test); kept sessions resume (test_stop_sessions.py). Covered elsewhere (not
repeated here): the runners' dead man's switch
(tests/test_dead_mans_switch.py), the agent's spool under a long broker outage and its own
kill -9 (test_agent_spool.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrypoints.stack import Stack, StackConfig, free_port
from sipflow.models import FINAL_STATUSES
from tests.conftest import RunningStack, start_stack
from tests.faults.checks import assert_stored_equals_sipp, leftovers, row, stored_and_made
from tests.faults.private_pg import private_postgres
from tests.faults.test_stop_sessions import stored_status
from tests.faults.up_process import UpProcess
from tests.sut.kamailio import kamailio
from tests.test_cli_stack import listening

CALLS = 150  # 10 calls/s for 15 s


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield "127.0.0.1", port


def through(sut: tuple[str, int], name: str, duration_s: int = 15) -> dict[str, Any]:
    host, port = sut
    return {
        "name": name,
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {
                "rate": 10,
                "duration_s": duration_s,
                "max_calls": 10 * duration_s,
                "accounts": [{"user": "alice"}],
            },
        },
        "thresholds": ["failed_calls == 0"],
    }


def wait_final(rs: RunningStack, sid: str, timeout: float = 180) -> dict[str, Any]:
    """Like RunningStack.wait, through API restarts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            body: dict[str, Any] = rs.http.get(f"/v1/sessions/{sid}").json()
            if body.get("status") in FINAL_STATUSES:
                return body
        time.sleep(0.5)
    raise TimeoutError(f"session {sid} did not finish in {timeout}s")


def judge(
    table: list[dict[str, Any]],
    fault: str,
    rs: RunningStack,
    sid: str,
    body: dict[str, Any],
    verdict: str,
    exact_for: tuple[str, ...] = ("callee-0", "caller-0"),
) -> dict[str, Any]:
    counts = stored_and_made(rs, sid)
    left = leftovers(rs, sid)
    table.append(row(fault, body, counts, left))
    assert body["verdict"] == verdict, body.get("reasons")
    assert_stored_equals_sipp({r: c for r, c in counts.items() if r in exact_for})
    assert left == [], left
    return counts


def started(rs: RunningStack, sid: str) -> None:
    rs.wait_phase(sid, "running callers", timeout=60)
    time.sleep(4)  # calls are flowing through Kamailio


def test_worker_kill9_and_api_kill9_under_sipflow_up(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    env = {"SIPFLOW_RESTART_BACKOFF_S": "0.5"}
    up = UpProcess(tmp_path / "stack", tmp_path / "up.log", env=env)
    rs = up.start()
    try:
        from tests.test_stack_supervise import restarted, status

        sid = rs.submit(through(sut, "worker-kill"))
        started(rs, sid)
        os.kill(status(up.data)["processes"]["worker"]["pid"], signal.SIGKILL)
        body = wait_final(rs, sid)
        assert restarted(up.data, "worker", 1)
        judge(fault_table, "worker kill -9 (sipflow up)", rs, sid, body, "pass")

        sid = rs.submit(through(sut, "api-kill"))
        started(rs, sid)
        os.kill(status(up.data)["processes"]["api"]["pid"], signal.SIGKILL)
        body = wait_final(rs, sid)
        assert restarted(up.data, "api", 1)
        judge(fault_table, "API kill -9, restarted (sipflow up)", rs, sid, body, "pass")

        # SIGTERM with sessions running: says how many, cancels them with their clean-up.
        sids = [rs.submit(through(sut, f"long-{i}", duration_s=120)) for i in range(2)]
        for sid in sids:
            rs.wait_phase(sid, "running callers", timeout=60)
    finally:
        code = up.stop(signal.SIGTERM)
    assert code == 0, up.text()
    assert "2 session(s) running: cancelling them" in up.text(), up.text()
    assert "2 session(s) cancelled and cleaned up" in up.text(), up.text()
    assert not any(listening(p) for p in up.ports)
    for sid in sids:
        assert stored_status(up.data, sid)[0] == "cancelled", sid
        assert leftovers(rs, sid) == []


def test_broker_kill9_and_restart_after_20s(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    with contextlib.contextmanager(start_stack)(tmp_path) as rs:
        sid = rs.submit(through(sut, "broker-kill", duration_s=20))
        started(rs, sid)
        rs.stack.kill_process("mosquitto")
        time.sleep(20)
        rs.stack.start_mosquitto()
        body = wait_final(rs, sid)
        judge(fault_table, "broker kill -9, back after 20 s", rs, sid, body, "pass")


def test_broker_clean_restart_mid_session_passes(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    # A clean stop publishes every connected runner's Last Will ("lost"); the runners come back
    # after the restart, so "lost" must not count (SIPFLOW_INGEST_LOST_GRACE_S) and the session
    # passes with every interval stored once.
    env = {"SIPFLOW_INGEST_LOST_GRACE_S": "8", "SIPFLOW_INGEST_PROGRESS_EVERY_S": "1"}
    with contextlib.contextmanager(start_stack)(tmp_path, extra_env=env) as rs:
        sid = rs.submit(through(sut, "broker-restart", duration_s=25))
        started(rs, sid)
        rs.stack.stop_process("mosquitto")  # SIGTERM: wills published
        time.sleep(2)
        rs.stack.start_mosquitto()
        time.sleep(3)
        # The ingest still follows the session (it did not take the wills as final and end).
        before = live_intervals(rs, sid)
        time.sleep(4)
        assert live_intervals(rs, sid) > before
        body = wait_final(rs, sid)
        judge(fault_table, "broker stopped cleanly, restarted", rs, sid, body, "pass")
        assert not any("lost" in r for r in body["reasons"]), body["reasons"]


def live_intervals(rs: RunningStack, sid: str) -> int:
    progress = rs.http.get(f"/v1/sessions/{sid}").json().get("progress") or {}
    return int((progress.get("totals") or {}).get("intervals", 0))


def test_whole_stack_kill9_and_restart(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    stack = Stack(StackConfig.on_free_ports(tmp_path))
    stack.start()
    try:
        rs = RunningStack(stack)
        wait_healthy(rs)
        sid = rs.submit(through(sut, "stack-kill"))
        started(rs, sid)
        for name in ("api", "worker", "mosquitto", "temporal"):
            stack.kill_process(name)  # SIGKILL, as a crash or an OOM kill would
        time.sleep(2)
        stack.start()  # same data directory and ports
        rs = RunningStack(stack)
        wait_healthy(rs)
        body = wait_final(rs, sid)
        judge(fault_table, "whole stack kill -9, restarted", rs, sid, body, "pass")
    finally:
        stack.stop()


def wait_healthy(rs: RunningStack) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if rs.http.get("/v1/health").status_code == 200:
                return
        assert time.monotonic() < deadline, "API not healthy in 60 s"
        time.sleep(0.3)


# The database stopped mid-session: the ingest hub retries its batches (unacknowledged, so the
# broker keeps them) until it is back; nothing lost, nothing doubled.
def test_postgresql_stopped_for_10s(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    with private_postgres() as pg:
        url = pg.create_database(f"sipflow_{uuid.uuid4().hex[:8]}")
        with contextlib.contextmanager(start_stack)(tmp_path, database_url=url) as rs:
            sid = rs.submit(through(sut, "postgres-outage", duration_s=20))
            started(rs, sid)
            pg.stop()
            time.sleep(10)
            pg.start()
            body = wait_final(rs, sid)
            judge(fault_table, "PostgreSQL stopped 10 s", rs, sid, body, "pass")


def test_runner_agent_kill9_fails_with_the_reason(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    with contextlib.contextmanager(start_stack)(tmp_path) as rs:
        sid = rs.submit(through(sut, "agent-kill"))
        started(rs, sid)
        os.kill(int((rs.runs_dir / sid / "caller-0" / "agent.pid").read_text()), signal.SIGKILL)
        body = wait_final(rs, sid)
        # Every count is exact: what the killed caller had not sent is recovered at stop from
        # its SIPp's statistics file (patch recover-lost-intervals), each interval once.
        judge(fault_table, "runner agent kill -9", rs, sid, body, "fail")
        assert any("lost" in r and "caller-0" in r for r in body["reasons"]), body["reasons"]
        recovered = [r for r in body["reasons"] if r.startswith("caller-0: ")]
        assert recovered and "recovered from SIPp's file" in recovered[0], body["reasons"]


def test_workflow_bug_ends_with_error(
    tmp_path: Path, sut: tuple[str, int], fault_table: list[dict[str, Any]]
) -> None:
    env = {"TEST_SIPFLOW_FAULT": "bug:publish_control"}  # raises where callers get `go`
    with contextlib.contextmanager(start_stack)(tmp_path, extra_env=env) as rs:
        sid = rs.submit(through(sut, "workflow-bug"))
        body = wait_final(rs, sid, timeout=120)
        assert body["status"] == "error"
        assert any(
            "workflow error while running callers" in r
            and "injected bug before publish_control" in r
            for r in body["reasons"]
        ), body["reasons"]
        assert len(sorted((rs.runs_dir / sid).glob("*/agent.pid"))) == 2  # runners were up
        judge(fault_table, "workflow bug", rs, sid, body, "error")
