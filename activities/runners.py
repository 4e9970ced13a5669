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
from backends.registry import Backends
from backends.runner_tokens import CONTROL_USER, broker_password, token_key
from sipflow import plan
from sipflow.messages import ControlMessage, Role, control_topic
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


class StartRunners(BaseModel):
    spec: dict[str, Any]
    # `network` is what the previous release called it (a placement's JSON is a superset).
    placement: Placement = Field(validation_alias=AliasChoices("placement", "network"))
    role: Role
    # Runners started before -> their addresses (callers calling callees directly send there).
    # None: sent by the previous release, which did not pass them.
    peers: dict[str, str] | None = None
    hold: bool = False  # start up, then wait for a `go` control message


class StopRunners(BaseModel):
    session_id: str
    runner_ids: list[str] | None = None  # None: all of the session
    # None: sent by the previous release, which did not pass placements.
    placements: list[Placement] | None = None


class PublishControl(BaseModel):
    session_id: str
    message: ControlMessage


class RunnerActivities:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self.settings = settings
        self.backends = backends

    @activity.defn
    def start_runners(self, req: StartRunners) -> list[StartedRunner]:
        """Idempotent: a runner that already runs (or ran) is not started again."""
        spec = SessionSpec.model_validate(req.spec)
        peers = req.peers if req.peers is not None else legacy.peers(req.placement, spec)
        backend = self.backends.get(req.placement.backend)
        # Their broker credentials first: an agent connects as soon as it starts.
        ids = plan.runner_ids(spec, req.role)
        placed = req.placement.runner_ids
        if not req.placement.broker_logins:  # else made with the placement
            broker_auth.add_runners(
                self.settings,
                req.placement.session_id,
                [r for r in ids if not placed or r in placed],
            )
        try:
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
