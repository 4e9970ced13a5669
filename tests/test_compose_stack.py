"""deploy/compose.yaml started for real: the images built offline (deploy/build_app_image.sh,
deploy/build_runner_image.sh; cached by content hash), the stack started with podman-compose
exactly as the README says, one session run through its API on the docker backend (runner
containers started by the worker through podman's Docker-API socket), verdict and stored metrics
checked; then `down -v` and nothing of the project or the session is left.

The runner-host service (profile runner-host) joins in a second test: a pool key made through
the compose API, the host started with it, a session placed on its pool.

Slow (image build cold ~5 min, warm: the stack's start and one session). Skipped only when
podman is missing, never under CI (docker_fixtures)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docker_fixtures import (  # noqa: F401
    CONTAINERS_CONF,
    podman_env,
    podman_url_fixture,
    runner_image_fixture,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"
BUILD_APP = ROOT / "deploy" / "build_app_image.sh"
APP_IMAGE = "sipflow:latest"
SESSION_LABEL = "sipflow.session"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def podman_compose() -> str:
    """podman-compose from the venv (pyproject's dev extra) or PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    found = str(beside) if beside.exists() else shutil.which("podman-compose")
    if not found:
        pytest.fail("podman-compose is not installed (pip install -c requirements.lock -e .[dev])")
    return found


@pytest.fixture(name="app_image", scope="session")
def app_image_fixture(podman_url: str) -> str:
    """The sipflow image, built offline by deploy/build_app_image.sh unless it is current."""
    started = time.monotonic()
    res = subprocess.run(
        ["bash", str(BUILD_APP)],
        env={**podman_env(), "SIPFLOW_APP_IMAGE": APP_IMAGE, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert res.returncode == 0, f"app image build failed:\n{res.stderr[-4000:]}"
    sys.stderr.write(f"\n{res.stderr.strip()} [{time.monotonic() - started:.1f}s]\n")
    return res.stdout.strip().splitlines()[-1]


class Compose:
    """One compose project of deploy/compose.yaml with its own .env, ports and name."""

    def __init__(self, tmp: Path, podman_url: str, runner_image: str, app_image: str) -> None:
        self.project = f"sipflowt{secrets.token_hex(4)}"
        self.api_port, self.mqtt_port, self.ui_port = free_port(), free_port(), free_port()
        self.env_file = tmp / ".env"
        # .env.example with the values a user must set, as the README says.
        values = {
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "SIPFLOW_RUNNER_TOKEN_SECRET": secrets.token_hex(32),
            "SIPFLOW_ENCRYPTION_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "SIPFLOW_API_PUBLISHED_PORT": str(self.api_port),
            "SIPFLOW_MQTT_PUBLISHED_PORT": str(self.mqtt_port),
            "TEMPORAL_UI_PORT": str(self.ui_port),
            "SIPFLOW_IMAGE": app_image,
            "SIPFLOW_RUNNER_IMAGE": runner_image,
            "DOCKER_SOCKET": podman_url.removeprefix("unix://"),
            "DOCKER_SOCKET_GID": "0",
            # other stacks' runner containers share this engine (other tests, CI jobs)
            "WORKER_SWEEP_INTERVAL_S": "0",
        }
        self.values = values
        lines = []
        for line in (ROOT / ".env.example").read_text().splitlines():
            name = line.split("=", 1)[0]
            lines.append(f"{name}={values.pop(name)}" if name in values else line)
        lines += [f"{k}={v}" for k, v in values.items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.admin_key: str | None = None
        self.session_ids: list[str] = []
        # variables given to podman-compose beside the .env file (they win over it)
        self.extra_env: dict[str, str] = {}

    def run(
        self, *args: str, timeout: float = 300, check: bool = True, profile: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [podman_compose(), "-p", self.project, "-f", str(COMPOSE)]
        argv += ["--env-file", str(self.env_file)]
        if profile:
            argv += ["--profile", profile]
        res = subprocess.run(
            [*argv, *args],
            env={**podman_env(), "CONTAINERS_CONF": str(CONTAINERS_CONF), **self.extra_env},
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check:
            assert res.returncode == 0, f"{args}: {res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res

    def podman(self, *args: str, timeout: float = 60) -> str:
        res = subprocess.run(
            ["podman", *args],
            env=podman_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert res.returncode == 0, f"podman {args}: {res.stderr[-2000:]}"
        return res.stdout

    def containers(self) -> list[str]:
        out = self.podman(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
            "--format", "{{.Names}}",
        )  # fmt: skip
        return out.split()

    def logs(self) -> str:
        text = []
        for name in self.containers():
            res = subprocess.run(
                ["podman", "logs", "--tail", "40", name],
                env=podman_env(),
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            text.append(f"--- {name}\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
        return "\n".join(text)

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until the API answers /v1/health through its published port and every service runs."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.api}/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the compose API did not answer in {timeout}s:\n{self.logs()}")
            time.sleep(2)

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes, and its sessions' containers and
        networks (by name: other stacks may share the engine)."""
        label = f"label=io.podman.compose.project={self.project}"
        mine = (self.project, *(f"sipflow-{sid}" for sid in self.session_ids))
        sessions = self.podman("ps", "-a", "--filter", f"label={SESSION_LABEL}",
                               "--format", "{{.Names}}").split()  # fmt: skip
        return {
            "containers": self.podman("ps", "-a", "--filter", label, "--format", "{{.Names}}")
            .split(),
            "session containers": [n for n in sessions if n.startswith(mine)],
            "networks": [
                n for n in self.podman("network", "ls", "--format", "{{.Name}}").split()
                if n.startswith(mine)
            ],
            "volumes": [
                v for v in self.podman("volume", "ls", "--format", "{{.Name}}").split()
                if v.startswith(self.project)
            ],
        }  # fmt: skip

    def exec_api(self, *argv: str) -> str:
        res = self.run("exec", "-T", "api", *argv, timeout=120)
        return res.stdout


@pytest.fixture(name="compose_stack", scope="module")
def compose_stack_fixture(
    tmp_path_factory: pytest.TempPathFactory, podman_url: str, runner_image: str, app_image: str
) -> Iterator[Compose]:
    c = Compose(tmp_path_factory.mktemp("compose"), podman_url, runner_image, app_image)
    # podman's socket is root's alone (0600); the worker runs as sipflow with group root
    # (DOCKER_SOCKET_GID=0), as with Docker's root:docker 0660 socket.
    os.chmod(podman_url.removeprefix("unix://"), 0o660)
    started = time.monotonic()
    try:
        c.run("up", "-d", timeout=600)
        c.wait_healthy()
        sys.stderr.write(f"\ncompose up -> API healthy: {time.monotonic() - started:.1f}s\n")
        yield c
    finally:
        logs = c.logs()
        # test_compose_down_leaves_nothing checks `down`; here: never leave anything behind
        down = c.run("--profile", "runner-host", "down", "-v", "-t", "5", timeout=300, check=False)
        left = c.leftovers()
        if any(left.values()):
            for name in left["containers"] + left["session containers"]:
                subprocess.run(["podman", "rm", "-f", name], env=podman_env(), check=False)
            for vol in left["volumes"]:
                subprocess.run(["podman", "volume", "rm", "-f", vol], env=podman_env(), check=False)
        (tmp_path_factory.getbasetemp() / f"{c.project}.log").write_text(
            logs + down.stdout + down.stderr
        )


def session_spec() -> dict[str, Any]:
    """examples/quickstart.yaml, smaller: a caller calls the built-in callee."""
    return {
        "version": 1,
        "name": "compose-smoke",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {
                "agents": 1,
                "scenario": "call",
                "rate": 10,
                "max_calls": 30,
                "hold_ms": 200,
            },
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def wait_session(http: httpx.Client, sid: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/v1/sessions/{sid}").json()
        if body.get("status") in ("completed", "cancelled", "error"):
            return body
        time.sleep(1)
    raise AssertionError(f"session {sid} did not finish in {timeout}s")


def admin_client(c: Compose) -> httpx.Client:
    if c.admin_key is None:
        # The first key, made in the API's container straight in the database (as the README says).
        out = c.exec_api("sipflow", "keys", "create", "--tenant", "default", "--role", "admin")
        c.admin_key = out.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {c.admin_key}"}
    return httpx.Client(base_url=c.api, timeout=30, headers=headers)


def check_session(c: Compose, http: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the spec through the compose API: verdict pass, 30 calls stored in PostgreSQL."""
    r = http.post("/v1/sessions", json=spec)
    assert r.status_code == 201, r.text
    sid = str(r.json()["id"])
    c.session_ids.append(sid)
    body = wait_session(http, sid)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), (body, c.logs())
    measured = body["summary"]["measured"]
    assert measured["successful_calls"] == 30 and measured["failed_calls"] == 0, measured
    metrics = http.get(f"/v1/sessions/{sid}/metrics").json()
    by_runner = {m["runner_id"]: m for m in metrics["runners"]}
    assert set(by_runner) == {"caller-0", "callee-0"}, by_runner
    assert sum(p["successful_calls"] for p in by_runner["caller-0"]["points"]) == 30
    stored = c.exec_api(
        "python", "-c",
        "from sqlalchemy import create_engine, text; import os;"
        "e = create_engine(os.environ['SIPFLOW_DATABASE_URL']);"
        "print(e.connect().execute(text('SELECT count(*) FROM metric_interval"
        f" WHERE session_id = :s'), {{'s': '{sid}'}}).scalar())",
    )  # fmt: skip
    points = sum(len(m["points"]) for m in metrics["runners"])
    assert points > 0 and int(stored.strip().splitlines()[-1]) == points, stored
    print(f"\ncompose session {sid}: {json.dumps(measured)}")
    return body


def test_compose_stack_runs_a_session_in_runner_containers(compose_stack: Compose) -> None:
    c = compose_stack
    http = admin_client(c)
    # Every service of the file runs (postgresql, temporal, mosquitto, api, worker).
    running = c.podman(
        "ps", "--filter", f"label=io.podman.compose.project={c.project}",
        "--format", "{{.Labels}}",
    )  # fmt: skip
    for service in ("postgresql", "temporal", "mosquitto", "api", "worker"):
        assert f"com.docker.compose.service:{service}" in running, (service, running)
    # The Temporal Web UI is published.
    assert httpx.get(f"http://127.0.0.1:{c.ui_port}/", timeout=10).status_code == 200

    body = check_session(c, http, session_spec())
    # Runner containers (the docker backend, through podman's socket) ran it, and went at teardown.
    created = c.podman("events", "--stream=false", "--since", "10m", "--filter",
                       f"label={SESSION_LABEL}={body['id']}", "--filter", "event=create",
                       "--format", "{{.Name}}")  # fmt: skip
    assert set(created.split()) >= {
        f"sipflow-{body['id']}-caller-0",
        f"sipflow-{body['id']}-callee-0",
    }, created
    assert not c.podman("ps", "-a", "--filter", f"label={SESSION_LABEL}={body['id']}", "-q").split()


def test_compose_runner_host_runs_a_pool_session(compose_stack: Compose) -> None:
    """The runner-host service (profile runner-host) with a key made through the compose API:
    it joins pool `edge`, and a session with `pool: edge` runs its agents there."""
    c = compose_stack
    http = admin_client(c)
    r = http.post("/v1/hosts", json={"pool": "edge", "name": "compose"})
    assert r.status_code == 201, r.text
    c.extra_env = {
        "SIPFLOW_RUNNER_HOST_KEY": r.json()["secret"],
        "SIPFLOW_RUNNER_HOST_POOL": "edge",
    }
    c.run("--profile", "runner-host", "up", "-d", "--no-deps", "runner-host", timeout=300)
    deadline = time.monotonic() + 120
    while True:
        hosts = http.get("/v1/pools/edge/hosts").json()["items"]
        if any(h["state"] == "live" for h in hosts):
            break
        assert time.monotonic() < deadline, (hosts, c.logs())
        time.sleep(2)
    body = check_session(c, http, {**session_spec(), "pool": "edge", "name": "compose-pool"})
    # The agents ran on the host, in a session namespace of its container (addresses from
    # SIPFLOW_NETNS_POOL), not in runner containers; they reached the broker through the
    # container's masquerade.
    addresses = {r["runner_id"]: r["address"] for r in body["runners"]}
    assert all(str(a).startswith("10.250.") for a in addresses.values()), addresses
    created = c.podman("events", "--stream=false", "--since", "10m", "--filter",
                       f"label={SESSION_LABEL}={body['id']}", "--format", "{{.Name}}")  # fmt: skip
    assert not created.split(), created
    # The host reports its agents with its heartbeats: the session's are gone by a later one.
    deadline = time.monotonic() + 60
    while True:
        (host,) = http.get("/v1/pools/edge/hosts").json()["items"]
        if host["running_agents"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert host["state"] == "live" and host["running_agents"] == 0, host


def test_compose_down_leaves_nothing(compose_stack: Compose) -> None:
    c = compose_stack
    before = c.leftovers()
    assert len(before["containers"]) == 6 and len(before["volumes"]) == 5, before
    assert any(n.startswith(c.project) for n in before["networks"]), before
    c.run("--profile", "runner-host", "down", "-v", "-t", "5", timeout=300)
    assert c.leftovers() == {
        "containers": [],
        "session containers": [],
        "networks": [],
        "volumes": [],
    }
