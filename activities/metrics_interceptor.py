"""Times every activity attempt on a worker into sipflow_activity_duration_seconds{activity,
outcome}: one interceptor instead of a timer in each activity (sipflow/metrics.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError as TemporalCancelled
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from sipflow.metrics import ACTIVITY_SECONDS


class _Timed(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await super().execute_activity(input)
            outcome = "ok"
            return result
        except (asyncio.CancelledError, TemporalCancelled):
            outcome = "cancelled"
            raise
        finally:
            ACTIVITY_SECONDS.labels(name, outcome).observe(time.perf_counter() - start)


class ActivityMetrics(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Timed(next)
