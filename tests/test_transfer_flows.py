"""Named parties and the blind transfer flow (sipflow/transfer_flows.py) through Kamailio
(tests/sut/kamailio-flows.cfg) as whole sessions: alice (callers) calls bob (callees), REFERs him
to carol (a named party); bob calls carol with Referred-By and NOTIFYs alice.

The stack's runners start out of step (SIPFLOW_RUNNER_START_JITTER_MS: each agent waits a random
0-1 s before it registers or starts SIPp): the session's barriers (every callee-side runner,
the party included, registered and ready, then `go` on the control topic) must absorb it.
A SUT answering REFER 403 (-A REJECT_REFER) makes exactly the `transfer` step fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from entrypoints.stack import free_port
from sipflow.flows import FLOWS, render
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack, start_stack
from tests.sut.kamailio import kamailio

FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
CALLS = 4
JITTER_MS = 1000
BLIND = FLOWS["blind_transfer"]


def transfer_spec(sut: str, n: str, flow: str = "blind_transfer") -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    return {
        "name": f"{flow}-{n}",
        "target": {"host": host, "port": int(port), "domain": host, "registrar": True},
        "roles": {
            "callers": {
                "rate": 4,
                "max_calls": CALLS,
                "hold_ms": 100,
                "accounts": [{"user": f"alice{n}"}],
                "flow": {"name": flow, "transfer_to": "carol", "talk_s": 0.2},
            },
            "callees": {"accounts": [{"user": f"bob{n}", "password": "secret"}]},
            "parties": {"carol": {"accounts": [{"user": f"carol{n}", "password": "secret"}]}},
        },
        "thresholds": ["success_rate >= 100", "step_failed_transfer == 0"],
    }


@pytest.fixture(scope="module")
def jittered_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {"SIPFLOW_RUNNER_START_JITTER_MS": str(JITTER_MS)}
    yield from start_stack(tmp_path_factory.mktemp("stack-jitter"), extra_env=env)


@pytest.fixture(scope="module")
def sessions(
    jittered_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """Two transfer sessions on a pass-through Kamailio and one on a Kamailio refusing REFER,
    submitted at once."""
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-transfer")
        sut = stack.enter_context(kamailio(free_port(), work / "pass", config=FLOWS_CFG))
        broken = stack.enter_context(
            kamailio(free_port(), work / "refer", config=FLOWS_CFG, defines=("REJECT_REFER",))
        )
        ids = {
            "pass-1": jittered_stack.submit(transfer_spec(sut, "1")),
            "pass-2": jittered_stack.submit(transfer_spec(sut, "2")),
            "broken": jittered_stack.submit(transfer_spec(broken, "3")),
            "attended": jittered_stack.submit(transfer_spec(sut, "4", "attended_transfer")),
            "attended-broken": jittered_stack.submit(
                transfer_spec(broken, "5", "attended_transfer")
            ),
        }
        yield {key: jittered_stack.wait(sid, 180) for key, sid in ids.items()}


def role_steps(body: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in body["steps"] if s["role"] == role}


@pytest.mark.parametrize("key", ["pass-1", "pass-2"])
def test_blind_transfer_passes_with_jittered_starts(
    jittered_stack: RunningStack, sessions: dict[str, dict[str, Any]], key: str
) -> None:
    body = sessions[key]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["flow"] == "blind_transfer"
    assert body["measured"]["successful_calls"] == CALLS
    caller = role_steps(body, "caller")
    assert list(caller) == list(BLIND.steps)
    assert all((s["passed"], s["failed"]) == (CALLS, 0) for s in caller.values()), caller
    # Callee side: bob's steps, then carol's (the named party runs callee-1); both end the
    # transferee-target call (bob sends the BYE, carol answers it).
    callee = role_steps(body, "callee")
    assert list(callee) == [*BLIND.callee_steps, "target_answer"], callee
    for step, s in callee.items():
        expected = 2 * CALLS if step == "target_hangup" else CALLS
        assert (s["passed"], s["failed"]) == (expected, 0), (step, s)
    # The transfer took the time of one REFER -> 202 round trip, once per call.
    assert caller["transfer"]["time_count"] == CALLS
    # Every runner (caller, transferee, target) started late by its own random delay.
    assert 0 <= min(start_delays(jittered_stack, body)) <= max(start_delays(jittered_stack, body))


def start_delays(stack: RunningStack, body: dict[str, Any]) -> list[int]:
    """The random start delay each of the session's three runners logged (ms)."""
    delays = []
    for rid in ("caller-0", "callee-0", "callee-1"):
        log = (stack.runs_dir / body["id"] / rid / "agent.log").read_text()
        found = re.findall(r"start delayed (\d+) ms", log)
        assert len(found) == 1, (rid, log[-2000:])
        delays.append(int(found[0]))
    assert all(0 <= d <= JITTER_MS for d in delays), delays
    return delays


