"""The runner agent as a real process: real SIPp, real mosquitto, no mocks."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.publish as mqtt_publish

from backends.runner_tokens import CONTROL_USER
from sipflow import histogram
from sipflow.messages import control_topic
from tests.runner_fixtures import (
    AgentProcess,
    Collector,
    Mosquitto,
    agents,
    collector_factory,
    loopback_ip,
    mosquitto,
    retained_state,
    stat_file_rows,
    wait_for,
)

__all__ = ["agents", "collector_factory", "mosquitto"]  # fixtures used by name

StartAgent = Callable[[dict[str, Any]], AgentProcess]


def _session() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _callee(session: str, port: int, ip: str, **kw: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "runner_id": "callee1",
        "role": "callee",
        "scenario": "answer",
        "local_ip": ip,
        "mqtt_port": port,
        **kw,
    }


def _caller(session: str, port: int, ip: str, remote: str, **kw: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "runner_id": "caller1",
        "role": "caller",
        "scenario": "call",
        "local_ip": ip,
        "remote": remote,
        "mqtt_port": port,
        **kw,
    }


def _check_stream(col: Collector, agent: AgentProcess, runner: str, calls: int) -> None:
    done = col.done(runner)
    stats = col.of(runner, "stats")
    seqs = [m["seq"] for m in stats]
    assert sorted(set(seqs)) == list(range(1, done["last_seq"] + 1)), seqs
    by_seq = {m["seq"]: m for m in stats}  # at-least-once: duplicates carry the same content
    periodic_ok = sum(m["periodic"]["successful_calls"] for m in by_seq.values())
    rows = stat_file_rows(agent.work_dir / "main-stat.csv")
    assert len(rows) == done["last_seq"]
    assert periodic_ok == done["summary"]["successful_calls"] == calls
    assert rows[-1].cumulative.successful_calls == calls
    assert by_seq[done["last_seq"]]["cumulative"]["successful_calls"] == calls
    assert all(len(m["histogram"]) == histogram.N_BUCKETS for m in by_seq.values())
    assert sum(sum(m["histogram"]) for m in by_seq.values()) == calls


def test_direct_call_stream(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee_ip, caller_ip = loopback_ip(), loopback_ip()
    callee = agents(_callee(session, mosquitto.port, callee_ip))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    caller = agents(
        _caller(session, mosquitto.port, caller_ip, f"{callee_ip}:5060", rate=20, max_calls=50)
    )
    assert caller.wait(60) == 0, caller.log()
    done = col.done("caller1")
    assert done["ok"] and done["exit_code"] == 0 and done["failure_reasons"] == {}
    assert col.states("caller1") == ["starting", "running", "done"]
    _check_stream(col, caller, "caller1", 50)

    callee.signal(signal.SIGTERM)
    assert callee.wait(30) == 0, callee.log()
    assert col.states("callee1") == ["starting", "ready", "stopping", "done"]
    assert col.done("callee1")["ok"]
    _check_stream(col, callee, "callee1", 50)
    assert retained_state(mosquitto.port, session, "caller1") == "done"


def test_rate_change_and_stop_control(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee_ip, caller_ip = loopback_ip(), loopback_ip()
    callee = agents(_callee(session, mosquitto.port, callee_ip))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    caller = agents(_caller(session, mosquitto.port, caller_ip, f"{callee_ip}:5060", rate=10))
    wait_for(lambda: len(col.of("caller1", "stats")) >= 3, 15, "caller stats")

    def publish(payload: str) -> None:
        mqtt_publish.single(
            control_topic(session),
            payload,
            qos=1,
            hostname="127.0.0.1",
            port=mosquitto.port,
            auth=mosquitto.auth(CONTROL_USER),  # type: ignore[arg-type]
        )

    publish('{"schema":1,"type":"rate","rate":60}')
    seq_at_change = len(col.of("caller1", "stats"))
    wait_for(lambda: len(col.of("caller1", "stats")) >= seq_at_change + 4, 15, "stats after")
    publish('{"schema":1,"type":"stop"}')
    assert caller.wait(30) == 0, caller.log()
    assert callee.wait(30) == 0, callee.log()

    stats = sorted(col.of("caller1", "stats"), key=lambda m: m["seq"])
    before = [m["call_rate"] for m in stats[1 : seq_at_change - 1]]
    after = [m["call_rate"] for m in stats[seq_at_change + 1 : seq_at_change + 3]]
    assert all(5 <= r <= 15 for r in before), before
    assert all(r >= 45 for r in after), after
    assert "stopping" in col.states("caller1") and col.states("caller1")[-1] == "done"
    assert col.states("callee1")[-1] == "done"
    created = col.done("caller1")["summary"]["calls_created"]
    assert (
        col.done("caller1")["ok"] and col.done("callee1")["summary"]["successful_calls"] == created
    )


def test_lost_will_on_kill(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee = agents(_callee(session, mosquitto.port, loopback_ip()))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    sipp = callee.sipp_pids()
    callee.signal(signal.SIGKILL)
    callee.wait(10)
    for pid in sipp:  # SIPp runs in its own session and outlives a killed agent
        os.kill(pid, signal.SIGKILL)
    # keepalive 15 s: the broker notices within 1.5 x keepalive; a closed socket is faster
    wait_for(lambda: "lost" in col.states("callee1"), 30, "lost will")
    assert retained_state(mosquitto.port, session, "callee1") == "lost"


def test_broker_restart_mid_run(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee_ip, caller_ip = loopback_ip(), loopback_ip()
    callee = agents(_callee(session, mosquitto.port, callee_ip))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    caller = agents(
        _caller(session, mosquitto.port, caller_ip, f"{callee_ip}:5060", rate=20, max_calls=140)
    )
    wait_for(lambda: len(col.of("caller1", "stats")) >= 2, 15, "first stats")
    mosquitto.stop()
    time.sleep(2.5)
    mosquitto.start()
    assert caller.wait(60) == 0, caller.log()
    _check_stream(col, caller, "caller1", 140)
    assert col.done("caller1")["ok"]
    # mosquitto publishes the Last Will when it shuts down; the agent republishes its state
    assert retained_state(mosquitto.port, session, "caller1") == "done"
    callee.signal(signal.SIGTERM)
    assert callee.wait(30) == 0
    _check_stream(col, callee, "callee1", 140)
