"""The broker's access control: mosquitto's dynamic-security plugin, no anonymous access.

Why dynamic security rather than a password file and ACL patterns: a runner's credential exists
only while its session does, so the broker must learn and forget users at run time. With a
password file the worker would have to rewrite the broker's files and SIGHUP it, which works
only where both share a file system and a process namespace (not compose). With the plugin the
worker, holding the admin credential, creates and deletes clients over MQTT
(`$CONTROL/dynamic-security/v1`) wherever the broker runs; deployments keep stock mosquitto.

Who may do what (every password is derived from the runner token key, backends/runner_tokens.py):
- runner `runner/<session>/<runner>`: publish only under its own
  `sipflow/v1/sessions/<session>/runners/<runner>/`, subscribe only to its session's control
  topic. A role of its own per runner, created when its role starts and deleted at teardown.
- sipflow-ingest (worker) and sipflow-live (API dashboard): subscribe to runner topics, publish
  nothing. sipflow-control (worker): publish control messages only. sipflow-admin: the plugin's
  control topic only.
Anything else is denied (defaultACLAccess); a denied publish is dropped by the broker (MQTT 5
clients see reason 0x87 in the PUBACK), so the ingest never receives it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from backends.runner_tokens import (
    ADMIN_USER,
    CONTROL_USER,
    INGEST_USER,
    LIVE_USER,
    RUNNER_USER_PREFIX,
    broker_password,
    runner_broker_user,
    token_key,
)
from sipflow.messages import TOPIC_ROOT, control_topic, runner_client_id
from sipflow.settings import Settings

CONTROL_API = "$CONTROL/dynamic-security/v1"
RUNNER_TOPICS = f"{TOPIC_ROOT}/+/runners/+/+"
# The plugin hashes with PBKDF2-SHA512, 12-byte salt, 101 iterations (as mosquitto_ctrl does).
HASH_ITERATIONS = 101
PLUGIN_PATHS = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


class BrokerAuthError(RuntimeError):
    pass


def plugin_path() -> str:
    for path in PLUGIN_PATHS:
        if Path(path).exists():
            return path
    raise FileNotFoundError("mosquitto's dynamic-security plugin is missing (mosquitto >= 2.0)")


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "allow": True}


SERVICE_ACLS: dict[str, list[dict[str, Any]]] = {
    ADMIN_USER: [
        _acl("publishClientSend", f"{CONTROL_API}"),
        _acl("publishClientReceive", f"{CONTROL_API}/response"),
        _acl("subscribeLiteral", f"{CONTROL_API}/response"),
    ],
    INGEST_USER: [_acl("subscribePattern", RUNNER_TOPICS)],
    LIVE_USER: [_acl("subscribePattern", RUNNER_TOPICS)],
    CONTROL_USER: [_acl("publishClientSend", control_topic("+"))],
}
DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,  # what a client may subscribe to is the restriction
    "subscribe": False,
    "unsubscribe": True,
}


def runner_acls(session_id: str, runner_id: str) -> list[dict[str, Any]]:
    return [
        _acl("publishClientSend", f"{TOPIC_ROOT}/{session_id}/runners/{runner_id}/#"),
        _acl("subscribeLiteral", control_topic(session_id)),
    ]


def _hashed(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": HASH_ITERATIONS,
    }


def write_config(path: Path, key: bytes) -> None:
    """The plugin's file with the service clients (created, or refreshed for the current key);
    runner clients already in it stay (their sessions may resume after a restart). Written
    before the broker starts: the plugin rewrites it itself on every change."""
    doc: dict[str, Any] = {"clients": [], "roles": [], "groups": []}
    if path.exists():
        doc = json.loads(path.read_text())
    clients = [c for c in doc.get("clients", []) if c.get("username") not in SERVICE_ACLS]
    roles = [r for r in doc.get("roles", []) if r.get("rolename") not in SERVICE_ACLS]
    for user, acls in SERVICE_ACLS.items():
        clients.append(
            {
                "username": user,
                **_hashed(broker_password(key, user)),
                "roles": [{"rolename": user}],
            }
        )
        roles.append({"rolename": user, "acls": acls})
    doc.update(clients=clients, roles=roles, defaultACLAccess=DEFAULT_ACCESS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    tmp.replace(path)


def mosquitto_conf_lines(dynsec_file: Path, plugin: str | None = None) -> str:
    """What a mosquitto.conf needs for this: no anonymous clients, the plugin and its file."""
    return (
        "allow_anonymous false\n"
        f"plugin {plugin or plugin_path()}\n"
        f"plugin_opt_config_file {dynsec_file}\n"
    )


class DynsecAdmin:
    """One admin connection; `run` sends commands and returns the plugin's responses."""

    def __init__(self, host: str, port: int, key: bytes, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._responses: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._answered = threading.Event()  # subscribed, or the login refused
        self._refused: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sipflow-admin-{uuid.uuid4().hex[:12]}"
        )
        self.client.username_pw_set(ADMIN_USER, broker_password(key, ADMIN_USER))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._answered.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._answered.wait(timeout_s) or self._refused:
            self.close()
            why = self._refused or f"no answer in {timeout_s}s"
            raise BrokerAuthError(f"broker admin login: {why}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self._refused = str(rc)
            self._answered.set()
            return
        client.subscribe(f"{CONTROL_API}/response", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            for r in json.loads(msg.payload).get("responses", []):
                if "correlationData" in r:
                    self._responses[r["correlationData"]] = r
            self._cond.notify_all()

    def run(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [uuid.uuid4().hex for _ in commands]
        tagged = [{**c, "correlationData": i} for c, i in zip(commands, ids, strict=True)]
        self.client.publish(CONTROL_API, json.dumps({"commands": tagged}), qos=1)
        with self._cond:
            done = self._cond.wait_for(
                lambda: all(i in self._responses for i in ids), self.timeout_s
            )
            if not done:
                raise BrokerAuthError(f"no answer from dynamic security in {self.timeout_s}s")
            return [self._responses.pop(i) for i in ids]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> DynsecAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(responses: list[dict[str, Any]], tolerated: str) -> None:
    for r in responses:
        error = r.get("error")
        if error and tolerated not in error:
            raise BrokerAuthError(f"{r.get('command')}: {error}")


def admin(settings: Settings) -> DynsecAdmin:
    return DynsecAdmin(
        settings.mqtt_host, settings.mqtt_port, token_key(settings), settings.mqtt_admin_timeout_s
    )


def add_runners(settings: Settings, session_id: str, runner_ids: list[str]) -> None:
    """Idempotent: each runner's role and client (those that exist already stay)."""
    if runner_ids:
        with admin(settings) as a:
            add_clients(a, token_key(settings), session_id, runner_ids)


def add_clients(a: DynsecAdmin, key: bytes, session_id: str, runner_ids: Iterable[str]) -> None:
    commands: list[dict[str, Any]] = []
    for rid in runner_ids:
        user = runner_broker_user(session_id, rid)
        commands.append(
            {"command": "createRole", "rolename": user, "acls": runner_acls(session_id, rid)}
        )
        commands.append(
            {
                "command": "createClient",
                "username": user,
                "password": broker_password(key, user),
                "clientid": runner_client_id(session_id, rid),
                "roles": [{"rolename": user}],
            }
        )
    _check(a.run(commands), "already exists")


def runner_users(a: DynsecAdmin) -> list[str]:
    (r,) = a.run([{"command": "listClients", "verbose": False, "count": -1, "offset": 0}])
    _check([r], "\0")
    users: list[str] = r.get("data", {}).get("clients", [])
    return [u for u in users if u.startswith(RUNNER_USER_PREFIX)]


def session_of(user: str) -> str:
    return user[len(RUNNER_USER_PREFIX) :].split("/", 1)[0]


def remove_sessions(a: DynsecAdmin, session_ids: set[str]) -> list[str]:
    """Deletes the runner clients and roles of these sessions; returns the usernames removed."""
    gone = [u for u in runner_users(a) if session_of(u) in session_ids]
    commands: list[dict[str, Any]] = []
    for user in gone:
        commands.append({"command": "deleteClient", "username": user})
        commands.append({"command": "deleteRole", "rolename": user})
    if commands:
        _check(a.run(commands), "not found")
    return gone


def remove_session(settings: Settings, session_id: str) -> list[str]:
    with admin(settings) as a:
        return remove_sessions(a, {session_id})


def sessions_present(settings: Settings) -> set[str]:
    with admin(settings) as a:
        return {session_of(u) for u in runner_users(a)}


def add_stand_in(a: DynsecAdmin, key: bytes, username: str) -> dict[str, str]:
    """A client that publishes for every runner: for tests and benches that stand in for many
    runners at once (sipflow itself never makes one). Returns paho's `auth` for it."""
    acls = [_acl("publishClientSend", f"{TOPIC_ROOT}/+/runners/#")]
    password = broker_password(key, username)
    commands: list[dict[str, Any]] = [
        {"command": "createRole", "rolename": username, "acls": acls},
        {
            "command": "createClient",
            "username": username,
            "password": password,
            "roles": [{"rolename": username}],
        },
    ]
    _check(a.run(commands), "already exists")
    return {"username": username, "password": password}
