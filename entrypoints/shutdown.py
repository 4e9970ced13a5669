"""What `sipflow up` does with running sessions when it is told to stop (Ctrl-C / SIGTERM).

By default it cancels them: each session's workflow gets Temporal's cancellation and runs its
own clean-up (runners stopped, network and broker logins removed, verdict `cancelled`), and the
stack waits for that, at most Settings.stop_cancel_timeout_s, still supervising its processes
(a worker that dies meanwhile is started again: the clean-up needs it). With --keep-sessions it
leaves them: Temporal, the broker and the database keep their state on disk, so the sessions
resume at the next `sipflow up` on the same data directory, and their runners are bounded by the
dead man's switch (RUNNER_SILENCE_S without the worker's keepalives) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from temporalio.client import Client, WorkflowExecutionStatus

from sipflow.payload_codec import data_converter
from sipflow.settings import Settings
from sipflow.workflow_types import WORKFLOW_NAME

CONNECT_TIMEOUT_S = 5.0
OPEN_SESSIONS = f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus = 'Running'"


async def _client(settings: Settings) -> Client:
    return await asyncio.wait_for(
        Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        ),
        CONNECT_TIMEOUT_S,
    )


async def _open_ids(client: Client) -> list[str]:
    return [wf.id async for wf in client.list_workflows(OPEN_SESSIONS)]


def open_sessions(settings: Settings) -> list[str]:
    """Workflow ids of the sessions still running (empty when Temporal cannot be asked)."""

    async def ask() -> list[str]:
        return await _open_ids(await _client(settings))

    try:
        return asyncio.run(ask())
    except Exception:  # Temporal down: nothing can be cancelled anyway
        return []


async def _cancel(settings: Settings, ids: list[str]) -> None:
    client = await _client(settings)
    for wid in ids:
        with contextlib.suppress(Exception):  # already closed meanwhile
            await client.get_workflow_handle(wid).cancel()


async def _still_open(settings: Settings, ids: list[str]) -> list[str]:
    client = await _client(settings)
    left = []
    for wid in ids:
        try:
            desc = await client.get_workflow_handle(wid).describe()
        except Exception:
            continue
        if desc.status == WorkflowExecutionStatus.RUNNING:
            left.append(wid)
    return left


def cancel_sessions(
    settings: Settings, ids: list[str], timeout: float, tick: Callable[[], None]
) -> list[str]:
    """Cancels the sessions and waits for their workflows to close; returns those still open
    after `timeout`. tick() runs about once a second meanwhile (the supervisor's check)."""
    asyncio.run(_cancel(settings, ids))
    deadline = time.monotonic() + timeout
    left = ids
    while left and time.monotonic() < deadline:
        tick()
        time.sleep(1)
        try:
            left = asyncio.run(_still_open(settings, left))
        except Exception:  # Temporal restarting: ask again
            continue
    return left
