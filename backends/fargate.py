"""The fargate backend: one AWS Fargate task per runner, through boto3 (ECS, Secrets Manager).

Per session it keeps one Secrets Manager secret (`<fargate_secret_prefix><session>`: the
runners' tokens, JSON runner id -> token) and registers, or reuses by content hash, a task
definition per task size (backends/fargate_taskdef.py) that references the secret by ARN: the
token reaches the task only through ECS's secret injection, never as text in a task definition,
a RunTask call or a log. Each runner is one task in `fargate_cluster`, in `fargate_subnets` and
`fargate_security_groups` (awsvpc), tagged sipflow:session / sipflow:runner / sipflow:tenant /
sipflow:role and started by `sipflow-<session>` (how its session's tasks are found again).
Its address is the task's private IPv4 address, known once it runs; starting waits for RUNNING
at most `fargate_start_timeout_s`. It then fetches its files from the API with its token,
exactly as a docker runner does (backends/container_plan.py: the API's settings say where the
broker and the API are, as runners in the VPC reach them).

AWS's throttling is retried by botocore (backends/fargate_aws.py); a RunTask answered with
`failures` (no Fargate capacity, ...) is tried again with backoff; either, when it persists,
ends the session with AWS's reason. Teardown stops the tasks, deregisters the session's task
definitions and deletes its secret; the sweeper does the same for sessions that no longer run.

Runners on Fargate have no names for each other: without a target, callers call callees at
their tasks' private addresses (stored as the callees started; the API puts them in the callers'
configs). A session aimed at this host's loopback, or an impaired one, is refused before
anything is made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any, Self

from botocore.exceptions import ClientError

from backends import fargate_taskdef
from backends.base import PermanentBackendError, RunnerBackend
from backends.container_plan import config_url
from backends.fargate_aws import Clients, clients, error_code, permanent
from backends.fargate_entry import command
from backends.runner_tokens import runner_token, token_key
from runners.image import HEARTBEAT_PATH, TOKEN_PATH
from sipflow import plan
from sipflow.addresses import is_loopback
from sipflow.fargate_sizes import InvalidSize, task_size
from sipflow.messages import ROLES, Role
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import RoleSpec, SessionSpec

log = logging.getLogger(__name__)

TAG_SESSION = "sipflow:session"
TAG_RUNNER = "sipflow:runner"
TAG_TENANT = "sipflow:tenant"
TAG_ROLE = "sipflow:role"
STARTED_BY_PREFIX = "sipflow-"
# A task's lastStatus from which it does not come back.
GOING_DOWN = {"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED"}


def started_by(session_id: str) -> str:
    return f"{STARTED_BY_PREFIX}{session_id}"


def _tags(task: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in task.get("tags") or []}


def runner_of(task: Mapping[str, Any]) -> str:
    return _tags(task).get(TAG_RUNNER, "")


def private_ip(task: Mapping[str, Any]) -> str | None:
    for att in task.get("attachments") or []:
        if att.get("type") != "ElasticNetworkInterface":
            continue
        for d in att.get("details") or []:
            if d.get("name") == "privateIPv4Address" and d.get("value"):
                return str(d["value"])
    return None


def role_size(spec: SessionSpec, role: Role) -> tuple[int, int]:
    role_spec: RoleSpec | None = spec.roles.callers if role == "caller" else spec.roles.callees
    res = role_spec.resources if role_spec is not None else None
    try:
        return task_size(res.cpus if res else None, res.memory_mb if res else None)
    except InvalidSize as exc:
        raise PermanentBackendError(f"roles: {exc}") from None


class FargateBackend(RunnerBackend):
    name = "fargate"

    def __init__(self, aws: Clients, settings: Settings) -> None:
        self.aws = aws
        self.settings = settings
        self.cluster = settings.fargate_cluster

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(clients(settings), settings)

    @property
    def configured(self) -> bool:
        return bool(self.settings.fargate_subnets)

    def _require_configured(self) -> None:
        if not self.configured:
            raise PermanentBackendError(
                "the fargate backend is not configured: set SIPFLOW_FARGATE_SUBNETS (and "
                "SIPFLOW_FARGATE_CLUSTER, _SECURITY_GROUPS, _EXECUTION_ROLE_ARN; deploy/aws/)"
            )

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(**kw)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            if status >= 500:  # AWS's own trouble, after botocore's retries: the activity's turn
                raise
            raise permanent(exc, what, self.settings.fargate_api_attempts) from exc

    # -- the session's network: nothing to make (the VPC is deploy/aws/'s) -------------------
    def provision(
        self, session_id: str, runner_ids: list[str], spec: SessionSpec | None = None
    ) -> Placement:
        self._require_configured()
        if spec is not None:
            self._check(spec)
        return Placement(
            session_id=session_id,
            backend=self.name,
            runner_ids=runner_ids,
            subnet=",".join(self.settings.fargate_subnets),
            name=self.cluster,
        )

    def _check(self, spec: SessionSpec) -> None:
        if spec.impaired():
            raise PermanentBackendError(
                "the fargate backend does not impair traffic (run it on the local backend)"
            )
        if spec.target is not None and is_loopback(spec.target.address):
            raise PermanentBackendError(
                f"target {spec.target.address} is a loopback address: Fargate tasks cannot reach "
                "the worker's loopback; give the SUT's address in the VPC"
            )
        for role in ROLES:
            role_size(spec, role)

    # -- tasks -----------------------------------------------------------------------------
    def _describe(self, arns: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for i in range(0, len(arns), 100):
            resp = self._call(
                "DescribeTasks",
                self.aws.ecs.describe_tasks,
                cluster=self.cluster,
                tasks=arns[i : i + 100],
                include=["TAGS"],
            )
            found.extend(resp.get("tasks") or [])
        return found

    def _task_arns(self, **filters: Any) -> list[str]:
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            if filters.get("desiredStatus", status) != status:
                continue
            pages = self.aws.ecs.get_paginator("list_tasks").paginate(
                cluster=self.cluster, **{**filters, "desiredStatus": status}
            )
            try:
                for page in pages:
                    arns.extend(page.get("taskArns") or [])
            except ClientError as exc:
                if error_code(exc) == "ClusterNotFoundException":
                    return []
                raise permanent(exc, "ListTasks", self.settings.fargate_api_attempts) from exc
        return arns

    def tasks(self, session_id: str, live_only: bool = False) -> list[dict[str, Any]]:
        """The session's tasks (also stopped ones, which ECS lists for about an hour)."""
        filters: dict[str, Any] = {"startedBy": started_by(session_id)}
        if live_only:
            filters["desiredStatus"] = "RUNNING"
        return self._describe(self._task_arns(**filters))

    def start(
        self,
        placement: Placement,
        spec: SessionSpec,
        role: Role,
        peers: Mapping[str, str],
        hold: bool = False,
    ) -> list[StartedRunner]:
        """One task per runner of `role` unless it has one (running or not: traffic never
        starts twice); waits until all run; their private addresses."""
        self._require_configured()
        self._check(spec)
        sid = placement.session_id
        rids = [
            r
            for r in plan.runner_ids(spec, role)
            if not placement.runner_ids or r in placement.runner_ids
        ]
        if not rids:
            return []
        secret_arn = self._token_secret(spec, sid)
        cpu, memory = role_size(spec, role)
        td_arn = self._task_definition(spec, sid, cpu, memory, secret_arn)
        have = {runner_of(t) for t in self.tasks(sid)}
        for rid in rids:
            if rid not in have:
                self._run_task(spec, sid, role, rid, td_arn)
        running = self._wait_running(sid, rids)
        return [StartedRunner(runner_id=r, role=role, address=running[r]) for r in rids]

    def _token_secret(self, spec: SessionSpec, session_id: str) -> str:
        """The ARN of the session's token secret, created unless it exists."""
        key = token_key(self.settings)
        tokens = {
            rid: runner_token(key, session_id, rid)
            for r in ROLES
            for rid in plan.runner_ids(spec, r)
        }
        name = f"{self.settings.fargate_secret_prefix}{session_id}"
        try:
            resp = self.aws.secrets.create_secret(
                Name=name,
                Description=f"sipflow runner tokens of session {session_id}",
                SecretString=json.dumps(tokens),
                Tags=[
                    {"Key": TAG_SESSION, "Value": session_id},
                    {"Key": TAG_TENANT, "Value": spec.tenant},
                ],
            )
            return str(resp["ARN"])
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise permanent(exc, "CreateSecret", self.settings.fargate_api_attempts) from exc
        resp = self._call("DescribeSecret", self.aws.secrets.describe_secret, SecretId=name)
        return str(resp["ARN"])

    def _task_definition(
        self, spec: SessionSpec, session_id: str, cpu: int, memory: int, secret_arn: str
    ) -> str:
        """The ARN of the task definition with this content, registered unless it is."""
        td = fargate_taskdef.content(self.settings, session_id, cpu, memory, secret_arn)
        family = fargate_taskdef.family(session_id, td)
        with contextlib.suppress(ClientError):
            found = self.aws.ecs.describe_task_definition(taskDefinition=family)
            if found["taskDefinition"].get("status") == "ACTIVE":
                return str(found["taskDefinition"]["taskDefinitionArn"])
        resp = self._call(
            "RegisterTaskDefinition",
            self.aws.ecs.register_task_definition,
            family=family,
            tags=[
                {"key": TAG_SESSION, "value": session_id},
                {"key": TAG_TENANT, "value": spec.tenant},
            ],
            **td,
        )
        log.info("registered task definition %s", family)
        return str(resp["taskDefinition"]["taskDefinitionArn"])

    def _run_task(self, spec: SessionSpec, sid: str, role: Role, rid: str, td_arn: str) -> None:
        s = self.settings
        attempts = max(1, s.fargate_run_attempts)
        last = ""
        for attempt in range(1, attempts + 1):
            resp = self._call(
                f"RunTask for runner {rid}",
                self.aws.ecs.run_task,
                cluster=self.cluster,
                taskDefinition=td_arn,
                launchType="FARGATE",
                count=1,
                startedBy=started_by(sid),
                clientToken=f"{sid}-{rid}-{attempt}",
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": s.fargate_subnets,
                        "securityGroups": s.fargate_security_groups,
                        "assignPublicIp": "ENABLED" if s.fargate_assign_public_ip else "DISABLED",
                    }
                },
                overrides={
                    "containerOverrides": [
                        {
                            "name": fargate_taskdef.CONTAINER,
                            "command": command(
                                rid, config_url(s, sid, rid), TOKEN_PATH, HEARTBEAT_PATH
                            ),
                        }
                    ]
                },
                tags=[
                    {"key": TAG_SESSION, "value": sid},
                    {"key": TAG_RUNNER, "value": rid},
                    {"key": TAG_TENANT, "value": spec.tenant},
                    {"key": TAG_ROLE, "value": role},
                ],
            )
            if resp.get("tasks"):
                return
            last = (
                "; ".join(
                    f.get("reason", "?") + (f" ({f['detail']})" if f.get("detail") else "")
                    for f in resp.get("failures") or []
                )
                or "no task and no failure"
            )
            log.warning("RunTask for %s/%s failed (attempt %d): %s", sid, rid, attempt, last)
            if attempt < attempts:
                time.sleep(s.fargate_run_backoff_s * 2 ** (attempt - 1))
        raise PermanentBackendError(
            f"RunTask for runner {rid} failed {attempts} times (with backoff): {last}"
        )

    def _wait_running(self, sid: str, rids: list[str]) -> dict[str, str]:
        """Runner id -> private address once every runner's task runs."""
        deadline = time.monotonic() + self.settings.fargate_start_timeout_s
        while True:
            by_runner = {runner_of(t): t for t in self.tasks(sid, live_only=True)}
            running: dict[str, str] = {}
            waiting: list[str] = []
            for rid in rids:
                task = by_runner.get(rid)
                if task is None:
                    stopped = [t for t in self.tasks(sid) if runner_of(t) == rid]
                    reason = stopped[0].get("stoppedReason", "") if stopped else "no task"
                    raise PermanentBackendError(f"the task of runner {rid} stopped: {reason}")
                ip = private_ip(task)
                if task.get("lastStatus") in GOING_DOWN:
                    reason = task.get("stoppedReason") or task.get("lastStatus")
                    raise PermanentBackendError(f"the task of runner {rid} stopped: {reason}")
                if task.get("lastStatus") == "RUNNING" and ip:
                    running[rid] = ip
                else:
                    waiting.append(f"{rid}: {task.get('lastStatus')}")
            if not waiting:
                return running
            if time.monotonic() >= deadline:
                raise PermanentBackendError(
                    f"Fargate tasks not RUNNING after {self.settings.fargate_start_timeout_s:g}s "
                    f"({', '.join(waiting)})"
                )
            time.sleep(self.settings.fargate_poll_s)

    def running(self, placement: Placement) -> list[str]:
        if not self.configured:
            return []
        return [
            runner_of(t)
            for t in self.tasks(placement.session_id, live_only=True)
            if t.get("lastStatus") != "STOPPED"
        ]

    def stop(
        self, placement: Placement, runner_ids: list[str] | None = None, grace_s: float = 20
    ) -> None:
        """StopTask (ECS sends SIGTERM, SIGKILL after the task definition's stopTimeout);
        waits until they stopped, at most grace_s plus that timeout. Idempotent."""
        if not self.configured:
            return
        arns = self._stop_tasks(placement.session_id, runner_ids, "sipflow: runner stopped")
        deadline = time.monotonic() + grace_s + self.settings.fargate_stop_timeout_s
        while arns and time.monotonic() < deadline:
            live = [t for t in self._describe(arns) if t.get("lastStatus") != "STOPPED"]
            if not live:
                return
            time.sleep(self.settings.fargate_poll_s)
        if arns:
            log.warning("tasks of session %s still stopping", placement.session_id)

    def _stop_tasks(self, sid: str, runner_ids: list[str] | None, reason: str) -> list[str]:
        arns: list[str] = []
        for t in self.tasks(sid, live_only=True):
            if t.get("lastStatus") == "STOPPED" or (
                runner_ids is not None and runner_of(t) not in runner_ids
            ):
                continue
            with contextlib.suppress(ClientError):  # stopped meanwhile
                self.aws.ecs.stop_task(cluster=self.cluster, task=t["taskArn"], reason=reason)
            arns.append(str(t["taskArn"]))
        return arns

    def teardown(self, placement: Placement) -> list[str]:
        """Stops what still runs, deregisters (and deletes) the session's task definitions,
        deletes its token secret. Idempotent; returns what it removed. The runners' logs stay
        in CloudWatch (fargate_log_group, stream prefix session-<id>)."""
        if not self.configured:
            return []
        sid = placement.session_id
        removed: list[str] = []
        for t in self.tasks(sid, live_only=True):
            if t.get("lastStatus") != "STOPPED":
                removed.append(f"task {runner_of(t)} {t['taskArn'].rsplit('/', 1)[-1]}")
        self._stop_tasks(sid, None, "sipflow: session torn down")
        arns = list(self._task_definitions(fargate_taskdef.family_prefix(sid)))
        for arn in arns:
            with contextlib.suppress(ClientError):
                self.aws.ecs.deregister_task_definition(taskDefinition=arn)
                removed.append(f"task definition {arn.rsplit('/', 1)[-1]}")
        if arns:  # INACTIVE revisions stay listed unless deleted (newer API; best effort)
            with contextlib.suppress(ClientError, AttributeError):
                self.aws.ecs.delete_task_definitions(taskDefinitions=arns)
        name = f"{self.settings.fargate_secret_prefix}{sid}"
        try:  # (a forced delete of a secret that is gone succeeds too: look first)
            self.aws.secrets.describe_secret(SecretId=name)
            self.aws.secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            removed.append(f"secret {name}")
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise permanent(exc, "DeleteSecret", self.settings.fargate_api_attempts) from exc
        return removed

    def _task_definitions(self, prefix: str) -> Iterator[str]:
        """ARNs of the ACTIVE task definitions whose family starts with `prefix`."""
        for _, arns in self._active_families(prefix):
            yield from arns

    def _active_families(self, prefix: str) -> Iterator[tuple[str, list[str]]]:
        """(family, ARNs of its ACTIVE revisions) of the families starting with `prefix` that
        have any (a family's listing alone may include ones with only INACTIVE revisions)."""
        families = self.aws.ecs.get_paginator("list_task_definition_families")
        for page in families.paginate(familyPrefix=prefix, status="ACTIVE"):
            for fam in page.get("families") or []:
                if not fam.startswith(prefix):
                    continue
                arns: list[str] = []
                defs = self.aws.ecs.get_paginator("list_task_definitions")
                for p in defs.paginate(familyPrefix=fam, status="ACTIVE"):
                    arns.extend(p.get("taskDefinitionArns") or [])
                if arns:
                    yield fam, arns

    # -- everything sipflow made -------------------------------------------------------------
    def sessions_present(self) -> set[str]:
        """Sessions with a live task, an active task definition or a token secret. Without
        configuration: none (nothing asked of AWS)."""
        if not self.configured:
            return set()
        found: set[str] = set()
        for t in self._describe(self._task_arns(desiredStatus="RUNNING")):
            sb = str(t.get("startedBy") or "")
            if sb.startswith(STARTED_BY_PREFIX) and t.get("lastStatus") != "STOPPED":
                found.add(sb[len(STARTED_BY_PREFIX) :])
        prefix = fargate_taskdef.FAMILY_PREFIX
        for fam, _ in self._active_families(prefix):
            if "-" in fam[len(prefix) :]:
                found.add(fam[len(prefix) :].rsplit("-", 1)[0])
        secret_prefix = self.settings.fargate_secret_prefix
        pages = self.aws.secrets.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [secret_prefix]}]
        )
        for page in pages:
            for sec in page.get("SecretList") or []:
                name = str(sec.get("Name", ""))
                if name.startswith(secret_prefix):
                    found.add(name[len(secret_prefix) :])
        return found
