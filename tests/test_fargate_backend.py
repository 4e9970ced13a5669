"""The fargate backend against moto in server mode (tests/fargate_fixtures.py).

moto is a stand-in for AWS and runs no containers: tasks are RUNNING as soon as they exist and
their addresses are made up. What these tests check is what sipflow asks of AWS and what exists
afterwards: task definitions once per content hash, one task per runner with its tags, network
configuration and size, the token only behind a secret reference, tasks stopped at teardown and
by the sweeper, throttling and RunTask failures retried, then the session failed with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from backends.base import PermanentBackendError
from backends.fargate import TAG_RUNNER, TAG_SESSION, FargateBackend, private_ip
from backends.fargate_entry import TOKENS_ENV
from backends.runner_tokens import runner_token, token_key
from backends.sweeper import sweep
from sipflow.fargate_sizes import InvalidSize, task_size
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.fargate_fixtures import Moto, Network, make_network
from tests.fargate_fixtures import moto_fixture as moto_fixture

TOKEN_SECRET = "fargate-test-runner-token-secret"


def fargate_spec(**over: Any) -> SessionSpec:
    spec: dict[str, Any] = {
        "name": "fargate",
        "tenant": "team-a",
        "backend": "fargate",
        "target": {"host": "10.42.9.9", "port": 5060},
        "roles": {
            "callees": {
                "agents": 2,
                "accounts": [
                    {"user": "bob", "password": "pw-b"},
                    {"user": "carol", "password": "pw-c"},
                ],
                "resources": {"cpus": 0.5, "memory_mb": 2048},
            },
            "callers": {"agents": 1, "rate": 5, "max_calls": 10, "call_to": ["bob"]},
        },
    }
    spec.update(over)
    return SessionSpec.model_validate(spec)


@pytest.fixture(scope="module")
def network(moto: Moto) -> Network:
    return make_network(moto, "sipflow-test")


@pytest.fixture
def settings(moto: Moto, network: Network, tmp_path: Any) -> Iterator[Settings]:
    moto.faults.reset()
    yield Settings(
        data_dir=tmp_path,
        runner_token_secret=TOKEN_SECRET,
        fargate_endpoint_url=moto.proxy_url,
        fargate_cluster=network.cluster,
        fargate_subnets=network.subnets,
        fargate_security_groups=network.security_groups,
        fargate_runner_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/sipflow-runner:0.2.0",
        fargate_execution_role_arn="arn:aws:iam::123456789012:role/sipflow-runner-execution",
        fargate_task_role_arn="arn:aws:iam::123456789012:role/sipflow-runner-task",
        fargate_log_group="/sipflow/runners",
        docker_api_url="http://api.sipflow.internal:8000",
        fargate_run_backoff_s=0.05,
        fargate_poll_s=0.05,
        fargate_start_timeout_s=5,
    )
    moto.faults.reset()


def families(moto: Moto, sid: str) -> list[str]:
    """The session's families with an ACTIVE revision (moto's family listing ignores status)."""
    ecs = moto.client("ecs")
    resp = ecs.list_task_definition_families(familyPrefix=f"sipflow-{sid}-", status="ACTIVE")
    return sorted(
        f
        for f in resp["families"]
        if f.startswith(f"sipflow-{sid}-")
        and ecs.list_task_definitions(familyPrefix=f, status="ACTIVE")["taskDefinitionArns"]
    )


def live_tasks(moto: Moto, cluster: str, sid: str) -> list[dict[str, Any]]:
    ecs = moto.client("ecs")
    arns = ecs.list_tasks(cluster=cluster, startedBy=f"sipflow-{sid}")["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"]
    return [t for t in tasks if t["lastStatus"] != "STOPPED"]


def secret_names(moto: Moto) -> set[str]:
    return {s["Name"] for s in moto.client("secretsmanager").list_secrets()["SecretList"]}


def test_task_sizes_are_fargates_pairs() -> None:
    assert task_size(None, None) == (256, 512)
    assert task_size(0.5, None) == (512, 1024)
    assert task_size(None, 3072) == (512, 3072)
    assert task_size(4, 30720) == (4096, 30720)
    for cpus, mem in ((0.3, None), (0.25, 4096), (1, 1024), (None, 100), (8, 17000)):
        with pytest.raises(InvalidSize):
            task_size(cpus, mem)
    with pytest.raises(ValueError, match=r"roles.callers.resources: cpus 3 is no Fargate"):
        fargate_spec(
            roles={
                "callers": {"rate": 1, "max_calls": 1, "resources": {"cpus": 3}, "call_to": ["x"]}
            }
        )
    # the same resources are fine on another backend
    fargate_spec(
        backend="docker",
        roles={"callers": {"rate": 1, "max_calls": 1, "resources": {"cpus": 3}, "call_to": ["x"]}},
    )


def test_a_session_runs_one_task_per_runner_and_leaves_nothing(
    moto: Moto, network: Network, settings: Settings
) -> None:
    backend = FargateBackend.from_settings(settings)
    spec = fargate_spec()
    sid = "fa0000000001"
    placement = backend.provision(sid, ["callee-0", "callee-1", "caller-0"], spec)
    assert placement.backend == "fargate" and placement.name == network.cluster

    callees = backend.start(placement, spec, "callee", {})
    assert [r.runner_id for r in callees] == ["callee-0", "callee-1"]
    assert families(moto, sid) and len(families(moto, sid)) == 1  # one content hash
    callers = backend.start(placement, spec, "caller", {})
    assert len(families(moto, sid)) == 2  # another size: another task definition
    # Again (an activity retried): no task and no task definition more.
    registered = moto.faults.calls["RegisterTaskDefinition"]
    assert backend.start(placement, spec, "callee", {}) == callees
    assert moto.faults.calls["RegisterTaskDefinition"] == registered
    assert moto.faults.calls["RunTask"] == 3

    tasks = {
        {tag["key"]: tag["value"] for tag in t["tags"]}[TAG_RUNNER]: t
        for t in live_tasks(moto, network.cluster, sid)
    }
    assert sorted(tasks) == ["callee-0", "callee-1", "caller-0"]
    ecs = moto.client("ecs")
    key = token_key(settings)
    for rid, task in tasks.items():
        tags = {tag["key"]: tag["value"] for tag in task["tags"]}
        role = rid.split("-")[0]
        assert tags == {
            TAG_SESSION: sid, TAG_RUNNER: rid, "sipflow:tenant": "team-a", "sipflow:role": role
        }  # fmt: skip
        assert task["launchType"] == "FARGATE"
        assert private_ip(task) == {r.runner_id: r.address for r in callees + callers}[rid]
        details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
        assert details["subnetId"] == network.subnets[0]
        eni = moto.client("ec2").describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]]
        )["NetworkInterfaces"][0]
        assert [g["GroupId"] for g in eni["Groups"]] == network.security_groups
        td = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
            "taskDefinition"
        ]
        assert (td["cpu"], td["memory"]) == (
            ("512", "2048") if role == "callee" else ("256", "512")
        )
        assert td["networkMode"] == "awsvpc" and td["requiresCompatibilities"] == ["FARGATE"]
        (container,) = td["containerDefinitions"]
        assert container["image"] == settings.fargate_runner_image
        assert container["logConfiguration"]["options"]["awslogs-group"] == "/sipflow/runners"
        (secret,) = container["secrets"]
        assert secret["name"] == TOKENS_ENV and secret["valueFrom"].startswith(
            "arn:aws:secretsmanager:"
        )
        command = task["overrides"]["containerOverrides"][0]["command"]
        assert command[:2] == [
            rid,
            f"http://api.sipflow.internal:8000/v1/runner/sessions/{sid}/runners/{rid}",
        ]
        token = runner_token(key, sid, rid)
        everything = json.dumps([td, task], default=str)
        assert token not in everything and TOKEN_SECRET not in everything
    # The tokens are in the session's secret, one per runner.
    value = moto.client("secretsmanager").get_secret_value(SecretId=secret["valueFrom"])
    assert json.loads(value["SecretString"]) == {r: runner_token(key, sid, r) for r in tasks}

    assert sorted(backend.running(placement)) == ["callee-0", "callee-1", "caller-0"]
    assert backend.sessions_present() >= {sid}
    backend.stop(placement, ["caller-0"], grace_s=1)
    assert sorted(backend.running(placement)) == ["callee-0", "callee-1"]

    removed = backend.teardown(placement)
    tasks_removed = [r for r in removed if r.startswith("task ") and "definition" not in r]
    assert len(tasks_removed) == 2  # the caller was stopped before
    assert sum(r.startswith("task definition ") for r in removed) == 2
    assert f"secret sipflow/runner-tokens/{sid}" in removed
    assert live_tasks(moto, network.cluster, sid) == []
    assert families(moto, sid) == []
    assert f"sipflow/runner-tokens/{sid}" not in secret_names(moto)
    assert sid not in backend.sessions_present()
    assert backend.teardown(placement) == []  # idempotent


def test_the_sweeper_stops_tasks_of_sessions_that_no_longer_run(
    moto: Moto, network: Network, settings: Settings
) -> None:
    backend = FargateBackend.from_settings(settings)
    spec = fargate_spec()
    alive, dead = "fa00000000a1", "fa00000000d1"
    for sid in (alive, dead):
        backend.start(backend.provision(sid, [], spec), spec, "callee", {})
    removed = sweep(backend, lambda sid: sid == alive)
    assert list(removed) == [dead]
    assert live_tasks(moto, network.cluster, dead) == [] and families(moto, dead) == []
    assert len(live_tasks(moto, network.cluster, alive)) == 2
    assert backend.sessions_present() >= {alive} and dead not in backend.sessions_present()
    backend.teardown(Placement(session_id=alive, backend="fargate"))


def test_throttling_is_retried_with_backoff(
    moto: Moto, network: Network, settings: Settings
) -> None:
    backend = FargateBackend.from_settings(settings)
    spec = fargate_spec()
    sid = "fa00000000b1"
    placement = backend.provision(sid, [], spec)
    moto.faults.throttle.update({"RunTask": 2, "RegisterTaskDefinition": 1, "DescribeTasks": 1})
    started = backend.start(placement, spec, "callee", {})
    assert len(started) == 2
    assert moto.faults.calls["RunTask"] == 4  # 2 throttled + one per runner
    assert moto.faults.calls["RegisterTaskDefinition"] == 2
    backend.teardown(placement)


def test_persistent_throttling_fails_the_session_with_the_reason(
    moto: Moto, network: Network, settings: Settings
) -> None:
    backend = FargateBackend.from_settings(settings.model_copy(update={"fargate_api_attempts": 3}))
    spec = fargate_spec()
    sid = "fa00000000b2"
    placement = backend.provision(sid, [], spec)
    moto.faults.throttle["RunTask"] = -1
    with pytest.raises(
        PermanentBackendError, match=r"throttled RunTask .* 3 attempts.*Rate exceeded"
    ):
        backend.start(placement, spec, "callee", {})
    assert moto.faults.calls["RunTask"] == 3
    moto.faults.reset()
    backend.teardown(placement)
    assert sid not in backend.sessions_present()


def test_runtask_capacity_failures_are_retried_then_fail_the_session(
    moto: Moto, network: Network, settings: Settings
) -> None:
    reason = (
        "Capacity is unavailable at this time. "
        "Please try again later or in a different availability zone"
    )
    backend = FargateBackend.from_settings(settings.model_copy(update={"fargate_run_attempts": 3}))
    spec = fargate_spec()
    sid = "fa00000000c1"
    placement = backend.provision(sid, [], spec)
    moto.faults.failures.append({"arn": "", "reason": reason})
    moto.faults.fail["RunTask"] = 2
    assert len(backend.start(placement, spec, "callee", {})) == 2
    assert moto.faults.calls["RunTask"] == 4  # callee-0 took three attempts
    backend.teardown(placement)

    sid = "fa00000000c2"
    placement = backend.provision(sid, [], spec)
    moto.faults.fail["RunTask"] = -1
    with pytest.raises(
        PermanentBackendError, match=r"callee-0 failed 3 times .*: Capacity is unavailable"
    ):
        backend.start(placement, spec, "callee", {})
    moto.faults.reset()
    backend.teardown(placement)


def test_waiting_for_running_is_bounded(moto: Moto, network: Network, settings: Settings) -> None:
    def pending(resp: dict[str, Any]) -> dict[str, Any]:
        for t in resp.get("tasks", []):
            if t["lastStatus"] == "RUNNING":
                t["lastStatus"] = "PROVISIONING"
        return resp

    backend = FargateBackend.from_settings(
        settings.model_copy(update={"fargate_start_timeout_s": 0.5})
    )
    spec = fargate_spec()
    sid = "fa00000000e1"
    placement = backend.provision(sid, [], spec)
    moto.faults.rewrite["DescribeTasks"] = pending
    with pytest.raises(
        PermanentBackendError, match=r"not RUNNING after 0.5s \(callee-0: PROVISIONING"
    ):
        backend.start(placement, spec, "callee", {})
    moto.faults.reset()
    assert backend.teardown(placement)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"target": {"host": "127.0.0.1"}}, "loopback"),
        ({"network": {"loss_pct": 1}}, "does not impair"),
    ],
)
def test_sessions_fargate_cannot_run_are_refused_before_anything_is_made(
    moto: Moto, settings: Settings, over: dict[str, Any], reason: str
) -> None:
    backend = FargateBackend.from_settings(settings)
    with pytest.raises(PermanentBackendError, match=reason):
        backend.provision("fa00000000f1", [], fargate_spec(**over))
    assert moto.faults.calls["RegisterTaskDefinition"] == moto.faults.calls["RunTask"] == 0


def test_an_unconfigured_backend_asks_aws_nothing(tmp_path: Any) -> None:
    backend = FargateBackend.from_settings(Settings(data_dir=tmp_path))
    assert backend.sessions_present() == set()
    with pytest.raises(PermanentBackendError, match="SIPFLOW_FARGATE_SUBNETS"):
        backend.provision("fa00000000f2", [], fargate_spec())


def test_a_session_on_an_unconfigured_fargate_backend_ends_in_error_with_the_reason(
    sqlite_stack: RunningStack,
) -> None:
    spec = fargate_spec().model_dump(mode="json", exclude={"tenant"})
    body = sqlite_stack.run(spec, timeout=60)
    assert (body["status"], body["verdict"]) == ("error", "error"), body
    assert "SIPFLOW_FARGATE_SUBNETS" in json.dumps(body)
