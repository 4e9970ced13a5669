"""CapacitySearchWorkflow: steps a session's rate up, then bisects, until the criteria break.

Each step is an ordinary session workflow (`session-<id>`, its own report) started as a child;
its judged window is measured by an activity from the stored intervals; sipflow.capacity
decides the next rate. Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.capacity import CapacityActivities, MeasureWindow, SearchUpdate
    from sipflow.capacity import CapacitySearchSpec, SearchResult, Step, next_rate, result
    from sipflow.capacity_store import CANCELLED, COMPLETED, RUNNING
    from sipflow.thresholds import Threshold, evaluate, parse_threshold
    from sipflow.workflow_types import (
        CAPACITY_NAME,
        QUERY_CAPACITY,
        SA_STATUS,
        SA_TARGET,
        SA_TENANT,
        WORKFLOW_NAME,
        CapacityInput,
        SessionInput,
        SessionResult,
        workflow_id,
    )

SHORT_TIMEOUT = timedelta(seconds=60)
SHORT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=10)


@workflow.defn(name=CAPACITY_NAME)
class CapacitySearchWorkflow:
    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._current: float | None = None

    @workflow.query(name=QUERY_CAPACITY)
    def progress(self) -> dict[str, object]:
        return {
            "running_rate": self._current,
            **result(self._steps, None).model_dump(mode="json"),
        }

    async def _update(self, inp: CapacityInput, status: str, res: SearchResult) -> None:
        await workflow.execute_activity_method(
            CapacityActivities.update_search,
            SearchUpdate(
                search_id=inp.search_id, status=status, result=res.model_dump(mode="json")
            ),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )

    @workflow.run
    async def run(self, inp: CapacityInput) -> SearchResult:
        spec = CapacitySearchSpec.model_validate(inp.spec)
        criteria = [parse_threshold(c) for c in spec.criteria]
        workflow.upsert_search_attributes(
            [SA_TENANT.value_set(inp.tenant), SA_STATUS.value_set(RUNNING)]
        )
        await self._update(inp, RUNNING, result([], None))
        try:
            while not isinstance(rate := next_rate(spec, self._steps), str):
                if self._steps:
                    await workflow.sleep(spec.settle)  # the SUT recovers from the last step
                self._current = rate
                self._steps.append(await self._step(inp, spec, criteria, rate))
                self._current = None
                await self._update(inp, RUNNING, result(self._steps, None))
        except asyncio.CancelledError:
            res = result(self._steps, None)
            await self._update(inp, CANCELLED, res)
            workflow.upsert_search_attributes([SA_STATUS.value_set(CANCELLED)])
            return res
        res = result(self._steps, rate)
        await self._update(inp, COMPLETED, res)
        workflow.upsert_search_attributes([SA_STATUS.value_set(COMPLETED)])
        return res

    async def _step(
        self, inp: CapacityInput, spec: CapacitySearchSpec, criteria: list[Threshold], rate: float
    ) -> Step:
        sid = workflow.uuid4().hex[:12]
        index = len(self._steps)
        failed: list[str] = []
        verdict: str | None
        try:
            session: SessionResult = await workflow.execute_child_workflow(
                WORKFLOW_NAME,
                SessionInput(session_id=sid, tenant=inp.tenant, spec=spec.step_spec(rate, index)),
                id=workflow_id(sid),
                task_queue=workflow.info().task_queue,
                result_type=SessionResult,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(SA_TENANT, inp.tenant),
                        SearchAttributePair(SA_STATUS, "pending"),
                        SearchAttributePair(SA_TARGET, _target(spec)),
                    ]
                ),
            )
            verdict = session.verdict
        except ChildWorkflowError as err:
            verdict = "error"
            failed.append(f"step session failed: {err.cause or err}")
        if verdict == "error" and not failed:
            failed.append("step session ended in error (see its report)")
        window = await workflow.execute_activity_method(
            CapacityActivities.measure_window,
            MeasureWindow(session_id=sid, warmup_s=spec.warmup),
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
        failed += [r.threshold for r in evaluate(criteria, window.measured) if not r.passed]
        return Step(
            index=index,
            rate=rate,
            session_id=sid,
            verdict=verdict,
            held=not failed,
            measured=window.measured,
            failed=failed,
            achieved_rate=window.measured.get("achieved_rate"),
        )


def _target(spec: CapacitySearchSpec) -> str:
    target = spec.session.get("target") or {}
    return f"{target['host']}:{target.get('port', 5060)}" if target.get("host") else "direct"
