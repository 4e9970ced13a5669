"""Which runners a session has and what each one is told: pure functions of the spec.

The workflow uses `runner_ids` (deterministic); a backend uses `runner_configs` to fill in what
only it knows: the runners' addresses, the peers they call, how they reach the broker and where
they write.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from sipflow import callee_script, flow_xml, flows
from sipflow import transfer_flows as xfer
from sipflow.addresses import host_port, is_loopback
from sipflow.call_options import render
from sipflow.call_script import (
    compile_script,
    quiet_ms,
    refer_after_ms,
    reinvites,
    transfer_party,
)
from sipflow.flow_params import FlowParams
from sipflow.held_callee import held_callee
from sipflow.messages import Role
from sipflow.runner_config import AccountConfig, MessageConfig, RegistrarConfig, RunnerConfig
from sipflow.spec import CallOptions, CustomScenario, RoleSpec, SessionSpec

SIP_PORT = 5060
CONTROL_PORT = 8888


def loopback_target_as(spec: SessionSpec, host: str) -> SessionSpec:
    """The spec as runners that do not share the host's loopback see it (a container, a
    namespace): a target on the loopback is `host`, the host as they reach it; its SIP domain
    stays what it was."""
    spec = _loopback_proxy_as(spec, host)
    if spec.target is None or not is_loopback(spec.target.address):
        return spec
    target = spec.target.model_copy(update={"host": host, "domain": spec.target.sip_domain})
    return spec.model_copy(update={"target": target})


def with_resolved_target(spec: SessionSpec, host: str, port: int) -> SessionSpec:
    """The spec with its dns target's host and port as resolved (the SIP domain stays)."""
    if spec.target is None:
        return spec
    target = spec.target.model_copy(update={"host": host, "port": port, "dns": None})
    return spec.model_copy(update={"target": target})


def target_label(spec: SessionSpec) -> str:
    """How a session's target is shown before it runs: host:port, or the domain to resolve."""
    t = spec.target
    if t is None:
        return "direct"
    if t.host is None:
        return f"{t.domain} (dns {t.dns})"
    return f"{t.host}:{t.port}"


def _loopback_proxy_as(spec: SessionSpec, host: str) -> SessionSpec:
    """An outbound proxy on the loopback, as such runners reach it."""
    callers = spec.roles.callers
    opts = callers.call_options
    if opts is None or opts.outbound_proxy is None or not is_loopback(opts.outbound_proxy.host):
        return spec
    proxy = opts.outbound_proxy.model_copy(update={"host": host})
    callers = callers.model_copy(
        update={"call_options": opts.model_copy(update={"outbound_proxy": proxy})}
    )
    roles = spec.roles.model_copy(update={"callers": callers})
    return spec.model_copy(update={"roles": roles})


def message_config(opts: CallOptions | None, session_id: str) -> MessageConfig | None:
    """The call options' templates as SIPp text, for the runners."""
    if opts is None or not opts.shapes_messages():
        return None

    def text(t: str | None) -> str | None:
        return None if t is None else render(t, session_id)

    return MessageConfig(
        headers=[f"{name}: {render(value, session_id)}" for name, value in opts.headers.items()],
        from_uri=text(opts.from_uri),
        to_uri=text(opts.to_uri),
        request_uri=text(opts.request_uri),
    )


def runner_id(role: Role, index: int) -> str:
    return f"{role}-{index}"


def runner_ids(spec: SessionSpec, role: Role) -> list[str]:
    if role == "callee":
        callees = spec.roles.callees
        n = (callees.agents if callees else 0) + sum(p.agents for p in spec.roles.parties.values())
        return [runner_id("callee", i) for i in range(n)]
    return [runner_id("caller", i) for i in range(spec.roles.callers.agents)]


def party_runners(spec: SessionSpec) -> dict[str, str]:
    """Runner id -> the named party it runs: a party's runners are callee-side runners (they
    register and answer), numbered after the callees' (callee-N), in the parties' order."""
    first = spec.roles.callees.agents if spec.roles.callees else 0
    out: dict[str, str] = {}
    for name, party in spec.roles.parties.items():
        for _ in range(party.agents):
            out[runner_id("callee", first + len(out))] = name
    return out


def runner_role(spec: SessionSpec, runner_id: str) -> RoleSpec | None:
    """The role spec a runner runs: the callers', the callees' or a named party's."""
    if runner_id.startswith("caller-"):
        return spec.roles.callers
    party = party_runners(spec).get(runner_id)
    return spec.roles.parties[party] if party is not None else spec.roles.callees


