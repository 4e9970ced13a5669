"""Runners' dead man's switch (RunnerConfig.deadline_s / silence_s): an agent stops its traffic
by itself when its session's deadline passes or when the control plane falls silent. Real
agents, SIPp and mosquitto; then a real stack whose worker is killed mid-session."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.publish as mqtt_publish
import pytest

from backends.runner_tokens import CONTROL_USER
from sipflow.messages import control_topic
from tests.conftest import RunningStack, start_stack
from tests.runner_fixtures import (
    AgentProcess,
    Mosquitto,
    agents,
    collector_factory,
    loopback_ip,
    mosquitto,
    wait_for,
)
from tests.test_e2e_session import direct_spec, no_leftovers
from tests.test_runner_agent import _callee, _caller, _session

__all__ = ["agents", "collector_factory", "mosquitto"]  # fixtures used by name

StartAgent = Callable[[dict[str, Any]], AgentProcess]
SLACK_S = 5.0  # the agent's poll, SIPp's stop on SIGUSR1, process exit


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_deadline_stops_a_caller(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee_ip = loopback_ip()
    agents(_callee(session, mosquitto.port, callee_ip))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    started = time.monotonic()
    caller = agents(
        _caller(session, mosquitto.port, loopback_ip(), f"{callee_ip}:5060", rate=5, deadline_s=4)
    )
    wait_for(lambda: bool(caller.sipp_pids()), 10, "caller's SIPp")
    sipp = caller.sipp_pids()
    caller.wait(4 + SLACK_S + 10)  # its done message is acknowledged before it exits
    assert time.monotonic() - started >= 4
    assert not any(_alive(p) for p in sipp)
    done = col.done("caller1")
    assert not done["ok"] and "session deadline (4s) passed" in done["error"], done
    assert done["summary"]["calls_created"] > 0  # it did send calls until then


def test_silence_stops_a_callee_keepalives_keep_it(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    session = _session()
    col = collector_factory(session)
    callee = agents(_callee(session, mosquitto.port, loopback_ip(), silence_s=3))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    sipp = callee.sipp_pids()
    stop = threading.Event()

    def keepalives() -> None:
        while not stop.wait(1):
            mqtt_publish.single(
                control_topic(session),
                '{"schema":1,"type":"keepalive"}',
                hostname="127.0.0.1",
                port=mosquitto.port,
                auth=mosquitto.auth(CONTROL_USER),  # type: ignore[arg-type]
            )

    sender = threading.Thread(target=keepalives, daemon=True)
    sender.start()
    time.sleep(8)  # well past silence_s: the keepalives hold the switch
    assert callee.proc.poll() is None and all(_alive(p) for p in sipp), callee.log()
    stop.set()
    sender.join()
    silent_since = time.monotonic()
    wait_for(lambda: not any(_alive(p) for p in sipp), 3 + SLACK_S, "SIPp stopped by the switch")
    assert time.monotonic() - silent_since >= 2  # not before the silence
    callee.wait(15)
    done = col.done("callee1")
    assert "no word from the control plane for 3s" in done["error"], done


@pytest.fixture(scope="module")
def switch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # 10 s of silence: keepalives every 1 s hold it even on a loaded 2-core machine (at 6 s a
    # busy CI run once tripped it before the kill).
    env = {"SIPFLOW_RUNNER_SILENCE_S": "10", "SIPFLOW_CONTROL_KEEPALIVE_S": "1"}
    yield from start_stack(tmp_path_factory.mktemp("switch"), extra_env=env)


def _sipp_of(rs: RunningStack, sid: str) -> list[int]:
    ps = subprocess.run(["pgrep", "-f", f"sipp.*runs/{sid}/"], capture_output=True, text=True)
    return [int(p) for p in ps.stdout.split()]


def test_runners_of_a_killed_worker_stop_within_the_switch(switch_stack: RunningStack) -> None:
    rs = switch_stack
    sid = rs.submit(direct_spec(rate=10, max_calls=None, duration_s=120))
    rs.wait_phase(sid, "running callers", timeout=60)
    time.sleep(12)  # beyond the 10 s silence: the worker's keepalives hold the switch
    sipp = _sipp_of(rs, sid)
    assert len(sipp) == 2, sipp  # the callee's and the caller's SIPp
    rs.stack.kill_process("worker")
    killed = time.monotonic()
    wait_for(
        lambda: not any(_alive(p) for p in sipp), 10 + 2 * SLACK_S, "SIPp stopped by the switch"
    )
    assert time.monotonic() - killed >= 8  # not before the silence (less a keepalive's age)
    # A worker again: the session ends (its runners failed, with the switch's reason) and
    # cleans up after itself.
    rs.stack.start_worker()
    body = rs.wait(sid, timeout=120)
    assert body["verdict"] == "fail", json.dumps(body)[:3000]
    assert any("no word from the control plane" in r for r in body["reasons"]), body["reasons"]
    no_leftovers(rs, sid)


def test_held_caller_waits_for_a_late_go_within_its_switch(
    mosquitto: Mosquitto, collector_factory: Any, agents: StartAgent
) -> None:
    # An overloaded worker sent `go` after the caller's max_runtime_s; the caller waited no
    # longer and ended with no call ("pass with 0 calls"). It now waits within its switch.
    session = _session()
    col = collector_factory(session)
    callee_ip = loopback_ip()
    agents(_callee(session, mosquitto.port, callee_ip))
    wait_for(lambda: "ready" in col.states("callee1"), 15, "callee ready")
    cfg = _caller(session, mosquitto.port, loopback_ip(), f"{callee_ip}:5060", rate=10)
    cfg |= {"max_calls": 5, "wait_for_go": True, "max_runtime_s": 3, "deadline_s": 60}
    caller = agents(cfg)
    wait_for(lambda: "ready" in col.states("caller1"), 15, "caller ready")
    time.sleep(5)  # past max_runtime_s
    assert caller.proc.poll() is None, caller.log()
    mqtt_publish.single(
        control_topic(session),
        '{"schema":1,"type":"go"}',
        qos=1,
        hostname="127.0.0.1",
        port=mosquitto.port,
        auth=mosquitto.auth(CONTROL_USER),  # type: ignore[arg-type]
    )
    assert caller.wait(30) == 0, caller.log()
    done = col.done("caller1")
    assert done["ok"] and done["summary"]["successful_calls"] == 5, done
