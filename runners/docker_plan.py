"""What a containerized runner is told: its RunnerConfig as seen from inside its container.

The worker (which starts the containers) and the API (which serves each runner its files) both
derive it from the stored spec and the settings, so nothing but a token has to be handed to a
container. Inside a container a runner is known by its runner id on the session network, the
broker and the API are on the Docker host (settings.container_mqtt / container_api_url), and a
system under test on the host's loopback is reached through the host alias.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from runners.agent import DEFAULT_HEARTBEAT as HEARTBEAT_PATH  # noqa: F401 (re-exported)
from sipflow import plan
from sipflow.messages import Role
from sipflow.runner_config import RunnerConfig
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

# Inside the runner image (deploy/runner/Containerfile): the agent's writable home.
CONTAINER_RUNS_DIR = Path("/home/sipflow/runs")
TOKEN_PATH = "/home/sipflow/runner.token"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_spec(spec: SessionSpec, settings: Settings) -> SessionSpec:
    """The spec as containers see it: a target on the host's loopback is the Docker host."""
    if spec.target is None or not is_loopback(spec.target.host):
        return spec
    target = spec.target.model_copy(
        update={"host": settings.docker_host_alias, "domain": spec.target.sip_domain}
    )
    return spec.model_copy(update={"target": target})


def session_network(session_id: str) -> plan.SessionNetwork:
    return plan.SessionNetwork(session_id=session_id, subnet="", backend="docker")


def container_runner_configs(
    spec: SessionSpec, session_id: str, role: Role, settings: Settings
) -> list[RunnerConfig]:
    mqtt_host, mqtt_port = settings.container_mqtt
    return plan.runner_configs(
        container_spec(spec, settings),
        session_network(session_id),
        role,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        runs_dir=CONTAINER_RUNS_DIR,
    )


def container_runner_config(
    spec: SessionSpec, session_id: str, runner_id: str, settings: Settings
) -> RunnerConfig | None:
    for role in ("callee", "caller"):
        for cfg in container_runner_configs(spec, session_id, role, settings):  # type: ignore[arg-type]
            if cfg.runner_id == runner_id:
                return cfg
    return None


def config_url(settings: Settings, session_id: str, runner_id: str) -> str:
    """Where a runner fetches its files (api/routes/runner_files.py)."""
    return f"{settings.container_api_url}/v1/runner/sessions/{session_id}/runners/{runner_id}"


def resolve_backend(spec: SessionSpec, settings: Settings) -> str:
    """The backend a session runs on: its spec's choice, else the settings' default."""
    return spec.backend or settings.default_backend


def stored_spec(settings: Settings, session_id: str) -> SessionSpec | None:
    """The spec of a stored session (the activities that get only a session id use this)."""
    from sipflow import store
    from sipflow.db import session_scope

    with session_scope(settings.resolved_database_url) as db:
        row = store.get_session(db, session_id)
        return SessionSpec.model_validate(row.spec) if row is not None else None


def session_backend(settings: Settings, session_id: str) -> str:
    spec = stored_spec(settings, session_id)
    return resolve_backend(spec, settings) if spec is not None else settings.default_backend
