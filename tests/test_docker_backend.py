"""The docker backend end to end, on podman's Docker-API service: API -> workflow -> one bridge
network and one runner container per runner -> MQTT -> database -> verdict, then nothing left.
"""

from __future__ import annotations

import time
from typing import Any

import docker
import pytest

from backends.docker import LABEL_SESSION, DockerBackend, container_name, network_name
from backends.sweeper import sweep
from sipflow.placement import Placement
from sipflow.settings import Settings
from tests.conftest import RunningStack
from tests.docker_fixtures import (  # noqa: F401  (fixtures)
    docker_client_fixture,
    docker_stack_fixture,
    podman_url_fixture,
    runner_image_fixture,
)
from tests.sipp_files import last_cumulative, stat_files

PASSWORD = "s3cret-pw-for-the-docker-test"


def docker_spec(**callers: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "agents": 1,
        "scenario": "call",
        "rate": 50,
        "max_calls": 100,
        "accounts": [{"user": "alice", "password": PASSWORD}],
        "resources": {"cpus": 1, "memory_mb": 256},
    }
    c.update(callers)
    return {
        "name": "docker-direct",
        "backend": "docker",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer", "accounts": [{"user": "bob"}]},
            "callers": c,
        },
        "thresholds": ["success_rate >= 99.5", "failed_calls == 0"],
    }


