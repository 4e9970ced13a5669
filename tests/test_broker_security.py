"""The broker's access control on a real mosquitto (backends/broker_auth.py): no anonymous
client; a runner publishes only to its own topics and subscribes only to its session's control
topic; each service has only what it needs; a message forged into another session's topics is
refused by the broker and never stored; runner logins go at teardown and by the sweeper."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from backends import broker_auth
from backends.runner_tokens import (
    ADMIN_USER,
    CONTROL_USER,
    INGEST_USER,
    LIVE_USER,
    broker_password,
    runner_broker_user,
    token_key,
)
from backends.sweeper import db_still_running, sweep_broker
from sipflow import histogram, store
from sipflow.db import session_scope
from sipflow.messages import (
    Counters,
    StatsMessage,
    control_topic,
    runner_client_id,
    runner_topic,
)
from sipflow.settings import Settings
from tests.conftest import RunningStack
from tests.runner_fixtures import (
    MOSQUITTO,
    REPO,
    Collector,
    Mosquitto,
    _tcp_open,
    free_port,
    mosquitto,
    wait_for,
)
from tests.test_e2e_session import direct_spec

__all__ = ["mosquitto"]  # the fixture, used by name

NOT_AUTHORIZED = 135  # MQTT 5 reason code, in CONNACK, PUBACK and SUBACK alike


class Probe:
    """An MQTT 5 client that records the broker's reason codes."""

    def __init__(
        self, port: int, username: str | None, password: str | None = None, client_id: str = ""
    ) -> None:
        self.codes: dict[int | str, int] = {}
        self.got = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self._record("connect", rc.value)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self._record(mid, rc.value)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._record(mid, rcs[0].value)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.wait("connect")

    def _record(self, key: int | str, value: int) -> None:
        self.codes[key] = value
        self.got.set()

    def wait(self, key: int | str) -> int:
        wait_for(lambda: key in self.codes, 10, f"broker's answer to {key}")
        return self.codes[key]

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        return self.wait(self.client.publish(topic, payload, qos=1).mid)

    def subscribe(self, topic: str) -> int:
        _rc, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return self.wait(mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def service(broker: Mosquitto, user: str) -> Probe:
    return Probe(broker.port, **broker.auth(user))


def runner(broker: Mosquitto, sid: str, rid: str, client_id: str | None = None) -> Probe:
    login = broker.add_runner(sid, rid)
    client_id = client_id or runner_client_id(sid, rid)
    return Probe(broker.port, login["mqtt_username"], login["mqtt_password"], client_id)


def test_anonymous_and_wrong_passwords_are_refused(mosquitto: Mosquitto) -> None:
    assert Probe(mosquitto.port, None).codes["connect"] == NOT_AUTHORIZED
    assert Probe(mosquitto.port, INGEST_USER, "guess").codes["connect"] == NOT_AUTHORIZED
    # A runner's password is bound to its session and runner id.
    mosquitto.add_runner("sa", "caller-0")
    other = broker_password(mosquitto.key, runner_broker_user("sb", "caller-0"))
    assert Probe(mosquitto.port, "runner/sa/caller-0", other).codes["connect"] == NOT_AUTHORIZED
    assert service(mosquitto, INGEST_USER).codes["connect"] == 0


def test_a_runner_login_cannot_take_over_another_clients_id(mosquitto: Mosquitto) -> None:
    """Reusing a client id would disconnect its holder (and publish that runner's `lost` will,
    or drop the ingest's queued session): a runner's login connects only with its own id."""
    mosquitto.add_runner("sb", "caller-0")
    victim = runner(mosquitto, "sb", "caller-0")
    assert victim.codes["connect"] == 0
    for stolen in (runner_client_id("sb", "caller-0"), "sipflow-ingest-sb", "any"):
        thief = runner(mosquitto, "sa", "caller-0", client_id=stolen)
        assert thief.codes["connect"] == NOT_AUTHORIZED, stolen
        thief.close()
    time.sleep(0.3)
    assert victim.client.is_connected()
    victim.close()


def test_a_runner_publishes_only_to_its_own_topics(mosquitto: Mosquitto) -> None:
    seen_a, seen_b = (
        Collector(mosquitto.port, "sa").start(),
        Collector(mosquitto.port, "sb").start(),
    )
    mosquitto.add_runner("sb", "caller-0")
    forger = runner(mosquitto, "sa", "caller-0")
    try:
        assert forger.publish(runner_topic("sa", "caller-0", "stats"), b'{"own":1}') == 0
        # Into session B (whose caller-0 exists), into a sibling runner, into control topics.
        for topic in (
            runner_topic("sb", "caller-0", "stats"),
            runner_topic("sb", "caller-0", "done"),
            runner_topic("sa", "callee-0", "state"),
            control_topic("sa"),
            control_topic("sb"),
            "sipflow/v1/other",
        ):
            assert forger.publish(topic, b'{"forged":1}') == NOT_AUTHORIZED, topic
        wait_for(lambda: len(seen_a.messages) == 1, 5, "its own message")
        time.sleep(0.5)  # what was refused would have arrived by now
        assert [m.payload for m in seen_a.messages] == [{"own": 1}]
        assert seen_b.messages == []
    finally:
        forger.close()
        seen_a.stop()
        seen_b.stop()


def test_a_runner_subscribes_only_to_its_control_topic(mosquitto: Mosquitto) -> None:
    probe = runner(mosquitto, "sa", "callee-0")
    try:
        assert probe.subscribe(control_topic("sa")) == 1  # granted QoS 1
        for topic in (
            control_topic("sb"),
            control_topic("+"),
            runner_topic("sa", "caller-0", "stats"),
            "sipflow/v1/sessions/sa/runners/+/+",
            "#",
        ):
            assert probe.subscribe(topic) == NOT_AUTHORIZED, topic
    finally:
        probe.close()


def test_services_have_only_what_they_need(mosquitto: Mosquitto) -> None:
    stats = runner_topic("sa", "caller-0", "stats")
    probes = {user: service(mosquitto, user) for user in (INGEST_USER, LIVE_USER, CONTROL_USER)}
    admin = service(mosquitto, ADMIN_USER)
    try:
        for user in (INGEST_USER, LIVE_USER):
            assert probes[user].subscribe("sipflow/v1/sessions/sa/runners/+/+") == 1
            assert probes[user].subscribe(control_topic("sa")) == NOT_AUTHORIZED
            assert probes[user].publish(stats) == NOT_AUTHORIZED
            assert probes[user].publish(control_topic("sa")) == NOT_AUTHORIZED
        control = probes[CONTROL_USER]
        assert control.publish(control_topic("sa")) in (0, 16)  # 16: no subscriber yet
        assert control.publish(stats) == NOT_AUTHORIZED
        assert control.subscribe("sipflow/v1/sessions/sa/runners/+/+") == NOT_AUTHORIZED
        assert admin.publish(stats) == NOT_AUTHORIZED
        assert admin.subscribe("sipflow/#") == NOT_AUTHORIZED
        for user in (INGEST_USER, LIVE_USER, CONTROL_USER):
            assert probes[user].publish(broker_auth.CONTROL_API) == NOT_AUTHORIZED, user
    finally:
        for p in [*probes.values(), admin]:
            p.close()


def test_removed_runner_logins_are_refused_and_swept(mosquitto: Mosquitto) -> None:
    settings = Settings(
        mqtt_port=mosquitto.port, runner_token_secret=SecretStr(mosquitto.key.decode())
    )
    broker_auth.add_runners(settings, "alive", ["caller-0"])
    broker_auth.add_runners(settings, "dead", ["caller-0", "callee-0"])
    broker_auth.add_runners(settings, "dead", ["caller-0"])  # again: idempotent
    assert broker_auth.sessions_present(settings) == {"alive", "dead"}
    removed = sweep_broker(settings, lambda sid: sid == "alive")
    assert {k: sorted(v) for k, v in removed.items()} == {
        "dead": ["runner/dead/callee-0", "runner/dead/caller-0"]
    }
    assert broker_auth.sessions_present(settings) == {"alive"}
    user = runner_broker_user("dead", "caller-0")
    cid = runner_client_id("dead", "caller-0")
    refused = Probe(mosquitto.port, user, broker_password(mosquitto.key, user), cid)
    assert refused.codes["connect"] == NOT_AUTHORIZED
    assert broker_auth.remove_session(settings, "dead") == []  # a retry finds nothing


def _forged_stats(sid: str, seq: int) -> bytes:
    msg = StatsMessage(
        session_id=sid,
        runner_id="caller-0",
        role="caller",
        seq=seq,
        time=time.time(),
        periodic=Counters(calls_created=1000, failed_calls=1000),
        cumulative=Counters(calls_created=1000, failed_calls=1000),
        histogram=histogram.from_samples([10.0]),
    )
    return msg.model_dump_json(by_alias=True).encode()


def test_forged_messages_into_a_running_session_are_refused_and_not_stored(
    sqlite_stack: RunningStack,
) -> None:
    settings = sqlite_stack.stack.settings
    key = token_key(settings)
    sid = sqlite_stack.submit(direct_spec(rate=10, max_calls=None, duration_s=5))
    sqlite_stack.wait_phase(sid, "running callers")
    assert sid in broker_auth.sessions_present(settings)
    # A runner of another session, and a runner of this one, each try the caller's topics.
    # (A login of this session that no agent holds, so the session's own agents stay
    # connected: a login connects only with its runner's client id.)
    other = f"other-{uuid.uuid4().hex[:8]}"
    broker_auth.add_runners(settings, other, ["caller-0"])
    broker_auth.add_runners(settings, sid, ["callee-9"])
    port = sqlite_stack.stack.config.mqtt_port
    forgers = []
    for s, r in ((other, "caller-0"), (sid, "callee-9")):
        user = runner_broker_user(s, r)
        forgers.append(Probe(port, user, broker_password(key, user), runner_client_id(s, r)))
    try:
        for n, forger in enumerate(forgers):
            topic = runner_topic(sid, "caller-0", "stats")
            assert forger.publish(topic, _forged_stats(sid, 100_000 + n)) == NOT_AUTHORIZED
    finally:
        for f in forgers:
            f.close()
    body = sqlite_stack.wait(sid)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["failed_calls"] == 0
    with session_scope(settings.resolved_database_url) as db:
        seqs = [i.seq for i in store.intervals(db, sid) if i.runner_id == "caller-0"]
        last_seq = store.runner_last_seq(db, sid, "caller-0")
    # Every interval the caller sent is stored, and nothing else.
    assert last_seq and sorted(seqs) == list(range(1, last_seq + 1))
    # Teardown removed the session's logins; the sweeper removes the other's (no such session).
    assert sid not in broker_auth.sessions_present(settings)
    removed = sweep_broker(settings, db_still_running(settings))
    assert removed.get(other) == [runner_broker_user(other, "caller-0")]


def test_compose_broker_config_refuses_anonymous(tmp_path: Path) -> None:
    """deploy/mosquitto/mosquitto.conf with the file `sipflow broker-config` writes (as the
    compose file's mosquitto service does before the broker), on this host's mosquitto."""
    secret = "compose-" + uuid.uuid4().hex
    dynsec = tmp_path / "dynamic-security.json"
    env = {**os.environ, "SIPFLOW_RUNNER_TOKEN_SECRET": secret, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "entrypoints.cli", "broker-config", str(dynsec)]
    subprocess.run(cli, env=env, check=True, capture_output=True, cwd=tmp_path)
    assert dynsec.stat().st_mode & 0o077 == 0  # the hashes are the broker's only
    port = free_port()
    conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/").replace(
        "/usr/lib/mosquitto_dynamic_security.so", broker_auth.plugin_path()
    )
    (tmp_path / "mosquitto.conf").write_text(conf + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")])
    probes: list[Probe] = []
    try:
        wait_for(lambda: _tcp_open(port), 10, "mosquitto")
        assert Probe(port, None).codes["connect"] == NOT_AUTHORIZED
        key = secret.encode()
        ingest = Probe(port, INGEST_USER, broker_password(key, INGEST_USER))
        probes.append(ingest)
        assert ingest.codes["connect"] == 0
        settings = Settings(mqtt_port=port, runner_token_secret=SecretStr(secret))
        broker_auth.add_runners(settings, "sc", ["caller-0"])
        user = runner_broker_user("sc", "caller-0")
        cid = runner_client_id("sc", "caller-0")
        probes.append(Probe(port, user, broker_password(key, user), cid))
        assert probes[-1].publish(runner_topic("sc", "caller-0", "stats")) in (0, 16)
    finally:
        for p in probes:
            p.close()
        proc.terminate()
        proc.wait(10)
