"""Where a session's start-up time goes: its workflow history's events (activities scheduled,
started, completed; runner state signals) as offsets from a reference time (the POST)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from sipflow.payload_codec import data_converter
from sipflow.settings import Settings


async def _events(address: str, settings: Settings, workflow_id: str) -> list[tuple[float, str]]:
    client = await Client.connect(address, data_converter=data_converter(settings))
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    out: list[tuple[float, str]] = []
    for ev in history.events:
        t = ev.event_time.ToDatetime().timestamp()
        et = ev.event_type
        if et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            out.append((t, "workflow started"))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = ev.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[ev.event_id] = name
            out.append((t, f"{name} scheduled"))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = ev.activity_task_started_event_attributes
            out.append((t, f"{scheduled.get(started.scheduled_event_id, '?')} started"))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = ev.activity_task_completed_event_attributes
            out.append((t, f"{scheduled.get(completed.scheduled_event_id, '?')} completed"))
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = ev.workflow_execution_signaled_event_attributes
            if signaled.signal_name != "runner_event":
                continue
            payloads = list(signaled.input.payloads)
            values: list[Any] = await client.data_converter.decode(payloads)
            v = values[0] if values else {}
            if isinstance(v, dict):
                out.append((t, f"signal {v.get('runner_id')} {v.get('state')}"))
    return out


def breakdown(address: str, settings: Settings, workflow_id: str) -> list[tuple[float, str]]:
    return asyncio.run(_events(address, settings, workflow_id))
