"""Call script step `transfer_to PARTY` (sipflow/call_script.py): a blind transfer of the call to
a named party, with the transferee and target sides of sipflow/transfer_flows.py. Validated at
the step's path (only hangup after it; not with hold or media steps; the party must exist); a
session `call, expect 180, expect 200, wait 500ms, transfer_to carol, hangup` passes through
Kamailio (tests/sut/kamailio-flows.cfg) with the party, every step counted; a Kamailio
answering REFER 403 fails exactly the transfer_to step."""

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
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from sipflow import transfer_flows as xfer
from sipflow.call_script import CallScript, compile_script, refer_after_ms, step_names
from sipflow.plan import _scenario, _script_party_user, party_users
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sip_wire import SipWire, sip_wire
from tests.sut.kamailio import kamailio

FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
SCRIPT = TypeAdapter(CallScript)
CALLS = 3
TRANSFER = ["call", "expect 180", "expect 200", "wait 500ms", "transfer_to carol", "hangup"]


def spec(
    script: list[str], n: str = "", host: str = "127.0.0.1", port: int = 5090
) -> dict[str, Any]:
    return {
        "name": f"script-transfer{n}",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callers": {
                "rate": 3,
                "max_calls": CALLS,
                "accounts": [{"user": f"alice{n}"}],
                "script": script,
            },
            "callees": {"accounts": [{"user": f"tbob{n}", "password": "secret"}]},
            "parties": {"carol": {"accounts": [{"user": f"tcarol{n}", "password": "secret"}]}},
        },
    }


def error(body: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(body)
    e = info.value.errors()[0]
    return e["loc"], e["msg"]


@pytest.mark.parametrize(
    ("script", "loc", "reason"),
    [
        (["call", "expect 200", "transfer_to carol", "wait 1s", "hangup"], 3, "only 'hangup'"),
        (["call", "expect 180", "transfer_to carol", "hangup"], 2, "needs an answered call"),
        (["call", "expect 200", "transfer_to Carol", "hangup"], 2, "names a party of"),
        (["call", "expect 200", "hold", "transfer_to carol", "hangup"], 3, "on hold"),
        (
            ["call", "expect 200", "hold", "resume", "transfer_to carol", "hangup"],
            None,
            "transfer_to with hold",
        ),
    ],
)
def test_transfer_to_is_validated_at_its_step(
    script: list[str], loc: int | None, reason: str
) -> None:
    where, msg = error(spec(script))
    assert where == ("roles", "callers", "script", *([loc] if loc is not None else [])), msg
    assert reason in msg


def test_the_party_must_be_there() -> None:
    body = spec(["call", "expect 200", "transfer_to dave", "hangup"])
    _, msg = error(body)
    assert "roles.callers.script: the script's transfer_to names party 'dave'" in msg
    body = spec(TRANSFER)
    del body["roles"]["callees"]
    assert "needs callees (the transferee)" in error(body)[1]
    body = spec(TRANSFER)
    body["roles"]["callers"]["media"] = {}
    body["roles"]["callees"]["media"] = {}
    assert "media: not with a script's transfer_to" in error(body)[1]
    # A party no script or flow names is refused as before.
    body = spec(["call", "expect 200", "hangup"])
    assert "no flow or script of this session names this party" in error(body)[1]


def test_sides_and_xml() -> None:
    s = SessionSpec.model_validate(spec(TRANSFER, "x"))
    script = s.roles.callers.script
    assert script is not None and s.roles.callees is not None
    assert refer_after_ms(script) == 500
    params = xfer.BlindTransfer(name="blind_transfer", transfer_to="carol", talk_s=0.5)
    assert _scenario(s.roles.callees, s) == ("custom", xfer.script_transferee(params))
    assert _scenario(s.roles.parties["carol"], s) == ("custom", xfer.blind_target(params))
    assert "180 Ringing" in xfer.script_transferee(params)
    assert "180 Ringing" not in xfer.blind_transferee(params)  # the flow's stays as it was
    # In the session the Refer-To names the party's user per call (its agents' users in turn:
    # the injection's field 7, like the transfer flows').
    assert party_users(s) == ["tcarolx"]
    xml = compile_script(script, _script_party_user(s))
    safe_xml.fromstring(xml)
    assert [m.name for m in steps_of(xml)] == step_names(script)
    assert "Refer-To: <sip:[field7]@[field4]>" in xml
    assert "Refer-To: <sip:tcarolx@[field4]>" in compile_script(script, {"carol": "tcarolx"})
    assert xml.count("CSeq: 3 BYE") == xml.count("CSeq: 4 BYE") == 1
    # Shown on its own, the party's name stands for its user.
    assert "Refer-To: <sip:carol@[field4]>" in compile_script(SCRIPT.validate_python(TRANSFER))


@pytest.fixture(scope="module")
def sessions(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, dict[str, Any]], SipWire]]:
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-script-transfer")
        sut = stack.enter_context(kamailio(free_port(), work / "pass", config=FLOWS_CFG))
        wire = stack.enter_context(sip_wire(int(sut.rsplit(":", 1)[1])))
        refusing = stack.enter_context(
            kamailio(free_port(), work / "refer", config=FLOWS_CFG, defines=("REJECT_REFER",))
        )
        ids = {}
        for key, address, n in (("pass", sut, "1"), ("refused", refusing, "2")):
            host, port = address.rsplit(":", 1)
            ids[key] = sqlite_stack.submit(spec(TRANSFER, n, host, int(port)))
        yield {k: sqlite_stack.wait(sid, 180) for k, sid in ids.items()}, wire


