"""Activities of the launcher workflow: record a scheduled run, judge it against its baseline,
send its alert to each channel (a failing channel is recorded, never changes the verdict)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.alert_channels import Alert, send_email, send_webhook
from sipflow import (
    capacity,
    capacity_store,
    regression,
    schedule_store,
    session_secrets,
    store,
    tenant_policy,
)
from sipflow.crypto import keyring
from sipflow.db import session_scope
from sipflow.models import AlertDeliveryRow, ScheduleRow, utcnow
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.workflow_types import schedule_id as temporal_schedule_id
from sipflow.workflow_types import workflow_id


class RecordRun(BaseModel):
    schedule_id: str
    session_id: str
    scheduled_at: datetime | None = None
    late_s: float | None = None
    missed: int | None = None  # Temporal's count of the schedule's missed runs, if known


class AdmitRun(BaseModel):
    schedule_id: str
    session_id: str
    tenant: str
    spec: dict[str, Any]


class Admission(BaseModel):
    refused: str | None = None  # why the tenant's policy refuses to start the run now
    tell: bool = False  # the first refusal in a row: alert it
    channels: int = 0


class OpenSearch(BaseModel):
    search_id: str
    tenant: str
    spec: dict[str, Any]  # sipflow.capacity.CapacitySearchSpec as JSON, clear passwords


class JudgeRun(BaseModel):
    schedule_id: str
    session_id: str
    cancelled: bool = False  # the launcher was cancelled (overlap "cancel other")


class Judged(BaseModel):
    state: str
    previous: str | None
    regressed: list[regression.Regressed] = []
    note: str | None = None
    channels: int = 0


class SendAlert(BaseModel):
    schedule_id: str
    session_id: str
    kind: str
    channel: int
    state: str
    previous: str | None
    regressed: list[regression.Regressed] = []
    max_attempts: int
    late_s: float | None = None
    missed: int | None = None  # for "missed": how many runs were newly missed
    reason: str | None = None  # for "skipped": why the run was not started


class ScheduleActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url
        self.keys = keyring(settings)

    @activity.defn
    async def count_missed_runs(self, schedule_id: str) -> int | None:
        """Temporal's count of the schedule's runs missed outside the catch-up window (the whole
        stack was down); None when the schedule is gone (a trigger after its deletion)."""
        handle = activity.client().get_schedule_handle(temporal_schedule_id(schedule_id))
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return desc.info.num_actions_missed_catchup_window

    @activity.defn
    def record_scheduled_run(self, req: RecordRun) -> int | None:
        """Records the run; returns how many runs were missed since an earlier run saw the count
        (each miss is told once, by the first run that sees it)."""
        with session_scope(self.url) as db:
            row = schedule_store.record_run(
                db, req.schedule_id, req.session_id, req.scheduled_at, req.late_s, req.missed
            )
            if req.missed is None or row.id is None:
                return 0
            return max(0, req.missed - schedule_store.missed_before(db, req.schedule_id, row.id))

    @activity.defn
    def admit_scheduled_run(self, req: AdmitRun) -> Admission:
        """The tenant's policy as it is now (its concurrent-sessions quota above all) decides if
        the run starts; a refused run is stored as skipped with the reason. Idempotent."""
        with session_scope(self.url) as db:
            run = schedule_store.run(db, req.session_id)
            schedule = schedule_store.get(db, req.schedule_id)
            if run is None or run.id is None:
                raise ApplicationError(f"no run {req.session_id}", non_retryable=True)
            channels = len((schedule.spec if schedule else {}).get("alerts") or [])
            if run.state == schedule_store.SKIPPED:  # a retry after the refusal was stored
                return Admission(refused=run.note, tell=False, channels=channels)
            try:
                spec = SessionSpec.model_validate(req.spec)
                tenant_policy.enforce(req.tenant, spec, db, self.settings)
            except tenant_policy.PolicyViolation as exc:
                before = schedule_store.previous_state(db, req.schedule_id, run.id, True)
                schedule_store.skip_run(db, run, f"{exc.limit}: {exc}")
                tell = before != schedule_store.SKIPPED
                return Admission(refused=run.note, tell=tell, channels=channels)
            return Admission(channels=channels)

    @activity.defn
    def open_scheduled_search(self, req: OpenSearch) -> None:
        """The capacity search row of a capacity schedule's run (passwords masked, as the API
        stores a search), made before its workflow starts. Idempotent."""
        with session_scope(self.url) as db:
            if capacity_store.get(db, req.search_id) is not None:
                return
            stored = {**req.spec, "session": session_secrets.masked(req.spec["session"])}
            capacity_store.create(db, req.search_id, req.tenant, stored["name"], stored)

    @activity.defn
    def judge_scheduled_run(self, req: JudgeRun) -> Judged:
        """The run's state: its session's verdict, or "regressed" when it passed but broke a
        rule against the baseline; stored on the run. Idempotent."""
        with session_scope(self.url) as db:
            run = schedule_store.run(db, req.session_id)
            session = store.get_session(db, req.session_id)
            schedule = schedule_store.get(db, req.schedule_id)
            if run is None or run.id is None:
                raise ApplicationError(f"no run {req.session_id}", non_retryable=True)
            # No row: the session failed before it could open one.
            verdict = (session.verdict if session else None) or "error"
            measured = ((session.summary if session else None) or {}).get("measured") or {}
            search = capacity_store.get(db, req.session_id) if session is None else None
            if search is not None:  # a capacity schedule's run: the search's answer
                verdict = capacity.verdict_of(search.status, search.result)
                measured = capacity.measured_of(search.result)
            spec = schedule.spec if schedule else {}
            rules: dict[str, str] = spec.get("rules") or {}
            baseline, sources, note = self._baseline(db, schedule, run.id, list(rules))
            broken = regression.judge(verdict, measured, rules, baseline) if rules else []
            state = (
                schedule_store.CANCELLED if req.cancelled else regression.state_of(verdict, broken)
            )
            previous = schedule_store.previous_state(db, req.schedule_id, run.id)
            run.state, run.verdict, run.judged_at = state, verdict, utcnow()
            run.regressed = [r.model_dump() for r in broken]
            run.baseline = {"values": baseline or {}, "sessions": sources}
            run.note = note
            db.add(run)
            db.commit()
            return Judged(
                state=state,
                previous=previous,
                regressed=broken,
                note=note,
                channels=len(spec.get("alerts") or []),
            )

    def _baseline(
        self, db: Session, schedule: ScheduleRow | None, run_id: int, metrics: list[str]
    ) -> tuple[dict[str, float] | None, list[str], str | None]:
        """(baseline values, the sessions they come from, a note when there is none)."""
        if schedule is None or not metrics:
            return None, [], None
        policy = schedule.spec.get("baseline") or {}
        pinned = policy.get("pinned_session")
        if pinned:
            row = store.get_session(db, pinned)
            if row is None or row.tenant != schedule.tenant or not row.summary:
                return None, [], f"pinned baseline session {pinned} has no stored metrics"
            measured = row.summary.get("measured") or {}
            values = {m: float(v) for m in metrics if (v := measured.get(m)) is not None}
            return values, [pinned], None
        n, needed = int(policy.get("median_of", 5)), int(policy.get("min_runs", 1))
        passing = schedule_store.passing_measurements(db, schedule.id, run_id, n)
        if len(passing) < needed:
            return None, [], f"not enough history: {len(passing)} passing run(s), {needed} needed"
        values = regression.median_baseline([m for _, m in passing], metrics)
        return values, [sid for sid, _ in passing], None

    @activity.defn
    def send_schedule_alert(self, req: SendAlert) -> None:
        """One alert to one channel; every failure raises (Temporal retries with backoff). The
        last attempt's failure, or a target the tenant may not reach, is recorded."""
        attempt = activity.info().attempt
        with session_scope(self.url) as db:
            schedule = schedule_store.get(db, req.schedule_id)
            if schedule is None or req.channel >= len(schedule.spec.get("alerts") or []):
                return  # deleted or changed since: nothing to send
            channel = schedule_store.unsealed(db, self.keys, schedule)["alerts"][req.channel]
            name = f"{req.channel}:{channel.get('name') or channel['kind']}"
            policy = tenant_policy.load(db, schedule.tenant, self.settings)
            try:
                if channel["kind"] == "webhook":
                    host = urlsplit(channel["url"]).hostname or ""
                    refusal = tenant_policy.target_refusal(policy, host)
                    if refusal:
                        raise ApplicationError(f"webhook {refusal}", non_retryable=True)
                    send_webhook(channel, self._alert(schedule, req), self.settings.alert_timeout_s)
                else:
                    send_email(channel, self._alert(schedule, req), self.settings.alert_timeout_s)
            except Exception as exc:
                final = attempt >= req.max_attempts or (
                    isinstance(exc, ApplicationError) and exc.non_retryable
                )
                if final:
                    self._delivery(db, req, name, False, attempt, f"{type(exc).__name__}: {exc}")
                raise
            self._delivery(db, req, name, True, attempt, None)
            run = schedule_store.run(db, req.session_id)
            if run is not None and req.kind not in ("late", "missed", "skipped"):
                run.alert = req.kind
                db.add(run)
                db.commit()

    def _alert(self, schedule: ScheduleRow, req: SendAlert) -> Alert:
        s = self.settings
        return Alert(
            kind=req.kind,
            schedule_id=schedule.id,
            schedule_name=schedule.name,
            tenant=schedule.tenant,
            session_id=req.session_id,
            state=req.state,
            previous=req.previous,
            regressed=[r.model_dump() for r in req.regressed],
            late_s=req.late_s,
            missed=req.missed,
            reason=req.reason,
            report_url=f"{s.api_url.rstrip('/')}/dashboard/sessions/{req.session_id}",
            temporal_url=f"{s.temporal_ui_url.rstrip('/')}/namespaces/{s.temporal_namespace}"
            f"/workflows/{workflow_id(req.session_id)}",
        )

    @staticmethod
    def _delivery(
        db: Session, req: SendAlert, channel: str, ok: bool, attempts: int, error: str | None
    ) -> None:
        schedule_store.record_delivery(
            db,
            AlertDeliveryRow(
                schedule_id=req.schedule_id,
                session_id=req.session_id,
                kind=req.kind,
                channel=channel[:120],
                ok=ok,
                attempts=attempts,
                error=error[:1000] if error else None,
                at=utcnow(),
            ),
        )
