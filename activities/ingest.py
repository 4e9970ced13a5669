"""A session's metrics-ingest activity: async, holds no thread and no MQTT connection.

The worker's one subscriber (activities/ingest_hub.py) stores every session's intervals exactly
once and signals runner events; this activity watches what was stored for its session until
every runner said `done` (or stayed `lost` for `ingest_lost_grace_s`) and every interval up to
its `last_seq` is stored, or the grace for late intervals (`ingest_missing_grace_s`) passed.
Meanwhile it sends the workflow its progress totals, at most every `ingest_progress_every_s`
and at most `history_event_budget / 4` times over the session's expected span (bounded
history). It runs on the task queue `<task_queue>-ingest`, whose slot budget (`ingest_slots`)
is its own.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client

from activities.ingest_hub import IngestHub
from sipflow import store
from sipflow.db import session_scope
from sipflow.messages import StatsMessage
from sipflow.settings import Settings
from sipflow.workflow_types import (
    SIGNAL_PROGRESS,
    SIGNAL_RUNNER_EVENT,
    ProgressReport,
    RunnerEvent,
    workflow_id,
)

log = logging.getLogger(__name__)
EVENTS_PER_SIGNAL = 4  # a signal, and the workflow task it causes (scheduled/started/completed)


class IngestMetrics(BaseModel):
    session_id: str
    runner_ids: list[str]
    # The session's expected span in seconds (None: sent by the previous release).
    expected_s: float | None = None


class IngestResult(BaseModel):
    stored: dict[str, int]  # intervals stored per runner
    last_seq: dict[str, int]  # from each runner's done message
    finished: dict[str, str]  # runner -> done | failed | lost
    missing: dict[str, int]  # runner -> intervals announced but never received


def progress_every(settings: Settings, expected_s: float | None) -> float:
    """Seconds between progress signals: the setting, or longer for long sessions so that they
    cost at most history_event_budget events over their span (3 x expected + 15 min)."""
    span = (expected_s or 0.0) * 3 + 900
    budget = max(1, settings.history_event_budget // EVENTS_PER_SIGNAL)
    return max(settings.ingest_progress_every_s, span / budget)


class _Tracker:
    """What the activity knows about each runner of the session (read from the database)."""

    def __init__(self, runner_ids: list[str], grace_s: float, lost_grace_s: float = 0.0) -> None:
        self.runner_ids = runner_ids
        self.grace_s = grace_s
        self.lost_grace_s = lost_grace_s
        self.lost_since: dict[str, float] = {}
        self.stored = {r: 0 for r in runner_ids}
        self.last_seq: dict[str, int] = {}
        self.finished: dict[str, str] = {}
        self.done_at: dict[str, float] = {}

    def update(
        self, stored: dict[str, int], rows: dict[str, tuple[str, int | None]], now: float
    ) -> None:
        for r in self.runner_ids:
            self.stored[r] = stored.get(r, 0)
            state, last = rows.get(r, ("pending", None))
            if state in ("done", "failed") and last is not None:
                self.finished[r] = state
                self.last_seq[r] = last
                self.done_at.setdefault(r, now)
            elif state == "lost":
                # A Last Will is final only when the runner stays away: a broker that stops
                # cleanly publishes every runner's will, and they come back after its restart.
                since = self.lost_since.setdefault(r, now)
                if now - since >= self.lost_grace_s:
                    self.finished[r] = "lost"
            else:
                self.lost_since.pop(r, None)
                self.finished.pop(r, None)  # a "lost" agent is back

    def complete(self, now: float, never_started: set[str]) -> bool:
        for r in self.runner_ids:
            if r in never_started:
                continue
            state = self.finished.get(r)
            if state is None:
                return False
            incomplete = state != "lost" and self.stored[r] < self.last_seq.get(r, 0)
            if incomplete and now - self.done_at.get(r, now) < self.grace_s:
                return False
        return True


def progress(stored: dict[str, int], latest: dict[str, StatsMessage]) -> ProgressReport:
    p = ProgressReport(intervals=sum(stored.values()))
    for m in latest.values():
        if m.role != "caller":
            p.retransmissions += m.cumulative.retransmissions
            continue
        p.calls_created += m.cumulative.calls_created
        p.successful_calls += m.cumulative.successful_calls
        p.failed_calls += m.cumulative.failed_calls
        p.retransmissions += m.cumulative.retransmissions
        p.current_calls += m.current_calls
        p.call_rate += m.call_rate
    return p


class IngestActivities:
    def __init__(self, settings: Settings, client: Client, hub: IngestHub) -> None:
        self.settings = settings
        self.client = client
        self.hub = hub
        self.url = settings.resolved_database_url

    @activity.defn
    async def ingest_metrics(self, req: IngestMetrics) -> IngestResult:
        sid = req.session_id
        handle = self.client.get_workflow_handle(workflow_id(sid))
        s = self.settings
        tracker = _Tracker(req.runner_ids, s.ingest_missing_grace_s, s.ingest_lost_grace_s)
        every = progress_every(self.settings, req.expected_s)
        self.hub.watch(sid)  # keepalives to the session's runners while this runs
        try:
            await asyncio.wait_for(self.hub.subscribed.wait(), timeout=30)
            # Tell the workflow the subscription exists: runners may start publishing now.
            await handle.signal(
                SIGNAL_RUNNER_EVENT, RunnerEvent(runner_id="*ingest*", state="ready")
            )
            last_progress, sent = 0.0, -1
            while True:
                activity.heartbeat()
                stored, rows, never_started = await asyncio.to_thread(self._read, req)
                now = time.monotonic()
                tracker.update(stored, rows, now)
                if tracker.complete(now, never_started):
                    break
                total = sum(stored.values())
                if now - last_progress >= every and total != sent:
                    last_progress, sent = now, total
                    report = progress(stored, self.hub.latest.get(sid, {}))
                    await handle.signal(SIGNAL_PROGRESS, report)
                await asyncio.sleep(self.settings.ingest_poll_s)
            await handle.signal(SIGNAL_PROGRESS, progress(stored, self.hub.latest.get(sid, {})))
        finally:
            self.hub.unwatch(sid)
        missing = {
            r: tracker.last_seq[r] - tracker.stored[r]
            for r in tracker.last_seq
            if tracker.stored[r] < tracker.last_seq[r]
        }
        return IngestResult(
            stored=tracker.stored,
            last_seq=tracker.last_seq,
            finished=tracker.finished,
            missing=missing,
        )

    def _read(
        self, req: IngestMetrics
    ) -> tuple[dict[str, int], dict[str, tuple[str, int | None]], set[str]]:
        with session_scope(self.url) as db:
            return (
                store.stored_seqs(db, req.session_id),
                store.runner_rows(db, req.session_id),
                store.never_started(db, req.session_id, req.runner_ids),
            )
