"""Shared helpers for the runner tests: free ports, loopback addresses, a real mosquitto, an MQTT
collector, and the agent run as a real process. Import what you need from here (no conftest)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backends import broker_auth
from backends.runner_tokens import INGEST_USER, broker_password, runner_broker_user
from sipflow.messages import session_runners_filter

REPO = Path(__file__).resolve().parent.parent
MOSQUITTO = "/usr/sbin/mosquitto"
_ip_counter = itertools.count(1)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_ip() -> str:
    """A fresh 127.201.x.y address for this test process (the whole 127/8 is loopback)."""
    n = next(_ip_counter)
    return f"127.201.{os.getpid() % 200 + 1}.{n % 250 + 1}"


def wait_for(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# Brokers of this test process by port: an agent started against one gets a runner credential
# of its own there (AgentProcess), as the worker's start_runners gives one.
BROKERS: dict[int, Mosquitto] = {}


class Mosquitto:
    """mosquitto on a free loopback port, with persistence so sessions survive a restart, and
    sipflow's access control (no anonymous clients; backends/broker_auth.py)."""

    def __init__(self, work_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.key = secrets.token_hex(16).encode()
        dynsec = work_dir / "dynamic-security.json"
        broker_auth.write_config(dynsec, self.key)
        self.conf = work_dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + broker_auth.mosquitto_conf_lines(dynsec)
            + f"persistence true\npersistence_location {work_dir}/\n"
            # as root mosquitto drops to user mosquitto and then cannot save in a root-owned dir
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.work_dir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: _tcp_open(self.port), 10, f"mosquitto on {self.port}")

        BROKERS[self.port] = self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def auth(self, user: str) -> dict[str, str]:
        """A service's login (runner_tokens.*_USER), as paho.mqtt.publish's `auth`."""
        return {"username": user, "password": broker_password(self.key, user)}

    def add_runner(self, session_id: str, runner_id: str) -> dict[str, str]:
        """Creates the runner's client and role; its RunnerConfig fields for them."""
        with broker_auth.DynsecAdmin("127.0.0.1", self.port, self.key, 10) as admin:
            broker_auth.add_clients(admin, self.key, session_id, [runner_id])
        user = runner_broker_user(session_id, runner_id)
        return {"mqtt_username": user, "mqtt_password": broker_password(self.key, user)}


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool


@dataclass
class Collector:
    """Subscribes to one session's runner topics (QoS 1, persistent session)."""

    port: int
    session_id: str
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-collector-{self.session_id}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.username_pw_set(**BROKERS[self.port].auth(INGEST_USER))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe(session_runners_filter(self.session_id), qos=1)
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Received(msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def start(self) -> Collector:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "collector subscription")
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def of(self, runner_id: str, kind: str) -> list[dict[str, Any]]:
        suffix = f"/runners/{runner_id}/{kind}"
        with self.lock:
            return [m.payload for m in self.messages if m.topic.endswith(suffix)]

    def states(self, runner_id: str) -> list[str]:
        return [p["state"] for p in self.of(runner_id, "state")]

    def done(self, runner_id: str, timeout: float = 60) -> dict[str, Any]:
        wait_for(lambda: bool(self.of(runner_id, "done")), timeout, f"done of {runner_id}")
        return self.of(runner_id, "done")[-1]


@pytest.fixture
def collector_factory(mosquitto: Mosquitto) -> Iterator[Callable[[str], Collector]]:
    made: list[Collector] = []

    def make(session_id: str) -> Collector:
        c = Collector(mosquitto.port, session_id).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def retained_state(port: int, session_id: str, runner_id: str, timeout: float = 5) -> str | None:
    """The retained state a fresh subscriber gets."""
    got: list[str] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.username_pw_set(**BROKERS[port].auth(INGEST_USER))
    topic = f"sipflow/v1/sessions/{session_id}/runners/{runner_id}/state"
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload)["state"])
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: bool(got), timeout, f"retained state of {runner_id}")
    except TimeoutError:
        return None
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1]


class AgentProcess:
    """`python -m runners.agent --config FILE` as a real process."""

    def __init__(self, config: dict[str, Any], work_root: Path) -> None:
        self.config = config
        self.dir = work_root / config["runner_id"]
        self.dir.mkdir(parents=True, exist_ok=True)
        config.setdefault("work_dir", str(self.dir / "work"))
        broker = BROKERS.get(config.get("mqtt_port", 1883))
        if broker is not None and "mqtt_username" not in config:
            config.update(broker.add_runner(config["session_id"], config["runner_id"]))
        self.config_path = self.dir / "runner.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = self.dir / "agent.log"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runners.agent", "--config", str(self.config_path)],
            cwd=REPO,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    @property
    def work_dir(self) -> Path:
        return Path(self.config["work_dir"])

    def sipp_pids(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        """SIGTERM (the agent stops SIPp cleanly), then SIGKILL for anything left."""
        pids = self.sipp_pids()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], AgentProcess]]:
    started: list[AgentProcess] = []

    def start(config: dict[str, Any]) -> AgentProcess:
        a = AgentProcess(config, tmp_path / "runners")
        started.append(a)
        return a

    yield start
    for a in started:
        a.cleanup()


def stat_file_rows(path: Path) -> list[Any]:
    from runners.sipp_stats import parse_stat_text

    return parse_stat_text(path.read_text())
