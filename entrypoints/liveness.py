"""Which sessions may still run, for the sweeper: its stored status is not final AND its
workflow is still open in Temporal (it may resume and clean up after itself). A session whose
workflow is gone (terminated, or Temporal's history lost) is swept even if its row still says
`running`; when Temporal cannot be asked, only the stored status counts (keep, to be safe)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from backends.sweeper import db_still_running
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings
from sipflow.workflow_types import workflow_id

log = logging.getLogger(__name__)


async def _workflow_open(settings: Settings, session_id: str) -> bool:
    try:
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        )
        desc = await client.get_workflow_handle(workflow_id(session_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        log.warning("cannot ask Temporal about session %s: %s", session_id, exc)
        return True
    except Exception as exc:  # unreachable: do not sweep what may resume
        log.warning("cannot ask Temporal about session %s: %s", session_id, exc)
        return True
    return desc.status == WorkflowExecutionStatus.RUNNING


def still_running(settings: Settings) -> Callable[[str], bool]:
    stored = db_still_running(settings)

    def check(session_id: str) -> bool:
        # Its own event loop: the sweeper runs in a thread of its own (or in the CLI).
        return stored(session_id) and asyncio.run(_workflow_open(settings, session_id))

    return check
