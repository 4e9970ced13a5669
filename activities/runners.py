"""Activities that start and stop runners on their placement's backend and send them control
messages."""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import AliasChoices, BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import legacy
from backends import broker_auth
from backends.base import PermanentBackendError
from backends.local import LocalBackend
from backends.registry import Backends
from backends.runner_tokens import CONTROL_USER, broker_password, token_key
from sipflow import plan, store
from sipflow.db import session_scope
from sipflow.messages import ControlMessage, Role, control_topic
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

# How long recovered intervals are waited for in the database (the ingest hub stores them).
RECOVER_STORE_WAIT_S = 30.0


class StartRunners(BaseModel):
    spec: dict[str, Any]
    # `network` is what the previous release called it (a placement's JSON is a superset).
    placement: Placement = Field(validation_alias=AliasChoices("placement", "network"))
    role: Role
    # Runners started before -> their addresses (callers calling callees directly send there).
    # None: sent by the previous release, which did not pass them.
    peers: dict[str, str] | None = None
    hold: bool = False  # start up, then wait for a `go` control message
    # Runner id -> broker password, made by the main queue for runners on a runner host (the
    # host cannot make them); None: the worker makes them (its own runners, older sessions).
    broker_passwords: dict[str, str] | None = None


class StopRunners(BaseModel):
    session_id: str
    runner_ids: list[str] | None = None  # None: all of the session
    # None: sent by the previous release, which did not pass placements.
    placements: list[Placement] | None = None


class RecoverIntervals(BaseModel):
    session_id: str
    runner_ids: list[str]  # stopped runners whose agent did not finish (lost)
    placements: list[Placement]


class PublishControl(BaseModel):
    session_id: str
    message: ControlMessage


class RunnerActivities:
    def __init__(
        self, settings: Settings, backends: Backends, on_runner_host: bool = False
    ) -> None:
        """`on_runner_host`: a runner host's worker, which holds no broker admin credential
        nor runner token secret: its runners' logins come in the start's input."""
        self.settings = settings
        self.backends = backends
        self.on_runner_host = on_runner_host

    @activity.defn
    def start_runners(self, req: StartRunners) -> list[StartedRunner]:
        """Idempotent: a runner that already runs (or ran) is not started again."""
        spec = SessionSpec.model_validate(req.spec)
        peers = req.peers if req.peers is not None else legacy.peers(req.placement, spec)
        backend = self.backends.get(req.placement.backend)
        # Their broker credentials first: an agent connects as soon as it starts.
        ids = plan.runner_ids(spec, req.role)
        placed = req.placement.runner_ids
        logins = req.broker_passwords
        if logins is None and self.on_runner_host:
            # A session started before the stack made hosts' logins: only a host given the
            # runner token secret (as hosts needed then) can derive them.
            if self.settings.runner_token_secret is None:
                raise ApplicationError(
                    "this runner host got no broker logins for its runners (a session started "
                    "by an older worker): set SIPFLOW_RUNNER_TOKEN_SECRET on the host for it",
                    non_retryable=True,
                )
        elif logins is None and not req.placement.broker_logins:  # else made with placement
            broker_auth.add_runners(
                self.settings,
                req.placement.session_id,
                [r for r in ids if not placed or r in placed],
            )
        try:
            if logins is not None and isinstance(backend, LocalBackend):
                return backend.start(
                    req.placement, spec, req.role, peers, hold=req.hold, logins=logins
                )
            return backend.start(req.placement, spec, req.role, peers, hold=req.hold)
        except PermanentBackendError as exc:
            raise ApplicationError(str(exc), non_retryable=True) from exc

    @activity.defn
    def stop_runners(self, req: StopRunners) -> list[str]:
        """Stops the runners and waits until they are gone; returns the ones that were running."""
        placements = req.placements
        if placements is None:
            placements = [legacy.placement(self.settings, req.session_id)]
        running: list[str] = []
        for placement in placements:
            backend = self.backends.get(placement.backend)
            running += backend.running(placement)
            backend.stop(placement, req.runner_ids, grace_s=20)
        return running

    @activity.defn
    def recover_intervals(self, req: RecoverIntervals) -> dict[str, int]:
        """After stop: what lost runners' SIPp wrote that their agent never published, sent
        again from the statistics files by the backend that holds them (the ingest stores each
        seq once); waits until it is stored. Returns runner -> intervals this added."""
        url = self.settings.resolved_database_url
        with session_scope(url) as db:
            before = store.stored_seqs(db, req.session_id)
        rows: dict[str, int] = {}
        for placement in req.placements:
            placed = [
                r for r in req.runner_ids if not placement.runner_ids or r in placement.runner_ids
            ]
            rows |= self.backends.get(placement.backend).recover_intervals(placement, placed)
        deadline = time.monotonic() + RECOVER_STORE_WAIT_S
        while True:
            activity.heartbeat()
            with session_scope(url) as db:
                stored = store.stored_seqs(db, req.session_id)
            if all(stored.get(r, 0) >= n for r, n in rows.items()):
                break
            if time.monotonic() > deadline:  # the reasons then say what is missing
                break
            time.sleep(0.2)
        return {r: stored.get(r, 0) - before.get(r, 0) for r in rows}

    @activity.defn
    def publish_control(self, req: PublishControl) -> None:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sipflow-ctl-{time.time_ns()}"
        )
        password = broker_password(token_key(self.settings), CONTROL_USER)
        client.username_pw_set(CONTROL_USER, password)
        client.connect(self.settings.mqtt_host, self.settings.mqtt_port)
        client.loop_start()
        try:
            info = client.publish(
                control_topic(req.session_id), req.message.model_dump_json(by_alias=True), qos=1
            )
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                raise RuntimeError("control message was not acknowledged by the broker")
        finally:
            client.disconnect()
            client.loop_stop()
