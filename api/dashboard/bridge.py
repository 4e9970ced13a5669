"""The MQTT -> browser bridge: one MQTT connection per API process, shared by every viewer.

A session is subscribed (`.../runners/+/stats` and `.../runners/+/state`) while at least one
browser watches it. The first viewer of a session subscribes first and then loads what the worker
already stored, so nothing published in between is missed; duplicates are counted once
(LiveSession). Every viewer gets a `snapshot` first, then one `point` per stats message (the
updated per-second point of the runner's role) and one `runner` per state change. After a broker
reconnect every watched session is reloaded from the database and viewers get a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from pydantic import ValidationError

from api.dashboard.live import LiveSession
from sipflow.messages import TOPIC_ROOT, RunnerState, StatsMessage, parse_runner_topic
from sipflow.models import MetricInterval, RunnerRow

log = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any] | None]
Loader = Callable[[str], Awaitable[tuple[Sequence[MetricInterval], Sequence[RunnerRow]]]]
QUEUE_SIZE = 5000
CONNECT_WAIT_S = 3.0
RECONNECT_S = 1.0


def session_topics(session_id: str) -> list[str]:
    base = f"{TOPIC_ROOT}/{session_id}/runners/+"
    return [f"{base}/stats", f"{base}/state"]


class Viewer:
    """One browser's stream: events are queued until the response sends them."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.ready = False  # gets deltas only after its snapshot is queued
        self.overflow = False

    def put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflow = True  # the stream ends; the browser reconnects and gets a snapshot


@dataclass
class _Watched:
    live: LiveSession
    viewers: set[Viewer] = field(default_factory=set)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed: bool = False


class MqttBridge:
    def __init__(
        self,
        host: str,
        port: int,
        loader: Loader,
        login: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        self.host, self.port = host, port
        # (username, password) of the API's read-only broker login, derived when connecting.
        self._login = login
        self._loader = loader
        self._sessions: dict[str, _Watched] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.received = 0  # stats messages received (all sessions)

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- viewers -----------------------------------------------------------------------------
    async def watch(self, session_id: str) -> Viewer:
        """A new viewer of a session; its first queued event is the snapshot."""
        if self._closing:
            raise RuntimeError("the bridge is closing")
        self._ensure_task()
        viewer = Viewer()
        watched = self._sessions.get(session_id)
        if watched is None:
            watched = self._sessions[session_id] = _Watched(LiveSession(session_id))
            watched.viewers.add(viewer)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_S)
                await self._subscribe(session_id, watched)
                await self._load(session_id, watched)
            finally:
                watched.loaded.set()
        else:
            watched.viewers.add(viewer)
            await watched.loaded.wait()
        viewer.put(("snapshot", self._snapshot(watched)))
        viewer.ready = True
        return viewer

    async def unwatch(self, session_id: str, viewer: Viewer) -> None:
        watched = self._sessions.get(session_id)
        if watched is None:
            return
        watched.viewers.discard(viewer)
        if watched.viewers:
            return
        del self._sessions[session_id]
        if watched.subscribed:
            # In a task of its own: the viewer's response may be cancelled (browser gone) while
            # the broker has not answered yet.
            task = asyncio.create_task(self._unsubscribe(session_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, session_id: str) -> None:
        client = self._client
        if client is None or session_id in self._sessions:
            return  # watched again meanwhile: keep the subscription
        for topic in session_topics(session_id):
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(topic, timeout=5)

    def _snapshot(self, watched: _Watched) -> dict[str, Any]:
        return {**watched.live.snapshot(), "mqtt": self.connected}

    async def _subscribe(self, session_id: str, watched: _Watched) -> None:
        client = self._client
        if client is None or not self.connected:
            return
        try:
            for topic in session_topics(session_id):
                await client.subscribe(topic, qos=1)
            watched.subscribed = True
        except aiomqtt.MqttError as exc:
            log.warning("dashboard: subscribing to session %s failed: %s", session_id, exc)

    async def _load(self, session_id: str, watched: _Watched) -> None:
        try:
            intervals, runners = await self._loader(session_id)
        except Exception:
            log.exception("dashboard: loading session %s failed", session_id)
            return
        for row in runners:
            watched.live.set_runner(row)
        watched.live.add_rows(intervals)

    # -- the MQTT connection -----------------------------------------------------------------
    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-mqtt")

    async def _run(self) -> None:
        while not self._closing:
            username, password = self._login() if self._login else (None, None)
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=f"sipflow-dashboard-{uuid.uuid4().hex[:8]}",
                    username=username,
                    password=password,
                    keepalive=15,
                ) as client:
                    self._client = client
                    self._connected.set()
                    log.info("dashboard: connected to MQTT %s:%s", self.host, self.port)
                    await self._resume()
                    async for message in client.messages:
                        self._dispatch(message)
            except aiomqtt.MqttError as exc:
                log.warning("dashboard: MQTT %s:%s: %s", self.host, self.port, exc)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(RECONNECT_S)

    async def _resume(self) -> None:
        """After a (re)connect: subscribe every watched session again, reload, re-snapshot."""
        for sid, watched in list(self._sessions.items()):
            if not watched.loaded.is_set():
                continue  # its first viewer subscribes and loads it
            watched.subscribed = False
            await self._subscribe(sid, watched)
            await self._load(sid, watched)
            for viewer in watched.viewers:
                if viewer.ready:
                    viewer.put(("snapshot", self._snapshot(watched)))

    def _dispatch(self, message: aiomqtt.Message) -> None:
        parsed = parse_runner_topic(message.topic.value)
        payload = message.payload
        if parsed is None or not isinstance(payload, bytes | bytearray) or not payload:
            return
        sid, runner_id, kind = parsed
        watched = self._sessions.get(sid)
        if watched is None:
            return
        try:
            if kind == "stats":
                msg = StatsMessage.model_validate_json(payload)
                self.received += 1
                point = watched.live.add_message(msg)
                if point is None:
                    return
                event: Event = (
                    "point",
                    {
                        "role": msg.role,
                        "point": point,
                        "runner": watched.live.runner(runner_id),
                        "seq": msg.seq,
                        "runner_id": runner_id,
                        "received_at": time.time(),
                    },
                )
            elif kind == "state":
                state = RunnerState.model_validate_json(payload)
                row = watched.live.set_state(state)
                if row is None:
                    return
                event = ("runner", row)
            else:
                return
        except ValidationError as exc:
            log.debug("dashboard: bad %s message on %s: %s", kind, message.topic.value, exc)
            return
        for viewer in watched.viewers:
            if viewer.ready:
                viewer.put(event)

    async def close(self) -> None:
        """End every stream (each viewer gets `close`) and the MQTT connection."""
        self._closing = True
        for watched in self._sessions.values():
            for viewer in watched.viewers:
                viewer.put(("close", None))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
