"""Load profiles: the plan each shape compiles to, its validation, the tenant policy on its peak,
and a profiled session on real SIPp whose measured rate follows the plan."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client

from runners.rate_plan import RatePlan
from sipflow import tenant_policy
from sipflow.load_profile import MIN_RATE, LoadProfile
from sipflow.messages import RatePoint
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.tenant_policy import PolicyViolation, Quotas, TenantPolicy
from tests.conftest import RunningStack

PROFILES: dict[str, dict[str, Any]] = {
    "constant": {"shape": "constant", "start": 40, "hold": "30s"},
    "ramp": {"shape": "ramp", "start": 10, "to": 200, "over": "20s", "hold": "10s"},
    "long ramp": {"shape": "ramp", "start": 0, "to": 1000, "over": "1h"},
    "steps": {"shape": "steps", "start": 50, "step": 50, "every": "5s", "count": 3},
    "spike": {"shape": "spike", "start": 20, "peak": 500, "at": 5, "for": "3s", "after": 5},
    "custom": {
        "shape": "custom",
        "start": 0,
        "stages": [{"to": 200, "over": "1m"}, {"hold": "5m"}, {"to": 0, "over": "30s"}],
    },
}
parse = TypeAdapter(LoadProfile).validate_python


def _staircase_calls(profile: Any) -> float:
    """The calls the commands make: each rate until the next change, to the plan's end."""
    at, rate, calls = 0.0, profile.initial_rate(), 0.0
    for c in profile.commands():
        if c.rate is None or c.at_s == 0:
            continue
        calls += rate * (c.at_s - at)
        at, rate = c.at_s, c.rate
    return calls + rate * (profile.duration_s() - at)


@pytest.mark.parametrize("name", PROFILES)
def test_commands_make_the_planned_calls_and_mark_every_stage(name: str) -> None:
    profile = parse(PROFILES[name])
    # A rate of 0 is carried as MIN_RATE: at most that much over the plan, per second at 0.
    slack = MIN_RATE * profile.duration_s() + 1e-6
    assert profile.planned_calls() - 1e-6 <= _staircase_calls(profile)
    assert _staircase_calls(profile) <= profile.planned_calls() + slack
    commands = profile.commands()
    assert [c.at_s for c in commands] == sorted(c.at_s for c in commands)
    marks = [c.stage for c in commands if c.stage is not None]
    assert marks == list(range(len(profile.stages())))  # one per stage, in order
    assert len(commands) <= 101 * len(profile.stages())  # a long ramp takes longer steps
    assert all(c.rate is None or MIN_RATE <= c.rate <= profile.peak() for c in commands)


def test_planned_rate_and_shapes() -> None:
    ramp = parse(PROFILES["ramp"])
    assert (ramp.duration_s(), ramp.peak(), ramp.planned_calls()) == (30, 200, 4100)
    assert ramp.planned_rate(0) == 10 and ramp.planned_rate(10) == 105
    assert ramp.planned_rate(25) == 200 and ramp.planned_rate(99) == 200
    steps = parse(PROFILES["steps"])
    assert [steps.planned_rate(t) for t in (1, 6, 11, 16)] == [50, 100, 150, 200]
    spike = parse(PROFILES["spike"])
    assert [spike.planned_rate(t) for t in (4, 6, 9)] == [20, 500, 20]
    assert spike.duration_s() == 13
    assert parse(PROFILES["custom"]).duration_s() == 60 + 300 + 30


@pytest.mark.parametrize(
    ("profile", "loc", "text"),
    [
        ({"shape": "ramp", "start": 1, "to": 5, "over": "2x"}, ("ramp", "over"), "no duration"),
        ({"shape": "custom", "start": 1, "stages": [{"to": 5, "hold": 3}]}, ("custom",), "either"),
        ({"shape": "custom", "start": 1, "stages": []}, ("custom", "stages"), "at least 1"),
        ({"shape": "ramp", "start": 1, "to": 50000, "over": 5}, ("ramp", "to"), "less than"),
        ({"shape": "constant", "start": 1, "hold": 0}, ("constant",), "0 < total"),
        ({"shape": "zigzag", "start": 1}, (), "shape"),
    ],
)
def test_invalid_profiles_name_the_field(
    profile: dict[str, Any], loc: tuple[str, ...], text: str
) -> None:
    spec = {"roles": {"callees": {"agents": 1}, "callers": {"agents": 1, "profile": profile}}}
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(spec)
    (err,) = info.value.errors()
    assert err["loc"][:4] == ("roles", "callers", "profile", *loc[:1])
    assert tuple(err["loc"][3 : 3 + len(loc)]) == loc
    assert text in err["msg"]


def test_profile_sets_rate_and_duration_and_refuses_others() -> None:
    callers: dict[str, Any] = {"agents": 2, "profile": PROFILES["ramp"]}
    spec = SessionSpec.model_validate({"roles": {"callees": {"agents": 1}, "callers": callers}})
    c = spec.roles.callers
    assert c.duration_s == 30 and c.rate == pytest.approx(parse(PROFILES["ramp"]).initial_rate())
    assert spec.expected_duration_s() == 30
    again = SessionSpec.model_validate(spec.model_dump(mode="json"))  # as activities see it
    assert again == spec
    for field, value in (("rate", 99), ("duration_s", 5)):
        bad = {"roles": {"callees": {"agents": 1}, "callers": {**callers, field: value}}}
        with pytest.raises(ValidationError, match=f"{field}: with a profile"):
            SessionSpec.model_validate(bad)


