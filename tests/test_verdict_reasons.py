"""A runner that failed fails its session (patch `verdict-counts-all-reasons`): before, the
summary's reasons were listed but not judged, so a caller whose every call was refused passed
when no threshold was about success. Failed calls are left to thresholds that judge call
outcomes (success_rate >= 0 tolerates them all); a runner's own failure never is."""

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


def refused_spec(host: str, port: int) -> dict[str, Any]:
    # Nobody registered "nobody": Kamailio answers every INVITE 404.
    return {
        "name": "refused",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callers": {"rate": 10, "max_calls": 5, "call_to": ["nobody"]},
        },
        "thresholds": ["retransmissions >= 0"],  # holds whatever happens: not about success
    }


def test_refused_calls_fail_the_session_unless_thresholds_judge_them(
    sqlite_stack: RunningStack, sut: tuple[str, int]
) -> None:
    body = sqlite_stack.run(refused_spec(*sut), timeout=120)
    assert body["status"] == "completed", body
    assert all(t["passed"] for t in body["summary"]["thresholds"]), body["summary"]
    caller = next(r for r in body["runners"] if r["runner_id"] == "caller-0")
    assert caller["state"] == "failed", caller
    assert any(r.startswith("runner caller-0 failed") for r in body["reasons"]), body["reasons"]
    assert body["verdict"] == "fail", body

    tolerant = refused_spec(*sut)
    tolerant["thresholds"] = ["success_rate >= 0"]  # the user judges call outcomes: any
    body = sqlite_stack.run(tolerant, timeout=120)
    assert any(r.startswith("runner caller-0 failed") for r in body["reasons"]), body["reasons"]
    assert body["verdict"] == "pass", body


def test_a_caller_that_placed_no_call_is_a_reason() -> None:
    # SIPp stopped cleanly before its first call: exit 0, no failed call, but nothing tested.
    def caller(created: int) -> RunnerRow:
        summary = {"calls_created": created, "successful_calls": created}
        return RunnerRow(
            session_id="s", runner_id=f"caller-{created}", role="caller", state="done",
            ok=True, exit_code=0, summary=summary,
        )  # fmt: skip

    callee = RunnerRow(session_id="s", runner_id="callee-0", role="callee", state="done", ok=True)
    metrics = SessionMetrics(measured={}, roles={}, histogram=[], intervals=0)
    reasons = failure_reasons(metrics, [caller(0), caller(3), callee])
    assert reasons == ["runner caller-0 placed no call"]

    refused = RunnerRow(
        session_id="s", runner_id="caller-9", role="caller", state="failed", ok=False,
        exit_code=1, summary={"calls_created": 5, "failed_calls": 5},
    )  # fmt: skip
    crashed = RunnerRow(
        session_id="s", runner_id="caller-8", role="caller", state="failed", ok=False,
        exit_code=None, detail="no `go` within 60s of ready: no call placed",
    )  # fmt: skip
    lost = RunnerRow(session_id="s", runner_id="callee-1", role="callee", state="lost")
    always, by_calls = runner_faults([refused, crashed, lost, caller(0)])
    assert by_calls == ["runner caller-9 failed"]
    assert always == [
        "runner caller-8 failed: no `go` within 60s of ready: no call placed",
        "runner callee-1 lost (its agent vanished)",
        "runner caller-0 placed no call",
    ]
