"""Call script steps `hold` and `resume` (sipflow/call_script.py) and the callees' side that
answers any number of re-INVITEs (sipflow/held_callee.py): the order is validated at the step's
path; the compiled caller and the held callee run against each other in real SIPp (every step
counted, a refused re-INVITE fails exactly its step); whole sessions through Kamailio
(tests/sut/kamailio-flows.cfg) pass with every step counted and the re-INVITEs on the wire, a
Kamailio refusing the hold fails exactly the hold step, and with media the held direction is
silent during the hold and audio flows after the resume."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as safe_xml
import pytest
from pydantic import TypeAdapter, ValidationError

from entrypoints.stack import free_port
from runners import media_held
from runners.media_session import media_variant
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from sipflow import held_callee as held
from sipflow.call_script import (
    CallScript,
    Holds,
    compile_script,
    holds_of,
    quiet_ms,
    step_names,
)
from sipflow.media_store import held_steps_of
from sipflow.plan import _scenario
from sipflow.runner_config import MediaConfig, dtmf_play_ms
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sip_wire import SipWire, sip_wire
from tests.sut.kamailio import kamailio
from tests.sut.kamailio_ua import INVITE_AUTH, kamailio_sut
from tests.test_media_e2e import calls

FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
SCRIPT = TypeAdapter(CallScript)
CALLS = 3
# Two hold/resume pairs: the callee answers any number of re-INVITEs.
TWO_HOLDS = [
    "call",
    "expect 180",
    "expect 200",
    "hold",
    "wait 200ms",
    "resume",
    "wait 100ms",
    "hold",
    "wait 100ms",
    "resume",
    "hangup",
]


def spec(script: list[str], **callers: Any) -> dict[str, Any]:
    return {
        "target": {"host": "127.0.0.1", "port": 5090, "domain": "127.0.0.1", "registrar": True},
        "roles": {
            "callees": {"accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": 5, "max_calls": CALLS, "script": script, **callers},
        },
    }


def errors(script: list[str]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(spec(script))
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("script", "index", "reason"),
    [
        (["call", "expect 200", "resume", "hangup"], 2, "'resume' only while the call is on hold"),
        (["call", "expect 180", "hold", "expect 200", "hangup"], 2, "'hold' needs an answered"),
        (["call", "expect 200", "hold", "hold", "hangup"], 3, "on hold (resume first)"),
        (["call", "expect 200", "hold", "resume", "resume", "hangup"], 4, "only while"),
        (["call", "expect 200", "hold", "send_dtmf 1", "hangup"], 3, "on hold (resume first)"),
        (["call", "expect 200", "hangup", "hold"], 3, "the call has ended"),
    ],
)
def test_hold_and_resume_out_of_order_are_refused_at_their_index(
    script: list[str], index: int, reason: str
) -> None:
    (error,) = errors(script)
    assert error[0] == ("roles", "callers", "script", index)
    assert reason in error[1], error


def test_a_callee_script_is_refused_beside_a_script_that_holds() -> None:
    """The held callee answers the re-INVITEs; a callee script has no step for them."""
    body = spec(TWO_HOLDS)
    body["roles"]["callees"]["script"] = ["answer", "expect hangup"]
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(body)
    (error,) = info.value.errors()
    assert error["loc"][:3] == ("roles", "callees", "script") or "roles.callees.script" in str(
        error["msg"]
    ), error
    assert "holds or transfers gives the callees their side" in error["msg"], error


def test_a_script_s_waits_count_in_the_session_s_expected_length() -> None:
    plain = SessionSpec.model_validate(spec(["call", "expect 200", "hangup"]))
    waiting = SessionSpec.model_validate(spec(["call", "expect 200", "wait 30s", "hangup"]))
    assert waiting.expected_duration_s() - plain.expected_duration_s() == pytest.approx(30)


def test_hangup_while_held_and_many_pairs_are_valid() -> None:
    SessionSpec.model_validate(spec(["call", "expect 200", "hold", "wait 1s", "hangup"]))
    parsed = SessionSpec.model_validate(spec(TWO_HOLDS))
    assert parsed.roles.callers.script is not None
    assert step_names(parsed.roles.callers.script)[3:6] == ["s4_hold", "s5_wait", "s6_resume"]


def test_api_refuses_a_resume_without_hold_at_its_path(sqlite_stack: RunningStack) -> None:
    body = spec(["call", "expect 200", "resume", "hangup"])
    r = sqlite_stack.http.post("/v1/sessions", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "roles", "callers", "script", 2]
    r = sqlite_stack.http.post("/v1/scripts/compile", json={"script": TWO_HOLDS})
    assert r.status_code == 200, r.text
    assert r.json()["steps"][3] == "s4_hold" and r.json()["xml"].count("a=sendonly") == 2


def test_a_script_that_holds_gives_the_callees_their_side() -> None:
    s = SessionSpec.model_validate(spec(TWO_HOLDS))
    assert s.roles.callees is not None
    assert _scenario(s.roles.callees, s) == ("custom", held.held_callee(200))
    # It waits for the next request the script's longest pause (200 ms) and 10 s more.
    assert 'timeout="10200"' in held.held_callee(200)
    plain = SessionSpec.model_validate(spec(["call", "expect 200", "hangup"]))
    assert plain.roles.callees is not None
    assert _scenario(plain.roles.callees, plain) == ("answer", None)
    dtmf = spec(TWO_HOLDS, media={})
    dtmf["roles"]["callees"]["media"] = {"dtmf": {"digits": "1"}}
    with pytest.raises(ValidationError, match=r"media\.dtmf: not with a script that holds"):
        SessionSpec.model_validate(dtmf)


def test_quiet_ms() -> None:
    assert quiet_ms(SCRIPT.validate_python(TWO_HOLDS)) == 200
    script = ["call", "expect 200", "wait 2s", "send_dtmf 1", "hold", "wait 1s", "hangup"]
    assert quiet_ms(SCRIPT.validate_python(script)) == 2000 + dtmf_play_ms("1", 100)


def test_holds_of() -> None:
    h = holds_of(TWO_HOLDS)
    assert h is not None and (h.hold_s, h.hold_step, h.resume_step) == (0.1, "s4_hold", "s6_resume")
    h = holds_of(["call", "expect 200", "hold", "wait 2s", "hangup"])
    assert h is not None and (h.hold_s, h.resume_step) == (2.0, None)
    assert holds_of(["call", "expect 200", "hangup"]) is None
    # What the media judgement of a session takes: the script's holds with media only.
    body = spec(TWO_HOLDS, media={})
    assert held_steps_of(body) == holds_of(TWO_HOLDS)
    assert held_steps_of(spec(TWO_HOLDS)) is None
    flow = {"roles": {"callers": {"flow": {"name": "hold_resume", "hold_s": 2}, "media": {}}}}
    assert held_steps_of(flow) == Holds(2.0, "hold", "resume")


# -- the XML, run by SIPp against each other ------------------------------------------------------
def test_compiled_reinvites() -> None:
    xml = compile_script(SCRIPT.validate_python(TWO_HOLDS))
    safe_xml.fromstring(xml)
    marks = [m.name for m in steps_of(xml)]
    assert marks == step_names(SCRIPT.validate_python(TWO_HOLDS))
    # Each re-INVITE: one CSeq above the last answer's, its direction, its own o= version.
    invites = re.findall(r"INVITE \[next_url\].*?a=(send\w+)", xml, re.S)
    assert invites == ["sendonly", "sendrecv", "sendonly", "sendrecv"]
    assert xml.count("CSeq: [last_cseq_number+1] INVITE") == 4
    versions = re.findall(r"o=user1 53655765 ([0-9]+)", xml)
    assert len(set(versions)) == 4 + 1  # the INVITE's (twice: with and without credentials)


def _sipp(xml: Path, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
    argv = ["sipp", *args, "-sf", str(xml), "-nostdin", "-trace_counts", "-trace_msg", "-m", "2"]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run(tmp_path: Path, caller_xml: str, callee_xml: str) -> tuple[int, dict[str, Any], str]:
    """The caller's exit code, its step results, and the callee's message log."""
    (tmp_path / "caller.xml").write_text(caller_xml)
    (tmp_path / "callee.xml").write_text(callee_xml)
    (tmp_path / "inj.csv").write_text("SEQUENTIAL\nalice;127.0.0.1;;bob;127.0.0.1;127.0.0.1;0\n")
    uas_port = free_port()
    common = ["-i", "127.0.0.1"]
    uas = _sipp(tmp_path / "callee.xml", *common, "-p", str(uas_port), cwd=tmp_path)
    try:
        uac = _sipp(
            tmp_path / "caller.xml", f"127.0.0.1:{uas_port}", *common, "-p", str(free_port()),
            "-inf", str(tmp_path / "inj.csv"), "-r", "10", "-recv_timeout", "5000", cwd=tmp_path,
        )  # fmt: skip
        code = uac.wait(30)
    finally:
        uas.kill()
        uas.wait(5)
    counts = Path(counts_file(str(tmp_path / "caller.xml"), uac.pid)).read_text()
    results = {r.step: r for r in step_results(steps_of(caller_xml), parse_counts(counts))}
    log = next(tmp_path.glob("callee_*_messages.log")).read_text()
    return code, results, log


def test_caller_and_held_callee_run_every_step(tmp_path: Path) -> None:
    caller = compile_script(SCRIPT.validate_python(TWO_HOLDS))
    code, results, log = _run(tmp_path, caller, held.held_callee())
    assert code == 0
    assert len(results) == len(TWO_HOLDS)
    # (A wait is a pause: no message a call goes through, counted neither way.)
    assert all(
        (r.passed, r.failed) == ((0, 0) if "wait" in name else (2, 0))
        for name, r in results.items()
    ), results
    # The callee mirrored each offer, its o= version growing with the re-INVITE's CSeq.
    answers = re.findall(
        r"SIP/2.0 200 OK.*?o=sipflow 53655765 (\d+) .*?a=(sendrecv|recvonly)", log, re.S
    )
    assert answers.count(("2", "recvonly")) == answers.count(("4", "recvonly")) == 2, answers
    assert answers.count(("3", "sendrecv")) == answers.count(("5", "sendrecv")) == 2, answers


def test_a_refused_reinvite_fails_exactly_its_step(tmp_path: Path) -> None:
    """The callee answers the second hold (CSeq 4) with 488: s8_hold fails for both calls."""
    caller = compile_script(SCRIPT.validate_python(TWO_HOLDS))
    # Before the recvonly answer: a re-INVITE with CSeq 4 jumps to a 488 that ends the call.
    callee = (
        held.held_callee()
        .replace(
            '<label id="answer_held"/>',
            '<label id="answer_held"/>\n  <nop test="second" next="refuse"/>',
        )
        .replace(
            '<action><assignstr assign_to="offer"',
            '<action><ereg regexp="4 INVITE" search_in="hdr" header="CSeq:" check_it="false" '
            'assign_to="second"/><assignstr assign_to="offer"',
        )
    )
    refuse = (
        '  <label id="refuse"/>\n  <send><![CDATA[\n\n      SIP/2.0 488 Not Acceptable Here\n'
        "      [last_Via:]\n      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n"
        "      [last_CSeq:]\n      Content-Length: 0\n\n    ]]></send>\n"
    )
    callee = callee.replace("  <ResponseTimeRepartition", refuse + "  <ResponseTimeRepartition")
    code, results, _ = _run(tmp_path, caller, callee)
    assert code == 1
    failed = {name: (r.passed, r.failed) for name, r in results.items() if r.failed}
    assert failed == {"s8_hold": (0, 2)}, results
    assert results["s8_hold"].failed_by == {"unexpected": 2}
    before = step_names(SCRIPT.validate_python(TWO_HOLDS))[:7]
    assert all(results[s].passed == 2 for s in before if "wait" not in s), results
    assert (results["s10_resume"].passed, results["s10_resume"].failed) == (0, 0)


def test_media_pauses_the_held_callee(tmp_path: Path) -> None:
    xml = held.held_callee()
    # The runner's copies of the module's constants (the image holds no more of sipflow).
    assert (
        media_held.NAME.split('"')[1],
        media_held.HELD_MEDIA,
        media_held.RESUMED_MEDIA,
    ) == (held.NAME, held.HELD_MEDIA, held.RESUMED_MEDIA)
    audio = tmp_path / "reference.ulaw"
    out = media_variant(xml, MediaConfig(), audio)
    assert out.count(f'rtp_stream="{audio},-1,0"') == 1  # at the answer's ACK
    assert out.count('<exec rtp_stream="pause"/>') == 1  # in the recvonly answer's branch
    assert out.count('<exec rtp_stream="resume"/>') == 1
    assert "m=audio [media_port+1000] RTP/AVP 0 96" in out
    safe_xml.fromstring(out)


# -- sessions through Kamailio --------------------------------------------------------------------
def session_spec(sut: str, user: str, script: list[str], media: bool = False) -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    body = spec(script, accounts=[{"user": "alice"}], rate=3)
    body["target"] = {"host": host, "port": int(port), "domain": host, "registrar": True}
    body["roles"]["callees"]["accounts"] = [{"user": user, "password": "secret"}]
    if media:
        body["roles"]["callers"]["media"] = {}
        body["roles"]["callees"]["media"] = {}
    return body


WITH_MEDIA = ["call", "expect 200", "wait 1s", "hold", "wait 1s", "resume", "wait 1s", "hangup"]
REFUSED_HOLD = ["call", "expect 200", "wait 100ms", "hold", "wait 200ms", "resume", "hangup"]


@pytest.fixture(scope="module")
def sessions(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, dict[str, Any]], SipWire]]:
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-script-hold")
        sut = stack.enter_context(kamailio(free_port(), work / "pass", config=FLOWS_CFG))
        refusing = stack.enter_context(
            kamailio(free_port(), work / "refuse", config=FLOWS_CFG, defines=("REJECT_HOLD",))
        )
        wire = stack.enter_context(sip_wire(int(sut.rsplit(":", 1)[1])))
        ids = {
            "holds": sqlite_stack.submit(session_spec(sut, "sh1", TWO_HOLDS)),
            "media": sqlite_stack.submit(session_spec(sut, "sh2", WITH_MEDIA, media=True)),
            "refused": sqlite_stack.submit(session_spec(refusing, "sh3", REFUSED_HOLD)),
        }
        yield {k: sqlite_stack.wait(sid, 180) for k, sid in ids.items()}, wire


def caller_steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in body["steps"] if s["role"] == "caller"}


def passed_all(name: str, step: dict[str, Any]) -> bool:
    """Every call passed the step (a wait, a pause, counts none either way)."""
    return (step["passed"], step["failed"]) == ((0, 0) if "wait" in name else (CALLS, 0))


@pytest.mark.slow
def test_hold_twice_through_kamailio(
    sessions: tuple[dict[str, dict[str, Any]], SipWire],
) -> None:
    bodies, wire = sessions
    body = bodies["holds"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["measured"]["successful_calls"] == CALLS
    steps = caller_steps(body)
    assert list(steps) == step_names(SCRIPT.validate_python(TWO_HOLDS))
    assert all(passed_all(name, s) for name, s in steps.items()), steps
    # On the wire (Kamailio relaying to the callee): per call the INVITE and four re-INVITEs,
    # CSeq 1..5, the holds sendonly and the resumes sendrecv.
    relayed = [sorted(v) for v in wire.invites.values() if len(v) == 5]
    assert len(relayed) == CALLS, wire.invites
    for invites in relayed:
        assert [c for c, _ in invites] == [1, 2, 3, 4, 5]
        assert [d for _, d in invites[1:]] == ["sendonly", "sendrecv", "sendonly", "sendrecv"]


@pytest.mark.slow
def test_a_sut_refusing_the_hold_fails_the_hold_step(
    sessions: tuple[dict[str, dict[str, Any]], SipWire],
) -> None:
    body = sessions[0]["refused"]
    assert body["verdict"] == "fail", body
    steps = caller_steps(body)
    assert (steps["s4_hold"]["passed"], steps["s4_hold"]["failed"]) == (0, CALLS), steps
    assert steps["s4_hold"]["failed_by"] == {"unexpected": CALLS}
    assert {name for name, s in steps.items() if s["failed"]} == {"s4_hold"}
    for name in ("s1_call", "s2_expect_200"):
        assert (steps[name]["passed"], steps[name]["failed"]) == (CALLS, 0), steps
    for name in ("s5_wait", "s6_resume", "s7_hangup"):
        assert (steps[name]["passed"], steps[name]["failed"]) == (0, 0), steps
    assert "step s4_hold: unexpected" in " | ".join(body["reasons"]), body["reasons"]
    # The callees' calls ended (SIPp's BYE of the aborted call), not killed at the session's end.
    assert not any("did not stop" in r for r in body["reasons"]), body["reasons"]
    # ... they fail by the callee's bounded wait for the next request (no BYE came).
    callee = next(r for r in body["runners"] if r["runner_id"] == "callee-0")
    assert callee["failure_reasons"] == {"receive timeout": CALLS}, callee


@pytest.mark.slow
def test_hold_with_media_is_silent_held_and_resumes(
    sqlite_stack: RunningStack, sessions: tuple[dict[str, dict[str, Any]], SipWire]
) -> None:
    body = sessions[0]["media"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    steps = caller_steps(body)
    assert all(passed_all(name, s) for name, s in steps.items()), steps
    rows = calls(sqlite_stack, body["id"])
    assert len(rows) == CALLS
    for row in rows:
        by_dir = {d["direction"]: d for d in row["directions"]}
        held_dir = by_dir["callee_to_caller"]
        assert held_dir["audio"] and held_dir["lost"] == 0, row
        assert held_dir["max_gap_ms"] >= 800 and held_dir["after_gap_ms"] >= 800, held_dir
        assert by_dir["caller_to_callee"]["max_gap_ms"] < 300  # the holder kept sending


@pytest.mark.slow
def test_hold_after_a_digest_challenge_counts_cseq_on(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    """A calling account with a password, challenged (tests/sut/kamailio-invite-auth.cfg): the
    INVITE is sent again with CSeq 2, so the hold is 3, the resume 4 and the BYE 5 (each one
    above the last answer's)."""
    script = ["call", "expect 200", "hold", "wait 100ms", "resume", "hangup"]
    with kamailio_sut(INVITE_AUTH, free_port(), tmp_path / "kamailio") as sut:
        body = session_spec(sut.address, "bob", script)
        body["roles"]["callers"]["accounts"] = [{"user": "alice", "password": "secret"}]
        body["roles"]["callers"]["call_to"] = ["bob"]
        with sip_wire(int(sut.address.rsplit(":", 1)[1])) as wire:
            result = sqlite_stack.run(body, timeout=120)
    assert (result["status"], result["verdict"]) == ("completed", "pass"), result["reasons"]
    steps = caller_steps(result)
    assert all(passed_all(name, s) for name, s in steps.items()), steps
    chains = [r for r in wire.requests.values() if ("BYE", 5) in r]
    assert len(chains) == CALLS, wire.requests
    for requests in chains:
        assert {("INVITE", 2), ("INVITE", 3), ("INVITE", 4)} <= requests, requests


def test_media_judgement_counts_on_the_scripts_hold_steps() -> None:
    """A call whose held direction kept talking fails the script's first hold and first resume
    steps (the hold_resume flow's judgement, on the script's step names); a call that paused
    passes both."""
    from sqlalchemy.pool import StaticPool
    from sqlmodel import Session, SQLModel, create_engine

    from sipflow.media_store import judge_steps
    from sipflow.models import CallMediaRow
    from sipflow.step_results import StepSummary

    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )
    SQLModel.metadata.create_all(engine)

    def row(call: str, direction: str, gap: float, after: float) -> CallMediaRow:
        return CallMediaRow(
            session_id="s1", stream_key=f"{call}/{direction}", call_id=call,
            direction=direction, received=150, max_gap_ms=gap, after_gap_ms=after,
            first_time=0.0, last_time=3.0,
        )  # fmt: skip

    with Session(engine) as db:
        db.add(row("paused", "callee_to_caller", 1000, 1000))
        db.add(row("paused", "caller_to_callee", 20, 0))
        db.add(row("talked", "callee_to_caller", 20, 0))
        db.add(row("talked", "caller_to_callee", 20, 0))
        db.commit()
        steps = [
            StepSummary(role="caller", step=name, passed=2)
            for name in ("s1_call", "s4_hold", "s6_resume")
        ]
        judge_steps(db, "s1", steps, spec(WITH_MEDIA, media={}))
    table = {s.step: (s.passed, s.failed, s.failed_by) for s in steps}
    assert table == {
        "s1_call": (2, 0, {}),
        "s4_hold": (1, 1, {"audio during hold": 1}),
        "s6_resume": (1, 1, {"no audio after resume": 1}),
    }
