"""DTMF and a call script's media steps through the real stack and Kamailio: the callers' script
sends `send_dtmf 1234#` and expects the callees' DTMF (`media.dtmf: 9*0`) and audio both ways;
every call's digits, both ways, are detected as sent. A wrong `expect_dtmf` fails exactly that
step, with its reason; RTP kept from the callers fails `expect audio` (and the DTMF they should
have heard)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from entrypoints.cli import app
from entrypoints.stack import free_port
from tests.conftest import RunningStack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    sign_in,
)
from tests.sut.kamailio import kamailio
from tests.test_media_e2e import _block_rtp_to_callers, calls

CALLS = 4


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield "127.0.0.1", port


def dtmf_spec(host: str, port: int, expect: str = "9*0") -> dict[str, Any]:
    return {
        "name": "dtmf-through-kamailio",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {
                "agents": 1,
                "accounts": [{"user": "bob", "password": "secret"}],
                "media": {"dtmf": {"digits": "9*0", "duration_ms": 60}},
            },
            "callers": {
                "rate": 4,
                "max_calls": CALLS,
                "accounts": [{"user": "alice"}],
                "media": {},
                "script": [
                    "call",
                    "expect 200",
                    "wait 300ms",
                    "send_dtmf 1234#",
                    f"expect_dtmf {expect}",
                    "expect audio",
                    "wait 300ms",
                    "hangup",
                ],
            },
        },
        "thresholds": [
            "success_rate >= 100",
            "dtmf_mismatch_calls == 0",
            "step_failed_s5_expect_dtmf == 0",
            "step_failed_s6_expect_audio == 0",
        ],
    }


def steps(stack: RunningStack, sid: str) -> dict[str, dict[str, Any]]:
    body = stack.http.get(f"/v1/sessions/{sid}").json()
    return {s["step"]: s for s in body["steps"] if s["role"] == "caller"}


def test_digits_sent_are_detected_in_every_call_both_ways(
    sqlite_stack: RunningStack, sut: tuple[str, int]
) -> None:
    sid = sqlite_stack.submit(dtmf_spec(*sut))
    body = sqlite_stack.wait(sid, timeout=150)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    m = body["measured"]
    assert (m["dtmf_calls"], m["dtmf_mismatch_calls"], m["one_way_audio_calls"]) == (CALLS, 0, 0)
    rows = calls(sqlite_stack, sid)
    assert len(rows) == CALLS
    for row in rows:
        plays = sorted((d["direction"], d["sent"], d["received"]) for d in row["dtmf"])
        assert plays == [
            ("callee_to_caller", "9*0", "9*0"),
            ("caller_to_callee", "1234#", "1234#"),
        ], row
        assert [(e["step"], e["passed"]) for e in row["expectations"]] == [
            ("s5_expect_dtmf", True),
            ("s6_expect_audio", True),
        ]
    caller = steps(sqlite_stack, sid)
    assert caller["s5_expect_dtmf"]["passed"] == CALLS
    assert caller["s5_expect_dtmf"]["failed"] == 0
    # The CLI's calls table shows the digits and the checks.
    env = {"SIPFLOW_API_KEY": str(sqlite_stack.stack.api_key), "COLUMNS": "250"}
    argv = ["sessions", "calls", sid, "--api", sqlite_stack.stack.api_url]
    shown = CliRunner().invoke(app, argv, env=env)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("1234#") == CALLS and shown.stdout.count("9*0") == CALLS
    assert shown.stdout.count("2 passed") == CALLS, shown.stdout


def test_a_wrong_expect_dtmf_fails_that_step_with_its_reason(
    sqlite_stack: RunningStack, sut: tuple[str, int], page: Any
) -> None:
    sid = sqlite_stack.submit(dtmf_spec(*sut, expect="777"))
    body = sqlite_stack.wait(sid, timeout=150)
    assert (body["status"], body["verdict"]) == ("completed", "fail"), body
    failed = {t["threshold"] for t in body["thresholds"] if not t["passed"]}
    assert failed == {"dtmf_mismatch_calls == 0", "step_failed_s5_expect_dtmf == 0"}, body
    assert body["measured"]["dtmf_mismatch_calls"] == CALLS
    caller = steps(sqlite_stack, sid)
    bad = caller.pop("s5_expect_dtmf")
    assert (bad["passed"], bad["failed"], bad["failed_by"]) == (0, CALLS, {"dtmf mismatch": CALLS})
    assert all(s["failed"] == 0 for s in caller.values()), caller  # only that step
    for row in calls(sqlite_stack, sid):
        (dtmf, audio) = row["expectations"]
        assert dtmf["reason"] == "expected DTMF 777, received 9*0"
        assert audio["passed"] is True
        assert all(d["sent"] == d["received"] for d in row["dtmf"])  # what was sent arrived
    # The report's calls table: each direction's digits as detected, and the failed check.
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/sessions/{sid}")
    page.wait_for_selector("#media:not([hidden]) #calls tbody tr")
    rows = page.eval_on_selector_all(
        "#calls tbody tr",
        "rows => rows.map(r => [r.cells[10].dataset.dtmf, r.cells[10].dataset.dtmfOk,"
        " r.cells[11].textContent])",
    )
    assert sorted(r[0] for r in rows) == ["1234#"] * CALLS + ["9*0"] * CALLS, rows
    assert {r[1] for r in rows} == {"true"}
    checks = [r[2] for r in rows if r[2]]
    assert checks == ["s5_expect_dtmf: expected DTMF 777, received 9*0"] * CALLS, rows


def test_no_audio_towards_the_callers_fails_expect_audio(
    sqlite_stack: RunningStack, sut: tuple[str, int]
) -> None:
    sid = sqlite_stack.submit(dtmf_spec(*sut))
    _block_rtp_to_callers(sid, 7000)
    body = sqlite_stack.wait(sid, timeout=150)
    assert body["verdict"] == "fail", body
    caller = steps(sqlite_stack, sid)
    audio = caller["s6_expect_audio"]
    assert (audio["failed"], audio["failed_by"]) == (CALLS, {"one-way audio": CALLS}), audio
    assert caller["s5_expect_dtmf"]["failed_by"] == {"no dtmf": CALLS}
    for row in calls(sqlite_stack, sid):
        reasons = [e["reason"] for e in row["expectations"]]
        assert reasons == ["expected DTMF 9*0, received none", "no audio callee to caller"]
