"""The flow catalogue, step marks and per-step results without a session: the spec's flow field
(errors at the parameter's path), the SIPp message numbering of steps_of (checked against what
SIPp itself writes in -trace_counts), the step counts of a real SIPp run in which one step fails,
step thresholds, the API routes and the CLI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from entrypoints.cli import app
from entrypoints.stack import free_port
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from sipflow.flows import FLOWS, default_params, render
from sipflow.spec import SessionSpec
from sipflow.thresholds import evaluate, parse_threshold
from sipflow.transfer_flows import REFER_REFUSALS
from tests.conftest import RunningStack

SCENARIOS = Path(__file__).resolve().parent.parent / "runners" / "scenarios"


def spec(flow: dict[str, Any], **callers: Any) -> dict[str, Any]:
    return {
        "target": {"host": "127.0.0.1", "port": 5090},
        "roles": {
            "callees": {"accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"max_calls": 2, "flow": flow, **callers},
        },
    }


def error_of(body: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as exc:
        SessionSpec.model_validate(body)
    e = exc.value.errors()[0]
    return e["loc"], e["msg"]


def test_spec_takes_a_flow_with_its_parameters() -> None:
    s = SessionSpec.model_validate(spec({"name": "ring_no_answer", "cancel_after_s": 2}))
    assert s.roles.callers.flow is not None
    assert s.roles.callers.flow.model_dump() == {"name": "ring_no_answer", "cancel_after_s": 2}
    # A stored spec (every default written out) validates again the same.
    again = SessionSpec.model_validate(s.model_dump(mode="json"))
    assert again.roles.callers.flow == s.roles.callers.flow


def test_spec_errors_name_the_parameter() -> None:
    loc, msg = error_of(spec({"name": "ring_no_answer", "cancel_after_s": 0}))
    assert loc == ("roles", "callers", "flow", "ring_no_answer", "cancel_after_s")
    loc, _ = error_of(spec({"name": "session_timer", "refresh": "bye"}))
    assert loc[-1] == "refresh"
    loc, _ = error_of(spec({"name": "busy", "code": 486}))  # busy has no parameters
    assert loc[-1] == "code"
    loc, msg = error_of(spec({"name": "transfer"}))
    assert loc == ("roles", "callers", "flow") and "ring_no_answer" in msg
    _, msg = error_of(spec({"name": "busy"}, scenario="options"))
    assert "either scenario or flow" in msg
    body = spec({"name": "options_keepalive"})
    _, msg = error_of(body)
    assert "roles.callees" in msg and "no callee side" in msg
    del body["target"], body["roles"]["callees"]
    _, msg = error_of(body)
    assert msg.endswith("the 'options_keepalive' flow needs a target")


def test_steps_of_numbers_messages_as_sipp_does(tmp_path: Path) -> None:
    """Labels and repartitions take no index; SIPp's own -trace_counts columns agree."""
    xml = render(default_params("prack"), "caller")
    marks = steps_of(xml)
    assert [m.name for m in marks] == list(FLOWS["prack"].steps)
    # invite: INVITE, 100 (optional), 183 -- the optional 100 is not required.
    assert marks[0].indexes == (0, 1, 2) and marks[0].required == (0, 2)
    assert marks[1].indexes == (3, 4)
    assert steps_of((SCENARIOS / "call.xml").read_text()) == []
    marked = (
        '<scenario name="t"><nop/><!-- sipflow-step: a --><label id="x"/><send><![CDATA[\n'
        'OPTIONS sip:x SIP/2.0\n]]></send><!-- other --><recv response="200" optional="true"/>'
        '<!-- sipflow-step: b --><pause/><ResponseTimeRepartition value="10"/>'
        '<!-- sipflow-step: a --><recv response="200"/></scenario>'
    )
    assert [(m.name, m.indexes, m.required) for m in steps_of(marked)] == [
        ("a", (1, 2, 4), (1, 4)),
        ("b", (3,), ()),
    ]


