"""/v1/schedules on a real database (SQLite, PostgreSQL) and a real Temporal server (no worker):
validation with the field's path, write-only secrets (also in Temporal's copy of the schedule),
tenants, pause/resume, update, trigger, backfill and delete reaching Temporal's schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from temporalio.api.workflowservice.v1 import DescribeScheduleRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.main import create_app
from entrypoints.stack import Stack
from sipflow import secret_store
from sipflow.accounts import Role
from sipflow.crypto import keyring
from sipflow.db import session_scope
from tests.api_fixtures import (
    bearer,
    client_as,
    make_settings,
    mint_key,
    temporal_stack_fixture,  # noqa: F401
)

PASSWORD = "hunter2-sip"
TOKEN = "tok-very-secret"


@pytest.fixture(name="client")
def client_fixture(database_url: str, temporal_stack: Stack) -> Iterator[TestClient]:
    settings = make_settings(database_url, temporal_stack.temporal_address)
    with TestClient(create_app(settings), headers=bearer(mint_key(database_url))) as client:
        yield client


def body(**kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "name": "nightly",
        "session": {
            "name": "nightly-session",
            "target": {"host": "127.0.0.1", "port": 5060},
            "roles": {
                "callees": {
                    "agents": 1,
                    "scenario": "answer",
                    "accounts": [{"user": "alice", "password": PASSWORD}],
                },
                "callers": {"agents": 1, "scenario": "call", "rate": 5, "max_calls": 5},
            },
        },
        "schedule": {"cron": ["0 3 * * *"], "every_s": [3600], "time_zone": "Europe/Berlin"},
        "overlap": "buffer_one",
        "rules": {"response_time_p95_ms": "+20%", "success_rate": "-0.5"},
        "alerts": [
            {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "token": TOKEN},
            {"kind": "email", "host": "127.0.0.1", "sender": "a@b.c", "to": ["d@e.f"],
             "username": "u", "password": "smtp-pass"},
        ],
    }  # fmt: skip
    b.update(kw)
    return b


def _describe_raw(stack: Stack, sched: str) -> bytes:
    async def go() -> bytes:
        client = await Client.connect(stack.temporal_address)  # no codec: what the CLI shows
        req = DescribeScheduleRequest(namespace="default", schedule_id=f"schedule-{sched}")
        return (await client.workflow_service.describe_schedule(req)).SerializeToString()

    return asyncio.run(go())


def _paused(stack: Stack, sched: str) -> tuple[bool, str]:
    async def go() -> tuple[bool, str]:
        client = await Client.connect(stack.temporal_address)
        desc = await client.get_schedule_handle(f"schedule-{sched}").describe()
        return desc.schedule.state.paused, desc.schedule.state.note or ""

    return asyncio.run(go())


def test_create_keeps_secrets_write_only(client: TestClient, temporal_stack: Stack) -> None:
    r = client.post("/v1/schedules", json=body())
    assert r.status_code == 201, r.text
    shown = r.json()
    sched = shown["id"]
    text = client.get(f"/v1/schedules/{sched}").text
    for secret in (PASSWORD, TOKEN, "smtp-pass"):
        assert secret not in text and secret not in r.text
    got = client.get(f"/v1/schedules/{sched}").json()
    assert got["spec"]["alerts"][0]["token"] == "***"
    assert got["spec"]["session"]["roles"]["callees"]["accounts"][0]["password"] == "***"
    assert got["temporal_schedule_id"] == f"schedule-{sched}"
    assert len(got["next_runs"]) > 0
    raw = _describe_raw(temporal_stack, sched)
    assert PASSWORD.encode() not in raw and b"binary/encrypted" in raw
    assert b"ScheduledRunWorkflow" in raw
    listed = client.get("/v1/schedules").json()
    assert [s["id"] for s in listed["items"]] == [sched]
    # update: "***" keeps the stored secrets, the version grows
    r = client.put(f"/v1/schedules/{sched}", json=got["spec"] | {"name": "nightly-2"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["name"] == "nightly-2"
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.resolved_database_url) as db:
        name = f"schedule/{sched}/alerts/0/token"
        assert secret_store.get(db, keyring(settings), "team-a", name) == TOKEN
    assert PASSWORD.encode() not in _describe_raw(temporal_stack, sched)


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"schedule": {"cron": ["61 * * * *"]}}, ["body", "schedule", "cron", 0]),
        ({"schedule": {"cron": ["* * *"]}}, ["body", "schedule", "cron", 0]),
        ({"schedule": {"every_s": [5]}}, ["body", "schedule", "every_s", 0]),
        ({"schedule": {"every_s": [60], "time_zone": "Mars/Base"}},
         ["body", "schedule", "time_zone"]),
        ({"rules": {"bogus_metric": "+5%"}}, ["body", "rules", "bogus_metric", "[key]"]),
        ({"rules": {"success_rate": "5"}}, ["body", "rules", "success_rate"]),
        ({"overlap": "sometimes"}, ["body", "overlap"]),
        ({"alerts": [{"kind": "webhook", "url": "http://203.0.113.9/x"}]},
         ["body", "alerts", "0", "url"]),
    ],
)  # fmt: skip
def test_bad_input_is_422_with_the_field_and_creates_nothing(
    client: TestClient, change: dict[str, Any], loc: list[Any]
) -> None:
    r = client.post("/v1/schedules", json=body(**change))
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(got[: len(loc)] == loc for got in locs), locs
    assert client.get("/v1/schedules").json()["total"] == 0


def test_invalid_session_spec_names_its_field(client: TestClient) -> None:
    b = body()
    b["session"]["roles"]["callers"]["rate"] = -1
    r = client.post("/v1/schedules", json=b)
    assert r.status_code == 422
    assert ["body", "session", "roles", "callers", "rate"] in [e["loc"] for e in r.json()["detail"]]
    assert PASSWORD not in r.text


def test_tenants_roles_and_lifecycle(
    client: TestClient, database_url: str, temporal_stack: Stack
) -> None:
    sched = client.post("/v1/schedules", json=body()).json()["id"]
    other = client_as(client, mint_key(database_url, "team-b", Role.admin))
    assert other.get(f"/v1/schedules/{sched}").status_code == 404
    assert other.post(f"/v1/schedules/{sched}/pause", json={}).status_code == 404
    assert other.get("/v1/schedules").json()["total"] == 0
    viewer = client_as(client, mint_key(database_url, "team-a", Role.viewer))
    assert viewer.get(f"/v1/schedules/{sched}").status_code == 200
    assert viewer.post(f"/v1/schedules/{sched}/trigger").status_code == 403

    r = client.post(f"/v1/schedules/{sched}/pause", json={"note": "SBC upgrade"})
    assert r.status_code == 200 and r.json()["paused"]
    assert _paused(temporal_stack, sched) == (True, "SBC upgrade")
    r = client.post(f"/v1/schedules/{sched}/resume", json={"note": "done"})
    assert r.status_code == 200 and not r.json()["paused"]
    assert _paused(temporal_stack, sched) == (False, "done")
    assert client.post(f"/v1/schedules/{sched}/trigger").status_code == 202
    window = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T03:00:00Z"}
    assert client.post(f"/v1/schedules/{sched}/backfill", json=window).status_code == 202
    backwards = {"start_at": window["end_at"], "end_at": window["start_at"]}
    assert client.post(f"/v1/schedules/{sched}/backfill", json=backwards).status_code == 422

    assert client.delete(f"/v1/schedules/{sched}").status_code == 204
    assert client.get(f"/v1/schedules/{sched}").status_code == 404
    with pytest.raises(RPCError) as err:
        _paused(temporal_stack, sched)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    with session_scope(database_url) as db:
        assert secret_store.names(db, "team-a", f"schedule/{sched}/") == []
