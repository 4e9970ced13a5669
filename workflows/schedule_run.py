"""ScheduledRunWorkflow: what a Temporal Schedule starts for a sipflow schedule. Deterministic.

A schedule passes the same arguments to every run, so this launcher mints the session id, starts
the ordinary session workflow (`session-<id>`) as its child, then judges the run against its
baseline and, when the schedule's state changed, alerts every channel (each on its own, with
retries; a channel that keeps failing is recorded and changes nothing else).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, CancelledError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.schedule_runs import (
        Admission,
        AdmitRun,
        Judged,
        JudgeRun,
        OpenSearch,
        RecordRun,
        ScheduleActivities,
        SendAlert,
    )
    from sipflow.capacity import SearchResult, verdict_of
    from sipflow.capacity_store import COMPLETED
    from sipflow.regression import alert_kind
    from sipflow.schedule_store import CANCELLED, SKIPPED
    from sipflow.workflow_types import (
        CAPACITY_NAME,
        LAUNCHER_NAME,
        SA_SCHEDULE,
        SA_STATUS,
        SA_TARGET,
        SA_TENANT,
        WORKFLOW_NAME,
        CapacityInput,
        ScheduledRun,
        ScheduledRunResult,
        SessionInput,
        SessionResult,
        capacity_workflow_id,
        workflow_id,
    )

# Set by Temporal on workflows a schedule starts: when the run was due.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
SHORT_TIMEOUT = timedelta(seconds=60)
SHORT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=10)
# Patches: launchers already running when these steps came replay without them.
MISSED_RUNS = "missed-runs"  # ask Temporal how many runs it missed
ADMIT_RUNS = "admit-runs"  # the tenant's policy may refuse (skip) the run


@workflow.defn(name=LAUNCHER_NAME)
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, inp: ScheduledRun) -> ScheduledRunResult:
        sid = workflow.uuid4().hex[:12]
        due = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        # The first step runs when a worker takes it: long after Temporal started the launcher,
        # the workers were down (a run buffered behind another, or backfilled, is not "late").
        waited_s = (workflow.now() - workflow.info().workflow_start_time).total_seconds()
        late = waited_s > inp.late_after_s
        late_s = (workflow.now() - due).total_seconds() if due is not None else waited_s
        missed = None
        if workflow.patched(MISSED_RUNS):
            missed = await workflow.execute_activity_method(
                ScheduleActivities.count_missed_runs,
                inp.schedule_id,
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=SHORT_RETRY,
            )
        recorded = await workflow.execute_activity_method(
            ScheduleActivities.record_scheduled_run,
            RecordRun(
                schedule_id=inp.schedule_id,
                session_id=sid,
                scheduled_at=due,
                late_s=late_s,
                missed=missed,
            ),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        newly_missed = recorded or 0  # None: recorded before missed runs were counted
        admission = Admission()
        if workflow.patched(ADMIT_RUNS):
            admission = await workflow.execute_activity_method(
                ScheduleActivities.admit_scheduled_run,
                AdmitRun(
                    schedule_id=inp.schedule_id, session_id=sid, tenant=inp.tenant, spec=inp.spec
                ),
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=SHORT_RETRY,
            )
        kinds = (["late"] if late else []) + (["missed"] if newly_missed else [])
        if admission.refused is not None:  # stored as skipped; told once per streak
            skipped = Judged(state=SKIPPED, previous=None, channels=admission.channels)
            kinds += ["skipped"] if admission.tell else []
            await self._alert(inp, sid, skipped, kinds, late_s, newly_missed, admission.refused)
            return ScheduledRunResult(session_id=sid, verdict=SKIPPED, state=SKIPPED)
        try:
            if inp.capacity is not None:  # a capacity schedule (none before this field existed)
                verdict = await self._search(inp, sid)
                if verdict == CANCELLED:
                    return await self._cancelled(inp, sid)
            else:
                verdict = await self._session(inp, sid)
                if verdict == CANCELLED:  # the session caught the cancel and ended
                    return await self._cancelled(inp, sid)
        except ChildWorkflowError as err:
            if isinstance(err.cause, CancelledError):  # the session was cancelled, not failed
                return await self._cancelled(inp, sid)
            verdict = "error"  # the session stored its own outcome, if it got that far
        except asyncio.CancelledError:
            await self._cancelled(inp, sid)
            raise
        judged = await workflow.execute_activity_method(
            ScheduleActivities.judge_scheduled_run,
            JudgeRun(schedule_id=inp.schedule_id, session_id=sid),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        kind = alert_kind(judged.previous, judged.state)
        kinds += [kind] if kind is not None else []
        await self._alert(inp, sid, judged, kinds, late_s, newly_missed)
        return ScheduledRunResult(session_id=sid, verdict=verdict, state=judged.state, alert=kind)

    async def _session(self, inp: ScheduledRun, sid: str) -> str:
        """The run's session as a child; its verdict, or "cancelled"."""
        result: SessionResult = await workflow.execute_child_workflow(
            WORKFLOW_NAME,
            SessionInput(session_id=sid, tenant=inp.tenant, spec=inp.spec),
            id=workflow_id(sid),
            task_queue=workflow.info().task_queue,
            result_type=SessionResult,
            # Cancelling the launcher (overlap "cancel other") lets the session clean up.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=_child_attributes(inp),
        )
        return CANCELLED if result.status == CANCELLED else result.verdict

    async def _search(self, inp: ScheduledRun, sid: str) -> str:
        """The run's capacity search as a child (its row made first, as the API does); judged
        later from its stored answer. "cancelled" when it was."""
        assert inp.capacity is not None
        await workflow.execute_activity_method(
            ScheduleActivities.open_scheduled_search,
            OpenSearch(search_id=sid, tenant=inp.tenant, spec=inp.capacity),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        result: SearchResult = await workflow.execute_child_workflow(
            CAPACITY_NAME,
            CapacityInput(search_id=sid, tenant=inp.tenant, spec=inp.capacity),
            id=capacity_workflow_id(sid),
            task_queue=workflow.info().task_queue,
            result_type=SearchResult,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=_child_attributes(inp),
        )
        if result.stop is None:  # cancelled before it ended
            return CANCELLED
        return verdict_of(COMPLETED, result.model_dump(mode="json"))

    async def _cancelled(self, inp: ScheduledRun, sid: str) -> ScheduledRunResult:
        """Overlap "cancel other" (or a cancel by hand): the session is asked to stop (parent
        close policy) and the run judged "cancelled", which no alert and no later verdict
        counts."""
        await workflow.execute_activity_method(
            ScheduleActivities.judge_scheduled_run,
            JudgeRun(schedule_id=inp.schedule_id, session_id=sid, cancelled=True),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        return ScheduledRunResult(session_id=sid, verdict=CANCELLED, state=CANCELLED)

    async def _alert(
        self,
        inp: ScheduledRun,
        sid: str,
        judged: Judged,
        kinds: list[str],
        late_s: float | None,
        missed: int,
        reason: str | None = None,
    ) -> None:
        """Each alert to each channel on its own, with retries and backoff; a channel's final
        failure is recorded by the activity and changes nothing here."""
        if not kinds or not judged.channels:
            return
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=inp.alert_backoff_s),
            maximum_interval=timedelta(seconds=inp.alert_max_backoff_s),
            maximum_attempts=inp.alert_attempts,
        )
        sends = [
            workflow.execute_activity_method(
                ScheduleActivities.send_schedule_alert,
                SendAlert(
                    schedule_id=inp.schedule_id,
                    session_id=sid,
                    kind=kind,
                    channel=i,
                    state=judged.state,
                    previous=judged.previous,
                    regressed=judged.regressed,
                    max_attempts=inp.alert_attempts,
                    late_s=late_s if kind == "late" else None,
                    missed=missed if kind == "missed" else None,
                    reason=reason if kind == "skipped" else None,
                ),
                start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=retry,
            )
            for kind in kinds
            for i in range(judged.channels)
        ]
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, ActivityError):
                raise outcome


def _child_attributes(inp: ScheduledRun) -> TypedSearchAttributes:
    """A run's child (session or capacity search) as the Web UI lists it: by tenant, target
    and schedule."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(SA_TENANT, inp.tenant),
            SearchAttributePair(SA_STATUS, "pending"),
            SearchAttributePair(SA_TARGET, inp.target or "direct"),
            SearchAttributePair(SA_SCHEDULE, inp.schedule_id),
        ]
    )
