"""The admission activity: a session runs when the machine carries it, else it stays queued."""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client

from sipflow import admission
from sipflow.db import session_scope
from sipflow.settings import Settings
from sipflow.workflow_types import SIGNAL_ADMISSION, workflow_id

log = logging.getLogger(__name__)


class AdmitSession(BaseModel):
    session_id: str
    runners: int
    attempt: int = 0  # how many times it asked before


class AdmissionActivities:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        self.max_runners = admission.runner_limit(
            settings.max_running_runners, settings.runner_memory_mb
        )
        self.max_sessions = settings.max_running_sessions
        self.poll_s = settings.admission_poll_s
        self.poll_max_s = settings.admission_poll_max_s

    @activity.defn
    def admit_session(self, req: AdmitSession) -> float:
        """0 when the session was admitted (status `running`); else seconds to wait before
        asking again (status stays `queued`)."""
        with session_scope(self.url) as db:
            ok = admission.admit(
                db, req.session_id, req.runners, self.max_runners, self.max_sessions
            )
        if ok:
            return 0.0
        return max(0.05, min(self.poll_s * 1.5 ** min(req.attempt, 30), self.poll_max_s))


class QueueWaker:
    """When a session ends, the sessions queued longest ask for admission again at once
    (signal), instead of at their next poll. Called from the finish_session activity's thread."""

    def __init__(self, settings: Settings, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        self.url = settings.resolved_database_url
        self.client = client
        self.loop = loop
        self.count = settings.admission_wake

    def wake(self) -> None:
        if self.count <= 0:
            return
        with session_scope(self.url) as db:
            ids = admission.oldest_queued(db, self.count)
        for sid in ids:
            asyncio.run_coroutine_threadsafe(self._signal(sid), self.loop)

    async def _signal(self, session_id: str) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id(session_id)).signal(SIGNAL_ADMISSION)
        except Exception as exc:  # it polls anyway
            log.debug("admission wake of %s not delivered: %r", session_id, exc)
