"""One MQTT subscriber per worker process: every session's runner messages -> database, exactly
once, and runner events -> the session's workflow.

It holds a persistent MQTT session (clean_session=False, a fixed client id per task queue) on
all sessions' runner topics with manual acknowledgement: messages are committed in batches (one
transaction for up to `ingest_batch` of them) and acknowledged only after the commit. If the
worker dies, the broker keeps what was not acknowledged and queues what arrives meanwhile; the
restarted worker reconnects with the same client id and gets those messages again; the unique
(session, runner, seq) key turns the repeats into no-ops. Runner state changes are signalled to
the session's workflow before the acknowledgement (handlers are idempotent), so no event is lost.

The same hub sends a keepalive on the control topic of every session whose ingest activity runs
here (the runners' dead man's switch hears the worker through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from backends.runner_tokens import CONTROL_USER, INGEST_USER, broker_password, token_key
from sipflow import media_store, metrics, store
from sipflow.db import session_scope
from sipflow.messages import (
    TOPIC_ROOT,
    ControlMessage,
    DoneMessage,
    MediaReport,
    RunnerState,
    StatsMessage,
    control_topic,
    parse_runner_topic,
)
from sipflow.settings import Settings
from sipflow.workflow_types import SIGNAL_RUNNER_EVENT, RunnerEvent, workflow_id

log = logging.getLogger(__name__)
ALL_RUNNERS = f"{TOPIC_ROOT}/+/runners/+/+"
KEEPALIVE = ControlMessage(type="keepalive").model_dump_json(by_alias=True)


@dataclass
class _Batch:
    stats: list[StatsMessage] = field(default_factory=list)
    # state and done messages in arrival order: (kind, message)
    events: list[tuple[str, RunnerState | DoneMessage]] = field(default_factory=list)
    # a runner's audio streams (roles' media:), published before its done message
    media: list[MediaReport] = field(default_factory=list)


def client_id(settings: Settings) -> str:
    return f"sipflow-ingest-{settings.task_queue}"


class IngestHub:
    """Started once by the worker; session ingest activities `watch` it."""

    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.resolved_database_url
        self.subscribed = asyncio.Event()
        self.latest: dict[str, dict[str, StatsMessage]] = {}  # session -> runner -> newest
        self.watched: dict[str, int] = {}  # session -> ingest activities that watch it
        self.stored_total = 0
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._mq: mqtt.Client | None = None
        self._control: mqtt.Client | None = None

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if not rc.is_failure:
                c.subscribe(ALL_RUNNERS, qos=1)

        def on_subscribe(_c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
            loop.call_soon_threadsafe(self.subscribed.set)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, msg)

        mq = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id(s),
            clean_session=False,
            manual_ack=True,
        )
        mq.username_pw_set(INGEST_USER, broker_password(token_key(s), INGEST_USER))
        mq.max_inflight_messages_set(1000)
        mq.max_queued_messages_set(0)
        mq.on_connect, mq.on_subscribe, mq.on_message = on_connect, on_subscribe, on_message
        mq.connect_async(s.mqtt_host, s.mqtt_port, keepalive=10)
        mq.loop_start()
        self._mq = mq
        if s.control_keepalive_s > 0:
            ctl = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"sipflow-keepalive-{s.task_queue}"
            )
            ctl.username_pw_set(CONTROL_USER, broker_password(token_key(s), CONTROL_USER))
            ctl.connect_async(s.mqtt_host, s.mqtt_port, keepalive=15)
            ctl.loop_start()
            self._control = ctl
            self._tasks.append(asyncio.create_task(self._keepalives()))
        consume = asyncio.create_task(self._consume())
        consume.add_done_callback(self._died)
        self._tasks.append(consume)

    def _died(self, task: asyncio.Task[None]) -> None:
        """The consumer must not end while the worker runs: nothing would be stored."""
        if not task.cancelled() and task.exception() is not None:
            log.critical("ingest consumer died; the worker exits", exc_info=task.exception())
            os._exit(70)  # `sipflow up` (or the service manager) starts the worker again

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in (self._mq, self._control):
            if c is not None:
                c.disconnect()
                c.loop_stop()

    # -- what session activities use -------------------------------------------------------
    def watch(self, session_id: str) -> None:
        self.watched[session_id] = self.watched.get(session_id, 0) + 1

    def unwatch(self, session_id: str) -> None:
        n = self.watched.get(session_id, 0) - 1
        if n > 0:
            self.watched[session_id] = n
        else:
            self.watched.pop(session_id, None)
            self.latest.pop(session_id, None)

    # -- the loops -------------------------------------------------------------------------
    async def _keepalives(self) -> None:
        assert self._control is not None
        while True:
            await asyncio.sleep(self.settings.control_keepalive_s)
            if self._control.is_connected():
                for sid in list(self.watched):
                    self._control.publish(control_topic(sid), KEEPALIVE, qos=0)

    async def _consume(self) -> None:
        backoff = 0.5
        while True:
            msgs = [await self._queue.get()]
            while len(msgs) < self.settings.ingest_batch and not self._queue.empty():
                msgs.append(self._queue.get_nowait())
            batch = self._parse(msgs)
            while True:
                try:
                    await asyncio.to_thread(self._commit, batch)
                    backoff = 0.5
                    break
                except Exception:  # the database is away: keep the messages, try again
                    log.exception("ingest: storing %d messages failed; retrying", len(msgs))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
            await self._signal(batch)
            assert self._mq is not None
            for m in msgs:
                self._mq.ack(m.mid, m.qos)

    def _parse(self, msgs: list[mqtt.MQTTMessage]) -> _Batch:
        batch = _Batch()
        for m in msgs:
            parsed = parse_runner_topic(m.topic)
            if parsed is None or not m.payload:
                continue  # e.g. a cleared retained message
            sid, rid, kind = parsed
            try:
                if kind == "stats":
                    stats = StatsMessage.model_validate_json(m.payload)
                    batch.stats.append(stats)
                    runners = self.latest.setdefault(sid, {}) if sid in self.watched else {}
                    prev = runners.get(rid)
                    if prev is None or stats.seq > prev.seq:
                        runners[rid] = stats
                elif kind == "state":
                    batch.events.append(("state", RunnerState.model_validate_json(m.payload)))
                elif kind == "done":
                    batch.events.append(("done", DoneMessage.model_validate_json(m.payload)))
                elif kind == "media":
                    batch.media.append(MediaReport.model_validate_json(m.payload))
            except ValidationError:
                log.warning("ingest: dropping malformed %s message of %s/%s", kind, sid, rid)
        return batch

    def _commit(self, batch: _Batch) -> None:
        with session_scope(self.url) as db:
            try:
                fresh = store.store_new_intervals(db, batch.stats)
            except IntegrityError:  # e.g. a session without a row: store one by one
                db.rollback()
                fresh = []
                for s in batch.stats:
                    try:
                        if store.store_interval(db, s):
                            fresh.append(s)
                    except IntegrityError:
                        db.rollback()
                        log.warning("ingest: interval of unknown session %s dropped", s.session_id)
            self.stored_total += len(fresh)
            metrics.count_stored(fresh)
            for report in batch.media:  # idempotent upserts by stream key
                media_store.store_media_report(db, report)
            for _kind, ev in batch.events:
                if isinstance(ev, DoneMessage):
                    try:
                        store.store_done(db, ev)
                    except IntegrityError:
                        db.rollback()
                else:
                    store.set_runner_state(db, ev.session_id, ev.runner_id, ev.state, ev.detail)

    async def _signal(self, batch: _Batch) -> None:
        """Runner events to their workflows, in order per session, before the messages are
        acknowledged (always sent: a redelivery must not lose an event). A workflow that no
        longer exists is skipped; Temporal being away is waited for."""
        per_session: dict[str, list[RunnerEvent]] = {}
        for _kind, ev in batch.events:
            if isinstance(ev, DoneMessage):
                state = "done" if ev.ok else "failed"
                reasons = ", ".join(f"{k} x{v}" for k, v in ev.failure_reasons.items())
                detail = reasons or ev.error
            else:
                state, detail = ev.state, ev.detail
            event = RunnerEvent(runner_id=ev.runner_id, state=state, detail=detail)
            per_session.setdefault(ev.session_id, []).append(event)
        await asyncio.gather(*(self._send(sid, evs) for sid, evs in per_session.items()))

    async def _send(self, session_id: str, events: list[RunnerEvent]) -> None:
        handle = self.client.get_workflow_handle(workflow_id(session_id))
        for event in events:
            backoff = 0.5
            while True:
                try:
                    await handle.signal(SIGNAL_RUNNER_EVENT, event)
                    break
                except Exception as exc:
                    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                        return  # the session's workflow ended
                    log.warning("ingest: signal to %s failed (%r); retrying", session_id, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
