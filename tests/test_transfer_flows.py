"""Named parties and the blind transfer flow (sipflow/transfer_flows.py) through Kamailio
(tests/sut/kamailio-flows.cfg) as whole sessions: alice (callers) calls bob (callees), REFERs him
to carol (a named party); bob calls carol with Referred-By and NOTIFYs alice.

The stack's runners start out of step (SIPFLOW_RUNNER_START_JITTER_MS: each agent waits a random
0-1 s before it registers or starts SIPp): the session's barriers (every callee-side runner,
the party included, registered and ready, then `go` on the control topic) must absorb it.
A SUT answering REFER 403 (-A REJECT_REFER) makes exactly the transferor's `transfer` step fail,
in either transfer; no step of the transferee or the target fails."""

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
from tests.dashboard_fixtures import browser_fixture, page_fixture, sign_in  # noqa: F401
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


def spread_spec(sut: str, n: str, flow: str) -> dict[str, Any]:
    """The party carol as two agents, each registering its own account (carol{n}a, carol{n}b):
    the transfers go to them in turn."""
    spec = transfer_spec(sut, n, flow)
    spec["roles"]["parties"]["carol"] = {
        "agents": 2,
        "accounts": [{"user": f"carol{n}{x}", "password": "secret"} for x in "ab"],
    }
    return spec


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
            "spread": jittered_stack.submit(spread_spec(sut, "6", "blind_transfer")),
            "spread-attended": jittered_stack.submit(spread_spec(sut, "8", "attended_transfer")),
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


