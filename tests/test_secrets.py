"""Write-only SIP passwords through the real stack (Temporal, mosquitto, API, worker, SIPp), on
SQLite and PostgreSQL: the password is stored encrypted and shown as "***"; it is nowhere in the
Temporal history (payloads decoded from base64 too), the database, the data folder (logs and runs
included) or the retained MQTT messages; "run again" keeps it by reference; the codec endpoint
decodes what the history holds, for an admin only."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from api.main import create_app
from backends.broker_auth import RUNNER_TOPICS
from backends.runner_tokens import INGEST_USER, broker_password, token_key
from entrypoints.stack import temporal_binary
from runners.injection import auth_field, write_injection
from sipflow import secret_store
from sipflow.accounts import Role
from sipflow.crypto import keyring
from sipflow.db import session_scope
from sipflow.payload_codec import ENCODING
from sipflow.runner_config import AccountConfig
from sipflow.session_secrets import MASK, secret_name
from sipflow.settings import Settings
from tests.api_fixtures import bearer, mint_key
from tests.conftest import PG_ADMIN_URL, RunningStack


def _spec(caller_pw: str, callee_pw: str, **callers: Any) -> dict[str, Any]:
    return {
        "name": "secrets",
        "roles": {
            "callees": {
                "agents": 1,
                "scenario": "answer",
                "accounts": [{"user": "bob", "password": callee_pw}],
            },
            "callers": {
                "agents": 1,
                "scenario": "call",
                "rate": 10,
                "accounts": [{"user": "alice", "password": caller_pw}],
                **({"max_calls": 5} | callers),
            },
        },
        "thresholds": ["success_rate >= 100"],
    }


def _workflow_json(rs: RunningStack, sid: str) -> str:
    out = subprocess.run(
        [temporal_binary(), "workflow", "show", "--output", "json", "-w", f"session-{sid}",
         "--address", rs.stack.temporal_address],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout


def _payloads(node: Any) -> Iterator[dict[str, Any]]:
    """Every {metadata, data} payload in the JSON of a history."""
    if isinstance(node, dict):
        if "metadata" in node and isinstance(node.get("metadata"), dict) and "data" in node:
            yield node
        for v in node.values():
            yield from _payloads(v)
    elif isinstance(node, list):
        for v in node:
            yield from _payloads(v)


def _decoded_strings(node: Any) -> Iterator[bytes]:
    """Every string of the JSON, and its base64 decoding where it is base64."""
    if isinstance(node, dict):
        for v in node.values():
            yield from _decoded_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _decoded_strings(v)
    elif isinstance(node, str):
        yield node.encode()
        with contextlib.suppress(ValueError):
            yield base64.b64decode(node, validate=True)


def _database_text(rs: RunningStack, settings: Settings) -> bytes:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        db = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    name = url.rsplit("/", 1)[1]
    conninfo = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    out = []
    with psycopg.connect(conninfo) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        for (table,) in tables:
            for (row,) in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall():
                out.append(row)
    assert any("secrets" in r for r in out)  # the session row is there
    return "\n".join(out).encode()


def _retained(settings: Settings, port: int, wait_s: float = 2.0) -> list[bytes]:
    """Every retained message (only runner topics are ever retained), read with the ingest's
    login: the broker admits no anonymous client."""
    got: list[bytes] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.username_pw_set(INGEST_USER, broker_password(token_key(settings), INGEST_USER))
    client.on_connect = lambda c, *a: c.subscribe(RUNNER_TOPICS, qos=1)
    client.on_message = lambda c, u, m: got.append(m.topic.encode() + b" " + m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(wait_s)  # retained messages arrive right after the subscription
    client.disconnect()
    client.loop_stop()
    return got


def _secret_files_modes(runs: Path) -> dict[str, int]:
    return {
        str(p.relative_to(runs)): stat.S_IMODE(p.stat().st_mode)
        for pattern in ("runner.json", "*injection*.csv")
        for p in runs.glob(f"*/{pattern}")
    }


def test_password_is_write_only_everywhere(stack: RunningStack) -> None:
    caller_pw, callee_pw = f"cpw{uuid.uuid4().hex}", f"epw{uuid.uuid4().hex}"
    secrets = [caller_pw.encode(), callee_pw.encode()]
    settings = Settings(data_dir=stack.stack.data_dir, database_url=stack.stack.config.database_url)

    # A session with passwords, watched while its runners run: their files are owner-only.
    sid = stack.submit(_spec(caller_pw, callee_pw, max_calls=None, duration_s=3))
    stack.wait_phase(sid, "running callers")
    deadline = time.monotonic() + 3
    modes = _secret_files_modes(stack.runs_dir / sid)
    while not any("injection" in f for f in modes):  # the caller writes it at `go`
        assert time.monotonic() < deadline, f"no injection file: {modes}"
        time.sleep(0.05)
        modes = _secret_files_modes(stack.runs_dir / sid)
    assert any("runner.json" in f for f in modes)
    assert set(modes.values()) == {0o600}, modes
    body = stack.wait(sid)
    assert body["verdict"] == "pass", body["reasons"]

    # Shown as "***" by the API and every export.
    accounts = [body["spec"]["roles"][r]["accounts"][0] for r in ("callers", "callees")]
    assert [a["password"] for a in accounts] == [MASK, MASK]
    for path in ("", "/report.json", "/report.csv", "/junit.xml", "/metrics"):
        r = stack.http.get(f"/v1/sessions/{sid}{path}")
        assert r.status_code == 200, (path, r.text)
        assert not any(s in r.content for s in secrets), path
    listed = stack.http.get("/v1/sessions", params={"limit": 500}).content
    assert not any(s in listed for s in secrets)

    # Stored encrypted in the secret store, under the session's tenant.
    with session_scope(settings.resolved_database_url) as db:
        stored = secret_store.get(db, keyring(settings), "default", secret_name(sid, "callers", 0))
    assert stored == caller_pw

    # The history: payloads encrypted, no password in clear or in base64.
    history = json.loads(_workflow_json(stack, sid))
    found = list(_payloads(history))
    assert found
    encodings = {base64.b64decode(p["metadata"].get("encoding", "")) for p in found}
    assert ENCODING in encodings
    assert not any(s in blob for blob in _decoded_strings(history) for s in secrets)

    # Nowhere in the database, the data folder (Temporal's db, logs, runs) or retained MQTT.
    assert not any(s in _database_text(stack, settings) for s in secrets)
    assert _secret_files_modes(stack.runs_dir / sid) == {}  # removed at teardown
    for path in stack.stack.data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path
    retained = _retained(settings, stack.stack.config.mqtt_port)
    assert any(sid.encode() in m for m in retained)  # the runners' final states
    assert not any(s in m for m in retained for s in secrets)

    # The codec endpoint decodes what the history holds: for an admin only.
    app = create_app(settings.model_copy(update={"temporal_ui_url": "http://ui.test:8233"}))
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
    with TestClient(app) as client:
        assert client.post("/v1/codec/decode", json=started).status_code == 401
        viewer = bearer(mint_key(settings.resolved_database_url, "default", Role.viewer))
        assert client.post("/v1/codec/decode", json=started, headers=viewer).status_code == 403
        client.headers.update(bearer(stack.stack.api_key or ""))  # the stack's admin key
        r = client.post("/v1/codec/decode", json=started, headers={"Origin": "http://ui.test:8233"})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "http://ui.test:8233"
        clear = base64.b64decode(r.json()["payloads"][0]["data"])
        assert caller_pw.encode() in clear and callee_pw.encode() in clear
        other = client.post(
            "/v1/codec/decode", json=started, headers={"Origin": "http://evil.test"}
        )
        assert "access-control-allow-origin" not in other.headers

    # Run again by reference: "***" takes the stored passwords of the same role and user.
    again = stack.http.post("/v1/sessions", params={"copy_secrets_from": sid}, json=body["spec"])
    assert again.status_code == 201, again.text
    sid2 = again.json()["id"]
    body2 = stack.wait(sid2)
    assert body2["verdict"] == "pass", body2["reasons"]
    with session_scope(settings.resolved_database_url) as db:
        keys = keyring(settings)
        copied = [
            secret_store.get(db, keys, "default", secret_name(sid2, role, 0))
            for role in ("callers", "callees")
        ]
    assert copied == [caller_pw, callee_pw]
    # The copy's history holds them encrypted only.
    assert not any(
        s in blob
        for blob in _decoded_strings(json.loads(_workflow_json(stack, sid2)))
        for s in secrets
    )


def test_web_ui_is_told_the_codec_endpoint(sqlite_stack: RunningStack) -> None:
    stack = sqlite_stack.stack
    ui = httpx.get(f"{stack.temporal_ui_url}/api/v1/settings", timeout=10).json()
    assert ui["Codec"]["Endpoint"] == f"{stack.api_url}/v1/codec", ui


def test_run_again_refuses_what_it_cannot_resolve(stack: RunningStack) -> None:
    pw = f"pw{uuid.uuid4().hex}"
    spec = _spec(pw, pw)
    masked = json.loads(json.dumps(spec).replace(pw, MASK))
    # "***" without a session to copy from, from an unknown session, for an unknown user.
    r = stack.http.post("/v1/sessions", json=masked)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "password", r.text
    r = stack.http.post("/v1/sessions", params={"copy_secrets_from": "nosuch"}, json=masked)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "copy_secrets_from"]
    sid = stack.submit(spec)
    other_user = json.loads(json.dumps(masked).replace('"alice"', '"carol"'))
    r = stack.http.post("/v1/sessions", params={"copy_secrets_from": sid}, json=other_user)
    assert r.status_code == 422 and "carol" in r.text, r.text
    # Another tenant's session cannot be copied from: it is not there for that tenant's key.
    with stack.client_for("other-team", "operator") as other_tenant:
        r = other_tenant.post("/v1/sessions", params={"copy_secrets_from": sid}, json=masked)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "copy_secrets_from"]
    stack.wait(sid)


def test_validation_errors_do_not_echo_passwords(stack: RunningStack) -> None:
    pw = f"pw{uuid.uuid4().hex}"
    # A spec-level error: pydantic's `input` is the whole spec, passwords included.
    spec_level = _spec(pw, pw)
    spec_level["target"] = {"host": "127.0.0.1", "registrar": True}
    spec_level["roles"]["callees"]["agents"] = 2  # two registering callees, one account
    r = stack.http.post("/v1/sessions", json=spec_level)
    assert r.status_code == 422, r.text
    assert "each callee agent registers" in r.text and pw not in r.text, r.text
    assert MASK in r.text
    # An error on a password field itself: its input is the password.
    field_level = _spec(pw, pw)
    field_level["roles"]["callers"]["accounts"][0]["password"] = ["not", pw]
    r = stack.http.post("/v1/sessions", json=field_level)
    assert r.status_code == 422 and pw not in r.text, r.text
    errors = r.json()["detail"]
    on_password = [e for e in errors if e["loc"][-1] == "password"]
    assert on_password and all(e["input"] == MASK for e in on_password), errors


def test_injection_file_is_owner_only_from_the_start(tmp_path: Path) -> None:
    old = tmp_path / "main-injection.csv"
    old.write_text("x")
    old.chmod(0o644)
    umask = os.umask(0)  # the mode must not depend on the process's umask
    try:
        write_injection(old, [["a", "[authentication username=a password=p]"]])
    finally:
        os.umask(umask)
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_a_password_sipp_cannot_inject_is_not_echoed() -> None:
    with pytest.raises(ValueError, match="password contains") as err:
        auth_field(AccountConfig(user="alice", password="hunter2;x"))
    assert "hunter2" not in str(err.value)
