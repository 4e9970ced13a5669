"""Whole sessions (API -> Temporal -> agents -> MQTT -> database) against a Kamailio that
behaves like real systems do: what the registration went through and why calls were challenged
reaches the stored runner rows, the summary and the session's reasons.

"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningStack
from tests.runner_fixtures import free_port
from tests.sut.kamailio_ua import FLAKY_REGISTRAR, INVITE_AUTH, kamailio_sut


@pytest.fixture
def ua_stack(sqlite_stack: RunningStack) -> RunningStack:
    return sqlite_stack


def _spec(address: str, callers: dict[str, Any], expires: int = 3600) -> dict[str, Any]:
    host, port = address.split(":")
    return {
        "name": "ua",
        "target": {
            "host": host,
            "port": int(port),
            "domain": "sip.test",
            "registrar": True,
            "register_expires_s": expires,
        },
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": 10, "call_to": ["bob"], **callers},
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def _runner(body: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(r for r in body["runners"] if r["runner_id"] == rid)


def test_registration_retried_refreshed_and_removed(ua_stack: RunningStack, tmp_path: Path) -> None:
    """First REGISTER answered 500, Expires 4 in a ~12 s session: the session passes, the failed
    try is stored with the callee, and the binding was refreshed and is gone at the end."""
    with kamailio_sut(FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio") as sut:
        alice = {"user": "alice", "password": "secret"}
        body = ua_stack.run(_spec(sut.address, {"duration_s": 12, "accounts": [alice]}, 4))
        saved = [
            re.search(r"expires=(\S*)", line).group(1)  # type: ignore[union-attr]
            for line in sut.log_lines("sipflow-saved user=bob ")
        ]
        assert sut.contacts("bob") == []
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    callee = _runner(body, "callee-0")
    assert callee["state"] == "done"
    assert callee["failure_reasons"] == {"REGISTER: 500 Server Error": 1}
    roles = body["summary"]["roles"]
    assert roles["callee"]["failure_reasons"] == {"REGISTER: 500 Server Error": 1}
    assert roles["callee"]["successful_calls"] == body["summary"]["measured"]["successful_calls"]
    # Registered, refreshed at least twice (every ~3.2 s), removed.
    assert saved[0] == "4" and saved[-1] == "0" and len(saved) >= 4, saved
    # Every try is stored with the callee and summed in its role's summary (API and report).
    reg = callee["registration"]
    assert reg["attempts_to_register"] == 2 and reg["failures"] == {"500 Server Error": 1}
    assert reg["refreshes"] == len(saved) - 2 and reg["unregistered"] is True, reg
    assert reg["attempts"] == len(saved) + 1 and reg["error"] is None, reg
    summary = roles["callee"]["registration"]
    assert summary == {
        "registered": 1,
        "attempts": reg["attempts"],
        "failures": {"500 Server Error": 1},
        "refreshes": reg["refreshes"],
        "unregistered": 1,
        "errors": [],
    }, summary
    report = ua_stack.http.get(f"/v1/sessions/{body['id']}/report.json").json()
    assert _runner(report, "callee-0")["registration"] == reg
    assert report["roles"]["callee"]["registration"] == summary


def test_registration_that_fails_says_after_how_many_tries(
    ua_stack: RunningStack, tmp_path: Path
) -> None:
    with kamailio_sut(
        FLAKY_REGISTRAR, free_port(), tmp_path / "kamailio", defines=("REGISTER_ALWAYS_500",)
    ) as sut:
        body = ua_stack.run(_spec(sut.address, {"max_calls": 10}))
    assert body["verdict"] == "fail", body
    reasons = " | ".join(body["reasons"])
    assert "REGISTER: 500 Server Error x3" in reasons, reasons
    callee = _runner(body, "callee-0")
    assert callee["state"] == "failed"
    assert callee["detail"] == "registration failed after 3 attempts: 500 Server Error"
    assert callee["failure_reasons"] == {"REGISTER: 500 Server Error": 3}
    assert body["summary"]["measured"]["total_calls"] == 0
    assert callee["registration"]["attempts"] == 3
    summary = body["summary"]["roles"]["callee"]["registration"]
    assert summary["registered"] == 0 and summary["failures"] == {"500 Server Error": 3}
    assert summary["errors"] == ["registration failed after 3 attempts: 500 Server Error"]


def test_challenged_calls_pass_with_credentials_fail_without(
    ua_stack: RunningStack, tmp_path: Path
) -> None:
    with kamailio_sut(INVITE_AUTH, free_port(), tmp_path / "kamailio") as sut:
        alice = {"user": "alice", "password": "secret"}
        passed = ua_stack.run(_spec(sut.address, {"max_calls": 30, "accounts": [alice]}))
        failed = ua_stack.run(
            _spec(sut.address, {"max_calls": 10, "accounts": [{"user": "carol"}]})
        )
    assert (passed["status"], passed["verdict"]) == ("completed", "pass"), passed
    assert passed["summary"]["measured"]["successful_calls"] == 30
    assert passed["summary"]["measured"]["response_time_p95_ms"] is not None

    assert failed["verdict"] == "fail", failed
    caller = _runner(failed, "caller-0")
    assert caller["failure_reasons"] == {"INVITE: 407 Proxy Authentication Required": 10}
    callers = failed["summary"]["roles"]["caller"]
    assert callers["failed_by_cause"] == {"unexpected_message": 10}
    assert any("INVITE: 407 Proxy Authentication Required x10" in r for r in failed["reasons"])
