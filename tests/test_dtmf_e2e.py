"""DTMF and a call script's media steps through the real stack and Kamailio: the callers' script
sends `send_dtmf 1234#` and expects the callees' DTMF (`media.dtmf: 9*0`) and audio both ways;
every call's digits, both ways, are detected as sent. A wrong `expect_dtmf` fails exactly that
step, with its reason; RTP kept from the callers fails `expect audio` (and the DTMF they should
have heard). The media steps are judged at their moment: digits that arrive after the
`expect_dtmf` fail it ("received none by 00:00.0 after the answer"), the same script with the
wait before the step passes."""

from __future__ import annotations

import re
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


def dtmf_spec(
    host: str, port: int, expect: str = "9*0", script: list[str] | None = None
) -> dict[str, Any]:
    script = script or [
        "call",
        "expect 200",
        "wait 300ms",
        "send_dtmf 1234#",
        f"expect_dtmf {expect}",
        "expect audio",
        "wait 300ms",
        "hangup",
    ]
    verbs = [s.replace("expect audio", "expect_audio").split()[0] for s in script]
    media_steps = [f"s{i}_{v}" for i, v in enumerate(verbs, 1) if v.startswith("expect_")]
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
                "script": script,
            },
        },
        "thresholds": [
            "success_rate >= 100",
            "dtmf_mismatch_calls == 0",
            *(f"step_failed_{name} == 0" for name in media_steps),
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
        # judged at the step, 2 s after the answer (300 ms + the 1.6 s play of 1234#)
        assert re.fullmatch(
            r"expected DTMF 777, received 9\*0 by 00:0[1-3]\.[0-9] after the answer", dtmf["reason"]
        ), dtmf
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
    assert len(checks) == CALLS, rows
    wrong = "s5_expect_dtmf: expected DTMF 777, received 9*0 by 00:"
    assert all(c.startswith(wrong) for c in checks), checks


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
        (dtmf, audio) = [e["reason"] for e in row["expectations"]]
        assert re.fullmatch(
            r"expected DTMF 9\*0, received none by 00:0[1-3]\.[0-9] after the answer", dtmf
        )
        assert re.fullmatch(
            r"no audio callee to caller in the second before 00:0[1-3]\.[0-9] after the answer",
            audio,
        )


LATE = ["call", "expect 200", "expect_dtmf 9*0", "wait 1500ms", "hangup"]
IN_TIME = ["call", "expect 200", "wait 1500ms", "expect_dtmf 9*0", "hangup"]


def test_digits_arriving_after_the_step_fail_it_and_a_wait_before_passes(
    sqlite_stack: RunningStack, sut: tuple[str, int]
) -> None:
    """The callees play 9*0 from their ACK on (the first digit after SIPp's 400 ms stream
    opening): a script that expects them right at the answer fails the step with when it looked;
    the same steps with the wait first pass. The whole call got the digits either way."""
    sid = sqlite_stack.submit(dtmf_spec(*sut, script=LATE))
    body = sqlite_stack.wait(sid, timeout=150)
    assert (body["status"], body["verdict"]) == ("completed", "fail"), body
    failed = {t["threshold"] for t in body["thresholds"] if not t["passed"]}
    assert failed == {"dtmf_mismatch_calls == 0", "step_failed_s3_expect_dtmf == 0"}, body
    step = steps(sqlite_stack, sid)["s3_expect_dtmf"]
    assert (step["passed"], step["failed"], step["failed_by"]) == (0, CALLS, {"no dtmf": CALLS})
    for row in calls(sqlite_stack, sid):
        (e,) = row["expectations"]
        assert re.fullmatch(
            r"expected DTMF 9\*0, received none by 00:00\.[0-3] after the answer", e["reason"]
        ), e
        assert e["at_s"] is not None and e["at_s"] < 0.4
        assert [(d["sent"], d["received"]) for d in row["dtmf"]] == [("9*0", "9*0")]

    sid = sqlite_stack.submit(dtmf_spec(*sut, script=IN_TIME))
    body = sqlite_stack.wait(sid, timeout=150)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    step = steps(sqlite_stack, sid)["s4_expect_dtmf"]
    assert (step["passed"], step["failed"]) == (CALLS, 0)
    for row in calls(sqlite_stack, sid):
        (e,) = row["expectations"]
        assert e["passed"] and e["at_s"] >= 1.5, e
