"""The runner side of a Fargate task, which moto cannot run: the runner image under podman, started
exactly as backends/fargate.py has ECS start it (the task definition's entry point, the session's
token secret injected as an environment variable, RunTask's command override), against a real
API. The token the agent shows the API is its own runner's (the API serves its files) and the
token file is the owner's only.

Not checked here: that SIPp does not inherit the variable (the entry point removes it from the
agent's environment before anything starts; /proc/<pid>/environ keeps what a process was started
with, so tini, PID 1, still shows it, as with any ECS secret given as a variable).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

from api.main import create_app
from backends import fargate_taskdef
from backends.container_plan import config_url
from backends.fargate_entry import TOKENS_ENV, command
from backends.runner_tokens import runner_token, token_key
from entrypoints.stack import free_port, wait_for_port
from runners.image import HEARTBEAT_PATH, TOKEN_PATH
from sipflow import store
from sipflow.db import migrate, session_scope
from sipflow.settings import Settings
from tests.docker_fixtures import podman_env
from tests.docker_fixtures import podman_url_fixture as podman_url_fixture  # (fixture)
from tests.docker_fixtures import runner_image_fixture as runner_image_fixture  # (fixture)

SID = "fe0000000001"
SPEC: dict[str, Any] = {
    "name": "fargate-entry",
    "backend": "fargate",
    "target": {"host": "198.18.0.9", "port": 5060, "registrar": False},
    "roles": {
        "callees": {"agents": 1, "scenario": "answer"},
        "callers": {"agents": 1, "rate": 1, "max_calls": 1, "call_to": ["bob"]},
    },
}

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Any, Any], Awaitable[None]]


class Recorder:
    """The API app, remembering (path, status) of every response."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        async def record(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope.get("path", ""), int(message["status"])))
            await send(message)

        await self.app(scope, receive, record if scope["type"] == "http" else send)


def podman(*args: str, timeout: float = 60, check: bool = True) -> str:
    res = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_fargate_task_fetches_its_files_with_its_own_token_from_the_secret(
    runner_image: str, tmp_path: Path
) -> None:
    gateway = json.loads(podman("network", "inspect", "podman"))[0]["subnets"][0]["gateway"]
    port = free_port()
    url = f"sqlite:///{tmp_path / 'api.db'}"
    settings = Settings(
        database_url=url,
        data_dir=tmp_path,
        runner_token_secret="fargate-entry-test-token-secret",
        docker_api_url=f"http://{gateway}:{port}",
        docker_mqtt_host=gateway,
        docker_mqtt_port=free_port(),  # no broker: the agent gives up after its files
    )
    migrate(url)
    with session_scope(url) as db:
        store.create_session(db, SID, "default", SPEC["name"], SPEC, None)
        store.set_status(db, SID, "running")
    app = Recorder(create_app(settings))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, host="0.0.0.0", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, 30)
    key = token_key(settings)
    # What ECS would do: the secret's value (every runner's token) in the variable, the task
    # definition's entry point, the override's command.
    tokens = {r: runner_token(key, SID, r) for r in ("callee-0", "caller-0")}
    td = fargate_taskdef.content(settings, SID, 256, 512, "arn:aws:secretsmanager:stand-in")
    (container,) = td["containerDefinitions"]
    name = f"sipflow-fargate-entry-{port}"
    cmd = command("callee-0", config_url(settings, SID, "callee-0"), TOKEN_PATH, HEARTBEAT_PATH)
    try:
        podman(
            "run", "-d", "--name", name, "--network", "podman",
            "--user", container["user"],
            "-e", f"{TOKENS_ENV}={json.dumps(tokens)}",
            "--entrypoint", json.dumps(container["entryPoint"]),
            runner_image, *cmd,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        config = f"/v1/runner/sessions/{SID}/runners/callee-0/config"
        while (config, 200) not in app.seen:
            assert time.monotonic() < deadline, (app.seen, podman("logs", name, check=False))
            time.sleep(0.2)
        assert all(status == 200 for _, status in app.seen), app.seen
        mode = podman("exec", name, "stat", "-c", "%a %U", TOKEN_PATH)
        assert mode.split() == ["600", "sipflow"]
        assert podman("exec", name, "cat", TOKEN_PATH) == tokens["callee-0"]
        # The agent resolved its runner id (its address on a Fargate task: the entry point's
        # part) and went on to its broker, which is not there: it is still trying.
        time.sleep(3)
        state = podman("inspect", "--format", "{{.State.Status}}", name).strip()
        logs = podman("logs", name, check=False)
        assert state == "running" and "Traceback" not in logs, (state, logs)
    finally:
        podman("rm", "-f", name, check=False)
        server.should_exit = True
        thread.join(10)
