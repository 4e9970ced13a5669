"""The declarative call script (issue 13 item 2): validated step by step (422 at the step's
path, in the API and the CLI), compiled to SIPp XML with a sipflow-step mark per step, shown by
POST /v1/scripts/compile and `sipflow script compile`; a session with a script runs the compiled
XML through Kamailio and passes (SIPp accepts and runs it)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as safe_xml
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from entrypoints.cli import app
from entrypoints.stack import free_port
from sipflow.call_script import compile_script, step_names
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "call-script.yaml"
MARK = re.compile(r"<!-- sipflow-step: ([a-z0-9_]+) -->")
runner = CliRunner()


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _script_errors(script: list[Any]) -> list[tuple[tuple[Any, ...], str]]:
    spec = _example()
    spec["roles"]["callers"]["script"] = script
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(spec)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("script", "index", "reason"),
    [
        (["call", "expect 200", "resume", "hangup"], 2, "'resume' only while the call is on"),
        (["call", "expect 200", "expect_dtmf 1x", "hangup"], 2, "unknown step 'expect_dtmf 1x'"),
        (["call", "expect 180", "expect audio", "expect 200", "hangup"], 2, "'expect audio' needs"),
        (["call", "expect 200", "transfer_to carol", "wait 1s", "hangup"], 3, "only 'hangup'"),
        (["call", "ring twice", "expect 200", "hangup"], 1, "unknown step 'ring twice'"),
        (["expect 200", "hangup"], 0, "starts with 'call'"),
        (["call", "hangup"], 1, "needs an answered call"),
        (["call", "expect 200", "hangup", "wait 1s"], 3, "the call has ended"),
        (["call", "expect 200", "wait 0ms", "hangup"], 2, "between 1 ms and"),
        (["call", "expect 200", "call", "hangup"], 2, "one call per script"),
    ],
)
def test_a_wrong_step_is_refused_at_its_index(script: list[str], index: int, reason: str) -> None:
    errors = _script_errors(script)
    assert len(errors) == 1, errors
    assert errors[0][0] == ("roles", "callers", "script", index)
    assert reason in errors[0][1]


def test_a_script_whose_call_never_ends_is_refused() -> None:
    (error,) = _script_errors(["call", "expect 200"])
    assert error[0] == ("roles", "callers", "script") and "never ends" in error[1]


def test_compiled_xml_has_one_mark_per_step_before_its_first_element() -> None:
    spec = SessionSpec.model_validate(_example())
    script = spec.roles.callers.script
    assert script is not None
    xml = compile_script(script)
    root = safe_xml.fromstring(xml)  # well-formed
    assert root.tag == "scenario"
    names = step_names(script)
    assert (
        MARK.findall(xml)
        == names
        == [
            "s1_call",
            "s2_expect_180",
            "s3_expect_200",
            "s4_wait",
            "s5_send_dtmf",
            "s6_hangup",
        ]
    )
    # Each mark is directly followed by an element (the step's first).
    assert all(re.match(r"\s*<(send|recv|pause|nop)\b", rest) for rest in MARK.split(xml)[2::2])
    assert "<![CDATA[" in xml and 'play_dtmf="12#,100"' in xml  # the example: send_dtmf 12#
    # The spec round-trips (the workflow re-reads it from JSON).
    again = SessionSpec.model_validate(spec.model_dump(mode="json"))
    assert again.roles.callers.script is not None
    assert compile_script(again.roles.callers.script) == xml


def test_cli_compiles_a_script_file_and_names_a_wrong_step(tmp_path: Path) -> None:
    result = runner.invoke(app, ["script", "compile", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert MARK.findall(result.stdout)[0] == "s1_call"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"script": ["call", "expect 200", "resume", "hangup"]}))
    result = runner.invoke(app, ["script", "compile", str(bad)])
    assert result.exit_code == 2
    assert "script[2]: 'resume' only while the call is on hold" in result.stderr


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield port


def test_script_round_trips_yaml_xml_session_through_kamailio(
    sqlite_stack: RunningStack, sut: int
) -> None:
    spec = _example()
    spec["target"]["port"] = sut
    compiled = sqlite_stack.http.post(
        "/v1/scripts/compile", json={"script": spec["roles"]["callers"]["script"]}
    )
    assert compiled.status_code == 200, compiled.text
    bad = copy.deepcopy(spec)
    bad["roles"]["callers"]["script"][2] = "hold"
    refused = sqlite_stack.http.post("/v1/sessions", json=bad)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "roles", "callers", "script", 2]
    r = sqlite_stack.http.post("/v1/scripts/compile", json={"script": ["call", "hangup"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "script", 1]

    sid = sqlite_stack.submit(spec)
    body = sqlite_stack.wait(sid, timeout=120)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 10
    assert body["summary"]["measured"]["failed_calls"] == 0
    # What the caller ran is what the compile route shows.
    ran = (sqlite_stack.runs_dir / sid / "caller-0" / "custom.xml").read_text()
    assert ran == compiled.json()["xml"]
    assert compiled.json()["steps"] == MARK.findall(ran)


def test_an_expected_final_failure_passes(sqlite_stack: RunningStack, sut: int) -> None:
    """`expect 404` (Kamailio's answer for a user not registered): the 404 is ACKed and the call
    counts as a success; SIPp runs the failure branch of the compiler too."""
    spec = {
        "target": {"host": "127.0.0.1", "port": sut, "domain": "sip.test", "registrar": False},
        "roles": {
            "callers": {
                "rate": 10,
                "max_calls": 3,
                "call_to": ["nobody"],
                "script": ["call", "expect 404"],
            }
        },
    }
    body = sqlite_stack.run(spec, timeout=120)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 3