def leftovers(client: docker.DockerClient, sid: str) -> list[str]:
    label = {"label": f"{LABEL_SESSION}={sid}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    try:  # also by name, should a label filter miss it
        client.networks.get(network_name(sid))
        found.append(f"network {network_name(sid)}")
    except docker.errors.NotFound:
        pass
    return sorted(set(found))


def wait_phase(rs: RunningStack, sid: str, phase: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while rs.http.get(f"/v1/sessions/{sid}").json().get("progress", {}).get("phase") != phase:
        assert time.monotonic() < deadline, f"{sid} never reached {phase}"
        time.sleep(0.2)


def wait_container(client: docker.DockerClient, name: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = client.containers.get(name)
            if c.status == "running":
                return c
        except docker.errors.NotFound:
            pass
        assert time.monotonic() < deadline, f"container {name} not running in {timeout}s"
        time.sleep(0.1)


def test_docker_session_passes_and_leaves_nothing(
    docker_stack: RunningStack, docker_client: docker.DockerClient
) -> None:
    sid = docker_stack.submit(docker_spec())
    caller = wait_container(docker_client, container_name(sid, "caller-0"))
    callee = docker_client.containers.get(container_name(sid, "callee-0"))
    # What the containers are: labelled, limited, on the session network, no secrets in sight.
    for c, rid in ((callee, "callee-0"), (caller, "caller-0")):
        c.reload()
        assert c.labels[LABEL_SESSION] == sid and c.labels["sipflow.runner"] == rid
        assert set(c.attrs["NetworkSettings"]["Networks"]) == {network_name(sid)}
        config = str(c.attrs["Config"])
        assert PASSWORD not in config and "sfr1." not in config, config
        assert not any("TOKEN" in e.upper() for e in c.attrs["Config"]["Env"] or [])
    host = caller.attrs["HostConfig"]
    assert host["NanoCpus"] == 1_000_000_000 and host["Memory"] == 256 * 1024 * 1024
    created = caller.attrs["Created"]

    body = docker_stack.wait(sid, timeout=240)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    measured = body["summary"]["measured"]
    assert measured["successful_calls"] == 100 and measured["failed_calls"] == 0
    assert leftovers(docker_client, sid) == []

    # The stored counts equal SIPp's own statistics (copied out of the containers at teardown).
    metrics = docker_stack.http.get(f"/v1/sessions/{sid}/metrics").json()
    for runner in metrics["runners"]:
        rid = runner["runner_id"]
        (stat,) = stat_files(docker_stack.runs_dir / sid / rid)
        sipp = last_cumulative(stat)
        assert sum(p["successful_calls"] for p in runner["points"]) == sipp["successful"], rid
        assert sum(p["calls_created"] for p in runner["points"]) == sipp["created"], rid
        log = (docker_stack.runs_dir / sid / rid / "agent.log").read_text()
        assert "fetched config" in log, log
        assert PASSWORD not in log and "sfr1." not in log
    print(f"\ncaller container created {created}; session {sid} passed")

    # The token stops working once the session is over.
    from backends.runner_tokens import runner_token, token_key
    from sipflow.settings import Settings

    key = token_key(Settings(data_dir=docker_stack.stack.data_dir))
    r = docker_stack.http.get(
        f"/v1/runner/sessions/{sid}/runners/caller-0/config",
        headers={"Authorization": f"Bearer {runner_token(key, sid, 'caller-0')}"},
    )
    assert r.status_code == 403, r.text


def test_killed_runner_is_lost_and_cleaned_up(
    docker_stack: RunningStack, docker_client: docker.DockerClient
) -> None:
    sid = docker_stack.submit(docker_spec(rate=10, max_calls=None, duration_s=60))
    wait_phase(docker_stack, sid, "running callers")
    caller = wait_container(docker_client, container_name(sid, "caller-0"))
    time.sleep(3)
    caller.kill()  # SIGKILL: the agent cannot say goodbye; the broker sends its Last Will
    body = docker_stack.wait(sid, timeout=180)
    assert body["verdict"] == "fail", body
    assert any("runners lost: caller-0" in r for r in body["reasons"]), body["reasons"]
    assert body["summary"]["measured"]["total_calls"] > 0
    runners = {
        r["runner_id"]: r for r in docker_stack.http.get(f"/v1/sessions/{sid}").json()["runners"]
    }
    assert runners["caller-0"]["state"] == "lost", runners
    # The callee still reaches the broker after the bridge lost a port: it reports its own final
    # state (done; under a loaded machine its SIPp may miss the stop's grace and say failed),
    # never lost.
    assert runners["callee-0"]["state"] in ("done", "failed"), runners
    assert leftovers(docker_client, sid) == []


def test_teardown_is_idempotent_and_sweeper_removes_dead_sessions(
    docker_client: docker.DockerClient, runner_image: str, tmp_path: Any
) -> None:
    backend = DockerBackend(docker_client, Settings(data_dir=tmp_path, runner_image=runner_image))
    alive, dead = f"t{time.time_ns():x}a", f"t{time.time_ns():x}d"
    try:
        for sid in (alive, dead):
            placement = backend.provision(sid, ["caller-0"])
            assert backend.provision(sid, ["caller-0"]) == placement  # idempotent
            assert (placement.backend, placement.name) == ("docker", network_name(sid))
            docker_client.containers.run(
                runner_image,
                entrypoint=["sleep", "300"],
                command=[],
                name=container_name(sid, "caller-0"),
                labels={LABEL_SESSION: sid, "sipflow.runner": "caller-0"},
                network=network_name(sid),
                detach=True,
            )
        assert {alive, dead} <= backend.sessions_present()
        # Only these two sessions count as dead or alive here: others on the engine are kept.
        removed = sweep(backend, still_running=lambda sid: sid != dead)
        assert sorted(removed.get(dead, [])) == sorted(
            [container_name(dead, "caller-0"), network_name(dead)]
        )
        assert list(removed) == [dead]
        assert leftovers(docker_client, dead) == []
        assert len(leftovers(docker_client, alive)) == 2
        # The sweeper's placement: only the session id, as after a crash.
        bare = Placement(session_id=alive, backend="docker")
        assert backend.running(bare) == ["caller-0"]
        assert sorted(backend.teardown(bare)) == sorted(
            [container_name(alive, "caller-0"), network_name(alive)]
        )
        assert backend.teardown(bare) == []  # a retry finds nothing and succeeds
    finally:
        for sid in (alive, dead):
            backend.teardown(Placement(session_id=sid, backend="docker"))


def run_to_exit(client: docker.DockerClient, image: str, **kw: Any) -> tuple[int, bytes, bytes]:
    """Run a container to its end: exit code, stdout, stderr. Not `containers.run()`, whose
    log streaming hung forever on podman's service when the container had already exited."""
    c = client.containers.create(image, **kw)
    try:
        c.start()
        code = int(c.wait(timeout=60)["StatusCode"])
        return code, c.logs(stdout=True, stderr=False), c.logs(stdout=False, stderr=True)
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("user_check", ["non-root", "healthcheck", "no-secrets"])
def test_runner_image(
    docker_client: docker.DockerClient, runner_image: str, user_check: str
) -> None:
    image = docker_client.images.get(runner_image)
    config = image.attrs["Config"]
    if user_check == "non-root":
        assert config["User"].split(":")[0] not in ("", "root", "0"), config["User"]
        code, out, _ = run_to_exit(docker_client, runner_image, entrypoint=["id", "-u"])
        assert (code, out.decode().strip()) == (0, "10001")
    elif user_check == "healthcheck":
        # A container of the image has it (podman's image inspect does not show it).
        c = docker_client.containers.create(runner_image, command=["--help"])
        try:
            check = c.attrs["Config"].get("Healthcheck") or {}
        finally:
            c.remove(force=True)
        assert "--health-check" in " ".join(check.get("Test") or []), c.attrs["Config"]
        # Without a heartbeat the agent reports itself unhealthy (exit 1).
        code, out, stderr = run_to_exit(docker_client, runner_image, command=["--health-check"])
        # (podman's service does not always return the logs of a container that already exited)
        assert code == 1, (code, out, stderr)
    else:
        text = str(config) + str(image.history())
        assert "sfr1." not in text and "SECRET" not in text.upper(), text
