"""The agent's on-disk spool (runners/spool.py, runners/mqtt_link.py) against a real mosquitto:
nothing the broker did not acknowledge is lost, neither when the agent dies (kill -9) nor when
the broker is down longer than paho's in-memory queue holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from runners import mqtt_link
from runners.mqtt_link import MqttLink
from runners.spool import Spool
from sipflow.messages import RunnerState, control_topic, runner_client_id, runner_topic
from tests.runner_fixtures import (
    Collector,
    Mosquitto,
    collector_factory,
    free_port,
    mosquitto,
    wait_for,
)

__all__ = ["collector_factory", "mosquitto"]  # fixtures used by name


class Stat(BaseModel):
    seq: int


def _link(broker: Mosquitto, sid: str, spool_dir: Path, port: int | None = None) -> MqttLink:
    login = broker.add_runner(sid, "r1")
    return MqttLink(
        "127.0.0.1",
        port or broker.port,
        client_id=runner_client_id(sid, "r1"),
        will_topic=runner_topic(sid, "r1", "state"),
        will_payload=RunnerState(session_id=sid, runner_id="r1", state="lost", time=0),
        control_topic=control_topic(sid),
        username=login["mqtt_username"],
        password=login["mqtt_password"],
        spool=Spool(spool_dir, 1000),
    )


def _seqs(col: Collector) -> list[int]:
    return [m["seq"] for m in col.of("r1", "stats")]


def test_spool_of_a_killed_agent_is_delivered_by_the_next_one(
    mosquitto: Mosquitto, collector_factory: Any, tmp_path: Path
) -> None:
    sid = "t" + uuid.uuid4().hex[:10]
    col = collector_factory(sid)
    spool_dir = tmp_path / "spool"
    # An agent whose broker is unreachable spools 25 intervals, then is killed with SIGKILL.
    script = textwrap.dedent(f"""
        import os, signal, time
        from tests.faults.test_agent_spool import Stat
        from runners.mqtt_link import MqttLink
        from runners.spool import Spool
        from sipflow.messages import RunnerState, control_topic, runner_topic
        from pathlib import Path
        sid = {sid!r}
        spool = Spool(Path({str(spool_dir)!r}), 1000)
        will = RunnerState(session_id=sid, runner_id="r1", state="lost", time=0)
        link = MqttLink("127.0.0.1", {free_port()}, client_id="x", will_topic="w",
            will_payload=will, control_topic=control_topic(sid), spool=spool)
        link.start(0.1)
        topic = runner_topic(sid, "r1", "stats")
        for seq in range(1, 26):
            link.publish_durable(f"stats-{{seq:09d}}", topic, Stat(seq=seq))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(list(spool_dir.glob("*.msg"))) == 25
    # The agent started again on the same work directory sends them once it is connected.
    link = _link(mosquitto, sid, spool_dir)
    try:
        assert link.start(10)
        assert link.wait_all_acked(20)
        wait_for(lambda: len(_seqs(col)) >= 25, 10, "spooled stats")
        assert sorted(set(_seqs(col))) == list(range(1, 26))
        assert list(spool_dir.glob("*.msg")) == []
    finally:
        link.close()


def test_long_broker_outage_beyond_pahos_queue_loses_nothing(
    mosquitto: Mosquitto,
    collector_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt_link, "MEMORY_QUEUE_WITH_SPOOL", 5)
    sid = "t" + uuid.uuid4().hex[:10]
    col = collector_factory(sid)
    link = _link(mosquitto, sid, tmp_path / "spool")
    topic = runner_topic(sid, "r1", "stats")
    try:
        assert link.start(10)
        for seq in range(1, 6):
            link.publish_durable(f"stats-{seq:09d}", topic, Stat(seq=seq))
        assert link.wait_all_acked(10)
        mosquitto.stop()
        wait_for(lambda: not link.connected.is_set(), 10, "link notices the outage")
        for seq in range(6, 61):  # 55 intervals while the broker is down: paho holds 5
            link.publish_durable(f"stats-{seq:09d}", topic, Stat(seq=seq))
        assert link.spooled() == 55
        time.sleep(1)
        mosquitto.start()
        assert link.wait_all_acked(30), (link.unacked(), link.spooled())
        wait_for(lambda: len(set(_seqs(col))) >= 60, 15, "all stats")
        assert sorted(set(_seqs(col))) == list(range(1, 61))
        assert link.spooled() == 0
    finally:
        link.close()
