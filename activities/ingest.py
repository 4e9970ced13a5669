"""The metrics-ingest activity: MQTT stream of a session's runners -> database, exactly once.

It holds a persistent MQTT session (clean_session=False, fixed client id) and acknowledges each
QoS 1 message only after its row is committed. If the worker dies, the broker keeps what was not
acknowledged, Temporal retries the activity after its heartbeat times out, and the new attempt
receives those messages again; the unique (session, runner, seq) key makes the repeats no-ops.
Runner state changes and periodic totals go to the workflow as signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client

from activities.keepalive import Keepalive
from backends.runner_tokens import INGEST_USER, broker_password, token_key
from sipflow import media_store, store
from sipflow.db import session_scope
from sipflow.messages import (
    DoneMessage,
    MediaReport,
    RunnerState,
    StatsMessage,
    parse_runner_topic,
)
from sipflow.messages import session_runners_filter as runners_filter
from sipflow.settings import Settings
from sipflow.workflow_types import (
    SIGNAL_PROGRESS,
    SIGNAL_RUNNER_EVENT,
    ProgressReport,
    RunnerEvent,
    workflow_id,
)

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 2.0
# After a runner's `done`, how long to wait for stats that the done message says were sent.
MISSING_GRACE_S = 20.0


class IngestMetrics(BaseModel):
    session_id: str
    runner_ids: list[str]


class IngestResult(BaseModel):
    stored: dict[str, int]  # intervals stored per runner
    last_seq: dict[str, int]  # from each runner's done message
    finished: dict[str, str]  # runner -> done | failed | lost
    missing: dict[str, int]  # runner -> intervals announced but never received


class _Tracker:
    """What the activity knows about each runner of the session."""

    def __init__(self, runner_ids: list[str], stored: dict[str, int]) -> None:
        self.runner_ids = runner_ids
        self.stored = {r: stored.get(r, 0) for r in runner_ids}
        self.last_seq: dict[str, int] = {}
        self.finished: dict[str, str] = {}
        self.done_at: dict[str, float] = {}
        self.latest: dict[str, StatsMessage] = {}

    def complete(self, now: float, never_started: set[str]) -> bool:
        for r in self.runner_ids:
            if r in never_started:
                continue
            state = self.finished.get(r)
            if state is None:
                return False
            incomplete = state != "lost" and self.stored[r] < self.last_seq.get(r, 0)
            if incomplete and now - self.done_at.get(r, now) < MISSING_GRACE_S:
                return False
        return True

    def progress(self) -> ProgressReport:
        p = ProgressReport(intervals=sum(self.stored.values()))
        for m in self.latest.values():
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
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.resolved_database_url

    @activity.defn
    async def ingest_metrics(self, req: IngestMetrics) -> IngestResult:
        sid = req.session_id
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        subscribed = asyncio.Event()
        handle = self.client.get_workflow_handle(workflow_id(sid))

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe(runners_filter(sid), qos=1)

        def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(subscribed.set)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        mq = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"sipflow-ingest-{sid}",
            clean_session=False,
            manual_ack=True,
        )
        mq.username_pw_set(INGEST_USER, broker_password(token_key(self.settings), INGEST_USER))
        mq.max_inflight_messages_set(100)
        mq.on_connect, mq.on_subscribe, mq.on_message = on_connect, on_subscribe, on_message
        mq.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=10)
        mq.loop_start()
        keepalive = Keepalive(self.settings, sid)

        with session_scope(self.url) as db:
            tracker = _Tracker(req.runner_ids, store.stored_seqs(db, sid))
        try:
            await asyncio.wait_for(subscribed.wait(), timeout=30)
            # Tell the workflow the subscription exists: runners may start publishing now.
            await handle.signal(
                SIGNAL_RUNNER_EVENT, RunnerEvent(runner_id="*ingest*", state="ready")
            )
            last_progress = last_check = 0.0
            never_started: set[str] = set()
            while not tracker.complete(time.monotonic(), never_started):
                activity.heartbeat(tracker.stored)
                keepalive.tick()  # while this runs, the session's runners hear from us
                with contextlib.suppress(TimeoutError):
                    msg = await asyncio.wait_for(queue.get(), timeout=1.0)
                    await self._handle(msg, tracker, handle)
                    mq.ack(msg.mid, msg.qos)
                now = time.monotonic()
                if now - last_check >= 1.0:
                    last_check = now
                    never_started = await asyncio.to_thread(self._never_started, req)
                if now - last_progress >= PROGRESS_EVERY_S and tracker.latest:
                    last_progress = now
                    await handle.signal(SIGNAL_PROGRESS, tracker.progress())
            await handle.signal(SIGNAL_PROGRESS, tracker.progress())
            mq.unsubscribe(runners_filter(sid))
        finally:
            keepalive.close()
            mq.disconnect()
            mq.loop_stop()
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

    async def _handle(self, msg: mqtt.MQTTMessage, tracker: _Tracker, handle: Any) -> None:
        parsed = parse_runner_topic(msg.topic)
        if parsed is None or not msg.payload:
            return  # e.g. a cleared retained message
        _sid, rid, kind = parsed
        if rid not in tracker.stored:
            return
        # Any later message but the will itself means a "lost" agent is back.
        is_will = kind == "state" and b'"lost"' in msg.payload
        if tracker.finished.get(rid) == "lost" and kind in ("stats", "state") and not is_will:
            del tracker.finished[rid]
        if kind == "stats":
            stats = StatsMessage.model_validate_json(msg.payload)
            if await asyncio.to_thread(self._store_stats, stats):
                tracker.stored[rid] += 1
            prev = tracker.latest.get(rid)
            if prev is None or stats.seq > prev.seq:
                tracker.latest[rid] = stats
        elif kind == "state":
            state = RunnerState.model_validate_json(msg.payload)
            stored_last_seq = await asyncio.to_thread(self._store_state, state)
            if rid not in tracker.finished:
                if state.state == "lost":
                    tracker.finished[rid] = "lost"
                elif state.state in ("done", "failed") and stored_last_seq is not None:
                    # Its done message was stored by an earlier attempt of this activity.
                    tracker.finished[rid] = state.state
                    tracker.last_seq[rid] = stored_last_seq
                    tracker.done_at[rid] = time.monotonic()
            # Always signalled (handlers are idempotent): a retry must not lose an event.
            await handle.signal(
                SIGNAL_RUNNER_EVENT,
                RunnerEvent(runner_id=rid, state=state.state, detail=state.detail),
            )
        # --- media (branch `media`): a runner's audio streams, before its done message ---
        elif kind == "media":
            report = MediaReport.model_validate_json(msg.payload)
            await asyncio.to_thread(self._store_media, report)
        # --- end media ---
        elif kind == "done":
            done = DoneMessage.model_validate_json(msg.payload)
            await asyncio.to_thread(self._store_done, done)
            final = "done" if done.ok else "failed"
            tracker.finished[rid] = final
            tracker.last_seq[rid] = done.last_seq
            tracker.done_at[rid] = time.monotonic()
            detail = ", ".join(f"{k} x{v}" for k, v in done.failure_reasons.items()) or done.error
            await handle.signal(
                SIGNAL_RUNNER_EVENT, RunnerEvent(runner_id=rid, state=final, detail=detail)
            )

    def _never_started(self, req: IngestMetrics) -> set[str]:
        with session_scope(self.url) as db:
            return store.never_started(db, req.session_id, req.runner_ids)

    def _store_stats(self, msg: StatsMessage) -> bool:
        with session_scope(self.url) as db:
            return store.store_interval(db, msg)

    def _store_state(self, msg: RunnerState) -> int | None:
        """Stores the state; returns the runner's last_seq if its done message is stored."""
        with session_scope(self.url) as db:
            store.set_runner_state(db, msg.session_id, msg.runner_id, msg.state, msg.detail)
            return store.runner_last_seq(db, msg.session_id, msg.runner_id)

    def _store_media(self, msg: MediaReport) -> None:  # branch `media`
        with session_scope(self.url) as db:
            media_store.store_media_report(db, msg)

    def _store_done(self, msg: DoneMessage) -> None:
        with session_scope(self.url) as db:
            store.store_done(db, msg)
