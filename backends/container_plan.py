"""What a containerized runner is told: its RunnerConfig as seen from inside its container.

The worker (which starts the containers) and the API (which serves each runner its files) both
derive it from the spec and the settings, so nothing but a token has to be handed to a
container. Inside a container a runner is known by its runner id on the session network (so a
runner's address is its id, and callers reach callees by theirs), the broker and the API are on
the container host (settings.container_mqtt / container_api_url), and a system under test on the
host's loopback is reached through the host alias.
"""

from __future__ import annotations

from collections.abc import Mapping

from backends.runner_tokens import token_key, with_broker_login
from runners.image import CONTAINER_RUNS_DIR
from sipflow import plan
from sipflow.messages import ROLES, Role
from sipflow.runner_config import RunnerConfig
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


def container_runner_configs(
    spec: SessionSpec,
    session_id: str,
    role: Role,
    settings: Settings,
    peers: Mapping[str, str] | None = None,
) -> list[RunnerConfig]:
    """`peers`: runners reached at an address of their own, not by name (Fargate tasks: their
    private addresses, stored as they started)."""
    mqtt_host, mqtt_port = settings.container_mqtt
    by_name = {rid: rid for r in ROLES for rid in plan.runner_ids(spec, r)}
    configs = plan.runner_configs(
        plan.loopback_target_as(spec, settings.docker_host_alias),
        session_id,
        role,
        addresses=by_name,
        peers={**by_name, **(peers or {})},
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        runs_dir=CONTAINER_RUNS_DIR,
        deadline_margin_s=settings.runner_deadline_margin_s,
        silence_s=settings.runner_silence_s,
        spool_max_messages=settings.agent_spool_max_messages,
        visqol_max_clips=settings.media_visqol_max_clips,
        spool_linger_s=settings.agent_spool_linger_s,
    )
    key = token_key(settings)
    return [with_broker_login(key, cfg) for cfg in configs]


def container_runner_config(
    spec: SessionSpec,
    session_id: str,
    runner_id: str,
    settings: Settings,
    peers: Mapping[str, str] | None = None,
) -> RunnerConfig | None:
    for role in ROLES:
        for cfg in container_runner_configs(spec, session_id, role, settings, peers):
            if cfg.runner_id == runner_id:
                return cfg
    return None


def config_url(settings: Settings, session_id: str, runner_id: str) -> str:
    """Where a runner fetches its files (api/routes/runner_files.py)."""
    return f"{settings.container_api_url}/v1/runner/sessions/{session_id}/runners/{runner_id}"
