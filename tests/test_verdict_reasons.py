"""A runner's own failure fails its session (patch `verdict-counts-all-reasons`): before, the
summary's reasons were listed but not judged, so a caller that could not place a single call
passed when no threshold was about success. Failed calls stay the thresholds' (and schedules'
rules') to judge: a caller whose calls got 404 fails only the thresholds that look at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from entrypoints.stack import free_port
from sipflow.models import RunnerRow
from sipflow.summary import SessionMetrics, failure_reasons, runner_faults
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio-refuses")):
        yield "127.0.0.1", port


def spec_to(host: str, port: int, transport: str = "udp") -> dict[str, Any]:
    return {
        "name": "refused",
        "target": {"host": host, "port": port, "transport": transport, "registrar": False},
        "roles": {
            "callers": {"rate": 10, "max_calls": 5, "call_to": ["nobody"], "transport": transport}
        },
        "thresholds": ["retransmissions >= 0"],  # holds whatever happens: not about success
    }


def test_a_target_that_refuses_connections_fails_the_session(
    sqlite_stack: RunningStack,
) -> None:
    # Nothing listens on this TCP port: SIPp cannot connect and places no call.
    body = sqlite_stack.run(spec_to("127.0.0.1", free_port(), "tcp"), timeout=120)
    assert body["status"] == "completed", body
    assert all(t["passed"] for t in body["summary"]["thresholds"]), body["summary"]
    caller = next(r for r in body["runners"] if r["runner_id"] == "caller-0")
    assert caller["state"] == "failed", caller
    assert any(r.startswith("runner caller-0 failed") for r in body["reasons"]), body["reasons"]
    assert body["verdict"] == "fail", (body["reasons"], caller)


def test_refused_calls_are_the_thresholds_to_judge(
    sqlite_stack: RunningStack, sut: tuple[str, int]
) -> None:
    # Nobody registered "nobody": Kamailio answers every INVITE 404. The runner failed by
    # failed calls: listed, judged by the thresholds only.
    body = sqlite_stack.run(spec_to(*sut), timeout=120)
    assert any(r.startswith("runner caller-0 failed") for r in body["reasons"]), body["reasons"]
    assert body["summary"]["measured"]["failed_calls"] == 5
    assert body["verdict"] == "pass", body
    strict = spec_to(*sut) | {"thresholds": ["success_rate >= 99"]}
    assert sqlite_stack.run(strict, timeout=120)["verdict"] == "fail"


def test_runner_faults_and_reasons() -> None:
    def caller(created: int) -> RunnerRow:
        summary = {"calls_created": created, "successful_calls": created}
        return RunnerRow(
            session_id="s", runner_id=f"caller-{created}", role="caller", state="done",
            ok=True, exit_code=0, summary=summary,
        )  # fmt: skip

    callee = RunnerRow(session_id="s", runner_id="callee-0", role="callee", state="done", ok=True)
    metrics = SessionMetrics(measured={}, roles={}, histogram=[], intervals=0)
    # SIPp stopped cleanly before its first call: no failure, but nothing was tested.
    assert failure_reasons(metrics, [caller(0), caller(3), callee]) == [
        "runner caller-0 placed no call"
    ]
    refused = RunnerRow(
        session_id="s", runner_id="caller-9", role="caller", state="failed", ok=False,
        exit_code=1, summary={"calls_created": 5, "failed_calls": 5},
    )  # fmt: skip
    no_go = RunnerRow(
        session_id="s", runner_id="caller-8", role="caller", state="failed", ok=False,
        exit_code=None, detail="no `go` within 60s of ready: no call placed",
    )  # fmt: skip
    lost = RunnerRow(session_id="s", runner_id="callee-1", role="callee", state="lost")
    assert runner_faults([refused, no_go, lost, caller(0)]) == [
        "runner caller-8 failed: no `go` within 60s of ready: no call placed",
        "runner callee-1 lost (its agent vanished)",
        "runner caller-0 placed no call",
    ]
