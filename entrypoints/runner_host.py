"""`sipflow runner-host --pool NAME`: a machine's runner agents for the sessions placed on it.

A Temporal worker on its own task queue (<task_queue>-host-<host id>) that runs the local
backend's activities (network, start/stop runners, teardown) for the sessions the workflow
places on this host. It never touches the database: it registers and heartbeats through the API
with its runner_host key (SIPFLOW_API_KEY), and the API's answer names the sessions it holds
something of that ended, which it sweeps, at start (what it left when it died) and on every
heartbeat. A refused key (revoked, another pool's) stops it. docs/runner-hosts.md.

It holds none of the stack's secrets: its payload codec keys are its own (derived for its host
id, in the heartbeat's answer: it decodes only the activities addressed to it), and its
runners' broker logins come with each start activity (made by the main queue), so it needs
neither SIPFLOW_ENCRYPTION_KEYS nor SIPFLOW_RUNNER_TOKEN_SECRET nor the broker's admin login.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
import signal
import socket
import subprocess
from dataclasses import dataclass

import httpx
from prometheus_client import Gauge
from temporalio.client import Client
from temporalio.worker import Worker

from activities.metrics_interceptor import ActivityMetrics
from activities.network import NetworkActivities
from activities.runners import RunnerActivities
from backends.local import LocalBackend
from backends.registry import Backends
from sipflow import admission
from sipflow.crypto import Keyring, keyring
from sipflow.metrics_server import start_metrics_server
from sipflow.payload_codec import host_data_converter, parse_host_keys
from sipflow.placement import Placement
from sipflow.runner_hosts import Heartbeat, host_task_queue
from sipflow.settings import Settings, get_settings

log = logging.getLogger(__name__)
EXIT_REFUSED = 3


class HostRefused(RuntimeError):
    """The API refused this host's credential (revoked, unknown, wrong role, id taken)."""


@dataclass(frozen=True)
class HostIdentity:
    pool: str
    host_id: str
    task_queue: str
    cores: int
    max_agents: int
    addresses: list[str]


def _own_addresses() -> list[str]:
    """The machine's IPv4 addresses other than loopback (what its agents can send from)."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True)
    found = []
    for link in json.loads(out.stdout or "[]"):
        for a in link.get("addr_info", []):
            if not a["local"].startswith("127.") and not link.get("ifname", "").startswith("sfh"):
                found.append(a["local"])
    return found


def identity(settings: Settings, pool: str) -> HostIdentity:
    host_id = settings.runner_host_id or re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())
    return HostIdentity(
        pool=pool,
        host_id=host_id,
        task_queue=host_task_queue(settings.task_queue, host_id),
        cores=settings.runner_host_cores or os.cpu_count() or 1,
        max_agents=settings.runner_host_max_agents
        or admission.runner_limit(0, settings.runner_memory_mb),
        addresses=settings.runner_host_addresses or _own_addresses(),
    )


def start_metrics(settings: Settings, ident: HostIdentity, backend: LocalBackend) -> None:
    """The host's Prometheus /metrics (when SIPFLOW_RUNNER_HOST_METRICS_PORT is set): its
    running agents, read at each scrape, beside the process's and activities' series."""
    if not settings.runner_host_metrics_port:
        return
    agents = Gauge(
        "sipflow_runner_host_agents",
        "runner agents this host runs now",
        ["host", "pool"],
    )
    agents.labels(ident.host_id, ident.pool).set_function(
        lambda: sum(len(backend.agents.running(s)) for s in backend.agents.sessions_running())
    )
    server = start_metrics_server(settings.runner_host_metrics_port, host=settings.metrics_host)
    log.info("metrics at %s", server.url)


class HostAgent:
    """The heartbeat and the sweep of what ended sessions left on this host."""

    def __init__(self, settings: Settings, ident: HostIdentity, backend: LocalBackend) -> None:
        if settings.api_key is None:
            raise HostRefused("SIPFLOW_API_KEY is not set: `sipflow pools add-host POOL` makes one")
        self.settings, self.ident, self.backend = settings, ident, backend
        self.codec_keys: list[str] = []  # the host's own, from the API (heartbeat answer)
        self.http = httpx.Client(
            base_url=settings.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=10,
        )

    def running_agents(self) -> int:
        agents = self.backend.agents
        return sum(len(agents.running(sid)) for sid in agents.sessions_running())

    def beat(self) -> list[str]:
        """Reports this host; returns the sessions to sweep. HostRefused when refused."""
        hb = Heartbeat(
            host_id=self.ident.host_id,
            cores=self.ident.cores,
            max_agents=self.ident.max_agents,
            running_agents=self.running_agents(),
            addresses=self.ident.addresses,
            sessions_present=sorted(self.backend.sessions_present()),
        )
        r = self.http.put("/v1/hosts/heartbeat", json=hb.model_dump())
        if r.status_code in (401, 403, 409):
            raise HostRefused(f"the API refused this host ({r.status_code}): {r.text}")
        r.raise_for_status()
        answer = r.json()
        if answer["pool"] != self.ident.pool:
            raise HostRefused(
                f"this key belongs to pool {answer['pool']!r}, not {self.ident.pool!r}"
            )
        if answer["task_queue"] != self.ident.task_queue:
            raise HostRefused(
                f"the API routes this host's work to {answer['task_queue']!r}, not "
                f"{self.ident.task_queue!r}: set SIPFLOW_TASK_QUEUE as the stack has it"
            )
        self.codec_keys = list(answer.get("codec_keys") or [])
        return list(answer["sweep"])

    def keyring(self) -> Keyring:
        """The host's codec keys; with SIPFLOW_ENCRYPTION_KEYS set on the host (as hosts needed
        before), the stack's keys too, for activities of sessions started before."""
        if not self.codec_keys:
            raise HostRefused("the API gave this host no codec keys (an API older than the host)")
        keys = parse_host_keys(self.codec_keys).keys
        if self.settings.encryption_keys is not None:
            keys = {**keys, **keyring(self.settings).keys}
        return Keyring(keys)

    def sweep(self, session_ids: list[str]) -> None:
        for sid in session_ids:
            placement = Placement(session_id=sid, backend=self.backend.name)
            self.backend.stop(placement, grace_s=5)
            gone = self.backend.teardown(placement)
            log.info("swept session %s: %s", sid, ", ".join(gone) or "its agents")

    def beat_and_sweep(self) -> None:
        self.sweep(self.beat())


