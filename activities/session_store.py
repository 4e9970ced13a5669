"""Activities that record a session's life in the database: opened, summarized, finished."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from temporalio import activity

from sipflow import media_store, session_secrets, store
from sipflow.crypto import keyring
from sipflow.db import session_scope
from sipflow.flows import final_code_of
from sipflow.settings import Settings
from sipflow.step_results import step_metrics
from sipflow.summary import SessionMetrics, failure_reasons, runner_faults, summarize


class OpenSession(BaseModel):
    session_id: str
    tenant: str
    name: str
    spec: dict[str, Any]
    target: str | None
    # True: the session waits for admission (status `queued`, activities/admission.py).
    queued: bool = False


class RegisterRunners(BaseModel):
    session_id: str
    runners: list[tuple[str, str, str]]  # (runner id, role, address)


class SetStatus(BaseModel):
    session_id: str
    status: str


class SessionSummary(BaseModel):
    metrics: SessionMetrics
    reasons: list[str]
    # Of the reasons, the runners' own failures: they fail the session whatever the thresholds
    # (runners failed by failed calls are left to the thresholds).
    faults: list[str] = []


class FinishSession(BaseModel):
    session_id: str
    status: str
    verdict: str
    summary: dict[str, Any]
    reasons: list[str]


class StoreActivities:
    def __init__(self, settings: Settings, on_finish: Callable[[], None] | None = None) -> None:
        self.url = settings.resolved_database_url
        self.keys = keyring(settings)
        self.on_finish = on_finish  # e.g. wake queued sessions (activities/admission.py)

    @activity.defn
    def open_session(self, req: OpenSession) -> None:
        """Idempotent; also records sessions started without the API (e.g. by a schedule), their
        passwords in the secret store and "***" in the row."""
        with session_scope(self.url) as db:
            session_secrets.open_session(
                db, self.keys, req.session_id, req.tenant, req.name, req.spec, req.target
            )
            row = store.get_session(db, req.session_id)
            if not req.queued:
                store.set_status(db, req.session_id, "running")
            elif row is not None and row.status == "pending":
                store.set_status(db, req.session_id, "queued")

    @activity.defn
    def register_runners(self, req: RegisterRunners) -> None:
        with session_scope(self.url) as db:
            for rid, role, address in req.runners:
                store.upsert_runner(db, req.session_id, rid, role, address)

    @activity.defn
    def set_session_status(self, req: SetStatus) -> None:
        with session_scope(self.url) as db:
            store.set_status(db, req.session_id, req.status)

    @activity.defn
    def summarize_session(self, session_id: str) -> SessionSummary:
        with session_scope(self.url) as db:
            runners = store.runners(db, session_id)
            row = store.get_session(db, session_id)
            code = final_code_of(row.spec if row is not None else None)  # a flow's success
            metrics = summarize(store.intervals(db, session_id), runners, code)
            metrics.measured.update(media_store.measured(db, session_id))  # audio, if any
            if metrics.steps:  # a call script's expect_dtmf / expect audio: judged from media
                spec = row.spec if row is not None else None
                media_store.judge_steps(db, session_id, metrics.steps, spec)
                metrics.measured.update(step_metrics(metrics.steps))
            return SessionSummary(
                metrics=metrics,
                reasons=failure_reasons(metrics, runners),
                faults=runner_faults(runners),
            )

    @activity.defn
    def finish_session(self, req: FinishSession) -> None:
        with session_scope(self.url) as db:
            store.finish_session(
                db, req.session_id, req.status, req.verdict, req.summary, req.reasons
            )
        if self.on_finish is not None:
            self.on_finish()
