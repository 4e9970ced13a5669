"""GET /v1/runner/...: a runner's files, only with its own token and only while its session runs
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from backends.container_plan import container_runner_config
from backends.runner_tokens import runner_token, token_key
from sipflow import store
from sipflow.db import session_scope
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from tests.api_fixtures import dead_address

CUSTOM = '<?xml version="1.0"?><scenario name="mine"><send><![CDATA[OPTIONS x]]></send></scenario>'
SPEC: dict[str, Any] = {
    "name": "files",
    "backend": "docker",
    "target": {"host": "127.0.0.1", "port": 5090, "registrar": True},
    "roles": {
        "callees": {
            "agents": 1,
            "scenario": "answer",
            "accounts": [{"user": "bob", "password": "bob-secret"}],
        },
        "callers": {
            "agents": 2,
            "scenario": {"xml": CUSTOM},
            "rate": 10,
            "max_calls": 10,
            "accounts": [{"user": "alice", "password": "alice-secret"}],
        },
    },
}


@pytest.fixture(name="files")
def files_fixture(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(
        database_url=database_url,
        temporal_address=dead_address(),
        data_dir=tmp_path,
        mqtt_port=18830,
        api_port=18000,
    )
    with session_scope(database_url) as db:
        store.create_session(db, "s-running", "default", "files", SPEC, None)
        store.set_status(db, "s-running", "running")
        store.create_session(db, "s-done", "default", "files", SPEC, None)
        store.set_status(db, "s-done", "completed")
    with TestClient(create_app(settings)) as client:
        yield client, settings


def url(sid: str, rid: str, what: str) -> str:
    return f"/v1/runner/sessions/{sid}/runners/{rid}/{what}"


def auth(settings: Settings, sid: str, rid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {runner_token(token_key(settings), sid, rid)}"}


def test_runner_gets_its_files(files: tuple[TestClient, Settings]) -> None:
    client, settings = files
    h = auth(settings, "s-running", "caller-1")
    r = client.get(url("s-running", "caller-1", "config"), headers=h)
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert r.headers["cache-control"] == "no-store"
    # Seen from the container: named on the session network, broker and API on the host alias,
    # the SUT on the host's loopback reached through the alias too. No secrets in the config.
    assert (cfg["runner_id"], cfg["local_ip"]) == ("caller-1", "caller-1")
    assert (cfg["mqtt_host"], cfg["mqtt_port"]) == ("sipflow-host", 18830)
    assert cfg["remote"] == "sipflow-host:5090" and cfg["domain"] == "127.0.0.1"
    assert cfg["accounts"] == [] and cfg["scenario_xml"] is None
    assert cfg["work_dir"].startswith("/home/sipflow/runs/s-running/")

    accounts = client.get(url("s-running", "caller-1", "accounts"), headers=h)
    assert accounts.json() == [{"user": "alice", "password": "alice-secret", "domain": None}]
    scenario = client.get(url("s-running", "caller-1", "scenario"), headers=h)
    assert scenario.headers["content-type"].startswith("application/xml")
    assert scenario.text == CUSTOM

    callee = auth(settings, "s-running", "callee-0")
    answer = client.get(url("s-running", "callee-0", "scenario"), headers=callee)
    assert answer.status_code == 200 and "<scenario" in answer.text
    registrar = client.get(url("s-running", "callee-0", "config"), headers=callee).json()
    assert registrar["registrar"]["host"] == "sipflow-host"


def test_fargate_callers_call_callees_at_their_tasks_addresses(
    files: tuple[TestClient, Settings], database_url: str
) -> None:
    """No target: Fargate tasks have no names for each other, the callees' stored addresses."""
    client, settings = files
    spec = {k: v for k, v in SPEC.items() if k != "target"} | {"backend": "fargate"}
    with session_scope(database_url) as db:
        store.create_session(db, "s-fg", "default", "fargate", spec, None)
        store.set_status(db, "s-fg", "running")
    h = auth(settings, "s-fg", "caller-0")
    early = client.get(url("s-fg", "caller-0", "config"), headers=h)
    assert early.status_code == 409 and "callees have not started" in early.text, early.text
    with session_scope(database_url) as db:
        store.upsert_runner(db, "s-fg", "callee-0", "callee", "10.0.3.21")
    cfg = client.get(url("s-fg", "caller-0", "config"), headers=h).json()
    assert cfg["remote"].startswith("10.0.3.21:"), cfg
    # A docker session's callers still reach callees by name on the session network.
    with session_scope(database_url) as db:
        store.create_session(db, "s-dk", "default", "docker", spec | {"backend": "docker"}, None)
        store.set_status(db, "s-dk", "running")
        store.upsert_runner(db, "s-dk", "callee-0", "callee", "10.0.3.22")
    docker_cfg = client.get(
        url("s-dk", "caller-0", "config"), headers=auth(settings, "s-dk", "caller-0")
    ).json()
    assert docker_cfg["remote"].startswith("callee-0:"), docker_cfg


