"""The local backend: runner agents as processes of the worker's machine, each on an address of
its own in the session's /24 of the loopback range (`backends.loopback`), detached from the
worker (`backends.agent_processes`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from backends.agent_processes import AgentProcesses
from backends.base import RunnerBackend
from backends.loopback import LoopbackNetworks
from sipflow import plan
from sipflow.messages import ROLES, Role
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

# Host numbers in the session's /24: callee k is .(10 + k), caller k .(100 + k), as sessions
# started before placements existed expect (64 agents a role at most). A new role takes the next
# free base (180).
ROLE_HOST_BASE = {"callee": 10, "caller": 100}


def host_number(runner_id: str) -> int:
    role, _, index = runner_id.rpartition("-")
    return ROLE_HOST_BASE[role] + int(index)


class LocalBackend(RunnerBackend):
    name = "local"

    def __init__(self, settings: Settings, networks: LoopbackNetworks, agents: AgentProcesses):
        self.settings = settings
        self.networks = networks
        self.agents = agents

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        networks = LoopbackNetworks(
            settings.data_dir.resolve() / "networks", settings.local_net_octet
        )
        return cls(settings, networks, AgentProcesses(settings.runs_dir))

    def provision(self, session_id: str, runner_ids: list[str]) -> Placement:
        subnet = self.networks.provision(session_id, [host_number(r) for r in runner_ids])
        return Placement(
            session_id=session_id, backend=self.name, runner_ids=runner_ids, subnet=subnet
        )

    def start(
        self, placement: Placement, spec: SessionSpec, role: Role, peers: Mapping[str, str]
    ) -> list[StartedRunner]:
        everyone = [r for rl in ROLES for r in plan.runner_ids(spec, rl)]
        configs = plan.runner_configs(
            spec,
            placement.session_id,
            role,
            addresses={r: f"{placement.subnet}.{host_number(r)}" for r in everyone},
            peers=peers,
            mqtt_host=self.settings.mqtt_host,
            mqtt_port=self.settings.mqtt_port,
            runs_dir=self.settings.runs_dir,
        )
        placed = placement.runner_ids or everyone
        for cfg in configs:
            if cfg.runner_id in placed:
                self.agents.start(cfg)
        return [
            StartedRunner(runner_id=c.runner_id, role=c.role, address=c.local_ip)
            for c in configs
            if c.runner_id in placed
        ]

    def running(self, placement: Placement) -> list[str]:
        return self.agents.running(placement.session_id)

    def stop(
        self, placement: Placement, runner_ids: list[str] | None = None, grace_s: float = 20
    ) -> None:
        self.agents.stop(placement.session_id, runner_ids, grace_s)

    def teardown(self, placement: Placement) -> list[str]:
        return self.networks.teardown(placement.session_id)

    def sessions_present(self) -> set[str]:
        return self.agents.sessions_running() | self.networks.allocated()