def test_tenant_policy_checks_the_peak_and_the_planned_calls() -> None:
    callers: dict[str, Any] = {"agents": 1, "profile": PROFILES["ramp"]}
    spec = SessionSpec.model_validate({"roles": {"callees": {"agents": 1}, "callers": callers}})
    assert tenant_policy.calls_bound(spec) == 4100
    with pytest.raises(PolicyViolation) as info:
        tenant_policy.check_spec(TenantPolicy(quotas=Quotas(calls_per_s=150)), spec)
    assert info.value.loc == ("roles", "callers", "profile") and "200" in info.value.message
    tenant_policy.check_spec(TenantPolicy(quotas=Quotas(calls_per_s=200)), spec)


# -- on real parts -------------------------------------------------------------------------------
# The test: a ramp from 10 to 200 calls/s over 20 s, then a 10 s hold.
PROFILED: dict[str, Any] = {
    "name": "profiled",
    "roles": {
        "callees": {"agents": 1, "scenario": "answer"},
        "callers": {
            "agents": 2,
            "scenario": "call",
            "profile": {
                "shape": "custom",
                "start": 10,
                "stages": [{"to": 200, "over": "20s"}, {"hold": "10s"}],
            },
        },
    },
    "thresholds": ["success_rate >= 99", "failed_calls == 0"],
}


async def _stage_marks(rs: RunningStack, sid: str) -> list[dict[str, Any]]:
    client = await Client.connect(
        rs.stack.temporal_address,
        data_converter=data_converter(Settings(data_dir=rs.stack.data_dir)),
    )
    history = await client.get_workflow_handle(f"session-{sid}").fetch_history()
    converter = client.data_converter.payload_converter
    marks = []
    for e in history.events:
        if e.HasField("workflow_properties_modified_event_attributes"):
            fields = e.workflow_properties_modified_event_attributes.upserted_memo.fields
            if "sipflow_load_stage" in fields:
                payload = await client.data_converter.payload_codec.decode(  # type: ignore[union-attr]
                    [fields["sipflow_load_stage"]]
                )
                marks.append(converter.from_payloads(payload)[0])
    return marks


def _planned_per_second(plan: list[dict[str, Any]], seconds: int) -> list[float]:
    """The rate in effect during each whole second of the plan (its steps start on seconds)."""
    return [next(p["rate"] for p in reversed(plan) if p["at_s"] <= t) for t in range(seconds)]


def test_the_agent_sets_each_rate_of_its_plan_once_when_it_comes_due() -> None:
    plan = RatePlan()
    plan.load([RatePoint(at_s=2.0, rate=30), RatePoint(at_s=1.0, rate=20)])  # any order
    assert plan.due(0.5) is None and plan.wait_s(0.5, 0.2) == 0.2
    assert plan.wait_s(0.9, 0.2) == pytest.approx(0.1)  # wakes for the next point
    assert plan.due(1.0) == 20 and plan.due(1.5) is None
    assert plan.due(5.0) == 30  # late: the last point due wins, nothing repeated
    assert plan.due(6.0) is None and plan.wait_s(6.0, 0.2) == 0.2


def test_profiled_session_follows_its_plan(sqlite_stack: RunningStack) -> None:
    spec = copy.deepcopy(PROFILED)
    sid = sqlite_stack.submit(spec)
    detail = sqlite_stack.http.get(f"/v1/sessions/{sid}").json()
    plan = detail["planned_rate"]
    assert plan[0] == {"at_s": 0, "rate": pytest.approx(14.75), "stage": 0}
    assert plan[-1]["at_s"] == 30 and plan[-1]["rate"] == 200
    sqlite_stack.wait_phase(sid, "running callers")
    refused = sqlite_stack.http.post(f"/v1/sessions/{sid}/rate", json={"rate": 5})
    assert refused.status_code in (409, 422) and "load profile" in refused.text, refused.text
    body = sqlite_stack.wait(sid)
    assert body["verdict"] == "pass", body
    merged = sqlite_stack.http.get(f"/v1/sessions/{sid}/metrics").json()["merged"]["caller"]
    series = [p["calls_created"] for p in merged]
    created = series[next(i for i, n in enumerate(series) if n > 0) :]
    want = _planned_per_second(plan, 30)
    # A rate change reaches SIPp about a second later (control message -> agent -> SIPp's next
    # rate period): the measured series is compared at the lag that fits it best (0-2 s).
    ramp, hold = range(2, 20), range(22, 29)  # each stage after settling

    def off(lag: int) -> float:
        return sum(abs(created[t + lag] - want[t]) for t in ramp if t + lag < len(created))

    lag = min((0, 1, 2), key=off)
    got_ramp = sum(created[t + lag] for t in ramp)
    want_ramp = sum(want[t] for t in ramp)
    assert abs(got_ramp - want_ramp) <= 0.05 * want_ramp, (lag, str(created))
    got_hold = [created[t + lag] for t in hold if t + lag < len(created)]
    assert len(got_hold) >= 5 and abs(sum(got_hold) / len(got_hold) - 200) <= 10, str(created)

    marks = asyncio.run(_stage_marks(sqlite_stack, sid))
    assert [(m["stage"], m["of"]) for m in marks] == [(1, 2), (2, 2)]
    assert marks[1]["rate"] == 200