def test_jitter_really_spread_the_starts(
    jittered_stack: RunningStack, sessions: dict[str, dict[str, Any]]
) -> None:
    """Across the passing sessions' six runners the random delays are spread (the parties did
    start out of step, by more than a registration takes), yet every session passed."""
    delays = [d for k in ("pass-1", "pass-2") for d in start_delays(jittered_stack, sessions[k])]
    assert max(delays) - min(delays) > 100, delays
    assert all(sessions[k]["verdict"] == "pass" for k in ("pass-1", "pass-2"))


def test_refer_refused_fails_the_transfer_step_alone(sessions: dict[str, dict[str, Any]]) -> None:
    body = sessions["broken"]
    assert body["verdict"] == "fail", body
    caller = role_steps(body, "caller")
    assert (caller["invite"]["passed"], caller["invite"]["failed"]) == (CALLS, 0), caller
    assert caller["transfer"]["failed"] == CALLS and caller["transfer"]["passed"] == 0, caller
    assert caller["transfer"]["failed_by"] == {"unexpected": CALLS}, caller
    assert all(caller[s]["passed"] == caller[s]["failed"] == 0 for s in ("notify", "hangup"))
    # bob waited for a REFER that never came: his call fails in the same step (a bounded wait);
    # carol got no INVITE, so no call of hers failed.
    callee = role_steps(body, "callee")
    assert callee["transfer"]["failed_by"] == {"timeout": CALLS}, callee
    failed = {s["step"] for s in body["steps"] if s["failed"]}
    assert failed == {"transfer"}, body["steps"]
    assert body["measured"]["step_failed_transfer"] >= CALLS
    reasons = " | ".join(body["reasons"])
    assert "step transfer: unexpected" in reasons, reasons


