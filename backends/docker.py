"""The docker backend: one bridge network per session, one container per runner, through the
Docker API (Docker itself, or podman's Docker-compatible service).

Everything is labelled (`sipflow.session`, `sipflow.runner`, `sipflow.role`), so it is found by
session after a crash, torn down idempotently and swept when its session no longer runs.
On the session network a runner is known by its runner id (callers send to `callee-0:5060`);
the Docker host, where the broker and the API listen, is `settings.docker_host_alias`, mapped to
the network's gateway. The network is internal by default (no route out), so runner traffic
can only go to the session's containers and to the host's address on that bridge. A container
gets only a token (`backends.runner_tokens`) and fetches its files from the API, which derives
them as `backends.container_plan` says.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from backends.base import PermanentBackendError, RunnerBackend
from backends.container_plan import config_url, container_runner_configs
from backends.runner_tokens import runner_token, token_key
from runners.image import CONTAINER_RUNS_DIR, HEARTBEAT_PATH, TOKEN_PATH
from sipflow import plan
from sipflow.messages import Role
from sipflow.placement import Placement, StartedRunner
from sipflow.runner_config import RunnerConfig
from sipflow.settings import Settings
from sipflow.spec import Resources, SessionSpec

log = logging.getLogger(__name__)

LABEL_SESSION = "sipflow.session"
LABEL_RUNNER = "sipflow.runner"
LABEL_ROLE = "sipflow.role"
RUNNER_UID = 10001  # the image's `sipflow` user
# A Linux bridge without a fixed MAC address takes the lowest MAC of its ports, so it changes
# when a container leaves the network (podman's netavark 1.4 leaves it unset; measured: the other
# containers then sent to the gateway's old MAC until their ARP entry expired, ~30 s, and
# the broker dropped them as lost). Short neighbour timers inside the container (its own network
# namespace) make it re-resolve the gateway within about 2 s instead.
NEIGHBOUR_SYSCTLS = {
    "net.ipv4.neigh.eth0.base_reachable_time_ms": "1000",
    "net.ipv4.neigh.eth0.delay_first_probe_time": "1",
    "net.ipv4.neigh.eth0.ucast_solicit": "1",
    "net.ipv4.neigh.eth0.retrans_time_ms": "300",
}


def network_name(session_id: str) -> str:
    return f"sipflow-{session_id}"


def container_name(session_id: str, runner_id: str) -> str:
    return f"sipflow-{session_id}-{runner_id}"


def connect(settings: Settings) -> docker.DockerClient:
    if settings.docker_url:
        return docker.DockerClient(base_url=settings.docker_url, timeout=60)
    return docker.from_env(timeout=60)


def _runner_of(c: Container) -> str:
    return str(c.labels.get(LABEL_RUNNER) or c.name)


def _token_archive(token: str) -> bytes:
    buf = io.BytesIO()
    data = token.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(Path(TOKEN_PATH).name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o400, RUNNER_UID, RUNNER_UID
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class DockerBackend(RunnerBackend):
    name = "docker"

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.internal = settings.docker_internal_networks
        self.image = settings.runner_image
        self.host_alias = settings.docker_host_alias
        self.runs_dir = settings.runs_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(connect(settings), settings)

    # -- networks --------------------------------------------------------------------------
    def _networks(self, session_id: str) -> list[Network]:
        return list(self.client.networks.list(filters={"label": f"{LABEL_SESSION}={session_id}"}))

    def provision(
        self, session_id: str, runner_ids: list[str], spec: SessionSpec | None = None
    ) -> Placement:
        """Idempotent: the session's network, created unless it exists."""
        if spec is not None and spec.impaired():
            raise PermanentBackendError(
                "the docker backend does not impair traffic (loss_pct, rate_kbit, delay_ms, "
                "jitter_ms): podman's Docker-API service offers no way to drop, shape or delay "
                "one container network's packets, and runner containers get no NET_ADMIN to do "
                "it in their own namespace (run it on the local backend)"
            )
        name = network_name(session_id)
        try:
            net = self.client.networks.get(name)
        except NotFound:
            try:
                net = self.client.networks.create(
                    name,
                    driver="bridge",
                    internal=self.internal,
                    labels={LABEL_SESSION: session_id},
                )
            except APIError as exc:  # a concurrent attempt created it first
                if exc.status_code != 409:
                    raise
                net = self.client.networks.get(name)
        subnet, _ = self._ipam(net)
        return Placement(
            session_id=session_id,
            backend=self.name,
            runner_ids=runner_ids,
            subnet=subnet,
            name=name,
        )

    def _ipam(self, net: Network) -> tuple[str, str]:
        """(subnet, gateway) of a network."""
        net.reload()
        configs = (net.attrs.get("IPAM") or {}).get("Config") or []
        for c in configs:
            if c.get("Subnet") and ":" not in c["Subnet"]:
                return c["Subnet"], c.get("Gateway") or ""
        raise RuntimeError(f"network {net.name} has no IPv4 subnet: {configs}")

    # -- containers ------------------------------------------------------------------------------
    def containers(self, session_id: str) -> list[Container]:
        return list(
            self.client.containers.list(
                all=True, filters={"label": f"{LABEL_SESSION}={session_id}"}
            )
        )

    def start(
        self,
        placement: Placement,
        spec: SessionSpec,
        role: Role,
        peers: Mapping[str, str],
        hold: bool = False,
    ) -> list[StartedRunner]:
        """One container per runner; each gets only a token and fetches its files from the API.
        On the session network runners reach each other by runner id, so `peers` (the same ids)
        is not needed. No `hold`: the API derives a container's config from the spec alone, so
        placements here do not `prestart`."""
        sid = placement.session_id
        key = token_key(self.settings)
        configs = [
            c
            for c in container_runner_configs(spec, sid, role, self.settings)
            if not placement.runner_ids or c.runner_id in placement.runner_ids
        ]
        for cfg in configs:
            # A named party's runner is a callee-side runner with the party's own resources.
            role_spec = plan.runner_role(spec, cfg.runner_id)
            resources = role_spec.resources if role_spec is not None else None
            try:
                self._start_container(
                    cfg,
                    config_url=config_url(self.settings, sid, cfg.runner_id),
                    token=runner_token(key, sid, cfg.runner_id),
                    resources=resources,
                )
            except ImageNotFound as exc:
                raise PermanentBackendError(
                    f"runner image {self.image!r} not found on the Docker host "
                    "(build it: deploy/build_runner_image.sh, or docker build -f "
                    "deploy/runner/Containerfile .)"
                ) from exc
        return [
            StartedRunner(runner_id=c.runner_id, role=c.role, address=c.local_ip) for c in configs
        ]

    def _start_container(
        self,
        cfg: RunnerConfig,
        *,
        config_url: str,
        token: str,
        resources: Resources | None = None,
    ) -> Container:
        """Start the runner's container unless it exists (started or finished: traffic never
        starts twice). The token is copied in as a file before the start."""
        sid, rid = cfg.session_id, cfg.runner_id
        name = container_name(sid, rid)
        with contextlib.suppress(NotFound):
            existing = self.client.containers.get(name)
            if existing.status == "created":
                existing.start()  # an attempt that died between create and start
            return existing
        net_name = network_name(sid)
        _, gateway = self._ipam(self.client.networks.get(net_name))
        limits: dict[str, Any] = {}
        if resources is not None and resources.cpus:
            limits["nano_cpus"] = int(resources.cpus * 1e9)
        if resources is not None and resources.memory_mb:
            limits["mem_limit"] = f"{resources.memory_mb}m"
        command = [
            "--config-url", config_url,
            "--token-file", TOKEN_PATH,
            "--heartbeat-file", HEARTBEAT_PATH,
        ]  # fmt: skip
        try:
            container = self.client.containers.create(
                self.image,
                command=command,
                name=name,
                hostname=rid,
                labels={LABEL_SESSION: sid, LABEL_RUNNER: rid, LABEL_ROLE: cfg.role},
                network=net_name,
                networking_config={net_name: self.client.api.create_endpoint_config(aliases=[rid])},
                extra_hosts={self.host_alias: gateway} if gateway else None,
                sysctls=NEIGHBOUR_SYSCTLS,
                detach=True,
                **limits,
            )
        except APIError as exc:
            if exc.status_code != 409:  # 409: a concurrent attempt created it
                raise
            return self.client.containers.get(name)
        container.put_archive(str(Path(TOKEN_PATH).parent), _token_archive(token))
        container.start()
        return container

    def running(self, placement: Placement) -> list[str]:
        return [
            _runner_of(c)
            for c in self.containers(placement.session_id)
            if c.status in ("running", "restarting", "paused")
        ]

    def stop(
        self, placement: Placement, runner_ids: list[str] | None = None, grace_s: float = 20
    ) -> None:
        """SIGTERM (the agent stops SIPp and reports `done`), SIGKILL after grace; all of the
        session's runners at once. Idempotent: stopped or missing containers are skipped."""
        targets = [
            c
            for c in self.containers(placement.session_id)
            if c.status in ("running", "restarting", "paused", "created")
            and (runner_ids is None or c.labels.get(LABEL_RUNNER) in runner_ids)
        ]
        if not targets:
            return

        def _stop(c: Container) -> None:
            with contextlib.suppress(NotFound):
                c.stop(timeout=int(grace_s))

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            list(pool.map(_stop, targets))

    def teardown(self, placement: Placement) -> list[str]:
        """Idempotent: removes every container and network of the session (their logs are kept
        under runs_dir/<session>/<runner>/agent.log); returns the names of what it removed."""
        session_id = placement.session_id
        removed: list[str] = []
        for c in self.containers(session_id):
            self._save_logs(session_id, c)
            self._save_work_dir(session_id, c)
            with contextlib.suppress(NotFound):
                c.remove(force=True)
                removed.append(str(c.name))
        for net in self._networks(session_id):
            with contextlib.suppress(NotFound):
                net.remove()
                removed.append(str(net.name))
        return removed

    def _save_logs(self, session_id: str, c: Container) -> None:
        rid = _runner_of(c)
        try:
            logs = c.logs(stdout=True, stderr=True)
        except (APIError, NotFound) as exc:
            log.warning("no logs of %s: %s", c.name, exc)
            return
        work = self.runs_dir / session_id / rid
        work.mkdir(parents=True, exist_ok=True)
        (work / "agent.log").write_bytes(logs)

    def _save_work_dir(self, session_id: str, c: Container) -> None:
        """SIPp's statistics, rtt and error files of the runner, for a look afterwards (not the
        injection files: they may hold account passwords)."""
        rid = _runner_of(c)
        try:
            stream, _ = c.get_archive(str(CONTAINER_RUNS_DIR / session_id / rid))
            data = b"".join(stream)
        except (APIError, NotFound):
            return  # never started, or nothing written yet
        work = self.runs_dir / session_id / rid
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if not member.isfile() or "injection" in name:
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    (work / name).write_bytes(f.read())

    # -- everything sipflow made -------------------------------------------------------------
    def sessions_present(self) -> set[str]:
        """Session ids that have a container or a network on the engine."""
        found: set[str] = set()
        for c in self.client.containers.list(all=True, filters={"label": LABEL_SESSION}):
            found.add(c.labels[LABEL_SESSION])
        for net in self.client.networks.list(filters={"label": LABEL_SESSION}):
            labels = net.attrs.get("Labels") or {}
            if LABEL_SESSION in labels:
                found.add(labels[LABEL_SESSION])
        return found
