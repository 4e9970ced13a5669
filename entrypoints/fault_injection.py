"""Faults the fault tests inject into a worker, named in its environment variable
TEST_SIPFLOW_FAULT (never a setting, a spec field or an API input: only whoever starts the
worker process can set it, and they could run any code anyway):

    bug:<activity>          the session workflow raises RuntimeError where it would start <activity>
    stall:<activity>:<s>    <activity> waits <s> seconds before it runs (an activity in flight)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

ENV = "TEST_SIPFLOW_FAULT"


class InjectedBug(RuntimeError):
    """The bug the workflow raises on purpose."""


def _bug_interceptor(activity: str) -> type[WorkflowInboundInterceptor]:
    class Outbound(WorkflowOutboundInterceptor):
        def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
            if input.activity == activity:
                raise InjectedBug(f"injected bug before {activity}")
            return super().start_activity(input)

    class Inbound(WorkflowInboundInterceptor):
        def init(self, outbound: WorkflowOutboundInterceptor) -> None:
            super().init(Outbound(outbound))

    return Inbound


class _Stall(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, activity: str, seconds: float) -> None:
        super().__init__(next)
        self._activity, self._seconds = activity, seconds

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        from temporalio import activity

        if activity.info().activity_type == self._activity:
            await asyncio.sleep(self._seconds)  # on the event loop: cancellable, holds no thread
        return await super().execute_activity(input)


class FaultInterceptor(Interceptor):
    def __init__(self, fault: str) -> None:
        kind, _, rest = fault.partition(":")
        self._bug = rest if kind == "bug" else None
        self._stall: tuple[str, float] | None = None
        if kind == "stall":
            name, _, seconds = rest.partition(":")
            self._stall = (name, float(seconds))
        if self._bug is None and self._stall is None:
            raise ValueError(f"{ENV}: unknown fault {fault!r}")

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _bug_interceptor(self._bug) if self._bug else None

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Stall(next, *self._stall) if self._stall else next


def from_environment() -> list[Interceptor]:
    fault = os.environ.get(ENV)
    return [FaultInterceptor(fault)] if fault else []