def split(total: int, parts: int, index: int) -> int:
    """Share `index` of `total` split as evenly as possible over `parts`."""
    return total // parts + (1 if index < total % parts else 0)


def _scenario(role: RoleSpec, spec: SessionSpec) -> tuple[str, str | None]:
    """A flow's side (rendered XML) runs as a custom scenario: its step marks travel with it."""
    flow = spec.roles.callers.flow
    if flow is not None:
        if role is spec.roles.callers:
            return "custom", flows.render(_with_party_user(flow, spec), "caller")
        side: Literal["callee", "party"] = "callee" if role is spec.roles.callees else "party"
        return "custom", flows.render(flow, side)
    if role is not spec.roles.callers:
        side_xml = _script_side(spec, "callee" if role is spec.roles.callees else "party")
        if side_xml is not None:
            return "custom", side_xml
    if role is spec.roles.callees and spec.roles.callees.script is not None:
        return "custom", callee_script.compile_script(spec.roles.callees.script)
    if isinstance(role.scenario, CustomScenario):
        return "custom", role.scenario.xml
    return role.scenario, None


def _script_side(spec: SessionSpec, side: Literal["callee", "party"]) -> str | None:
    """The side a callers' script needs beyond the built-in answer: callees that answer its
    re-INVITEs (hold / resume); for transfer_to the blind transferee (callees) and target
    (the party) of sipflow/transfer_flows.py. None: the built-in answer does."""
    script = spec.roles.callers.script
    if script is None:
        return None
    party = transfer_party(script)
    if party is not None:
        talk_s = refer_after_ms(script) / 1000
        params = xfer.BlindTransfer(name="blind_transfer", transfer_to=party, talk_s=talk_s)
        return xfer.script_transferee(params) if side == "callee" else xfer.blind_target(params)
    if side == "callee" and reinvites(script):
        return held_callee(quiet_ms(script))
    return None


def named_party(spec: SessionSpec) -> str | None:
    """The named party the callers' flow or script (transfer_to) transfers to."""
    callers = spec.roles.callers
    if callers.flow is not None:
        return callers.flow.party()
    return transfer_party(callers.script) if callers.script is not None else None


def _with_party_user(flow: FlowParams, spec: SessionSpec) -> FlowParams:
    """The callers' flow naming the party's SIP user per call (PARTY_USER, from party_users:
    its agents' users in turn)."""
    return flow.with_party_user(flow_xml.PARTY_USER) if party_users(spec) else flow


def party_users(spec: SessionSpec) -> list[str]:
    """The users of the party the callers' flow or script names, one per agent (each agent
    registers its own account: agent i accounts[i]); the callers' calls go to them round robin."""
    name = named_party(spec)
    party = spec.roles.parties.get(name) if name is not None else None
    if party is None or not party.accounts:
        return []
    return [party.accounts[i % len(party.accounts)].user for i in range(party.agents)]


def _script_party_user(spec: SessionSpec) -> dict[str, str]:
    """A script's transfer_to names the party's user per call (PARTY_USER, like a flow's)."""
    name = named_party(spec)
    return {name: flow_xml.PARTY_USER} if name is not None and party_users(spec) else {}


def _accounts(role: RoleSpec) -> list[AccountConfig]:
    return [AccountConfig(**a.model_dump()) for a in role.accounts]


def callee_users(spec: SessionSpec) -> list[str]:
    callees = spec.roles.callees
    if callees is None:
        return []
    if callees.accounts:
        return [callees.accounts[i % len(callees.accounts)].user for i in range(callees.agents)]
    return ["sipflow"] * callees.agents


