"""Activities that start and stop runner agents and send them control messages."""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runners.docker_backend import LazyDockerBackend
from runners.docker_plan import (
    config_url,
    container_runner_configs,
    resolve_backend,
    session_backend,
)
from runners.docker_tokens import runner_token, token_key
from runners.local_backend import LocalBackend
from sipflow.messages import ControlMessage, Role, control_topic
from sipflow.plan import SessionNetwork, runner_configs
from sipflow.settings import Settings
from sipflow.spec import RoleSpec, SessionSpec


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
        self.docker = LazyDockerBackend(settings)

    @activity.defn
    def start_runners(self, req: StartRunners) -> list[StartedRunner]:
        """Idempotent: an agent that already runs (or ran) for a runner is not started again."""
        spec = SessionSpec.model_validate(req.spec)
        if resolve_backend(spec, self.settings) == "docker":
            return self._start_containers(spec, req)
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

    def _start_containers(self, spec: SessionSpec, req: StartRunners) -> list[StartedRunner]:
        """One container per runner; each gets only a token and fetches its files from the API."""
        from docker.errors import ImageNotFound

        sid = req.network.session_id
        key = token_key(self.settings)
        role_spec: RoleSpec | None = (
            spec.roles.callers if req.role == "caller" else spec.roles.callees
        )
        resources = role_spec.resources if role_spec is not None else None
        configs = container_runner_configs(spec, sid, req.role, self.settings)
        backend = self.docker.get()
        for cfg in configs:
            try:
                backend.start(
                    cfg,
                    config_url=config_url(self.settings, sid, cfg.runner_id),
                    token=runner_token(key, sid, cfg.runner_id),
                    resources=resources,
                )
            except ImageNotFound as exc:
                raise ApplicationError(
                    f"runner image {self.settings.runner_image!r} not found on the Docker host "
                    "(build it: deploy/build_runner_image.sh, or docker build -f "
                    "deploy/runner/Containerfile .)",
                    non_retryable=True,
                ) from exc
        return [
            StartedRunner(runner_id=c.runner_id, role=c.role, address=c.local_ip) for c in configs
        ]

    @activity.defn
    def stop_runners(self, req: StopRunners) -> list[str]:
        """Stops the agents and waits until they are gone; returns the ones that were running."""
        if session_backend(self.settings, req.session_id) == "docker":
            docker_backend = self.docker.get()
            running = docker_backend.running(req.session_id)
            docker_backend.stop(req.session_id, req.runner_ids, grace_s=20)
            return running
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