def test_attended_transfer_passes(sessions: dict[str, dict[str, Any]]) -> None:
    """Consultation call, REFER with Replaces, the target ends the replaced call (its BYE comes
    before the final NOTIFY by cause: it is sent before the target answers the transferee)."""
    body = sessions["attended"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    attended = FLOWS["attended_transfer"]
    caller = role_steps(body, "caller")
    assert list(caller) == list(attended.steps)
    assert all((s["passed"], s["failed"]) == (CALLS, 0) for s in caller.values()), caller
    callee = role_steps(body, "callee")
    assert list(callee) == [*attended.callee_steps, "consult_answer", "target_answer"], callee
    for step, s in callee.items():
        expected = 2 * CALLS if step == "target_hangup" else CALLS
        assert (s["passed"], s["failed"]) == (expected, 0), (step, s)


def test_attended_refer_refused_fails_at_the_transfer(
    sessions: dict[str, dict[str, Any]],
) -> None:
    """The REFER refused: the transferor's `transfer` step fails (403), the transferee's wait
    for the REFER fails the same step; the target, whose consultation call passed, then waits
    in vain for the transferee's INVITE (its `target_answer` times out: a consequence, named)."""
    body = sessions["attended-broken"]
    assert body["verdict"] == "fail", body
    caller = role_steps(body, "caller")
    assert [caller[s]["passed"] for s in ("invite", "consult")] == [CALLS, CALLS], caller
    assert caller["transfer"]["failed_by"] == {"unexpected": CALLS}, caller
    callee = role_steps(body, "callee")
    assert callee["transfer"]["failed_by"] == {"timeout": CALLS}, callee
    assert callee["consult_answer"]["passed"] == CALLS, callee
    failed = {s["step"] for s in body["steps"] if s["failed"]}
    assert failed == {"transfer", "target_answer"}, body["steps"]
    assert "step transfer: unexpected" in " | ".join(body["reasons"])


def _spec(**roles: Any) -> dict[str, Any]:
    base = transfer_spec("127.0.0.1:5090", "x")
    base["roles"].update(roles)
    return base


def _error(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        SessionSpec.model_validate(spec)
    return str(exc.value)


def test_parties_validation() -> None:
    spec = SessionSpec.model_validate(transfer_spec("127.0.0.1:5090", "x"))
    assert list(spec.roles.parties) == ["carol"]
    # callers/callees stay the shorthand: an old spec has no parties and means the same.
    old = transfer_spec("127.0.0.1:5090", "x")
    old["roles"] = {"callers": {"max_calls": 1}, "callees": old["roles"]["callees"]}
    assert SessionSpec.model_validate(old).roles.parties == {}
    wrong = _spec(parties={"dave": {"accounts": [{"user": "dave", "password": "secret"}]}})
    assert "roles.callers.flow: the 'blind_transfer' flow names party 'carol'" in _error(wrong)
    extra = _spec(
        parties={
            "carol": {"accounts": [{"user": "carol", "password": "secret"}]},
            "dave": {"accounts": [{"user": "dave", "password": "secret"}]},
        }
    )
    assert "roles.parties.dave: no flow or script of this session names this party" in _error(extra)
    two = _spec(parties={"carol": {"agents": 2, "accounts": [{"user": "c", "password": "s"}]}})
    assert "roles.parties.carol.agents: a named party is one agent" in _error(two)
    nopw = _spec(parties={"carol": {"accounts": [{"user": "carol"}]}})
    assert "roles.parties.carol.accounts: give the party's account" in _error(nopw)
    bad_name = _spec(parties={"Carol!": {"accounts": [{"user": "c", "password": "s"}]}})
    assert "roles.parties.Carol!" in _error(bad_name)
    no_callees = transfer_spec("127.0.0.1:5090", "x")
    del no_callees["roles"]["callees"]
    assert "roles.callees: the 'blind_transfer' flow needs callees" in _error(no_callees)


def test_rendered_sides_name_the_party(jittered_stack: RunningStack) -> None:
    """The caller side REFERs to the party's SIP user (its account's, set by the plan); the
    API and CLI show all three sides; a wrong party gives 422 at its field."""
    from typer.testing import CliRunner

    from entrypoints.cli import app
    from sipflow import plan

    spec = SessionSpec.model_validate(transfer_spec("127.0.0.1:5090", "7"))
    configs = plan.runner_configs(
        spec,
        "s1",
        "callee",
        addresses={"callee-0": "127.0.0.2", "callee-1": "127.0.0.3"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1,
        runs_dir=Path("/tmp"),
    )
    assert [(c.runner_id, c.accounts[0].user) for c in configs] == [
        ("callee-0", "bob7"),
        ("callee-1", "carol7"),
    ]
    assert "sipflow blind_transfer target" in (configs[1].scenario_xml or "")
    caller = plan.runner_configs(
        spec,
        "s1",
        "caller",
        addresses={"caller-0": "127.0.0.4"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1,
        runs_dir=Path("/tmp"),
    )[0]
    assert "Refer-To: <sip:carol7@[field4]>" in (caller.scenario_xml or "")
    params = spec.roles.callers.flow
    assert params is not None
    assert "Refer-To: <sip:carol@[field4]>" in render(params, "caller")

    http = jittered_stack.http
    r = http.post("/v1/flows/xml", json={"name": "blind_transfer", "transfer_to": "carol"})
    assert r.status_code == 200, r.text
    assert "blind_transfer target" in r.json()["party"]
    info = http.get("/v1/flows/blind_transfer").json()
    assert info["party_side"] and info["party_steps"] == list(BLIND.party_steps)
    bad = _spec(parties={"dave": {"accounts": [{"user": "dave", "password": "secret"}]}})
    r = http.post("/v1/sessions", json=bad)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-3:] == ["roles", "callers", "flow"], r.json()
    show = CliRunner().invoke(app, ["flows", "show", "blind_transfer", "--xml", "party"])
    assert show.exit_code == 0, show.output
    assert "Referred-By:" in show.stdout