def runner_configs(
    spec: SessionSpec,
    session_id: str,
    role: Role,
    *,
    addresses: Mapping[str, str],
    peers: Mapping[str, str],
    mqtt_host: str,
    mqtt_port: int,
    runs_dir: Path,
    wait_for_go: bool = False,
    control_ips: Mapping[str, str] | None = None,
    deadline_margin_s: float = 0,
    silence_s: float = 0,
    spool_max_messages: int = 20000,
    spool_linger_s: float = 300,
    start_jitter_ms: int = 0,
    visqol_max_clips: int = 5,
) -> list[RunnerConfig]:
    """The configs of the session's runners of `role`.

    addresses: runner id -> the address it binds; peers: runner id -> the address it is reached
    at, of runners started before (callers calling callees directly send there).
    deadline_margin_s, silence_s: the runners' dead man's switch (0: off).
    visqol_max_clips: streams each runner scores with ViSQOL (media mos: visqol).
    """
    sid = session_id
    target = spec.target
    configs: list[RunnerConfig] = []
    common = dict(
        session_id=sid,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        deadline_s=spec.expected_duration_s() + deadline_margin_s if deadline_margin_s else None,
        silence_s=silence_s or None,
        spool_max_messages=spool_max_messages,
        spool_linger_s=spool_linger_s,
        start_jitter_ms=start_jitter_ms,
    )
    if role == "callee":
        callees = spec.roles.callees
        if callees is None:
            return []
        registrar = None
        if target is not None and target.registrar:
            registrar = RegistrarConfig(
                host=target.address,
                port=target.port,
                domain=target.sip_domain,
                expires_s=target.register_expires_s,
            )
        # The callees, then the named parties (callee-side runners numbered after them).
        sides: list[tuple[str, RoleSpec, int]] = [
            (runner_id("callee", i), callees, i) for i in range(callees.agents)
        ]
        agent_of: dict[str, int] = {}  # a party's runners take its accounts in turn
        parties = party_runners(spec)
        for rid, name in parties.items():
            sides.append((rid, spec.roles.parties[name], agent_of.setdefault(name, 0)))
            agent_of[name] += 1
        for rid, role_spec, i in sides:
            accounts = _accounts(role_spec)
            scenario, xml = _scenario(role_spec, spec)
            configs.append(
                RunnerConfig(
                    **common,  # type: ignore[arg-type]
                    runner_id=rid,
                    role="callee",
                    party=parties.get(rid),
                    scenario=scenario,
                    scenario_xml=xml,
                    transport=role_spec.transport,
                    local_ip=addresses[rid],
                    local_port=SIP_PORT,
                    control_port=CONTROL_PORT,
                    control_ip=(control_ips or {}).get(rid),
                    accounts=[accounts[i % len(accounts)]] if accounts else [],
                    domain=target.sip_domain if target else None,
                    registrar=registrar,
                    work_dir=runs_dir / sid / rid,
                    media=role_spec.media.runner_config(visqol_max_clips)
                    if role_spec.media
                    else None,
                )
            )
        return configs

    callers = spec.roles.callers
    scenario, xml = _scenario(callers, spec)
    if callers.script is not None:
        scenario, xml = "custom", compile_script(callers.script, _script_party_user(spec))
    users = callers.call_to or callee_users(spec)
    n_callees = spec.roles.callees.agents if spec.roles.callees else 0
    opts = callers.call_options
    proxy = opts.outbound_proxy if opts else None
    outbound = host_port(proxy.host, proxy.port) if proxy else None
    messages = message_config(opts, sid)
    for i in range(callers.agents):
        rid = runner_id("caller", i)
        if target is not None:
            remote = host_port(target.address, target.port)
            call_to = users
        else:
            # Direct: caller i sends to callee (i mod n); it calls that callee's user.
            k = i % n_callees
            remote = host_port(peers[runner_id("callee", k)], SIP_PORT)
            call_to = [users[k]] if users else ["sipflow"]
        max_calls = split(callers.max_calls, callers.agents, i) if callers.max_calls else None
        configs.append(
            RunnerConfig(
                **common,  # type: ignore[arg-type]
                runner_id=rid,
                role="caller",
                scenario=scenario,
                scenario_xml=xml,
                transport=callers.transport,
                local_ip=addresses[rid],
                local_port=SIP_PORT,
                control_port=CONTROL_PORT,
                control_ip=(control_ips or {}).get(rid),
                remote=remote,
                outbound_proxy=outbound,
                messages=messages,
                accounts=_accounts(callers),
                call_to=call_to,
                party_to=party_users(spec),
                domain=target.sip_domain if target else None,
                rate=callers.rate / callers.agents,
                max_calls=max_calls,
                duration_s=callers.duration_s,
                max_concurrent=callers.max_concurrent,
                hold_ms=callers.hold_ms,
                work_dir=runs_dir / sid / rid,
                max_runtime_s=spec.expected_duration_s() * 3 + 60,
                wait_for_go=wait_for_go,
                media=callers.media.runner_config(visqol_max_clips) if callers.media else None,
            )
        )
    return configs