def test_fails_mark_counts_an_expected_answer_as_the_steps_failure() -> None:
    """`sipflow-fails: KIND` before a message: the calls through it fail its step (KIND), and
    it neither ends nor branches the step. The transferor's REFER refusals are such messages."""
    marked = (
        '<scenario name="t"><!-- sipflow-step: a --><send><![CDATA[\nREFER sip:x SIP/2.0\n]]>'
        '</send><!-- sipflow-fails: refused --><recv response="403" optional="true" next="h"/>'
        '<recv response="202"/><!-- sipflow-step: b --><label id="h"/><send><![CDATA[\n'
        "BYE sip:x SIP/2.0\n]]></send></scenario>"
    )
    marks = steps_of(marked)
    assert [(m.name, m.required, m.branches, m.fails) for m in marks] == [
        ("a", (0, 2), (), ((1, "refused"),)),
        ("b", (3,), (), ()),
    ]
    counts = {0: {"Sent": 5}, 1: {"Recv": 3}, 2: {"Recv": 1, "Timeout": 1}, 3: {"Sent": 4}}
    a, b = step_results(marks, counts)
    assert (a.passed, a.failed, a.failed_by) == (1, 4, {"refused": 3, "timeout": 1})
    assert (b.passed, b.failed) == (4, 0)
    for name in ("blind_transfer", "attended_transfer"):
        steps = {m.name: m for m in steps_of(render(default_params(name), "caller"))}
        kinds = [kind for _, kind in steps["transfer"].fails]
        assert kinds == ["refused"] * len(REFER_REFUSALS), name


def _sipp(xml: Path, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
    argv = ["sipp", *args, "-sf", str(xml), "-nostdin", "-trace_counts", "-m", "2"]
    return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_step_counts_of_a_real_run_blame_the_failing_step(tmp_path: Path) -> None:
    """hold_resume's caller against a callee whose hold answer is 488: hold fails for every
    call (unexpected), invite passes, resume and hangup are never reached."""
    params = default_params("hold_resume")
    caller_xml = render(params, "caller").replace('milliseconds="1000"', 'milliseconds="10"')
    callee_xml = render(params, "callee")
    # The callee's answer to the hold re-INVITE becomes a 488.
    hold = callee_xml.index("<!-- sipflow-step: hold -->")
    callee_xml = callee_xml[:hold] + callee_xml[hold:].replace("200 OK", "488 Not Here", 1)
    (tmp_path / "caller.xml").write_text(caller_xml)
    (tmp_path / "callee.xml").write_text(callee_xml)
    (tmp_path / "inj.csv").write_text("SEQUENTIAL\nalice;127.0.0.1;;bob;127.0.0.1;127.0.0.1;0\n")
    uas_port, uac_port = free_port(), free_port()
    common = ["-i", "127.0.0.1", "-ci", "127.0.0.1"]
    uas = _sipp(
        tmp_path / "callee.xml", *common, "-p", str(uas_port), "-cp", str(free_port()),
        cwd=tmp_path,
    )  # fmt: skip
    try:
        uac = _sipp(
            tmp_path / "caller.xml", f"127.0.0.1:{uas_port}", *common, "-p", str(uac_port),
            "-cp", str(free_port()), "-inf", str(tmp_path / "inj.csv"), "-r", "10",
            "-recv_timeout", "5000", cwd=tmp_path,
        )  # fmt: skip
        assert uac.wait(30) == 1  # some calls failed
    finally:
        uas.kill()
        uas.wait(5)
    counts = Path(counts_file(str(tmp_path / "caller.xml"), uac.pid)).read_text()
    results = {r.step: r for r in step_results(steps_of(caller_xml), parse_counts(counts))}
    assert (results["invite"].passed, results["invite"].failed) == (2, 0)
    assert (results["hold"].passed, results["hold"].failed) == (0, 2)
    assert results["hold"].failed_by == {"unexpected": 2}
    assert all(results[s].passed == results[s].failed == 0 for s in ("resume", "hangup"))


def test_step_thresholds() -> None:
    t = parse_threshold("step_failed_hold == 0")
    assert t.metric == "step_failed_hold"
    assert [r.passed for r in evaluate([t], {"step_failed_hold": 0.0})] == [True]
    assert [r.passed for r in evaluate([t], {"step_failed_hold": 2.0})] == [False]
    # A step the session did not have: no value, a failed threshold (not a silent pass).
    assert [r.passed for r in evaluate([t], {})] == [False]
    parse_threshold("step_time_ms_prack < 200")
    with pytest.raises(ValueError, match="unknown metric"):
        parse_threshold("step_broken_hold == 0")


def test_every_flow_renders_valid_scenarios() -> None:
    for name, flow in FLOWS.items():
        params = default_params(name)
        sides = {"caller": flow.steps}
        if flow.callee is not None:
            sides["callee"] = flow.callee_steps or flow.steps
        if flow.party is not None:
            sides["party"] = flow.party_steps
        for side, steps in sides.items():
            xml = render(params, side)  # type: ignore[arg-type]
            assert [m.name for m in steps_of(xml)] == list(steps), (name, side)
            # Every rtd started is stopped (SIPp refuses the scenario otherwise).
            started = set(re.findall(r'start_rtd="([a-z0-9_]+)"', xml))
            assert started <= set(re.findall(r' rtd="([a-z0-9_]+)"', xml)), (name, side)


def test_flows_api(sqlite_stack: RunningStack) -> None:
    http = sqlite_stack.http
    listed = http.get("/v1/flows").json()
    assert [f["name"] for f in listed] == list(FLOWS)
    rna = http.get("/v1/flows/ring_no_answer").json()
    assert rna["steps"] == ["ring", "cancel"]
    assert rna["parameters"][0]["name"] == "cancel_after_s"
    assert rna["parameters"][0]["default"] == 3.0
    assert http.get("/v1/flows/nope").status_code == 404
    r = http.post("/v1/flows/xml", json={"name": "ring_no_answer", "cancel_after_s": 1.5})
    assert r.status_code == 200, r.text
    assert 'milliseconds="1500"' in r.json()["caller"] and r.json()["callee"]
    r = http.post("/v1/flows/xml", json={"name": "ring_no_answer", "cancel_after_s": -1})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "ring_no_answer", "cancel_after_s"]
    # A session with a bad flow parameter: 422 at the parameter, nothing started.
    r = http.post("/v1/sessions", json=spec({"name": "hold_resume", "hold_s": -1}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-3:] == ["flow", "hold_resume", "hold_s"]


def test_flows_cli() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["flows", "list", "--json"])
    assert listed.exit_code == 0
    assert "session_timer" in listed.output
    shown = runner.invoke(app, ["flows", "show", "busy"])
    assert shown.exit_code == 0 and "486 Busy Here" in shown.output
    argv = ["flows", "show", "ring_no_answer", "-p", "cancel_after_s=2", "--xml", "caller"]
    xml = runner.invoke(app, argv)
    assert xml.exit_code == 0 and 'milliseconds="2000"' in xml.output
    bad = runner.invoke(app, ["flows", "show", "ring_no_answer", "-p", "cancel_after_s=x"])
    assert bad.exit_code == 2 and "flow.cancel_after_s" in bad.output
    assert runner.invoke(app, ["flows", "show", "nope"]).exit_code == 2


