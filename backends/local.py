"""The local backend: runner agents as processes of the worker's machine, detached from the
worker (`backends.agent_processes`), each on an address of its own in the session's /24.

Where that /24 lives is the stack's choice for new sessions (SIPFLOW_LOCAL_NETWORK):
- `netns` (default): a network namespace per session (`backends.netns`), so runners reach a SUT
  on the host on any address, one on another host, and never collide with SIP software bound
  on the host;
- `loopback`: aliases in 127.201.N.0/24 on `lo` (`backends.loopback`), for a SUT reachable only
  there. Runners then share the host's sockets and reach no other host.
The placement records which one a session got (its `name` is the namespace), so a session keeps
its network across a change of the setting or an upgrade; teardown and the sweeper clean both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Self

from backends import evidence_capture, impairment
from backends.agent_processes import AgentProcesses
from backends.base import PermanentBackendError, RunnerBackend
from backends.loopback import LoopbackNetworks
from backends.netns import HOST_END, NamespaceNetworks, NetnsError, host_veth, namespace
from backends.runner_tokens import token_key, with_broker_login, with_password
from sipflow import delay_limit, plan
from sipflow.addresses import is_ipv6, is_loopback
from sipflow.messages import ROLES, Role
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

# Host numbers in the session's /24: callee k is .(10 + k), caller k .(100 + k), as sessions
# started before placements existed expect (64 agents a role at most). A new role takes the next
# free base (180).
log = logging.getLogger(__name__)
ROLE_HOST_BASE = {"callee": 10, "caller": 100}


def host_number(runner_id: str) -> int:
    role, _, index = runner_id.rpartition("-")
    return ROLE_HOST_BASE[role] + int(index)


class LocalBackend(RunnerBackend):
    name = "local"

    def __init__(
        self,
        settings: Settings,
        loopback: LoopbackNetworks,
        namespaces: NamespaceNetworks,
        agents: AgentProcesses,
    ) -> None:
        self.settings = settings
        self.loopback = loopback
        self.namespaces = namespaces
        self.agents = agents

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        state = settings.data_dir.resolve() / "networks"
        return cls(
            settings,
            LoopbackNetworks(state, settings.local_net_octet),
            NamespaceNetworks(state, settings.netns_pool, settings.netns_pool6),
            AgentProcesses(settings.runs_dir, settings.agent_fork_server),
        )

    def provision(
        self, session_id: str, runner_ids: list[str], spec: SessionSpec | None = None
    ) -> Placement:
        hosts = [host_number(r) for r in runner_ids]
        if self.agents.fork_server is not None:
            self.agents.fork_server.warm()  # ready (once) by the time the runners start
        impaired = spec is not None and spec.impaired()
        v6_target = spec is not None and spec.target is not None and is_ipv6(spec.target.address)
        if v6_target and spec is not None and spec.target is not None:
            if self.settings.local_network == "loopback":
                raise PermanentBackendError(
                    "an IPv6 target needs the session's own namespace (runners on loopback "
                    "aliases have IPv4 addresses only): SIPFLOW_LOCAL_NETWORK=netns"
                )
            if is_loopback(spec.target.address):
                raise PermanentBackendError(
                    "an IPv6 target on the host's loopback (::1) cannot be reached from the "
                    "session's namespace (IPv6 has no route_localnet): let the SUT listen on "
                    "another of the host's addresses"
                )
        refused = spec is not None and delay_limit.refusal(
            spec, self.settings.delayer_max_calls_per_s
        )
        if refused:  # before anything is made: a session is never silently unimpaired
            raise PermanentBackendError(f"{'.'.join(refused[0])}: {refused[1]}")
        if self.settings.local_network == "loopback":
            if impaired:
                raise PermanentBackendError(
                    "network impairment needs the session's own namespace: the loopback mode "
                    "(SIPFLOW_LOCAL_NETWORK=loopback) cannot impair one session's traffic"
                )
            subnet, name = self.loopback.provision(session_id, hosts), None
        else:
            try:
                subnet, name = self.namespaces.provision(session_id, hosts), namespace(session_id)
            except NetnsError as exc:
                raise PermanentBackendError(
                    f"cannot make the session's network namespace ({exc}); it needs root or "
                    "CAP_NET_ADMIN, iproute2 and nftables (SIPFLOW_LOCAL_NETWORK=loopback runs "
                    "runners on loopback aliases instead)"
                ) from exc
            if spec is not None and impaired:
                self._impair(session_id, subnet, runner_ids, spec)
        if self.settings.evidence_capture and spec is not None:
            self._capture(session_id, subnet, name, spec)
        return Placement(
            session_id=session_id,
            backend=self.name,
            runner_ids=runner_ids,
            subnet=subnet,
            name=name,
            prestart=True,
        )

    def _capture(self, session_id: str, subnet: str, netns: str | None, spec: SessionSpec) -> None:
        """The session's SIP capture, beside its runners (backends/sip_capture.py): in its
        namespace, or on the host's loopback filtered to its /24. A capture that cannot start
        costs the session its evidence, not its run."""
        try:
            evidence_capture.start(
                self.settings.runs_dir,
                session_id,
                netns,
                None if netns else subnet,
                self.settings.evidence_max_bytes,
                self.settings.evidence_max_files,
                deadline_s=spec.expected_duration_s() * 3 + 3600,
            )
        except (OSError, RuntimeError) as exc:
            log.warning("session %s: no SIP capture: %s", session_id, exc)

    def _impair(
        self, session_id: str, subnet: str, runner_ids: list[str], spec: SessionSpec
    ) -> None:
        v6 = self.namespaces.address6
        roles = {
            role: (
                role_spec.network,
                [f"{subnet}.{host_number(r)}" for r in ids if r in runner_ids]
                + [v6(subnet, host_number(r)) for r in ids if r in runner_ids],
            )
            for role, role_spec, ids in (
                ("callee", spec.roles.callees, plan.runner_ids(spec, "callee")),
                ("caller", spec.roles.callers, plan.runner_ids(spec, "caller")),
            )
            if role_spec is not None
        }
        try:
            impairment.apply(
                session_id,
                namespace(session_id),
                host_veth(session_id),
                spec.network,
                roles,
                self.settings.mqtt_port,
                self.namespaces.state_dir,
            )
        except impairment.ImpairmentError as exc:
            self.namespaces.teardown(session_id)  # nothing of a refused session stays
            raise PermanentBackendError(f"cannot impair the session's network: {exc}") from exc

    def start(
        self,
        placement: Placement,
        spec: SessionSpec,
        role: Role,
        peers: Mapping[str, str],
        hold: bool = False,
        logins: Mapping[str, str] | None = None,
    ) -> list[StartedRunner]:
        """`logins`: runner id -> broker password made by the stack (on a runner host, which
        cannot derive them); None: derived here from the runner token key."""
        everyone = [r for rl in ROLES for r in plan.runner_ids(spec, rl)]
        mqtt_host, netns = self.settings.mqtt_host, placement.name
        addresses = {r: f"{placement.subnet}.{host_number(r)}" for r in everyone}
        control_ips: dict[str, str] = {}
        if netns is not None:  # the host, a loopback broker and SUT are the veth's host end
            host_end = f"{placement.subnet}.{HOST_END}"
            # A broker elsewhere (a runner host's) is reached at its own address.
            if is_loopback(mqtt_host) or mqtt_host == "localhost":
                mqtt_host = host_end
            spec = plan.loopback_target_as(spec, host_end)
            if spec.target is not None and is_ipv6(spec.target.address):
                # SIP over IPv6 from the namespace's ULA addresses; MQTT stays on IPv4.
                v6 = self.namespaces.address6
                control_ips = addresses  # SIPp's control socket is IPv4 only
                addresses = {r: v6(placement.subnet, host_number(r)) for r in everyone}
        # Where each runner is reached is known before it starts: callers may start (held)
        # beside their callees, before the workflow learned the callees' addresses.
        peers = {**addresses, **peers}
        configs = plan.runner_configs(
            spec,
            placement.session_id,
            role,
            addresses=addresses,
            peers=peers,
            mqtt_host=mqtt_host,
            mqtt_port=self.settings.mqtt_port,
            runs_dir=self.settings.runs_dir,
            wait_for_go=hold,
            control_ips=control_ips,
            deadline_margin_s=self.settings.runner_deadline_margin_s,
            silence_s=self.settings.runner_silence_s,
            spool_max_messages=self.settings.agent_spool_max_messages,
            visqol_max_clips=self.settings.media_visqol_max_clips,
            spool_linger_s=self.settings.agent_spool_linger_s,
            start_jitter_ms=self.settings.runner_start_jitter_ms,
        )
        placed = placement.runner_ids or everyone
        try:  # the capture started with the network: it listens before any runner sends
            evidence_capture.wait_ready(self.settings.runs_dir, placement.session_id)
        except RuntimeError as exc:
            log.warning("session %s: no SIP capture: %s", placement.session_id, exc)
        if logins is not None:
            configs = [
                with_password(cfg, logins[c]) for cfg in configs if (c := cfg.runner_id) in logins
            ]
            placed = [r for r in placed if r in logins]
        else:
            key = token_key(self.settings)
            configs = [with_broker_login(key, cfg) for cfg in configs]
        for cfg in configs:
            if cfg.runner_id in placed:
                self.agents.start(cfg, netns)
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

    def recover_intervals(self, placement: Placement, runner_ids: list[str]) -> dict[str, int]:
        # Namespaced runners reach the broker through their veth: recover from inside too.
        return self.agents.recover_intervals(placement.session_id, runner_ids, placement.name)

    def teardown(self, placement: Placement) -> list[str]:
        # Both kinds: a bare placement (the sweeper's) does not say which one the session got.
        sid = placement.session_id
        self.agents.remove_secrets(sid)  # the kept runs folder holds no password
        # Before the namespace: a process inside one keeps it alive.
        stopped = evidence_capture.stop(self.settings.runs_dir, sid)
        return stopped + self.loopback.teardown(sid) + self.namespaces.teardown(sid)

    def sessions_present(self) -> set[str]:
        return (
            self.agents.sessions_running() | self.loopback.allocated() | self.namespaces.allocated()
        )
