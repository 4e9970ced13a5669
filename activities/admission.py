"""The admission activity: a session runs when the machine carries it, else it stays queued."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from sipflow import admission
from sipflow.db import session_scope
from sipflow.settings import Settings


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
