"""Call options (issue 13 item 3): templated headers, From/To/Request-URI and an outbound
proxy reach a real Kamailio as templated, per call (tests/sut/kamailio-call-options.cfg answers
only then); bad options are refused at their field."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runners.call_options import apply
from runners.scenario_files import built_in_path
from runners.sipp_command import SippFiles, build_command
from sipflow.plan import loopback_target_as, message_config, runner_configs
from sipflow.runner_config import MessageConfig, RunnerConfig
from sipflow.spec import CallOptions, SessionSpec
from sipflow.tenant_policy import PolicyViolation, TenantPolicy, check_spec
from tests.conftest import RunningStack
from tests.runner_fixtures import (
    AgentProcess,
    Mosquitto,
    agents,
    collector_factory,
    free_port,
    loopback_ip,
    mosquitto,
    wait_for,
)
from tests.sut.kamailio import kamailio

__all__ = ["agents", "collector_factory", "mosquitto"]  # fixtures used by name

StartAgent = Callable[[dict[str, Any]], AgentProcess]
DOMAIN = "sip.test"
CONFIG = Path(__file__).resolve().parent / "sut" / "kamailio-call-options.cfg"
OPTIONS = {
    "headers": {
        "P-Asserted-Identity": "<sip:{caller}.{call_number}@{caller_domain}>",
        "Diversion": "<sip:{callee}-office@{domain}>;reason=unconditional",
        "X-Call-Id-Copy": "{call_id}",
        "X-Call-Ref": "{session}-{call_number}",
    },
    "from": "sip:{caller}.{call_number}@{caller_domain}",
    "to": "sip:{callee}@{domain}",
    "request_uri": "sip:{callee}@{domain}",
}


def _spec(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": {"host": "127.0.0.1", "domain": DOMAIN, "registrar": False},
        "roles": {"callers": {"max_calls": 1, "call_to": ["bob"], "call_options": options}},
    }


def _errors(options: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(_spec(options))
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("options", "loc", "reason"),
    [
        ({"headers": {"Bad Name": "x"}}, ("headers", "Bad Name", "[key]"), "not a header name"),
        ({"headers": {"X-A": "a\r\nVia: evil"}}, ("headers", "X-A"), "control characters"),
        ({"headers": {"X-A": "{nope}"}}, ("headers", "X-A"), "unknown template variable {nope}"),
        ({"headers": {"X-A": "[field0]"}}, ("headers", "X-A"), "SIPp reads them as keywords"),
        ({"headers": {"X-A": "{caller"}}, ("headers", "X-A"), "unmatched"),
        ({"headers": {"call-id": "x"}}, ("headers", "call-id", "[key]"), "written by sipflow"),
        ({"from": "<sip:a@b>"}, ("from",), "not a sip:, sips: or tel: URI"),
        ({"request_uri": "sip:{who}@x"}, ("request_uri",), "unknown template variable"),
        ({"outbound_proxy": {"host": "a b"}}, ("outbound_proxy", "host"), "not an IP"),
    ],
)
def test_bad_options_are_refused_at_their_field(
    options: dict[str, Any], loc: tuple[str, ...], reason: str
) -> None:
    errors = _errors(options)
    assert len(errors) == 1, errors
    assert errors[0][0] == ("roles", "callers", "call_options", *loc)
    assert reason in errors[0][1]


def test_options_on_a_custom_scenario_are_refused_with_the_reason() -> None:
    spec = _spec({"headers": {"X-A": "1"}})
    spec["roles"]["callers"]["scenario"] = {"xml": "<scenario/>"}
    with pytest.raises(ValidationError, match="write them in the XML"):
        SessionSpec.model_validate(spec)
    spec["roles"]["callers"]["call_options"] = {"outbound_proxy": {"host": "127.0.0.9"}}
    assert SessionSpec.model_validate(spec).roles.callers.call_options is not None


def test_every_canonical_line_of_call_xml_is_replaced() -> None:
    text = built_in_path("call").read_text()
    messages = MessageConfig(
        headers=["X-A: 1"], from_uri="sip:f@x", to_uri="sip:t@x", request_uri="sip:r@x"
    )
    out = apply(text, messages)
    assert out.count("INVITE sip:r@x SIP/2.0") == 2 and "ACK sip:r@x SIP/2.0" in out
    assert out.count("From: <sip:f@x>") == 6
    assert out.count("To: <sip:t@x>") == 5 and out.count("X-A: 1") == 2
    assert "[field3]@[field4] SIP" not in out and "From: <sip:[field0]" not in out


def _options_caller(session: str, mqtt_port: int, remote: str, **extra: Any) -> dict[str, Any]:
    opts = CallOptions.model_validate(OPTIONS)
    messages = message_config(opts, session)
    assert messages is not None
    return {
        "session_id": session,
        "runner_id": "alice",
        "role": "caller",
        "scenario": "call",
        "local_ip": loopback_ip(),
        "remote": remote,
        "domain": DOMAIN,
        "accounts": [{"user": "alice"}],
        "call_to": ["bob"],
        "rate": 10,
        "max_calls": 6,
        "hold_ms": 50,
        "mqtt_port": mqtt_port,
        "messages": messages.model_dump(),
        **extra,
    }


def _callee(session: str, mqtt_port: int, registrar: str) -> dict[str, Any]:
    host, port = registrar.split(":")
    return {
        "session_id": session,
        "runner_id": "bob",
        "role": "callee",
        "scenario": "answer",
        "local_ip": loopback_ip(),
        "accounts": [{"user": "bob", "password": "secret"}],
        "registrar": {"host": host, "port": int(port), "domain": DOMAIN, "expires_s": 300},
        "mqtt_port": mqtt_port,
    }


def test_outbound_proxy_is_sipps_remote_sending_address(tmp_path: Path) -> None:
    cfg = RunnerConfig.model_validate(
        {
            **_options_caller("s", 1883, "127.0.0.1:5090"),
            "outbound_proxy": "127.0.0.2:5091",
            "work_dir": tmp_path,
        }
    )
    files = SippFiles(tmp_path / "s.xml", None, tmp_path / "st", tmp_path / "e")
    argv = build_command(cfg, "main", files)
    assert argv[1] == "127.0.0.1:5090"
    assert argv[argv.index("-rsa") + 1] == "127.0.0.2:5091"


def test_templated_headers_arrive_through_kamailio_and_without_them_calls_are_refused(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    col = collector_factory("opts-ok")
    with kamailio(free_port(), tmp_path / "kamailio", config=CONFIG) as sut:
        callee = agents(_callee("opts-ok", mosquitto.port, sut))
        wait_for(lambda: "ready" in col.states("bob"), 20, "bob registered")
        caller = agents(_options_caller("opts-ok", mosquitto.port, sut))
        assert caller.wait(60) == 0, caller.log()
        plain = _options_caller("opts-ok", mosquitto.port, sut, runner_id="carol", max_calls=2)
        del plain["messages"]
        refused = agents(plain)
        assert refused.wait(60) == 1, refused.log()
        callee.signal(signal.SIGTERM)
        callee.wait(30)
    alice, carol = col.done("alice"), col.done("carol")
    assert alice["ok"] and alice["summary"]["successful_calls"] == 6, alice
    assert carol["summary"]["failed_calls"] == 2, carol
    assert any("403" in reason for reason in carol["failure_reasons"]), carol


def test_calls_go_through_the_outbound_proxy(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    col = collector_factory("opts-proxy")
    registrar_port = free_port()
    proxy_cfg = tmp_path / "proxy.cfg"
    proxy_cfg.write_text(
        CONFIG.read_text().replace("REGISTRAR_ADDRESS", f"127.0.0.1:{registrar_port}")
    )
    with (
        kamailio(
            registrar_port, tmp_path / "registrar", config=CONFIG, defines=("REQUIRE_PROXY",)
        ) as registrar,
        kamailio(
            free_port(), tmp_path / "proxy", config=proxy_cfg, defines=("OUTBOUND_PROXY",)
        ) as proxy,
    ):
        callee = agents(_callee("opts-proxy", mosquitto.port, registrar))
        wait_for(lambda: "ready" in col.states("bob"), 20, "bob registered")
        caller = agents(
            _options_caller("opts-proxy", mosquitto.port, registrar, outbound_proxy=proxy)
        )
        assert caller.wait(60) == 0, caller.log()
        callee.signal(signal.SIGTERM)
        callee.wait(30)
    assert col.done("alice")["summary"]["successful_calls"] == 6


def test_plan_gives_callers_the_rendered_options_and_the_proxy(tmp_path: Path) -> None:
    options = {**OPTIONS, "outbound_proxy": {"host": "127.0.0.1", "port": 5099}}
    spec = SessionSpec.model_validate(_spec(options))
    (cfg,) = runner_configs(
        spec,
        "sess1",
        "caller",
        addresses={"caller-0": "127.0.0.5"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1883,
        runs_dir=tmp_path,
    )
    assert cfg.outbound_proxy == "127.0.0.1:5099" and cfg.messages is not None
    assert "X-Call-Ref: sess1-[call_number]" in cfg.messages.headers
    assert cfg.messages.from_uri == "sip:[field0].[call_number]@[field1]"
    # Runners that do not share the host's loopback reach a loopback proxy at the host.
    seen = loopback_target_as(spec, "10.0.0.1").roles.callers.call_options
    assert seen is not None and seen.outbound_proxy is not None
    assert seen.outbound_proxy.host == "10.0.0.1"


def test_outbound_proxy_is_held_to_the_tenants_allowed_targets() -> None:
    options = {"outbound_proxy": {"host": "198.18.0.1"}}
    spec = SessionSpec.model_validate(_spec(options))
    policy = TenantPolicy(allowed_networks=["127.0.0.0/8"])
    with pytest.raises(PolicyViolation) as info:
        check_spec(policy, spec)
    assert info.value.loc == ("roles", "callers", "call_options", "outbound_proxy", "host")


def test_a_session_with_call_options_passes_through_kamailio(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    """Spec -> API -> workflow -> plan -> runner: the SUT answers only the templated INVITEs."""
    with kamailio(free_port(), tmp_path / "kamailio", config=CONFIG) as sut:
        host, port = sut.split(":")
        spec = {
            "target": {"host": host, "port": int(port), "domain": DOMAIN, "registrar": True},
            "roles": {
                "callees": {"accounts": [{"user": "bob", "password": "secret"}]},
                "callers": {
                    "rate": 10,
                    "max_calls": 5,
                    "accounts": [{"user": "alice"}],
                    "call_options": OPTIONS,
                },
            },
        }
        body = sqlite_stack.run(spec, timeout=120)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 5
