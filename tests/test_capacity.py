"""Capacity search: the search's decisions (pure), its spec's validation, and a search on real
parts against a Kamailio whose capacity is known (ratelimit: 60 new INVITEs a second)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sipflow.capacity import CapacitySearchSpec, Step, next_rate, result
from tests.conftest import RunningStack
from tests.runner_fixtures import free_port
from tests.sut.kamailio import kamailio

RATE_LIMITED = Path(__file__).parent / "sut" / "kamailio-ratelimited.cfg"
SESSION: dict[str, Any] = {
    "roles": {"callees": {"agents": 1}, "callers": {"agents": 1}},
}


def search(**kw: Any) -> CapacitySearchSpec:
    base: dict[str, Any] = {
        "session": SESSION,
        "criteria": ["success_rate >= 99"],
        "start": 10,
        "ceiling": 1000,
    }
    return CapacitySearchSpec.model_validate({**base, **kw})


def walk(spec: CapacitySearchSpec, limit: float) -> tuple[list[float], Any]:
    """The rates the search tries against a SUT that holds up to `limit`."""
    steps: list[Step] = []
    while not isinstance(rate := next_rate(spec, steps), str):
        held = rate <= limit
        steps.append(Step(index=len(steps), rate=rate, session_id="x", held=held, measured={}))
    return [s.rate for s in steps], result(steps, rate)


def test_grows_then_bisects_to_the_resolution() -> None:
    rates, res = walk(search(resolution_pct=10), limit=100)
    assert rates == [10, 20, 40, 80, 160, 120, 100, 110]
    assert (res.highest_held, res.lowest_broken, res.stop) == (100, 110, "resolution")


def test_stops_at_the_ceiling_and_when_the_first_step_breaks() -> None:
    rates, res = walk(search(ceiling=50), limit=1000)
    assert rates == [10, 20, 40, 50] and res.stop == "ceiling" and res.lowest_broken is None
    rates, res = walk(search(), limit=5)
    assert rates == [10] and res.stop == "first_step_broke" and res.highest_held is None
    rates, res = walk(search(max_steps=3), limit=1000)
    assert len(rates) == 3 and res.stop == "max_steps" and res.highest_held == 40


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"session": {"roles": {"callers": {"rate": 5}}}}, ("session",)),
        ({"ceiling": 5}, ()),
        ({"criteria": ["jitter < 5"]}, ("criteria", 0)),
        ({"factor": 1}, ("factor",)),
        ({"session": {"roles": {}}}, ("session",)),
    ],
)
def test_invalid_spec_names_the_field(change: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        search(**change)
    assert info.value.errors()[0]["loc"][: len(loc)] == loc


def test_search_finds_the_known_capacity_of_a_rate_limited_kamailio(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    port = free_port()
    body = {
        "name": "ratelimited-kamailio",
        "session": {
            "target": {"host": "127.0.0.1", "port": port, "domain": "127.0.0.1", "registrar": True},
            "roles": {
                "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
                "callers": {"agents": 1, "accounts": [{"user": "alice"}]},
            },
            "thresholds": ["total_calls >= 1"],
        },
        "criteria": ["success_rate >= 99"],
        "start": 20,
        "ceiling": 160,
        "resolution_pct": 10,
        "warmup": 2,
        "window": 4,
        "settle": 1,
    }
    with kamailio(port, tmp_path / "kamailio", config=RATE_LIMITED):
        r = sqlite_stack.http.post("/v1/capacity", json=body)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert r.json()["spec"]["session"]["roles"]["callees"]["accounts"][0]["password"] == "***"
        deadline = time.monotonic() + 240
        while (d := sqlite_stack.http.get(f"/v1/capacity/{sid}").json())["status"] in (
            "pending",
            "running",
        ):
            assert time.monotonic() < deadline, d
            time.sleep(1)
    assert d["status"] == "completed", d
    steps = d["result"]["steps"]
    rates = [s["rate"] for s in steps]
    assert rates[:3] == [20, 40, 80], steps
    assert [s["held"] for s in steps[:3]] == [True, True, False], steps
    assert "success_rate >= 99" in steps[2]["failed"]
    assert d["stop"] == "resolution"
    # It finds the SUT's 60 calls/s within 10 %, the next rate up breaking within 10 % of it.
    assert 54 <= d["highest_held"] <= 66, steps
    assert d["highest_held"] < d["lowest_broken"] <= d["highest_held"] * 1.1 + 1e-9, steps
    for s in steps:  # each step is a session with its own report, in the tenant
        step = sqlite_stack.http.get(f"/v1/sessions/{s['session_id']}").json()
        assert step["status"] == "completed" and step["name"].startswith("ratelimited-kamailio")
    listed = sqlite_stack.http.get("/v1/capacity").json()
    assert sid in [i["id"] for i in listed["items"]]


def test_the_example_is_valid() -> None:
    import yaml

    example = Path(__file__).parent.parent / "examples" / "capacity" / "rate-limited-kamailio.yaml"
    spec = CapacitySearchSpec.model_validate(yaml.safe_load(example.read_text()))
    assert spec.window == 10 and spec.step_spec(20, 0)["roles"]["callers"]["duration_s"] == 13


def test_the_capacity_schedule_example_is_valid_and_makes_a_search() -> None:
    import yaml

    from sipflow.capacity import scheduled_search
    from sipflow.schedule_spec import ScheduleSpec

    path = Path(__file__).parent.parent / "examples" / "schedules" / "capacity-regression.yaml"
    clear = ScheduleSpec.model_validate(yaml.safe_load(path.read_text())).model_dump(mode="json")
    # Stored as its peak step (what the tenant's policy checks), searched from its start.
    assert clear["session"]["roles"]["callers"]["rate"] == 160
    made = CapacitySearchSpec.model_validate(
        scheduled_search(clear["name"], clear["session"], clear["capacity"])
    )
    assert (made.start, made.ceiling, made.window) == (20, 160, 20)
    assert made.step_spec(40, 1)["roles"]["callers"]["rate"] == 40
    assert clear["rules"] == {"capacity": "-10%"}
