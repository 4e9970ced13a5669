"""Activities that start and stop runner agents and send them control messages."""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel
from temporalio import activity

from runners.local_backend import LocalBackend
from sipflow.messages import ControlMessage, Role, control_topic
from sipflow.plan import SessionNetwork, runner_configs
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


class StartRunners(BaseModel):
    spec: dict[str, Any]
    network: SessionNetwork
    role: Role


class StartedRunner(BaseModel):
    runner_id: str
    role: Role
    address: str


class StopRunners(BaseModel):
    session_id: str
    runner_ids: list[str] | None = None  # None: all of the session


class PublishControl(BaseModel):
    session_id: str
    message: ControlMessage


class RunnerActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = LocalBackend(settings.runs_dir)

    @activity.defn
    def start_runners(self, req: StartRunners) -> list[StartedRunner]:
        """Idempotent: an agent that already runs (or ran) for a runner is not started again."""
        spec = SessionSpec.model_validate(req.spec)
        configs = runner_configs(
            spec,
            req.network,
            req.role,
            mqtt_host=self.settings.mqtt_host,
            mqtt_port=self.settings.mqtt_port,
            runs_dir=self.settings.runs_dir,
        )
        for cfg in configs:
            self.backend.start(cfg)
        return [
            StartedRunner(runner_id=c.runner_id, role=c.role, address=c.local_ip) for c in configs
        ]

    @activity.defn
    def stop_runners(self, req: StopRunners) -> list[str]:
        """Stops the agents and waits until they are gone; returns the ones that were running."""
        running = self.backend.running(req.session_id)
        self.backend.stop(req.session_id, req.runner_ids, grace_s=20)
        return running

    @activity.defn
    def publish_control(self, req: PublishControl) -> None:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sipflow-ctl-{time.time_ns()}"
        )
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
