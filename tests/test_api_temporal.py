"""The API against a real Temporal dev server (no worker): start, describe, cancel, health."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi.testclient import TestClient
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from api.main import create_app
from entrypoints.stack import Stack
from sipflow.db import migrate
from sipflow.payload_codec import data_converter
from sipflow.workflow_types import SA_STATUS, SA_TARGET, SA_TENANT, WORKFLOW_NAME, workflow_id
from tests.api_fixtures import (
    VALID_SPEC,
    bearer,
    make_settings,
    mint_key,
    temporal_stack_fixture,  # noqa: F401
)


async def _describe(address: str, wid: str, terminate: bool = False) -> dict[str, Any]:
    # The API's keys: make_settings keeps the default data_dir.
    converter = data_converter(make_settings("sqlite://", address))
    client = await Client.connect(address, data_converter=converter)
    handle = client.get_workflow_handle(wid)
    desc = await handle.describe()
    events = [e.event_type async for e in handle.fetch_history_events()]
    if terminate:
        await handle.terminate("test cleanup")
    sa = desc.typed_search_attributes
    return {
        "type": desc.workflow_type,
        "task_queue": desc.task_queue,
        "status": desc.status,
        "tenant": sa.get(SA_TENANT),
        "sa_status": sa.get(SA_STATUS),
        "target": sa.get(SA_TARGET),
        "cancel_requested": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in events,
    }


def test_post_starts_the_workflow_and_cancel_reaches_it(
    temporal_stack: Stack, database_url: str
) -> None:
    settings = make_settings(database_url, temporal_stack.temporal_address)
    with TestClient(create_app(settings), headers=bearer(mint_key(database_url))) as api:
        health = api.get("/v1/health")
        assert health.status_code == 200, health.text
        assert health.json()["temporal"]["ok"] and health.json()["database"]["ok"]

        r = api.post("/v1/sessions", json=VALID_SPEC)
        assert r.status_code == 201, r.text
        created = r.json()
        sid = created["id"]
        assert re.fullmatch(r"[0-9a-f]{12}", sid)
        assert created["workflow_id"] == f"session-{sid}" == workflow_id(sid)
        assert created["status"] == "pending"
        assert r.headers["location"] == created["links"]["self"]

        wf = asyncio.run(_describe(temporal_stack.temporal_address, workflow_id(sid)))
        assert wf["type"] == WORKFLOW_NAME
        assert wf["task_queue"] == "sipflow-api-tests"
        assert wf["status"] == WorkflowExecutionStatus.RUNNING
        assert (wf["tenant"], wf["sa_status"], wf["target"]) == ("team-a", "pending", "direct")
        assert not wf["cancel_requested"]

        # No worker: the detail still answers, without live progress.
        d = api.get(f"/v1/sessions/{sid}").json()
        assert (d["status"], d["progress"]) == ("pending", None)

        assert api.post(f"/v1/sessions/{sid}/cancel").status_code == 202
        wf = asyncio.run(_describe(temporal_stack.temporal_address, workflow_id(sid), True))
        assert wf["cancel_requested"]

        # The workflow is gone (terminated) although the row is still pending: 409.
        assert api.post(f"/v1/sessions/{sid}/cancel").status_code == 409
        assert api.post(f"/v1/sessions/{sid}/rate", json={"rate": 3}).status_code == 409


def test_target_is_a_search_attribute(temporal_stack: Stack, tmp_path: Any) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", temporal_stack.temporal_address)
    migrate(settings.resolved_database_url)
    key = mint_key(settings.resolved_database_url)
    spec = {
        **VALID_SPEC,
        "target": {"host": "10.1.2.3", "port": 5070, "registrar": False},
        "roles": {"callers": {"scenario": "options", "rate": 1, "max_calls": 1}},
    }
    with TestClient(create_app(settings), headers=bearer(key)) as api:
        r = api.post("/v1/sessions", json=spec)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        assert api.get(f"/v1/sessions/{sid}").json()["target"] == "10.1.2.3:5070"
    wf = asyncio.run(_describe(temporal_stack.temporal_address, workflow_id(sid), True))
    assert wf["target"] == "10.1.2.3:5070"