def test_a_dns_target_reaches_container_runners_as_resolved(
    files: tuple[TestClient, Settings], database_url: str
) -> None:
    """The stored spec keeps the domain; the runner's config has where it was resolved to."""
    client, settings = files
    spec = dict(SPEC, target={"domain": "sip.test", "dns": "srv", "registrar": True})
    with session_scope(database_url) as db:
        store.create_session(db, "s-dns", "default", "dns", spec, "sip.test (dns srv)")
        store.set_status(db, "s-dns", "running")
    h = auth(settings, "s-dns", "caller-0")
    early = client.get(url("s-dns", "caller-0", "config"), headers=h)
    assert early.status_code == 409 and "not resolved" in early.text, early.text
    resolved = {"host": "198.18.0.7", "port": 5071, "transport": "udp", "via": "SRV"}
    with session_scope(database_url) as db:
        store.set_target(db, "s-dns", "sip.test -> 198.18.0.7:5071/udp (SRV)", resolved)
    cfg = client.get(url("s-dns", "caller-0", "config"), headers=h).json()
    assert cfg["remote"] == "198.18.0.7:5071" and cfg["domain"] == "sip.test", cfg
    callee = client.get(
        url("s-dns", "callee-0", "config"), headers=auth(settings, "s-dns", "callee-0")
    )
    assert callee.json()["registrar"]["host"] == "198.18.0.7", callee.text


def test_wrong_or_missing_token_is_401(files: tuple[TestClient, Settings]) -> None:
    client, settings = files
    other_runner = auth(settings, "s-running", "caller-0")
    other_key = {"Authorization": f"Bearer {runner_token(b'another key entirely', 's', 'r')}"}
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        other_runner,  # caller-0's token does not open caller-1's files
        other_key,
    ):
        for what in ("config", "accounts", "scenario"):
            r = client.get(url("s-running", "caller-1", what), headers=headers)
            assert r.status_code == 401, (headers, what, r.text)
            assert "alice" not in r.text and "secret" not in r.text
    # Unknown sessions look the same as wrong tokens.
    assert client.get(url("nope", "caller-0", "config")).status_code == 401


def test_token_of_a_finished_session_is_403(files: tuple[TestClient, Settings]) -> None:
    client, settings = files
    for what in ("config", "accounts", "scenario"):
        r = client.get(
            url("s-done", "caller-0", what), headers=auth(settings, "s-done", "caller-0")
        )
        assert r.status_code == 403, r.text
        assert "alice" not in r.text
    # A runner the session does not have: 403 as well.
    r = client.get(
        url("s-running", "caller-9", "config"), headers=auth(settings, "s-running", "caller-9")
    )
    assert r.status_code == 403


def test_worker_and_api_agree_on_the_config(tmp_path: Path) -> None:
    """The key is shared through data_dir; the config is a pure function of spec and settings."""
    a, b = Settings(data_dir=tmp_path), Settings(data_dir=tmp_path)
    assert token_key(a) == token_key(b)
    assert (tmp_path / "secrets" / "runner-token.key").stat().st_mode & 0o077 == 0
    spec = SessionSpec.model_validate(SPEC)
    assert container_runner_config(spec, "s", "caller-0", a) == container_runner_config(
        spec, "s", "caller-0", b
    )
    explicit = Settings(data_dir=tmp_path, runner_token_secret="x" * 32)
    assert token_key(explicit) == b"x" * 32