def role_steps(body: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in body["steps"] if s["role"] == role}


@pytest.mark.slow
def test_transfer_to_a_party_through_kamailio(
    sessions: tuple[dict[str, dict[str, Any]], SipWire],
) -> None:
    body = sessions[0]["pass"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["measured"]["successful_calls"] == CALLS
    caller = role_steps(body, "caller")
    assert list(caller) == step_names(SCRIPT.validate_python(TRANSFER))
    for name, s in caller.items():
        expected = (0, 0) if "wait" in name else (CALLS, 0)
        assert (s["passed"], s["failed"]) == expected, (name, s)
    # The transferee (callees) called the party, which answered and was hung up on.
    callee = role_steps(body, "callee")
    assert (callee["call_target"]["passed"], callee["call_target"]["failed"]) == (CALLS, 0)
    assert (callee["target_answer"]["passed"], callee["target_answer"]["failed"]) == (CALLS, 0)
    assert all(s["failed"] == 0 for s in callee.values()), callee
    # On the wire, relayed by Kamailio: per call alice's REFER (CSeq 2, the INVITE's 1 + 1) and
    # her BYE after the NOTIFYs (CSeq 3, written out: SIPp's last CSeq is then a NOTIFY's).
    transferred = [r for r in sessions[1].requests.values() if ("REFER", 2) in r]
    assert len(transferred) == CALLS, sessions[1].requests
    for requests in transferred:
        assert {("INVITE", 1), ("NOTIFY", 1), ("NOTIFY", 2), ("BYE", 3)} <= requests, requests


@pytest.mark.slow
def test_a_refused_refer_fails_the_transfer_step(
    sessions: tuple[dict[str, dict[str, Any]], SipWire],
) -> None:
    body = sessions[0]["refused"]
    assert body["verdict"] == "fail", body
    caller = role_steps(body, "caller")
    failed = {name for name, s in caller.items() if s["failed"]}
    assert failed == {"s5_transfer_to"}, caller
    assert caller["s5_transfer_to"]["failed_by"] == {"unexpected": CALLS}
    assert (caller["s6_hangup"]["passed"], caller["s6_hangup"]["failed"]) == (0, 0)
    assert "step s5_transfer_to: unexpected" in " | ".join(body["reasons"]), body["reasons"]
    # The transferee waited a bounded time for the REFER (the script's 500 ms and 10 s): its
    # call fails in its transfer step; carol got no INVITE. Nothing was left open.
    callee = role_steps(body, "callee")
    assert callee["transfer"]["failed_by"] == {"timeout": CALLS}, callee
    assert not any("did not stop" in r for r in body["reasons"]), body["reasons"]


def _sipp(xml: Path, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
    argv = ["sipp", *args, "-sf", str(xml), "-nostdin", "-trace_counts", "-trace_msg", "-m", "1"]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _uas(lines: list[str], body: str = "", ctype: str = "") -> str:
    head = "\n".join(f"      {h}" for h in lines)
    extra = f"      Content-Type: {ctype}\n" if body else ""
    return (
        f"  <send><![CDATA[\n\n{head}\n{extra}      Content-Length: [len]\n\n"
        f"{body}\n    ]]></send>\n"
    )


_REPLY = ["[last_Via:]", "[last_From:]", "[last_To:];tag=uas1", "[last_Call-ID:]", "[last_CSeq:]"]
_CONTACT = "Contact: <sip:[local_ip]:[local_port]>"
_NOTIFY = [
    "NOTIFY sip:alice@[remote_ip]:[remote_port] SIP/2.0",
    "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
    "From: <sip:bob@[local_ip]>;tag=uas1",
    "To:[$caller_from]",
    "Call-ID: [call_id]",
    "CSeq: [cseq] NOTIFY",
    _CONTACT,
    "Event: refer",
]
# A transferee that challenges the first INVITE (407), so the caller's dialog starts at CSeq 2:
# its REFER is 3 and its BYE, after the NOTIFYs, must be 4.
CHALLENGING_TRANSFEREE = (
    '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="challenging transferee">\n'
    '  <recv request="INVITE"/>\n'
    + _uas(
        [
            "SIP/2.0 407 Proxy Authentication Required",
            *_REPLY,
            'Proxy-Authenticate: Digest realm="sip.test", nonce="abc123"',
        ],
    )
    + '  <recv request="ACK"/>\n'
    '  <recv request="INVITE"><action><ereg regexp=".*" search_in="hdr" header="From:" '
    'check_it="true" assign_to="caller_from"/></action></recv>\n'
    + _uas(["SIP/2.0 180 Ringing", *_REPLY])
    + _uas(["SIP/2.0 200 OK", *_REPLY, _CONTACT], "      v=0", "application/sdp")
    + '  <recv request="ACK"/>\n  <recv request="REFER"/>\n'
    + _uas(["SIP/2.0 202 Accepted", *_REPLY, _CONTACT])
    + _uas([*_NOTIFY, "Subscription-State: active"], "      SIP/2.0 100 Trying", "message/sipfrag")
    + '  <recv response="200"/>\n'
    + _uas([*_NOTIFY, "Subscription-State: terminated"], "      SIP/2.0 200 OK", "message/sipfrag")
    + '  <recv response="200"/>\n'
    '  <recv request="BYE"><action><ereg regexp="^ *4 BYE" search_in="hdr" header="CSeq:" '
    'check_it="true" assign_to="bye_cseq"/><assignstr assign_to="bye_cseq" '
    'value="[$bye_cseq]"/></action></recv>\n' + _uas(["SIP/2.0 200 OK", *_REPLY]) + "</scenario>\n"
)


def test_the_bye_after_a_challenged_transfer_is_one_above_the_refer(tmp_path: Path) -> None:
    """SIPp against SIPp: the caller's INVITE is challenged (CSeq 2), its REFER is CSeq 3 and
    the BYE after the NOTIFYs CSeq 4 (the callee fails the call on any other)."""
    script = SCRIPT.validate_python(TRANSFER)
    (tmp_path / "caller.xml").write_text(compile_script(script, {"carol": "carol"}))
    (tmp_path / "callee.xml").write_text(CHALLENGING_TRANSFEREE)
    auth = "[authentication username=alice password=secret]"
    row = f"alice;127.0.0.1;{auth};bob;127.0.0.1;127.0.0.1;1"
    (tmp_path / "inj.csv").write_text(f"SEQUENTIAL\n{row}\n")
    uas_port = free_port()
    uas = _sipp(tmp_path / "callee.xml", "-i", "127.0.0.1", "-p", str(uas_port), cwd=tmp_path)
    try:
        uac = _sipp(
            tmp_path / "caller.xml", f"127.0.0.1:{uas_port}", "-i", "127.0.0.1",
            "-p", str(free_port()), "-inf", str(tmp_path / "inj.csv"), "-recv_timeout", "5000",
            cwd=tmp_path,
        )  # fmt: skip
        assert uac.wait(30) == 0
        assert uas.wait(10) == 0  # the callee saw the BYE with CSeq 4
    finally:
        for proc in (uas,):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    sent = next(tmp_path.glob("caller_*_messages.log")).read_text()
    assert re.search(r"^REFER .*?^CSeq: 3 REFER", sent, re.M | re.S), sent[-3000:]
    # Every step counts the call once (the BYE of either CSeq ends at the one 200).
    counts = Path(counts_file(str(tmp_path / "caller.xml"), uac.pid)).read_text()
    xml = (tmp_path / "caller.xml").read_text()
    results = step_results(steps_of(xml), parse_counts(counts))
    assert {r.step: (r.passed, r.failed) for r in results} == {
        name: ((0, 0) if "wait" in name else (1, 0)) for name in step_names(script)
    }


def test_cli_compiles_a_transfer_with_the_party_user(tmp_path: Path) -> None:
    """`sipflow script compile` of a whole spec refers to the party's user, as the session."""
    from typer.testing import CliRunner

    from entrypoints.cli import app

    example = Path(__file__).resolve().parent.parent / "examples" / "call-script-transfer.yaml"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(example.read_text().replace("{user: carol,", "{user: carol7,"))
    result = CliRunner().invoke(app, ["script", "compile", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "Refer-To: <sip:carol7@[field4]>" in result.stdout
    assert "<!-- sipflow-step: s5_transfer_to -->" in result.stdout