def runner_reasons(body: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {r["runner_id"]: r["failure_reasons"] or {} for r in body["runners"]}


def assert_refused_transfer_alone(body: dict[str, Any]) -> None:
    """A REFER refused 403 by the SUT: the transferor's `transfer` step fails for every call,
    counted `refused` with the answer as the reason, and nothing else fails on any side (the
    transferor ends the calls it kept; the transferee and the target take that BYE)."""
    assert body["verdict"] == "fail", body
    failed = {(s["role"], s["step"]): s["failed_by"] for s in body["steps"] if s["failed"]}
    assert failed == {("caller", "transfer"): {"refused": CALLS}}, body["steps"]
    assert body["measured"]["step_failed_transfer"] == CALLS
    assert body["measured"]["failed_calls"] == CALLS
    caller = role_steps(body, "caller")
    assert (caller["invite"]["passed"], caller["transfer"]["passed"]) == (CALLS, 0), caller
    assert caller["notify"]["passed"] == 0, caller
    # The transferor hung up every call it kept (its hangup step, past the hold time).
    assert (caller["hangup"]["passed"], caller["hangup"]["failed"]) == (CALLS, 0), caller
    callee = role_steps(body, "callee")
    # bob took alice's BYE where the REFER would have come: his hangup passed.
    assert (callee["hangup"]["passed"], callee["hangup"]["failed"]) == (CALLS, 0), callee
    assert callee["transfer"]["passed"] == callee["call_target"]["passed"] == 0, callee
    reasons = runner_reasons(body)
    assert reasons["caller-0"] == {"step transfer: refused": CALLS, "REFER: 403 Forbidden": CALLS}
    # The transferee (callee-0) and the target (callee-1) failed nothing.
    assert reasons["callee-0"] == reasons["callee-1"] == {}, reasons
    joined = " | ".join(body["reasons"])
    assert "step transfer: refused" in joined and "REFER: 403 Forbidden" in joined, joined


def test_refer_refused_fails_the_transfer_step_alone(sessions: dict[str, dict[str, Any]]) -> None:
    body = sessions["broken"]
    assert_refused_transfer_alone(body)
    # carol got no INVITE: no call of hers at all.
    callee = role_steps(body, "callee")
    assert callee["target_answer"]["passed"] == callee["target_hangup"]["passed"] == 0, callee


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


def test_attended_refer_refused_fails_the_transfer_step_alone(
    sessions: dict[str, dict[str, Any]],
) -> None:
    """The REFER refused: the transferor's `transfer` step fails (403, `refused`); it then ends
    the consultation call (its BYE, where the transfer would have brought the transferee's
    INVITE: the target's `target_hangup` passes) and the transferred call."""
    body = sessions["attended-broken"]
    assert_refused_transfer_alone(body)
    caller = role_steps(body, "caller")
    assert caller["consult"]["passed"] == CALLS, caller
    callee = role_steps(body, "callee")
    assert callee["consult_answer"]["passed"] == CALLS, callee
    assert callee["target_answer"]["passed"] == 0, callee
    assert callee["target_hangup"]["passed"] == CALLS, callee


@pytest.mark.parametrize("key", ["spread", "spread-attended"])
def test_a_party_of_two_agents_takes_the_transfers_in_turn(
    jittered_stack: RunningStack, sessions: dict[str, dict[str, Any]], key: str
) -> None:
    """carol as two agents (callee-1, callee-2), each registered as its own user: the 4
    transfers' Refer-To name them in turn, so each agent answers 2 of them."""
    body = sessions[key]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert {r["runner_id"]: r["party"] for r in body["runners"]} == {
        "caller-0": None,
        "callee-0": None,
        "callee-1": "carol",
        "callee-2": "carol",
    }
    callee = role_steps(body, "callee")
    assert (callee["target_answer"]["passed"], callee["target_answer"]["failed"]) == (CALLS, 0)
    series = jittered_stack.http.get(f"/v1/sessions/{body['id']}/metrics").json()["runners"]
    answered = {s["runner_id"]: s["points"][-1]["cum_calls_created"] for s in series}
    # Each target agent got its half of the transferees' INVITEs (and, attended, of the
    # consultation calls: the same call of SIPp's, one Call-ID).
    assert answered["callee-1"] == answered["callee-2"] == CALLS // 2, answered
    n = "6" if key == "spread" else "8"
    for rid, user in (("callee-1", f"carol{n}a"), ("callee-2", f"carol{n}b")):
        log = (jittered_stack.runs_dir / body["id"] / rid / "register-messages.log").read_text()
        # Its registration's outcome (runners/registration.py): its own contact.
        assert f"registered contacts= <sip:{user}@" in log, (rid, log[-1500:])


def test_runners_name_their_party(
    jittered_stack: RunningStack, sessions: dict[str, dict[str, Any]], page: Any
) -> None:
    """Where runners are shown, a named party's runner says which party it runs: the session
    detail API and report.json (`party`), the CLI's `sessions show` and the dashboard's report
    page (`callee-1 (party carol)`)."""
    from typer.testing import CliRunner

    from entrypoints.cli import app

    body = sessions["attended"]
    parties = {r["runner_id"]: (r["role"], r["party"]) for r in body["runners"]}
    assert parties == {
        "caller-0": ("caller", None),
        "callee-0": ("callee", None),
        "callee-1": ("callee", "carol"),
    }, parties
    sid = body["id"]
    report = jittered_stack.http.get(f"/v1/sessions/{sid}/report.json").json()
    assert {r["runner_id"]: r["party"] for r in report["runners"]}["callee-1"] == "carol"

    stack = jittered_stack.stack
    env = {"SIPFLOW_API_KEY": str(stack.api_key)}
    show = CliRunner().invoke(app, ["sessions", "show", sid, "--api", stack.api_url], env=env)
    assert show.exit_code == 0, show.output
    assert "callee-1 (party carol)" in show.stdout, show.stdout
    assert "callee-0 (party" not in show.stdout

    sign_in(page, stack.api_url, str(stack.api_key))
    page.goto(f"{stack.api_url}/dashboard/sessions/{sid}")
    party_row = page.locator("#runners tr[data-runner=callee-1] td >> nth=0")
    party_row.wait_for()
    assert party_row.inner_text() == "callee-1 (party carol)"
    plain = page.locator("#runners tr[data-runner=callee-0] td >> nth=0").inner_text()
    assert plain == "callee-0"


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
    assert "roles.parties.carol.accounts: each of the party's agents registers its own" in (
        _error(two)
    )
    assert len(SessionSpec.model_validate(spread_spec("127.0.0.1:5090", "x", BLIND.name)).roles
               .parties["carol"].accounts) == 2  # fmt: skip
    nopw = _spec(parties={"carol": {"accounts": [{"user": "carol"}]}})
    assert "roles.parties.carol.accounts: give the party's account" in _error(nopw)
    bad_name = _spec(parties={"Carol!": {"accounts": [{"user": "c", "password": "s"}]}})
    assert "roles.parties.Carol!" in _error(bad_name)
    no_callees = transfer_spec("127.0.0.1:5090", "x")
    del no_callees["roles"]["callees"]
    assert "roles.callees: the 'blind_transfer' flow needs callees" in _error(no_callees)


def test_rendered_sides_name_the_party(jittered_stack: RunningStack) -> None:
    """The caller side REFERs to the party's SIP user, per call from the injection file: the
    plan gives the callers the users of the party's agents (each agent its own account), in
    turn; the API and CLI show all three sides; a wrong party gives 422 at its field."""
    from typer.testing import CliRunner

    from entrypoints.cli import app
    from runners.injection import injection_rows
    from sipflow import plan

    spec = SessionSpec.model_validate(spread_spec("127.0.0.1:5090", "7", BLIND.name))
    configs = plan.runner_configs(
        spec,
        "s1",
        "callee",
        addresses={"callee-0": "127.0.0.2", "callee-1": "127.0.0.3", "callee-2": "127.0.0.5"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1,
        runs_dir=Path("/tmp"),
    )
    assert [(c.runner_id, [a.user for a in c.accounts]) for c in configs] == [
        ("callee-0", ["bob7"]),
        ("callee-1", ["carol7a"]),
        ("callee-2", ["carol7b"]),
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
    assert "Refer-To: <sip:[field7]@[field4]>" in (caller.scenario_xml or "")
    assert caller.party_to == ["carol7a", "carol7b"]
    rows = injection_rows(caller, "main")
    assert [(r[0], r[3], r[7]) for r in rows] == [
        ("alice7", "bob7", "carol7a"),
        ("alice7", "bob7", "carol7b"),
    ]
    # A session without a party writes no field7 (the rows of every other scenario unchanged).
    plain = caller.model_copy(update={"party_to": []})
    assert [len(r) for r in injection_rows(plain, "main")] == [7]
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