async def serve(settings: Settings, pool: str) -> None:
    # No SIP capture on runner hosts: the evidence is extracted where the worker runs, and a
    # host's capture files would stay behind on it.
    settings = settings.model_copy(update={"evidence_capture": False})
    ident = identity(settings, pool)
    backends = Backends(settings)
    backend = backends.get("local")
    assert isinstance(backend, LocalBackend)
    host = HostAgent(settings, ident, backend)
    loop = asyncio.get_running_loop()
    # Registration, and the sweep of what this host left before it (re)started.
    await loop.run_in_executor(None, host.beat_and_sweep)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    refused: list[HostRefused] = []

    async def heartbeats() -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.runner_host_heartbeat_s)
                return
            except TimeoutError:
                pass
            try:
                await loop.run_in_executor(None, host.beat_and_sweep)
            except HostRefused as exc:
                refused.append(exc)
                stop.set()
            except (httpx.HTTPError, OSError) as exc:
                log.warning("heartbeat not delivered: %s", exc)

    # Heartbeats from the registration on: a host that takes a while to start its worker does
    # not look stale meanwhile (work placed on it waits in its task queue).
    beating = asyncio.create_task(heartbeats())
    try:
        start_metrics(settings, ident, backend)
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=host_data_converter(host.keyring()),
        )
        network = NetworkActivities(settings, backends, on_runner_host=True)
        runners = RunnerActivities(settings, backends, on_runner_host=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
            worker = Worker(
                client,
                task_queue=ident.task_queue,
                interceptors=[ActivityMetrics()],
                activities=[
                    network.provision_network,
                    network.teardown_network,
                    runners.start_runners,
                    runners.stop_runners,
                ],
                activity_executor=executor,
                max_concurrent_activities=32,
            )
            async with worker:
                log.info(
                    "runner host %s of pool %s polling %s (%d agents, %d cores, addresses %s)",
                    ident.host_id, pool, ident.task_queue, ident.max_agents, ident.cores,
                    ", ".join(ident.addresses) or "-",
                )  # fmt: skip
                await stop.wait()
    finally:
        beating.cancel()
    if refused:
        raise refused[0]


def main(pool: str | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    pool = pool or settings.runner_host_pool
    if not pool:
        log.error("no pool: --pool NAME or SIPFLOW_RUNNER_HOST_POOL")
        return 2
    try:
        asyncio.run(serve(settings, pool))
    except HostRefused as exc:
        log.error("%s", exc)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
