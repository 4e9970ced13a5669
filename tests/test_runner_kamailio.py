"""Callee registers at a real Kamailio (digest auth) and answers calls it routes."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.runner_fixtures import (
    AgentProcess,
    Mosquitto,
    agents,
    collector_factory,
    free_port,
    loopback_ip,
    mosquitto,
    stat_file_rows,
    wait_for,
)
from tests.sut.kamailio import kamailio

__all__ = ["agents", "collector_factory", "mosquitto"]  # fixtures used by name

StartAgent = Callable[[dict[str, Any]], AgentProcess]
DOMAIN = "sip.test"


def _callee(session: str, mqtt_port: int, sut: str, password: str) -> dict[str, Any]:
    host, port = sut.split(":")
    return {
        "session_id": session,
        "runner_id": "bob",
        "role": "callee",
        "scenario": "answer",
        "local_ip": loopback_ip(),
        "local_port": 5070,
        "accounts": [{"user": "bob", "password": password}],
        "registrar": {"host": host, "port": int(port), "domain": DOMAIN, "expires_s": 300},
        "mqtt_port": mqtt_port,
    }


def test_call_through_kamailio(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "kam-ok"
    col = collector_factory(session)
    with kamailio(free_port(), tmp_path / "kamailio") as sut:
        callee = agents(_callee(session, mosquitto.port, sut, "secret"))
        wait_for(lambda: "ready" in col.states("bob"), 20, "bob registered and ready")
        assert col.states("bob") == ["starting", "registering", "ready"]
        caller = agents(
            {
                "session_id": session,
                "runner_id": "alice",
                "role": "caller",
                "scenario": "call",
                "local_ip": loopback_ip(),
                "remote": sut,
                "domain": DOMAIN,
                "accounts": [{"user": "alice", "password": "secret"}],
                "call_to": ["bob"],
                "rate": 20,
                "max_calls": 40,
                "hold_ms": 100,
                "mqtt_port": mosquitto.port,
            }
        )
        assert caller.wait(60) == 0, caller.log()
        callee.signal(signal.SIGTERM)
        assert callee.wait(30) == 0, callee.log()
    alice, bob = col.done("alice"), col.done("bob")
    assert alice["ok"] and alice["summary"]["successful_calls"] == 40, alice
    assert alice["summary"]["failed_calls"] == 0
    assert bob["ok"] and bob["summary"]["successful_calls"] == 40, bob
    assert stat_file_rows(caller.work_dir / "main-stat.csv")[-1].cumulative.successful_calls == 40
    assert (callee.work_dir / "register-counts.csv").exists()  # not published, not "stat"


def test_wrong_password_fails_registration(
    tmp_path: Path, mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = "kam-401"
    col = collector_factory(session)
    with kamailio(free_port(), tmp_path / "kamailio") as sut:
        callee = agents(_callee(session, mosquitto.port, sut, "wrong"))
        assert callee.wait(60) == 1, callee.log()
    done = col.done("bob")
    assert not done["ok"]
    assert done["last_seq"] == 0 and done["exit_code"] == 1
    assert done["failure_reasons"] == {"REGISTER: 401 Unauthorized": 1}
    assert col.states("bob") == ["starting", "registering", "failed"]
    assert col.of("bob", "state")[-1]["detail"] == "REGISTER: 401 Unauthorized x1"
    assert col.of("bob", "stats") == []
