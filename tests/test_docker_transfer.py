"""A blind transfer (three parties: alice REFERs bob to carol, a named party) on the docker
backend, through Kamailio on the host: one container per party on the session network, each
fetching its config, accounts and scenario from the API (api/routes/runner_files.py), the party
as callee-side runner callee-1 with its own resources; then the same with audio on all three
sides (runners/media_transfer.py), RTP between the containers.

Kamailio listens on all of the host's addresses (0.0.0.0): the session network is made when the
session starts, and its containers reach the host only at that network's gateway (the
`sipflow-host` alias the loopback target becomes, sipflow/plan.py loopback_target_as)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker
import pytest

from backends.docker import container_name
from entrypoints.stack import free_port
from sipflow.flows import FLOWS
from sipflow.media_store import FROM_PARTY, TO_PARTY
from tests.conftest import RunningStack
from tests.docker_fixtures import (  # noqa: F401  (fixtures)
    docker_client_fixture,
    docker_stack_fixture,
    podman_url_fixture,
    runner_image_fixture,
)
from tests.sut.kamailio import kamailio
from tests.test_docker_backend import leftovers, wait_container
from tests.test_media_e2e import calls
from tests.test_transfer_flows import FLOWS_CFG, role_steps
from tests.test_transfer_media import CALLS as MEDIA_CALLS
from tests.test_transfer_media import media_transfer_spec

CALLS = 3
PASSWORD = "secret"  # kamailio-flows.cfg takes any user with this password
BLIND = FLOWS["blind_transfer"]


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Kamailio on every host address; the target as a spec names it (the host's loopback)."""
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio-docker"), "0.0.0.0", config=FLOWS_CFG):
        yield f"127.0.0.1:{port}"


def docker_transfer_spec(sut: str, tag: str, **party: Any) -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    return {
        "name": f"docker-transfer-{tag}",
        "backend": "docker",
        "target": {"host": host, "port": int(port), "domain": host, "registrar": True},
        "roles": {
            "callers": {
                "rate": 2,
                "max_calls": CALLS,
                "hold_ms": 100,
                "accounts": [{"user": f"alice{tag}"}],
                "flow": {"name": "blind_transfer", "transfer_to": "carol", "talk_s": 0.2},
            },
            "callees": {"accounts": [{"user": f"bob{tag}", "password": PASSWORD}]},
            "parties": {
                "carol": {
                    "accounts": [{"user": f"carol{tag}", "password": PASSWORD}],
                    **party,
                }
            },
        },
        "thresholds": ["success_rate >= 100", "step_failed_transfer == 0"],
    }


def test_blind_transfer_on_docker_through_kamailio(
    docker_stack: RunningStack, docker_client: docker.DockerClient, sut: str
) -> None:
    spec = docker_transfer_spec(sut, "d1", resources={"cpus": 0.5, "memory_mb": 192})
    sid = docker_stack.submit(spec)
    # The party runs in a container of its own, with its own resources (not the callees').
    carol = wait_container(docker_client, container_name(sid, "callee-1"), timeout=120)
    carol.reload()
    assert carol.labels["sipflow.runner"] == "callee-1"
    limits = carol.attrs["HostConfig"]
    assert (limits["NanoCpus"], limits["Memory"]) == (500_000_000, 192 * 1024 * 1024), limits
    assert PASSWORD not in str(carol.attrs["Config"])

    body = docker_stack.wait(sid, timeout=300)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["measured"]["successful_calls"] == CALLS
    caller = role_steps(body, "caller")
    assert list(caller) == list(BLIND.steps)
    assert all((s["passed"], s["failed"]) == (CALLS, 0) for s in caller.values()), caller
    # bob's steps, then carol's: she answered every transferred call (Referred-By checked).
    callee = role_steps(body, "callee")
    assert list(callee) == [*BLIND.callee_steps, "target_answer"], callee
    for step, s in callee.items():
        expected = 2 * CALLS if step == "target_hangup" else CALLS
        assert (s["passed"], s["failed"]) == (expected, 0), (step, s)
    # carol's container fetched its files from the API (her account among them).
    log = (docker_stack.runs_dir / sid / "callee-1" / "agent.log").read_text()
    assert "fetched config" in log, log[-2000:]
    assert PASSWORD not in log
    assert leftovers(docker_client, sid) == []
    # The stored spec keeps no party password (the runner-files route fills it from the
    # secret store, as for callers and callees).
    stored = docker_stack.http.get(f"/v1/sessions/{sid}").json()["spec"]
    assert stored["roles"]["parties"]["carol"]["accounts"][0]["password"] == "***"


def test_blind_transfer_with_media_on_docker(
    docker_stack: RunningStack, docker_client: docker.DockerClient, sut: str
) -> None:
    """Audio on all three sides, between containers on the session network: the transferred
    leg (bob's stream sent on to carol, carol's to bob) heard both ways."""
    spec = media_transfer_spec(sut, "d2")
    spec["backend"] = "docker"
    sid = docker_stack.submit(spec)
    body = docker_stack.wait(sid, timeout=300)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    items = calls(docker_stack, sid)
    assert len(items) == MEDIA_CALLS, items
    # Every session's Call-IDs are its own: in a container SIPp has the same pid each time and
    # the session network reuses its addresses, so SIPp's default Call-ID repeated the previous
    # session's, which the proxy took for retransmissions of its calls (a flaky failure in CI).
    assert all(f"@{sid}." in call["call_id"] for call in items), items
    for call in items:
        assert call["audio"] == "both", call
        dirs = {d["direction"]: d for d in call["directions"]}
        assert dirs[TO_PARTY]["receiver_runner"] == "callee-1", call
        assert dirs[FROM_PARTY]["receiver_runner"] == "callee-0", call
        assert all(dirs[leg]["received"] >= 50 for leg in (TO_PARTY, FROM_PARTY)), call
    assert leftovers(docker_client, sid) == []


def test_fargate_still_refuses_parties(sut: str) -> None:
    from pydantic import ValidationError

    from sipflow.spec import SessionSpec

    spec = docker_transfer_spec(sut, "f")
    spec["backend"] = "fargate"
    with pytest.raises(ValidationError) as exc:
        SessionSpec.model_validate(spec)
    assert "roles.parties.carol: named parties run on the local or docker backend" in str(exc.value)
