"""Every built-in call flow (sipflow/flows.py) runs through Kamailio (tests/sut/kamailio-flows.cfg)
as a whole session and passes with per-step results; a SUT switch that breaks one step of a flow
makes exactly that step fail, and the session's reasons name it.

The sessions run at the same time (each callee registers a user of its own), so the added time is
about that of the slowest flow."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entrypoints.stack import free_port
from sipflow.flows import FLOWS
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio

FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
CALLS = 3
# Short parameters: each flow's calls take about a second.
PARAMS: dict[str, dict[str, Any]] = {
    "ring_no_answer": {"cancel_after_s": 0.3},
    "busy": {},
    "decline": {},
    "early_media": {"early_media_s": 0.2},
    "prack": {},
    "hold_resume": {"hold_s": 0.2},
    "session_timer": {"session_expires_s": 2, "refresh": "update"},
    "options_keepalive": {"pings": 2, "interval_s": 0.2},
}


@dataclass(frozen=True)
class Broken:
    """A flow run through kamailio-flows.cfg with `switch`, which breaks `step`: how the step
    fails on each side (failure kind -> calls; callee None: the flow has no callee side, {}:
    the callee's step passes, its part of the call being unharmed)."""

    flow: str
    params: dict[str, Any]
    switch: str
    step: str
    caller: dict[str, int]
    callee: dict[str, int] | None
    said: str  # the SUT's wrong answer, as the session's reasons name it


# A request the proxy refuses fails the caller's step (the refusal is unexpected); the callee,
# never getting it, fails the same step by its bounded wait.
REFUSED = ({"unexpected": CALLS}, {"timeout": CALLS})
BROKEN = [
    Broken(
        "hold_resume",
        {"hold_s": 0.2},
        "REJECT_HOLD",
        "hold",
        *REFUSED,
        "INVITE: 488 Not Acceptable Here",
    ),
    Broken("prack", {}, "REJECT_PRACK", "prack", *REFUSED, "PRACK: 403 Forbidden"),
    Broken(
        "session_timer",
        {"session_expires_s": 2, "refresh": "reinvite"},
        "REJECT_REFRESH",
        "refresh",
        *REFUSED,
        "INVITE: 488 Not Acceptable Here",
    ),
    # The CANCEL's 481 fails the caller; the callee, never cancelled, times out waiting for it.
    Broken(
        "ring_no_answer",
        {"cancel_after_s": 0.3},
        "REJECT_CANCEL",
        "cancel",
        *REFUSED,
        "CANCEL: 481",
    ),
    # The callee answered (486/603, ACKed by the proxy): only the caller got the wrong code.
    Broken("busy", {}, "REPLY_480", "busy", {"unexpected": CALLS}, {}, "INVITE: 480"),
    Broken("decline", {}, "REPLY_480", "decline", {"unexpected": CALLS}, {}, "INVITE: 480"),
    # The caller waited for a 183 that never came (its step fails by that wait) and still ended
    # the answered call: the callee's side passes.
    Broken(
        "early_media",
        {"early_media_s": 0.2},
        "DROP_183",
        "early_media",
        {"timeout": CALLS},
        {},
        "check '^SIP/2.0 183' failed on INVITE: 200 OK",
    ),
    # The first OPTIONS passes; the next is refused.
    Broken(
        "options_keepalive",
        {"pings": 2, "interval_s": 0.2},
        "LIMIT_OPTIONS",
        "keepalive",
        {"unexpected": CALLS},
        None,
        "OPTIONS: 503 Service Unavailable",
    ),
]


def flow_spec(sut: str, name: str, params: dict[str, Any], user: str) -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    flow = FLOWS[name]
    callers: dict[str, Any] = {
        "rate": 5,
        "max_calls": CALLS,
        "hold_ms": 100,
        "accounts": [{"user": "alice"}],
        "flow": {"name": name, **params},
    }
    roles: dict[str, Any] = {"callers": callers}
    if flow.callee is not None:
        roles["callees"] = {"accounts": [{"user": user, "password": "secret"}]}
    return {
        "name": f"flow-{name}",
        "target": {"host": host, "port": int(port), "domain": host, "registrar": True},
        "roles": roles,
        "thresholds": ["success_rate >= 100", f"step_failed_{flow.steps[-1]} == 0"],
    }


@pytest.fixture(scope="module")
def sessions(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """All flows on a pass-through Kamailio and the broken ones on their own, submitted at once;
    key: the flow name, or "broken-<flow>"."""
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-flows")
        sut = stack.enter_context(kamailio(free_port(), work / "pass", config=FLOWS_CFG))
        ids = {
            name: sqlite_stack.submit(flow_spec(sut, name, PARAMS[name], f"u{i}"))
            for i, name in enumerate(PARAMS)
        }
        for b in BROKEN:
            broken = stack.enter_context(
                kamailio(free_port(), work / b.flow, config=FLOWS_CFG, defines=(b.switch,))
            )
            ids[f"broken-{b.flow}"] = sqlite_stack.submit(
                flow_spec(broken, b.flow, b.params, "bob")
            )
        yield {key: sqlite_stack.wait(sid, 180) for key, sid in ids.items()}


def steps_of(body: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in body["steps"] if s["role"] == role}


def test_every_flow_is_covered() -> None:
    # Flows with a named party (transfers): tests/test_transfer_flows.py.
    assert set(PARAMS) == {name for name, f in FLOWS.items() if f.party is None}


@pytest.mark.parametrize("name", list(PARAMS))
def test_flow_passes_through_kamailio(sessions: dict[str, dict[str, Any]], name: str) -> None:
    body = sessions[name]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    flow = FLOWS[name]
    assert body["flow"] == name
    assert body["measured"]["successful_calls"] == CALLS
    caller = steps_of(body, "caller")
    assert list(caller) == list(flow.steps)
    for step in flow.steps:
        assert (caller[step]["passed"], caller[step]["failed"]) == (CALLS, 0), caller[step]
        assert body["measured"][f"step_failed_{step}"] == 0
        assert body["measured"][f"step_passed_{step}"] == CALLS
    # The KPIs count the flow's expected final answer (486 for busy, 200 for hold_resume).
    if flow.final_code is not None:
        assert body["measured"][f"code_{flow.final_code}"] == CALLS
        assert body["measured"]["asr"] == (100 if flow.final_code == 200 else 0)
    # Every step times its request -> final answer, one sample per call.
    assert all(caller[s]["time_count"] == CALLS for s in flow.steps), caller
    if flow.callee is not None:
        callee = steps_of(body, "callee")
        assert list(callee) == list(flow.steps)
        assert all(c["failed"] == 0 and c["passed"] == CALLS for c in callee.values()), callee


def test_every_flow_has_a_broken_case() -> None:
    assert {b.flow for b in BROKEN} == set(PARAMS)
    assert all(b.step in FLOWS[b.flow].steps for b in BROKEN)


@pytest.mark.parametrize("case", BROKEN, ids=[b.flow for b in BROKEN])
def test_broken_step_fails_alone(sessions: dict[str, dict[str, Any]], case: Broken) -> None:
    body = sessions[f"broken-{case.flow}"]
    step = case.step
    assert body["verdict"] == "fail", body
    steps = list(FLOWS[case.flow].steps)
    before, after = steps[: steps.index(step)], steps[steps.index(step) + 1 :]
    caller = steps_of(body, "caller")
    assert caller[step]["failed"] == CALLS and caller[step]["passed"] == 0, caller
    assert caller[step]["failed_by"] == case.caller, caller
    for s in before:
        assert (caller[s]["passed"], caller[s]["failed"]) == (CALLS, 0), caller
    for s in after:
        assert (caller[s]["passed"], caller[s]["failed"]) == (0, 0), caller
    callee = steps_of(body, "callee")
    if case.callee is None:
        assert callee == {}, callee
    elif case.callee:
        # The callee never got the refused request: its call fails in the same step (it waits
        # a bounded time), not in a later one, and not by being killed at the end.
        assert callee[step]["failed_by"] == case.callee, callee
    else:
        # The SUT broke the step on the caller's side only: the callee's calls all pass.
        assert all((c["passed"], c["failed"]) == (CALLS, 0) for c in callee.values()), callee
    assert not any("did not stop" in r for r in body["reasons"]), body["reasons"]
    # No step but the broken one failed, on either side.
    failed = {s["step"] for s in body["steps"] if s["failed"]}
    assert failed == {step}, body["steps"]
    assert body["measured"][f"step_failed_{step}"] == sum(case.caller.values()) + sum(
        (case.callee or {}).values()
    )
    reasons = " | ".join(body["reasons"])
    for kind in {**case.caller, **(case.callee or {})}:
        assert f"step {step}: {kind}" in reasons, reasons
    assert case.said in reasons, reasons


def test_cli_shows_the_failed_step(
    sqlite_stack: RunningStack, sessions: dict[str, dict[str, Any]]
) -> None:
    from typer.testing import CliRunner

    from entrypoints.cli import app

    sid = sessions["broken-hold_resume"]["id"]
    env = {"SIPFLOW_API_KEY": str(sqlite_stack.stack.api_key)}
    argv = ["sessions", "show", sid, "--api", sqlite_stack.stack.api_url]
    show = CliRunner().invoke(app, argv, env=env)
    assert show.exit_code == 0, show.output
    assert "Steps of flow hold_resume" in show.stdout
    hold_row = next(
        line for line in show.stdout.splitlines() if " hold " in line and "caller" in line
    )
    assert "unexpected 3" in hold_row, show.stdout
