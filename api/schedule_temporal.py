"""A sipflow schedule as a Temporal Schedule (`schedule-<id>`): its times, overlap policy,
catch-up window and the action, a ScheduledRunWorkflow launcher with the clear session spec
(the client's payload codec encrypts it, so `temporal schedule describe` shows no password)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleState,
)
from temporalio.client import ScheduleSpec as TemporalTimes
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from sipflow.capacity import scheduled_search
from sipflow.models import ScheduleRow
from sipflow.schedule_spec import ScheduleSpec
from sipflow.settings import Settings
from sipflow.workflow_types import (
    LAUNCHER_NAME,
    SA_SCHEDULE,
    SA_TENANT,
    ScheduledRun,
    schedule_id,
)

OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
}


def target_of(spec: ScheduleSpec) -> str | None:
    t = spec.session.target
    return f"{t.host}:{t.port}" if t else None


def build(row: ScheduleRow, clear: dict[str, Any], settings: Settings) -> Schedule:
    """The Temporal Schedule of `row`, whose spec with secrets in clear is `clear`."""
    spec = ScheduleSpec.model_validate(clear)
    t = spec.schedule
    launch = ScheduledRun(
        schedule_id=row.id,
        tenant=row.tenant,
        spec=clear["session"],
        target=target_of(spec),
        alert_attempts=settings.alert_attempts,
        alert_backoff_s=settings.alert_backoff_s,
        alert_max_backoff_s=settings.alert_max_backoff_s,
        late_after_s=settings.schedule_late_after_s,
        capacity=(
            scheduled_search(spec.name, clear["session"], clear["capacity"])
            if spec.capacity is not None
            else None
        ),
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            LAUNCHER_NAME,
            launch,
            id=schedule_id(row.id),  # Temporal appends the due time
            task_queue=settings.task_queue,
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_TENANT, row.tenant),
                    SearchAttributePair(SA_SCHEDULE, row.id),
                ]
            ),
        ),
        spec=TemporalTimes(
            cron_expressions=list(t.cron),
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=s)) for s in t.every_s],
            time_zone_name=t.time_zone,
            jitter=timedelta(seconds=t.jitter_s) if t.jitter_s else None,
            start_at=t.start_at,
            end_at=t.end_at,
        ),
        policy=SchedulePolicy(
            overlap=OVERLAP[spec.overlap],
            catchup_window=timedelta(seconds=spec.catchup_window_s),
        ),
        state=ScheduleState(paused=row.paused, note=row.note),
    )
