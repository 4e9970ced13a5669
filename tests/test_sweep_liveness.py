"""The sweeper keeps every session whose workflow is still open (it may resume) and sweeps
those whose workflow is gone, whatever their row says (real Temporal, SQLite, namespaces)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import Client

from backends.local import LocalBackend
from backends.netns import namespace, namespaces
from backends.sweeper import sweep
from entrypoints.liveness import still_running
from entrypoints.stack import Stack
from sipflow import store
from sipflow.db import migrate, session_scope
from sipflow.payload_codec import data_converter
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.workflow_types import WORKFLOW_NAME, SessionInput, workflow_id
from tests.api_fixtures import dead_address, temporal_stack_fixture  # noqa: F401


async def start_open(settings: Settings, sids: list[str]) -> None:
    """Open workflows: nobody polls their task queue."""
    client = await Client.connect(
        settings.temporal_address, data_converter=data_converter(settings)
    )
    for sid in sids:
        await client.start_workflow(
            WORKFLOW_NAME,
            SessionInput(session_id=sid, tenant="default", spec={}),
            id=workflow_id(sid),
            task_queue=f"nobody-{uuid.uuid4().hex[:6]}",
        )


async def terminate(settings: Settings, sids: list[str]) -> None:
    client = await Client.connect(
        settings.temporal_address, data_converter=data_converter(settings)
    )
    for sid in sids:
        await client.get_workflow_handle(workflow_id(sid)).terminate()


def test_open_workflows_are_kept_and_gone_ones_swept(temporal_stack: Stack, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address=temporal_stack.temporal_address)
    migrate(settings.resolved_database_url)
    sids = {k: uuid.uuid4().hex[:12] for k in ("open", "gone", "final")}
    with session_scope(settings.resolved_database_url) as db:
        for kind, sid in sids.items():
            store.create_session(db, sid, "default", kind, {}, None)
            store.set_status(db, sid, "completed" if kind == "final" else "running")
    asyncio.run(start_open(settings, [sids["open"], sids["final"]]))
    backend = LocalBackend.from_settings(settings)
    try:
        for sid in sids.values():
            backend.provision(sid, ["caller-0"])
        may_run = still_running(settings)
        assert may_run(sids["open"]) and not may_run(sids["gone"]) and not may_run(sids["final"])
        removed = sweep(backend, may_run)
        assert set(removed) == {sids["gone"], sids["final"]}
        assert namespace(sids["open"]) in namespaces()
        # Temporal unreachable: only the stored status counts, nothing running is swept.
        blind = still_running(settings.model_copy(update={"temporal_address": dead_address()}))
        assert blind(sids["open"]) and blind(sids["gone"]) and not blind(sids["final"])
    finally:
        for sid in sids.values():
            backend.teardown(Placement(session_id=sid))
        asyncio.run(terminate(settings, [sids["open"], sids["final"]]))
