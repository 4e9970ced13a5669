"""A capacity search's side effects: judge a step's window from stored intervals, store steps."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import activity

from sipflow import capacity_store, store
from sipflow.db import session_scope
from sipflow.settings import Settings
from sipflow.summary import summarize


class MeasureWindow(BaseModel):
    session_id: str
    warmup_s: float  # after the callers' first interval: not judged


class WindowMeasured(BaseModel):
    measured: dict[str, float | None]
    intervals: int


class SearchUpdate(BaseModel):
    search_id: str
    status: str
    result: dict[str, Any] | None = None  # sipflow.capacity.SearchResult as JSON
    reason: str | None = None


class CapacityActivities:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url

    @activity.defn
    def measure_window(self, req: MeasureWindow) -> WindowMeasured:
        """The step session's metrics over its intervals after the warm-up (an interval covers
        the second before its time stamp, so the window starts warmup_s after the callers'
        first second)."""
        with session_scope(self.url) as db:
            intervals = store.intervals(db, req.session_id)
            runners = store.runners(db, req.session_id)
            callers = [iv.time for iv in intervals if iv.role == "caller" and iv.calls_created]
            if not callers:
                return WindowMeasured(measured={}, intervals=0)
            start = min(callers) - 1.0 + req.warmup_s
            window = [iv for iv in intervals if iv.time - 1.0 >= start - 1e-6]
            metrics = summarize(window, runners)
        return WindowMeasured(measured=metrics.measured, intervals=len(window))

    @activity.defn
    def update_search(self, req: SearchUpdate) -> None:
        with session_scope(self.url) as db:
            capacity_store.update(db, req.search_id, req.status, req.result, req.reason)
