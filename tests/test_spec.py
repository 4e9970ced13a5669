"""The session spec: valid specs parse, every wrong field is named in the error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sipflow.spec import SessionSpec


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": 10, "max_calls": 20}},
        "thresholds": ["success_rate >= 99.5", "failed_calls == 0", "response_time_p95_ms < 300"],
    }


def error_locs(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_valid_spec_parses_thresholds() -> None:
    spec = SessionSpec.model_validate(base())
    assert [str(t) for t in spec.parsed_thresholds()] == [
        "success_rate >= 99.5",
        "failed_calls == 0",
        "response_time_p95_ms < 300",
    ]
    assert spec.expected_duration_s() == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("path", "value", "loc"),
    [
        (("roles", "callers", "rate"), -5, "roles.callers.rate"),
        (("roles", "callers", "transport"), "sctp", "roles.callers.transport"),
        (("roles", "callers", "scenario"), "dance", "roles.callers.scenario"),
        (("roles", "callees", "agents"), 0, "roles.callees.agents"),
        (("roles", "callers", "bogus"), 1, "roles.callers.bogus"),
        (("version",), 2, "version"),
    ],
)
def test_wrong_field_is_named(path: tuple[str, ...], value: Any, loc: str) -> None:
    data = base()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert loc in [p for p, _ in error_locs(data)]


def test_threshold_on_unknown_metric_is_an_error_not_a_pass() -> None:
    data = base()
    data["thresholds"] = ["success_rate >= 99", "mos_score > 4"]
    locs = error_locs(data)
    assert locs[0][0] == "thresholds.1"
    assert "unknown metric 'mos_score'" in locs[0][1]


def test_malformed_threshold() -> None:
    data = base()
    data["thresholds"] = ["success_rate about 99"]
    assert error_locs(data)[0][0] == "thresholds.0"


def test_session_must_end() -> None:
    data = base()
    del data["roles"]["callers"]["max_calls"]
    assert "max_calls, duration_s" in error_locs(data)[0][1]


def test_registering_callees_need_accounts_with_passwords() -> None:
    data = base()
    data["target"] = {"host": "127.0.0.1", "port": 5090}
    assert "roles.callees.accounts" in error_locs(data)[0][1]
    data["roles"]["callees"]["accounts"] = [{"user": "bob"}]
    assert "needs a password" in error_locs(data)[0][1]
    data["roles"]["callees"]["accounts"] = [{"user": "bob", "password": "secret"}]
    SessionSpec.model_validate(data)


def test_custom_scenario_must_be_sipp_xml() -> None:
    data = base()
    data["roles"]["callers"]["scenario"] = {"xml": "<notascenario/>"}
    assert any("root element must be <scenario>" in m for _, m in error_locs(data))
    data["roles"]["callers"]["scenario"] = {"xml": "<scenario><unclosed></scenario>"}
    assert any("not well-formed" in m for _, m in error_locs(data))
    data["roles"]["callers"]["scenario"] = {"xml": '<scenario name="x"></scenario>'}
    SessionSpec.model_validate(data)


def test_xml_entity_expansion_is_refused() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaa">]><scenario>&a;</scenario>'
    data = base()
    data["roles"]["callers"]["scenario"] = {"xml": bomb}
    assert any("not well-formed" in m for _, m in error_locs(data))


def test_every_caller_agent_gets_a_call() -> None:
    data = base()
    data["roles"]["callers"].update(agents=4, max_calls=3)
    (loc, msg), *_ = error_locs(data)
    assert loc == "roles.callers" and "at least agents (4)" in msg
