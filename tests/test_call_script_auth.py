"""Call scripts answer a digest challenge to their INVITE with the calling account's
credentials, like the built-in call scenario: a session through Kamailio that answers every
new INVITE 407 (tests/sut/kamailio-invite-auth.cfg) passes with a password and fails on the
challenge, in the script's `call` step, without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RunningStack
from tests.runner_fixtures import free_port
from tests.sut.kamailio_ua import INVITE_AUTH, kamailio_sut

SCRIPT = ["call", "expect 180", "expect 200", "wait 200ms", "hangup"]


def _spec(address: str, account: dict[str, str], calls: int) -> dict[str, Any]:
    host, port = address.split(":")
    return {
        "name": "script-auth",
        "target": {"host": host, "port": int(port), "domain": "sip.test", "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {
                "rate": 10,
                "max_calls": calls,
                "call_to": ["bob"],
                "accounts": [account],
                "script": SCRIPT,
            },
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def _runner(body: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(r for r in body["runners"] if r["runner_id"] == rid)


def test_script_answers_a_challenge_with_credentials_and_fails_without(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    with kamailio_sut(INVITE_AUTH, free_port(), tmp_path / "kamailio") as sut:
        alice = {"user": "alice", "password": "secret"}
        passed = sqlite_stack.run(_spec(sut.address, alice, 5), timeout=120)
        failed = sqlite_stack.run(_spec(sut.address, {"user": "carol"}, 3), timeout=120)
        invites = sut.log_lines("sipflow-invite")
    assert (passed["status"], passed["verdict"]) == ("completed", "pass"), (
        passed["reasons"],
        passed["runners"],
    )
    assert passed["summary"]["measured"]["successful_calls"] == 5
    # Each call: INVITE (CSeq 1) -> 407 -> ACK -> INVITE (CSeq 2) with credentials -> 200.
    assert sum("user=alice cseq=1 auth=no" in i for i in invites) == 5
    assert sum("user=alice cseq=2 auth=yes" in i for i in invites) == 5

    assert failed["verdict"] == "fail", failed
    caller = _runner(failed, "caller-0")
    assert caller["failure_reasons"] == {
        "INVITE: 407 Proxy Authentication Required": 3,
        "step s1_call: unexpected": 3,
    }
    assert sum("user=carol cseq=2" in i for i in invites) == 0
    # The call step counts the calls of both kinds of row; the failed ones fail in it.
    steps = {s["step"]: s for s in failed["steps"]}
    assert (steps["s1_call"]["passed"], steps["s1_call"]["failed"]) == (3, 3), steps
    assert steps["s1_call"]["failed_by"] == {"unexpected": 3}
    ok = {s["step"]: s for s in passed["steps"]}
    assert (ok["s1_call"]["passed"], ok["s5_hangup"]["passed"]) == (5, 5), ok
