"""Fixtures of the docker-backend tests: podman's Docker-API service, the runner image, and an
embedded stack whose broker and API runner containers can reach.

Import them into a test module by name, e.g.
`from tests.docker_fixtures import docker_stack_fixture  # noqa: F401`.

- podman serves the Docker API on a socket of its own (`podman system service`), configured by
  the project's deploy/containers.conf through CONTAINERS_CONF (runc, cgroupfs, netavark).
- The runner image comes from deploy/build_runner_image.sh (cached by content hash).
- Runner containers sit on per-session bridge networks and cannot reach the host's 127.0.0.1:
  in this stack mosquitto and the API listen on all addresses, and containers reach them at the
  session network's gateway, which they know as `sipflow-host` (settings.docker_host_alias).
The tests are skipped only when podman is not installed or cannot run a container at all, and
never under CI (CI=true), where podman must work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RunningStack, start_stack

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = ROOT / "deploy" / "containers.conf"
BUILD_SCRIPT = ROOT / "deploy" / "build_runner_image.sh"
IMAGE = "sipflow-runner:latest"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"podman must work in CI: {reason}")
    pytest.skip(reason)


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


@pytest.fixture(name="podman_url", scope="session")
def podman_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """podman's Docker-API service on a private socket; its URL (unix://...)."""
    podman = shutil.which("podman")
    if podman is None:
        _unavailable("podman is not installed (bash deploy/setup.sh installs it)")
    assert podman is not None
    info = subprocess.run(
        [podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if info.returncode != 0:
        _unavailable(f"podman cannot run here: {info.stderr.strip()[-500:]}")
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    url = f"unix://{sock}"
    log = open(sock.parent / "service.log", "ab")  # noqa: SIM115  (owned by the child)
    proc = subprocess.Popen(
        [podman, "system", "service", "--time=0", url],
        env=podman_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if sock.exists() and docker.DockerClient(base_url=url).ping():
                    break
            except Exception:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (sock.parent / "service.log").read_text()[-2000:]
                pytest.fail(f"podman's Docker-API service did not come up:\n{text}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(name="docker_client", scope="session")
def docker_client_fixture(podman_url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=podman_url, timeout=60)


@pytest.fixture(name="runner_image", scope="session")
def runner_image_fixture(podman_url: str) -> str:
    """The runner image, built offline by deploy/build_runner_image.sh unless it is current."""
    started = time.monotonic()
    res = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env={**podman_env(), "SIPFLOW_RUNNER_IMAGE": IMAGE},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert res.returncode == 0, f"runner image build failed:\n{res.stderr[-4000:]}"
    sys.stderr.write(f"\n{res.stderr.strip()} [{time.monotonic() - started:.1f}s]\n")
    return res.stdout.strip().splitlines()[-1]


@pytest.fixture(name="docker_stack", scope="session")
def docker_stack_fixture(
    tmp_path_factory: pytest.TempPathFactory, podman_url: str, runner_image: str
) -> Iterator[RunningStack]:
    """Temporal, mosquitto, API and worker on SQLite; sessions may use the docker backend."""
    yield from start_stack(
        tmp_path_factory.mktemp("stack-docker"),
        # mosquitto and the API on all addresses: containers reach them through the gateway.
        bind_address="0.0.0.0",
        extra_env={
            "SIPFLOW_DOCKER_URL": podman_url,
            "SIPFLOW_RUNNER_IMAGE": runner_image,
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
        },
    )