def test_examples_run_every_flow() -> None:
    """examples/flows/<flow>.yaml: one valid spec per flow, running that flow."""
    import yaml

    folder = Path(__file__).resolve().parent.parent / "examples" / "flows"
    assert {p.stem for p in folder.glob("*.yaml")} == set(FLOWS)
    for path in folder.glob("*.yaml"):
        s = SessionSpec.model_validate(yaml.safe_load(path.read_text()))
        assert s.roles.callers.flow is not None and s.roles.callers.flow.name == path.stem


def test_docs_list_every_flow_and_step() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "flows.md").read_text()
    for name, flow in FLOWS.items():
        assert f"### `{name}`" in docs
        assert all(f"`{s}`" in docs for s in flow.steps), name
        assert all(m in docs for m in flow.messages), name


def test_regression_rules_take_step_metrics() -> None:
    from sipflow.regression import judge, median_baseline
    from sipflow.schedule_spec import ScheduleSpec

    body = {
        "name": "nightly-hold",
        "session": spec({"name": "hold_resume"}),
        "schedule": {"every_s": [3600]},
        "rules": {"step_time_ms_hold": "+50%", "step_failed_hold": "+0"},
    }
    s = ScheduleSpec.model_validate(body)
    assert set(s.rules) == {"step_time_ms_hold", "step_failed_hold"}
    with pytest.raises(ValidationError, match="unknown metric 'step_hold'"):
        ScheduleSpec.model_validate({**body, "rules": {"step_hold": "+1"}})
    runs = [{"step_time_ms_hold": 10.0, "step_failed_hold": 0.0}] * 3
    base = median_baseline(runs, list(s.rules))
    late = judge("pass", {"step_time_ms_hold": 16.0, "step_failed_hold": 0.0}, s.rules, base)
    assert [r.metric for r in late] == ["step_time_ms_hold"]


def test_a_flows_pauses_lengthen_the_expected_duration() -> None:
    """Deadlines and timeouts follow from it: a 90 s session timer's calls last 45 s more."""
    plain = SessionSpec.model_validate(spec({"name": "busy"}, rate=1))
    timer = SessionSpec.model_validate(
        spec({"name": "session_timer", "session_expires_s": 90}, rate=1)
    )
    assert timer.expected_duration_s() == pytest.approx(plain.expected_duration_s() + 45)
