"""The callee-side call script (roles.callees.script, sipflow/callee_script.py): validated step
by step (an error names roles.callees.script[i], in the API and the CLI), checked against the
callers' script (a pair that can never pass is refused), compiled to SIPp XML that SIPp runs
against the compiled callers' script, and whole sessions through Kamailio with step results on
both sides: ring/wait/answer/send_dtmf/expect hangup, reject 486 with `expect 486`, a
callee-initiated BYE with the callers' `expect hangup`, and a step that cannot happen (the
caller hangs up too late) failing exactly that step."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as safe_xml
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from entrypoints.cli import app
from entrypoints.stack import free_port
from runners.media_session import CALLEE_SCRIPT_ACKED
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from sipflow import call_script, callee_script
from sipflow.plan import runner_configs
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "callee-script.yaml"
FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
MARK = re.compile(r"<!-- sipflow-step: ([a-z0-9_]+) -->")
CALLEE = TypeAdapter(callee_script.CalleeScript)
CALLER = TypeAdapter(call_script.CallScript)
runner = CliRunner()


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _errors(spec: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(spec)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def _with(caller: list[str] | None, callee: list[str], *, direct: bool = False) -> dict[str, Any]:
    spec = _example()
    if caller is None:
        del spec["roles"]["callers"]["script"]
    else:
        spec["roles"]["callers"]["script"] = caller
    spec["roles"]["callees"]["script"] = callee
    if direct:
        del spec["target"]
        spec["roles"]["callees"].pop("accounts")
    return spec


@pytest.mark.parametrize(
    ("script", "index", "reason"),
    [
        (["ring", "hangup"], 1, "'hangup' needs an answered call (answer first)"),
        (["answer", "ring", "expect hangup"], 1, "'ring' comes too late"),
        (["call", "answer", "expect hangup"], 0, "'call' is not a callee step"),
        (["answer", "expect 200", "hangup"], 1, "'expect 200' is not a callee step"),
        (["ring", "expect call", "answer", "hangup"], 1, "'expect call' only as the first"),
        (["ring", "reject 200"], 1, "a final 400-699"),
        (["answer", "hangup", "wait 1s"], 2, "the call has ended"),
        (["answer", "hold", "hangup"], 1, "their callees answer it"),
        (["answer", "send_dtmf 12x", "hangup"], 1, "unknown step 'send_dtmf 12x'"),
        (["answer", "expect hangup within 0ms"], 1, "between 1 ms and"),
        (["reject 486", "answer"], 1, "the call has ended"),
    ],
)
def test_a_wrong_callee_step_is_refused_at_its_index(
    script: list[str], index: int, reason: str
) -> None:
    errors = _errors(_with(None, script))
    assert len(errors) == 1, errors
    assert errors[0][0] == ("roles", "callees", "script", index)
    assert reason in errors[0][1]


def test_a_callee_script_that_never_ends_is_refused() -> None:
    (error,) = _errors(_with(None, ["ring", "answer"]))
    assert error[0] == ("roles", "callees", "script") and "never ends" in error[1]


@pytest.mark.parametrize(
    ("caller", "callee", "direct", "reason"),
    [
        (
            ["call", "expect 200", "hangup"],
            ["ring", "reject 486"],
            False,
            "roles.callees.script[1]: the callees reject 486 but roles.callers.script[1] "
            "expects 200",
        ),
        (
            ["call", "expect 486"],
            ["answer", "expect hangup"],
            False,
            "the callees answer but roles.callers.script[1] expects 486",
        ),
        (["call", "expect 603"], ["reject 486"], False, "reject 486 but"),
        (
            ["call", "expect 200", "hangup"],
            ["answer", "hangup"],
            False,
            "roles.callees.script[1]: both sides hang up",
        ),
        (
            ["call", "expect 200", "expect hangup"],
            ["answer", "expect hangup"],
            False,
            "both sides wait for the other's BYE",
        ),
        (
            None,
            ["answer", "hangup"],
            False,
            "roles.callees.script[1]: the callers' built-in 'call' expects 200",
        ),
        (
            ["call", "expect 180", "expect 200", "hangup"],
            ["answer", "expect hangup"],
            True,
            "roles.callers.script[1]: 'expect 180' but roles.callees.script never sends it",
        ),
    ],
)
def test_scripts_that_cannot_pass_together_are_refused(
    caller: list[str] | None, callee: list[str], direct: bool, reason: str
) -> None:
    (error,) = _errors(_with(caller, callee, direct=direct))
    assert reason in error[1], error


def test_callers_expecting_a_hangup_need_callees_that_hang_up() -> None:
    spec = _example()
    spec["roles"]["callers"]["script"] = ["call", "expect 200", "expect hangup"]
    del spec["roles"]["callees"]["script"]
    (error,) = _errors(spec)
    assert "roles.callers.script[2]: 'expect hangup' waits for the callees' BYE" in error[1]
    # Through a target the caller's expect 180 is left to the SUT (it may ring itself).
    SessionSpec.model_validate(
        _with(["call", "expect 180", "expect 200", "hangup"], ["answer", "expect hangup"])
    )


def test_callee_media_steps_need_the_media_analysis() -> None:
    (error,) = _errors(_with(None, ["answer", "expect_dtmf 12", "expect hangup"]))
    assert error[0] == ("roles", "callees")
    assert "'expect_dtmf 12' is judged from the media analysis" in error[1]


def test_compiled_xml_marks_every_step_and_plan_gives_it_to_the_callees() -> None:
    spec = SessionSpec.model_validate(_example())
    callees = spec.roles.callees
    assert callees is not None and callees.script is not None
    xml = callee_script.compile_script(callees.script)
    root = safe_xml.fromstring(xml)
    assert root.tag == "scenario" and root.get("name") == "sipflow callee script"
    names = callee_script.step_names(callees.script)
    assert (
        MARK.findall(xml)
        == names
        == [
            "callee_s1_ring",
            "callee_s2_wait",
            "callee_s3_answer",
            "callee_s4_send_dtmf",
            "callee_s5_expect_hangup",
        ]
    )
    # The implicit INVITE (and its 100) belong to the first step; every step then starts with
    # an element (the mark the step results read).
    assert all(re.match(r"\s*<(send|recv|pause|nop)\b", rest) for rest in MARK.split(xml)[2::2])
    assert [m.name for m in steps_of(xml)] == names
    assert 'play_dtmf="4,100"' in xml
    configs = runner_configs(
        spec,
        "s1",
        "callee",
        addresses={"callee-0": "127.0.0.1"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1883,
        runs_dir=Path("/tmp"),
    )
    assert (configs[0].scenario, configs[0].scenario_xml) == ("custom", xml)
    # The round trip through JSON (the workflow re-reads the spec) compiles the same.
    again = SessionSpec.model_validate(spec.model_dump(mode="json"))
    assert again.roles.callees is not None and again.roles.callees.script is not None
    assert callee_script.compile_script(again.roles.callees.script) == xml


def test_cli_compiles_the_callee_side_and_validate_names_the_step(tmp_path: Path) -> None:
    result = runner.invoke(app, ["script", "compile", "--side", "callee", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert MARK.findall(result.stdout)[0] == "callee_s1_ring"
    # A script file says its side itself.
    own = tmp_path / "callee.yaml"
    own.write_text(yaml.safe_dump({"side": "callee", "script": ["reject 603"]}))
    result = runner.invoke(app, ["script", "compile", str(own)])
    assert result.exit_code == 0 and "603 Decline" in result.stdout, result.output
    bad = _example()
    bad["roles"]["callees"]["script"][2] = "answer twice"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "roles.callees.script[2]: unknown step 'answer twice'" in result.output


def test_compile_route_takes_the_callee_side(sqlite_stack: RunningStack) -> None:
    script = _example()["roles"]["callees"]["script"]
    r = sqlite_stack.http.post("/v1/scripts/compile", json={"script": script, "side": "callee"})
    assert r.status_code == 200, r.text
    assert r.json()["steps"][0] == "callee_s1_ring" and "sipflow callee script" in r.json()["xml"]
    r = sqlite_stack.http.post(
        "/v1/scripts/compile", json={"script": ["answer", "ring", "hangup"], "side": "callee"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "script", 1]
    r = sqlite_stack.http.post("/v1/scripts/compile", json={"script": script})  # caller's words
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "script", 0]


# -- SIPp runs the compiled pair (no SUT) ----------------------------------------------------
def _untimed(step: str) -> bool:
    """A step of pauses and actions only (wait, send_dtmf): SIPp counts no message through it."""
    return step.endswith(("_wait", "_send_dtmf"))


def _sipp(xml: Path, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
    argv = ["sipp", *args, "-sf", str(xml), "-nostdin", "-trace_counts", "-m", "2"]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_pair(tmp_path: Path, caller: list[str], callee: list[str]) -> dict[str, Any]:
    """Both compiled scripts, SIPp to SIPp on the loopback, 2 calls: each side's step results."""
    caller_xml = call_script.compile_script(CALLER.validate_python(caller))
    callee_xml = callee_script.compile_script(CALLEE.validate_python(callee))
    (tmp_path / "caller.xml").write_text(caller_xml)
    (tmp_path / "callee.xml").write_text(callee_xml)
    (tmp_path / "inj.csv").write_text("SEQUENTIAL\nalice;127.0.0.1;;bob;127.0.0.1;127.0.0.1;0\n")
    uas_port = free_port()
    common = ["-i", "127.0.0.1", "-ci", "127.0.0.1"]
    uas = _sipp(
        tmp_path / "callee.xml", *common, "-p", str(uas_port), "-cp", str(free_port()),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        uac = _sipp(
            tmp_path / "caller.xml", f"127.0.0.1:{uas_port}", *common, "-p", str(free_port()),
            "-cp", str(free_port()), "-inf", str(tmp_path / "inj.csv"), "-r", "10",
            "-recv_timeout", "10000", cwd=tmp_path,
        )  # fmt: skip
        uac_rc = uac.wait(60)
        uas_rc = uas.wait(30)  # -m 2: the callee ends after its 2 calls
    finally:
        for p in (uas, uac):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    out: dict[str, Any] = {"rc": (uac_rc, uas_rc)}
    for side, proc, xml in (("caller", uac, caller_xml), ("callee", uas, callee_xml)):
        counts = Path(counts_file(str(tmp_path / f"{side}.xml"), proc.pid)).read_text()
        out[side] = {r.step: r for r in step_results(steps_of(xml), parse_counts(counts))}
    return out


def test_sipp_runs_a_callee_hangup_against_the_callers_expect_hangup(tmp_path: Path) -> None:
    """The callee's own BYE (From/To swapped from the INVITE, its Contact as the target) is
    answered by the callers' `expect hangup`; every step of both sides passes."""
    run = _run_pair(
        tmp_path,
        ["call", "expect 180", "expect 183", "expect 200", "expect hangup"],
        ["expect call", "ring", "early_media", "wait 200ms", "answer", "send_dtmf 1", "hangup"],
    )
    assert run["rc"] == (0, 0), run
    for side in ("caller", "callee"):
        counted = {s: (r.passed, r.failed) for s, r in run[side].items() if not _untimed(s)}
        assert set(counted.values()) == {(2, 0)}, (side, counted)


def test_sipp_runs_a_rejection(tmp_path: Path) -> None:
    run = _run_pair(tmp_path, ["call", "expect 180", "expect 486"], ["ring", "reject 486"])
    assert run["rc"] == (0, 0), run
    assert run["callee"]["callee_s2_reject_486"].passed == 2
    assert run["caller"]["s3_expect_486"].passed == 2


# -- sessions through Kamailio ---------------------------------------------------------------
CALLS = 3
SESSIONS: dict[str, tuple[list[str], list[str]]] = {
    # caller script, callee script
    "answer": (
        ["call", "expect 180", "expect 200", "wait 300ms", "send_dtmf 5", "hangup"],
        ["ring", "wait 1s", "answer", "send_dtmf 4", "expect hangup"],
    ),
    "busy": (["call", "expect 180", "expect 486"], ["ring", "wait 200ms", "reject 486"]),
    "callee_hangup": (
        ["call", "expect 200", "expect hangup"],
        ["answer", "wait 300ms", "hangup"],
    ),
    # DTMF both ways, each side's media steps judged from its own media analysis.
    "media": (
        [
            "call",
            "expect 200",
            "wait 300ms",
            "send_dtmf 12",
            "expect_dtmf 4",
            "expect audio",
            "wait 600ms",
            "hangup",
        ],
        ["answer", "wait 300ms", "send_dtmf 4", "expect_dtmf 12", "expect audio", "expect hangup"],
    ),
    # The caller hangs up after 3 s; the callee allows 1 s: its expect hangup fails, alone.
    "late_hangup": (
        ["call", "expect 200", "wait 3s", "hangup"],
        ["answer", "expect hangup within 1s"],
    ),
}


def _session(sut: str, caller: list[str], callee: list[str], user: str) -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    callees: dict[str, Any] = {"accounts": [{"user": user, "password": "secret"}]}
    callers: dict[str, Any] = {"rate": 5, "max_calls": CALLS, "accounts": [{"user": "alice"}]}
    if any(s.startswith("expect_dtmf") for s in callee):
        callees["media"] = callers["media"] = {}
    return {
        "name": f"callee-script-{user}",
        "target": {"host": host, "port": int(port), "domain": host, "registrar": True},
        "roles": {
            "callees": {**callees, "script": callee},
            "callers": {**callers, "script": caller},
        },
    }


@pytest.fixture(scope="module")
def sessions(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """Every pair of SESSIONS through one Kamailio, submitted at once (a user each)."""
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-callee")
        sut = stack.enter_context(kamailio(free_port(), work, config=FLOWS_CFG))
        ids = {
            key: sqlite_stack.submit(_session(sut, caller, callee, f"cs{i}"))
            for i, (key, (caller, callee)) in enumerate(SESSIONS.items())
        }
        yield {key: sqlite_stack.wait(sid, 180) for key, sid in ids.items()}


def _steps(body: dict[str, Any], role: str) -> dict[str, tuple[int, int]]:
    return {s["step"]: (s["passed"], s["failed"]) for s in body["steps"] if s["role"] == role}


@pytest.mark.slow
@pytest.mark.parametrize("key", ["answer", "busy", "callee_hangup", "media"])
def test_caller_and_callee_scripts_pass_through_kamailio(
    sessions: dict[str, dict[str, Any]], key: str
) -> None:
    body = sessions[key]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["measured"]["successful_calls"] == CALLS
    caller_script, callee_script_ = SESSIONS[key]
    caller, callee = _steps(body, "caller"), _steps(body, "callee")
    want_caller = call_script.step_names(CALLER.validate_python(caller_script))
    want_callee = callee_script.step_names(CALLEE.validate_python(callee_script_))
    assert list(caller) == want_caller and list(callee) == want_callee, body["steps"]
    for side in (caller, callee):
        for step, counts in side.items():
            if not _untimed(step):
                assert counts == (CALLS, 0), (step, side)
    # The KPIs count the final answer the caller's script expects (486 for busy).
    final = 486 if key == "busy" else 200
    assert body["measured"][f"code_{final}"] == CALLS, body["measured"]
    assert body["measured"]["asr"] == (0 if key == "busy" else 100)
    # The callee's steps are its own metrics (no caller step has their names).
    last = want_callee[-1]
    assert body["measured"][f"step_passed_{last}"] == CALLS
    assert body["measured"][f"step_failed_{last}"] == 0


@pytest.mark.slow
def test_a_callee_step_that_cannot_happen_fails_exactly_that_step(
    sessions: dict[str, dict[str, Any]],
) -> None:
    body = sessions["late_hangup"]
    assert body["verdict"] == "fail", body
    callee = {s["step"]: s for s in body["steps"] if s["role"] == "callee"}
    assert callee["callee_s1_answer"]["passed"] == CALLS, callee
    waited = callee["callee_s2_expect_hangup"]
    assert (waited["passed"], waited["failed"]) == (0, CALLS), callee
    assert waited["failed_by"] == {"timeout": CALLS}, callee
    assert {s for s, row in callee.items() if row["failed"]} == {"callee_s2_expect_hangup"}
    assert body["measured"]["step_failed_callee_s2_expect_hangup"] == CALLS
    assert body["measured"]["step_failed_callee_s1_answer"] == 0


@pytest.mark.slow
def test_callee_media_steps_are_judged_per_call_in_the_callees_steps(
    sqlite_stack: RunningStack, sessions: dict[str, dict[str, Any]]
) -> None:
    body = sessions["media"]
    rows = sqlite_stack.http.get(f"/v1/sessions/{body['id']}/calls").json()["items"]
    assert len(rows) == CALLS
    for row in rows:
        plays = sorted((d["direction"], d["sent"], d["received"]) for d in row["dtmf"])
        assert plays == [("callee_to_caller", "4", "4"), ("caller_to_callee", "12", "12")], row
        judged = sorted((e["step"], e["passed"]) for e in row["expectations"])
        assert judged == [
            ("callee_s4_expect_dtmf", True),
            ("callee_s5_expect_audio", True),
            ("s5_expect_dtmf", True),
            ("s6_expect_audio", True),
        ], row
    callee = _steps(body, "callee")
    assert callee["callee_s4_expect_dtmf"] == callee["callee_s5_expect_audio"] == (CALLS, 0)
    assert body["measured"]["step_passed_callee_s4_expect_dtmf"] == CALLS


def test_callee_media_starts_at_the_answers_ack_only() -> None:
    """runners/media_session.py finds the answer's ACK of a compiled callee script (the audio
    starts there) and never a rejection's."""
    answered = callee_script.compile_script(
        CALLEE.validate_python(["ring", "answer", "expect hangup"])
    )
    rejected = callee_script.compile_script(CALLEE.validate_python(["ring", "reject 486"]))
    assert len(CALLEE_SCRIPT_ACKED.findall(answered)) == 1
    assert CALLEE_SCRIPT_ACKED.findall(rejected) == []


def test_a_flow_chooses_the_callee_side_and_a_direct_pair_validates() -> None:
    spec = _with(None, ["answer", "expect hangup"])
    spec["roles"]["callers"]["flow"] = {"name": "busy"}
    (error,) = _errors(spec)
    assert "roles.callees.script: the 'busy' flow chooses the callees' side" in error[1]
    # Directly (no target, callees without accounts), a pair that agrees is a valid session,
    # and its expected length counts the callees' rings and waits.
    caller = ["call", "expect 180", "expect 200", "hangup"]
    ok = SessionSpec.model_validate(
        _with(caller, ["ring", "wait 2s", "answer", "expect hangup"], direct=True)
    )
    builtin = _with(caller, ["answer", "expect hangup"], direct=True)
    del builtin["roles"]["callees"]["script"]
    plain = SessionSpec.model_validate(builtin)
    assert ok.expected_duration_s() == pytest.approx(plain.expected_duration_s() + 2.0)
