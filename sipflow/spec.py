"""The session spec: what a user submits (YAML or JSON), as a versioned pydantic model.

Validation errors carry the path of the wrong field (pydantic's `loc`), which the API returns as
422 and the CLI prints before exiting with code 2. Nothing is started for an invalid spec.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Literal

import defusedxml.ElementTree as safe_xml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sipflow.addresses import uri_host
from sipflow.call_options import MessageOptions
from sipflow.call_script import (
    CallScript,
    media_steps,
    refer_after_ms,
    reinvites,
    script_ms,
    transfer_party,
)
from sipflow.callee_script import CalleeScript, in_call_ms
from sipflow.callee_script import media_steps as callee_media_steps
from sipflow.caps import Caps
from sipflow.fargate_sizes import InvalidSize, task_size
from sipflow.flows import FLOWS, FlowSpec
from sipflow.load_profile import LoadProfile
from sipflow.media_spec import DTMF_MARGIN_MS, MIN_HOLD_MS, MediaSpec
from sipflow.script_pair import check_pair
from sipflow.thresholds import Threshold, parse_threshold

BUILTIN_SCENARIOS = ("options", "register", "call", "answer")
CALLER_SCENARIOS = ("options", "register", "call")
CALLEE_SCENARIOS = ("answer",)

Transport = Literal["udp", "tcp"]
# The backends a spec may ask for: the names in backends/registry.py (a test keeps them equal).
Backend = Literal["local", "docker", "fargate"]
_USER_RE = re.compile(r"^[A-Za-z0-9_.!~*'()&=+$,;?/%-]+$")
# A DNS name (letters, digits, hyphens, dots) or an IP literal: nothing a SIP header or a
# SIPp injection file could be split on.
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$"
)
# C0 and C1 control characters (CR, LF, NUL, ESC, DEL, ...) and the Unicode line separators.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _no_control(v: str | None) -> str | None:
    if v is not None and _CONTROL_RE.search(v):
        raise ValueError("must not contain control characters (CR, LF, NUL, ...)")
    return v


def _host_name(v: str | None) -> str | None:
    """An IP literal or a DNS name: no spaces, no control characters, no ports or URIs."""
    if v is None:
        return v
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(v):
        raise ValueError("not an IP address or a host name")
    return v


Text = Annotated[str, AfterValidator(_no_control)]
HostName = Annotated[
    str, Field(min_length=1, max_length=Caps.HOST_CHARS), AfterValidator(_host_name)
]


def _valid_threshold(text: str) -> str:
    _no_control(text)
    parse_threshold(text)  # raises ValueError with the reason
    return text


ThresholdText = Annotated[
    str, Field(max_length=Caps.THRESHOLD_CHARS), AfterValidator(_valid_threshold)
]


PoolName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class Strict(BaseModel):
    # NaN and Infinity are no number a session can run with (and no JSON either).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Account(Strict):
    user: Annotated[str, Field(min_length=1, max_length=Caps.USER_CHARS)]
    password: Annotated[Text | None, Field(max_length=Caps.PASSWORD_CHARS)] = None
    domain: HostName | None = None

    @field_validator("user")
    @classmethod
    def _sip_user(cls, v: str) -> str:
        if not _USER_RE.match(v):
            raise ValueError("not a valid SIP user part")
        return v


class CustomScenario(Strict):
    """An uploaded SIPp scenario (the XML text)."""

    xml: Annotated[str, Field(min_length=1, max_length=Caps.SCENARIO_CHARS)]

    @field_validator("xml")
    @classmethod
    def _is_sipp_scenario(cls, v: str) -> str:
        try:
            root = safe_xml.fromstring(v)
        except Exception as exc:  # defusedxml raises several types
            raise ValueError(f"not well-formed XML: {exc}") from exc
        if root.tag != "scenario":
            raise ValueError("root element must be <scenario>")
        return v


class Target(Strict):
    """The system under test: a proxy/registrar that callers send to and callees register at."""

    # Not given with `dns`: the session resolves it and the port (the SRV record's) at its start.
    host: HostName | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 5060
    transport: Transport = "udp"
    domain: HostName | None = None  # SIP domain; defaults to host
    # Find host and port from the domain's DNS records (RFC 3263) when the session starts:
    # "naptr" (NAPTR -> SRV -> A/AAAA) or "srv" (SRV _sip._<transport> -> A/AAAA).
    dns: Literal["naptr", "srv"] | None = None
    registrar: bool = True  # callees register here before answering
    # The expiry callees ask for (REGISTER Expires); they refresh at ~80% of what is granted.
    register_expires_s: Annotated[int, Field(ge=1, le=86400)] = 3600

    @model_validator(mode="after")
    def _host_or_dns(self) -> Target:
        if self.dns is not None:
            if self.domain is None:
                raise ValueError("domain: dns resolution needs the SIP domain to resolve")
            if self.host is not None:
                raise ValueError("host: give host or dns, not both (dns finds the host)")
        elif self.host is None:
            raise ValueError("host: give the target's host (or dns with its domain)")
        return self

    @property
    def address(self) -> str:
        """The host (resolved, for a dns target: the workflow resolves it before any use)."""
        if self.host is None:
            raise ValueError(f"target {self.domain} is not resolved yet")
        return self.host

    @property
    def sip_domain(self) -> str:
        """The domain of request URIs: an IPv6 literal in brackets."""
        return self.domain or uri_host(self.address)


class Resources(Strict):
    """Limits of one runner agent. Enforced by the docker backend (the container's CPU and
    memory limits); the local backend runs agents as plain processes and ignores them."""

    cpus: Annotated[float | None, Field(gt=0, le=64, description="CPUs per agent")] = None
    memory_mb: Annotated[int | None, Field(ge=64, le=65536, description="MiB per agent")] = None


class Impairment(Strict):
    """What the network does to a session's SIP/RTP traffic (not to its metrics stream).
    Applied by the local backend in the session's namespace; a backend that cannot apply one
    refuses the session with the reason, before anything starts."""

    loss_pct: Annotated[
        float, Field(ge=0, le=100, description="% of packets dropped on receipt")
    ] = 0
    rate_kbit: Annotated[
        int | None, Field(ge=8, le=10_000_000, description="shaped to this rate, each way")
    ] = None
    delay_ms: Annotated[
        int | None,
        Field(ge=0, le=10_000, description="ms each packet a runner receives is held"),
    ] = None
    jitter_ms: Annotated[
        int | None, Field(ge=0, le=10_000, description="± around delay_ms, uniform")
    ] = None

    @model_validator(mode="after")
    def _jitter_needs_delay(self) -> Impairment:
        if self.jitter_ms and not self.delay_ms:
            raise ValueError("jitter_ms needs delay_ms")
        return self

    @property
    def active(self) -> bool:
        return bool(self.loss_pct or self.rate_kbit or self.delay_ms or self.jitter_ms)


class OutboundProxy(Strict):
    """Where a caller sends its requests when that is not the target (SIPp -rsa); the
    Request-URI still names the target's domain."""

    host: HostName
    port: Annotated[int, Field(ge=1, le=65535)] = 5060


class CallOptions(MessageOptions):
    """Custom headers and From/To/Request-URI templates (sipflow/call_options.py) and an
    outbound proxy, for a caller's calls."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)
    outbound_proxy: OutboundProxy | None = None


class RoleSpec(Strict):
    agents: Annotated[int, Field(ge=1, le=Caps.AGENTS)] = 1
    scenario: str | CustomScenario
    accounts: Annotated[list[Account], Field(max_length=Caps.ACCOUNTS)] = []
    transport: Transport = "udp"
    resources: Resources = Resources()
    # Impairment of the traffic to and from this role's runners (on top of the session's).
    network: Impairment = Impairment()
    # Audio in the calls (built-in call/answer scenarios): sipflow/media_spec.py.
    media: MediaSpec | None = None
    # The runner-host pool this role's agents run on (docs/runner-hosts.md); not given: the
    # session's `pool`, else the worker's own backend.
    pool: PoolName | None = None

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str | CustomScenario) -> str | CustomScenario:
        if isinstance(v, str) and v not in BUILTIN_SCENARIOS:
            raise ValueError(
                f"unknown scenario {v!r}; built-ins are {', '.join(BUILTIN_SCENARIOS)}"
            )
        return v


class CalleeSpec(RoleSpec):
    scenario: str | CustomScenario = "answer"
    # How the callees answer, as steps (sipflow/callee_script.py), compiled to the SIPp XML
    # they run instead of the built-in `answer`.
    script: CalleeScript | None = None

    @field_validator("scenario")
    @classmethod
    def _callee_scenario(cls, v: str | CustomScenario) -> str | CustomScenario:
        if isinstance(v, str) and v not in CALLEE_SCENARIOS:
            raise ValueError(f"callees run one of {', '.join(CALLEE_SCENARIOS)} or a custom XML")
        return v

    @model_validator(mode="after")
    def _script_fits(self) -> CalleeSpec:
        if self.script is None:
            return self
        if self.scenario != "answer":
            raise ValueError("script: a script is the callees' scenario; give one of them")
        _script_media(callee_media_steps(self.script), self.media, "callees")
        if self.media is not None and self.media.relay:
            raise ValueError("media.relay: not yet with a callee script")
        return self


class PartySpec(RoleSpec):
    """A named party (roles.parties): a role a flow refers to by its name, e.g. the target of a
    transfer (`flow: {name: blind_transfer, transfer_to: carol}`). It registers its account at
    the target and runs the side the flow gives it (sipflow/transfer_flows.py)."""

    scenario: str | CustomScenario = "answer"

    @field_validator("scenario")
    @classmethod
    def _party_scenario(cls, v: str | CustomScenario) -> str | CustomScenario:
        if v != "answer":
            raise ValueError("a named party runs the side its flow gives it (leave scenario out)")
        return v


PartyKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
MAX_PARTIES = 8


class CallerSpec(RoleSpec):
    scenario: str | CustomScenario = "call"
    rate: Annotated[
        float, Field(gt=0, le=Caps.RATE, description="calls per second, all agents")
    ] = 10
    max_calls: Annotated[
        int | None, Field(ge=1, le=Caps.MAX_CALLS, description="calls in all, all agents")
    ] = None
    duration_s: Annotated[float | None, Field(gt=0, le=Caps.DURATION_S)] = None
    max_concurrent: Annotated[int | None, Field(ge=1, le=Caps.MAX_CONCURRENT)] = None
    hold_ms: Annotated[int, Field(ge=0, le=Caps.HOLD_MS)] = 0
    # How the rate changes over the session (ramp, steps, spike, stages); it sets `rate` (its
    # start) and `duration_s` (its length), which then need not be given.
    profile: LoadProfile | None = None
    # A built-in call flow (sipflow/flows.py) with its parameters, instead of `scenario`; the
    # callees run its callee side.
    flow: FlowSpec | None = None
    # Who to call (user parts); default: the callees' accounts.
    call_to: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=Caps.USER_CHARS)]],
        Field(max_length=Caps.CALL_TO),
    ] = []
    # Headers, From/To/Request-URI templates and an outbound proxy (sipflow/call_options.py).
    call_options: CallOptions | None = None
    # The call as steps (sipflow/call_script.py), compiled to the SIPp XML the callers run.
    script: CallScript | None = None

    @field_validator("scenario")
    @classmethod
    def _caller_scenario(cls, v: str | CustomScenario) -> str | CustomScenario:
        if isinstance(v, str) and v not in CALLER_SCENARIOS:
            raise ValueError(f"callers run one of {', '.join(CALLER_SCENARIOS)} or a custom XML")
        return v

    @field_validator("call_to")
    @classmethod
    def _sip_users(cls, v: list[str]) -> list[str]:
        for user in v:
            if not _USER_RE.match(user):
                raise ValueError(f"{user!r} is not a valid SIP user part")
        return v

    @model_validator(mode="after")
    def _options_fit(self) -> CallerSpec:
        if self.script is not None and (
            "scenario" in self.model_fields_set and self.scenario != "call"
        ):
            raise ValueError("script: a script is the callers' scenario; give one of them")
        if self.script is not None:
            _script_media(media_steps(self.script), self.media, "callers")
        opts = self.call_options
        if opts is not None and opts.shapes_messages() and self.scenario != "call":
            # An uploaded scenario writes its own messages; only the proxy applies to it.
            what = "a custom XML" if isinstance(self.scenario, CustomScenario) else self.scenario
            raise ValueError(
                "call_options: headers and from/to/request_uri apply to the built-in 'call' "
                f"scenario, not to {what!r} (write them in the XML; outbound_proxy applies)"
            )
        return self

    @model_validator(mode="after")
    def _bounded(self) -> CallerSpec:
        # (A stored spec comes back with every default written out: compare, not fields_set.)
        if self.flow is not None and self.scenario != "call":
            raise ValueError("give either scenario or flow, not both")
        if self.flow is not None and self.media is not None and self.flow.name not in MEDIA_FLOWS:
            raise ValueError(
                "media: with a flow, only hold_resume and blind_transfer carry audio "
                "(built-in call otherwise)"
            )
        if self.profile is not None:
            self._follow_profile(self.profile)
        if self.max_calls is None and self.duration_s is None:
            raise ValueError("give max_calls, duration_s or both, so the session ends")
        if self.max_calls is not None and self.max_calls < self.agents:
            raise ValueError(
                f"max_calls ({self.max_calls}) must be at least agents ({self.agents})"
            )
        return self

    def _follow_profile(self, profile: LoadProfile) -> None:
        """The profile's start and length become `rate` and `duration_s` (given: the same)."""
        start, length = profile.initial_rate(), profile.duration_s()
        if "rate" in self.model_fields_set and not math.isclose(self.rate, start):
            raise ValueError(f"rate: with a profile, its start ({start:g}) is the rate")
        if self.duration_s is not None and not math.isclose(self.duration_s, length):
            msg = f"duration_s: with a profile, its stages ({length:g} s) are the length"
            raise ValueError(msg)
        self.rate, self.duration_s = start, length

    def flow_name(self) -> str | None:
        return self.flow.name if self.flow is not None else None

    def peak_rate(self) -> float:
        return self.profile.peak() if self.profile is not None else self.rate


# The flows whose calls carry audio (runners/media_hold.py, runners/media_transfer.py).
MEDIA_FLOWS = ("hold_resume", "blind_transfer")
MAX_REFER_AFTER_MS = 300_000  # the transferee's wait for the REFER (transfer_flows talk_s)


def _script_media(judged: list[str], media: MediaSpec | None, role: str) -> None:
    """expect_dtmf / expect audio are judged from the role's own media analysis."""
    if judged and (media is None or not media.analyse):
        raise ValueError(
            f"media: {judged[0]!r} is judged from the media analysis: give the callers and "
            f"callees media with analyse: true (the {role}' analyses it)"
        )
    if media is not None and media.sample_pct < 100 and "expect audio" in judged:
        raise ValueError("media.sample_pct: 'expect audio' judges every call: keep 100")


def _media_consistent(callers: CallerSpec, callees: CalleeSpec | None) -> None:
    """Media runs on the built-in call/answer scenarios, on both ends of a call, with a hold."""
    for path, role, builtin in (("callers", callers, "call"), ("callees", callees, "answer")):
        if role is not None and role.media is not None and role.scenario != builtin:
            raise ValueError(f"roles.{path}.media: needs the built-in {builtin!r} scenario")
    if callers.media is None:
        if callees is not None and callees.media is not None:
            raise ValueError("roles.callers.media: callees have media, give callers media too")
        return
    if callees is None or callees.media is None:
        # A stream from a party that is not a sipflow runner cannot be tied to its call yet.
        raise ValueError("roles.callees.media: callers have media, give callees media too")
    if callees is not None and callees.media is not None:
        # Both ends must pick the same streams to analyse, or a direction looks silent.
        for name in ("codec", "analyse", "sample_pct", "relay", "audio"):
            if getattr(callees.media, name) != getattr(callers.media, name):
                raise ValueError(f"roles.callees.media.{name}: must be the callers' {name}")
    for path, role in (("callers", callers), ("callees", callees)):
        if callers.flow is not None and role is not None and role.media and role.media.dtmf:
            # play_dtmf is not paused with the audio: it would break the hold's recvonly
            raise ValueError(f"roles.{path}.media.dtmf: not with a flow (a script sends DTMF)")
    if callers.script is not None or callers.flow is not None:
        return  # a script's own waits (a flow's hold_s) make the call's length
    if callers.hold_ms < MIN_HOLD_MS:
        raise ValueError(f"roles.callers.hold_ms: media needs at least {MIN_HOLD_MS} ms of call")
    _dtmf_fits(callers, callees)


def _script_callees(callers: CallerSpec, callees: CalleeSpec | None) -> None:
    """A script that holds or transfers gives the callees their side (sipflow/held_callee.py,
    the transferee of sipflow/transfer_flows.py)."""
    script = callers.script
    if script is not None and transfer_party(script) is not None:
        if refer_after_ms(script) > MAX_REFER_AFTER_MS:
            raise ValueError(
                "roles.callers.script: transfer_to comes at most "
                f"{MAX_REFER_AFTER_MS // 1000} s after the answer (its waits)"
            )
        for path, role in (("callers", callers), ("callees", callees)):
            if role is not None and role.media is not None:
                raise ValueError(f"roles.{path}.media: not with a script's transfer_to (yet)")
        if callees is not None and callees.scenario != "answer":
            raise ValueError("roles.callees.scenario: a script's transfer_to gives their side")
    if (
        script is not None
        and callees is not None
        and callees.script is not None
        and (transfer_party(script) is not None or reinvites(script))
    ):
        raise ValueError(
            "roles.callees.script: a callers' script that holds or transfers gives the callees "
            "their side (answering its re-INVITEs, or the transferee); leave it out"
        )
    if script is None or not reinvites(script) or callees is None:
        return
    if callees.scenario != "answer":
        raise ValueError("roles.callees.scenario: a script that holds gives the callees their side")
    if callees.media is not None and callees.media.dtmf is not None:
        # play_dtmf is not paused with the audio: it would break the hold's recvonly
        raise ValueError("roles.callees.media.dtmf: not with a script that holds")


def _dtmf_fits(callers: CallerSpec, callees: CalleeSpec | None) -> None:
    """The call lasts until every DTMF play has ended (SIPp cuts a play at the BYE)."""
    for path, role in (("callers", callers), ("callees", callees)):
        dtmf = role.media.dtmf if role is not None and role.media is not None else None
        if dtmf is not None and callers.hold_ms < dtmf.play_ms() + DTMF_MARGIN_MS:
            raise ValueError(
                f"roles.callers.hold_ms: the {path}' DTMF {dtmf.digits!r} plays for "
                f"{dtmf.play_ms()} ms; hold at least {dtmf.play_ms() + DTMF_MARGIN_MS} ms"
            )


def _flow_consistent(
    name: str, has_callee: bool, callees: CalleeSpec | None, target: Target | None
) -> None:
    """The callers' flow picks the callees' scenario; a flow without a callee side (the SUT
    answers) needs a target and no callees."""
    if callees is not None and not has_callee:
        raise ValueError(f"roles.callees: the {name!r} flow has no callee side")
    if callees is not None and callees.scenario != "answer":
        raise ValueError(f"roles.callees.scenario: the {name!r} flow chooses the callees' side")
    if callees is not None and callees.media is not None and name not in MEDIA_FLOWS:
        raise ValueError(
            "roles.callees.media: with a flow, only hold_resume and blind_transfer carry audio"
        )
    if not has_callee and target is None:
        raise ValueError(f"target: the {name!r} flow needs a target")


class Roles(Strict):
    callees: CalleeSpec | None = None
    callers: CallerSpec
    # Named parties beyond callers and callees (a transfer target, ...), by name; a flow names
    # them (docs/flows.md "Named parties"). `callers` and `callees` stay the first two parties.
    parties: Annotated[dict[PartyKey, PartySpec], Field(max_length=MAX_PARTIES)] = {}


def _party_media(spec: SessionSpec, where: str, party: PartySpec) -> None:
    """A transfer with media has it on all three sides, alike: the transferee's stream goes on
    to the target (runners/media_transfer.py), whose receiver must pick the same streams."""
    callers = spec.roles.callers
    if callers.script is not None:
        return  # a script's transfer_to carries no media yet: refused with the script
    if party.media is None:
        if callers.media is not None:
            raise ValueError(f"{where}.media: the callers have media, give the party media too")
        return
    if callers.media is None:
        raise ValueError("roles.callers.media: the party has media, give the callers media too")
    for name in ("codec", "analyse", "sample_pct", "relay", "audio"):
        if getattr(party.media, name) != getattr(callers.media, name):
            raise ValueError(f"{where}.media.{name}: must be the callers' {name}")
    if party.media.relay:
        # Through a relay streams are keyed by (Call-ID, direction): the transferee's two calls
        # share one Call-ID, and its receiver could not tell the target's relayed stream apart.
        raise ValueError(f"{where}.media.relay: not with a named party (its legs share a Call-ID)")
    if party.media.dtmf is not None:
        raise ValueError(f"{where}.media.dtmf: not with a flow (a script sends DTMF)")
    if callers.hold_ms < MIN_HOLD_MS:
        # The transferor hangs up hold_ms after the transfer: the transferred call's length.
        raise ValueError(
            f"roles.callers.hold_ms: the transferred call's audio runs for hold_ms: "
            f"at least {MIN_HOLD_MS} ms"
        )


def named_party(callers: CallerSpec) -> tuple[str, str, str] | None:
    """The named party the callers' flow or script transfers to: (party, the field that names
    it, what names it), or None."""
    if callers.flow is not None:
        party = callers.flow.party()
        return None if party is None else (party, "flow", f"the {callers.flow.name!r} flow")
    party = transfer_party(callers.script) if callers.script is not None else None
    return None if party is None else (party, "script", "the script's transfer_to")


def _parties_consistent(spec: SessionSpec) -> None:
    """Every named party is one a flow (or a script's transfer_to) names, registers at the
    target, runs locally."""
    roles, callers = spec.roles, spec.roles.callers
    naming = named_party(callers)
    named = naming[0] if naming is not None else None
    if naming is not None:
        _, field, what = naming
        if named not in roles.parties:
            have = ", ".join(roles.parties) or "none"
            raise ValueError(
                f"roles.callers.{field}: {what} names party {named!r}, "
                f"not in roles.parties (there: {have})"
            )
        if roles.callees is None:
            raise ValueError(f"roles.callees: {what} needs callees (the transferee)")
        if spec.target is None or not spec.target.registrar:
            raise ValueError(
                f"target: {what} needs a target registrar (the parties register there)"
            )
    for party, p in roles.parties.items():
        where = f"roles.parties.{party}"
        if party != named:
            raise ValueError(f"{where}: no flow or script of this session names this party")
        if not p.accounts or any(a.password is None for a in p.accounts):
            raise ValueError(f"{where}.accounts: give the party's account with its password")
        if len(p.accounts) < p.agents:
            raise ValueError(
                f"{where}.accounts: each of the party's agents registers its own account; "
                f"give at least {p.agents}"
            )
        _party_media(spec, where, p)
        if p.network.active:
            raise ValueError(f"{where}.network: not yet for a named party (the session's applies)")
        if p.pool is not None or spec.pool is not None:
            raise ValueError(f"{where}.pool: named parties run on the worker's own backend")
        if spec.backend == "fargate":
            # Not built for Fargate: its task sizes are per role (callers, callees), and a
            # three-party call has not run there (the tests' AWS stand-in runs no containers).
            raise ValueError(f"{where}: named parties run on the local or docker backend")


class SessionSpec(Strict):
    """Version 1 of the session spec."""

    version: Literal[1] = 1
    name: Annotated[Text, Field(min_length=1, max_length=Caps.NAME_CHARS)] = "session"
    tenant: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] = "default"
    target: Target | None = None
    roles: Roles
    # Impairment of all of the session's runner traffic.
    network: Impairment = Impairment()
    thresholds: list[ThresholdText] = Field(
        default_factory=lambda: ["success_rate >= 100"],
        max_length=Caps.THRESHOLDS,
        description="conditions on the stored metrics, e.g. 'success_rate >= 99.5'",
    )
    # Where the runners run: "local" (one process per runner on this machine), "docker" (one
    # container per runner, one network per session, on a Docker-API engine) or "fargate" (one
    # AWS Fargate task per runner, backends/fargate.py). Not given: the
    # worker's default (SIPFLOW_DEFAULT_BACKEND, itself "local" unless set).
    backend: Backend | None = None
    # Runs the agents on the runner hosts of this pool (each host runs the local backend),
    # spread by free capacity; a role's own `pool` overrides it.
    pool: PoolName | None = None
    timeout_s: Annotated[float | None, Field(gt=0, le=Caps.TIMEOUT_S)] = None

    @model_validator(mode="after")
    def _consistent(self) -> SessionSpec:
        callers, callees = self.roles.callers, self.roles.callees
        flow = FLOWS[callers.flow.name] if callers.flow is not None else None
        if flow is None:
            needs_callee = isinstance(callers.scenario, str) and callers.scenario == "call"
        else:
            needs_callee = flow.callee is not None
            _flow_consistent(flow.name, flow.callee is not None, callees, self.target)
        if self.roles.parties or named_party(callers) is not None:
            _parties_consistent(self)
        if needs_callee and callees is None and self.target is None:
            raise ValueError("roles.callees: a 'call' session needs callees or a target")
        if needs_callee and callees is None and not callers.call_to:
            raise ValueError("roles.callers.call_to: without callees, say whom to call")
        if callers.scenario == "register" and self.target is None:
            raise ValueError("target: the 'register' scenario needs a target (registrar)")
        if self.target is not None and self.target.registrar and callees is not None:
            if len(callees.accounts) < callees.agents:
                raise ValueError(
                    "roles.callees.accounts: each callee agent registers its own account; "
                    f"give at least {callees.agents}"
                )
            if any(a.password is None for a in callees.accounts):
                raise ValueError("roles.callees.accounts: registering needs a password")
        _media_consistent(callers, callees)
        if callees is not None and callees.script is not None and callers.flow is not None:
            raise ValueError(
                f"roles.callees.script: the {callers.flow.name!r} flow chooses the callees' side"
            )
        check_pair(
            callers.script,
            callees.script if callees is not None else None,
            caller_builtin_call=callers.script is None
            and callers.flow is None
            and callers.scenario == "call",
            direct=self.target is None,
        )
        _script_callees(callers, callees)
        if self.backend not in (None, "local") and self.pools():
            raise ValueError(f"pool: runner hosts run the local backend, not {self.backend!r}")
        if self.backend == "fargate":
            for name, role in (("callees", callees), ("callers", callers)):
                if role is None:
                    continue
                try:
                    task_size(role.resources.cpus, role.resources.memory_mb)
                except InvalidSize as exc:
                    raise ValueError(f"roles.{name}.resources: {exc}") from None
        return self

    def role_pool(self, role: str) -> str | None:
        """The pool a role's agents run on (None: the worker's own backend)."""
        spec = self.roles.callees if role == "callee" else self.roles.callers
        return (spec.pool if spec is not None else None) or self.pool

    def pools(self) -> set[str]:
        return {p for r in ("callee", "caller") if (p := self.role_pool(r)) is not None}

    def parsed_thresholds(self) -> list[Threshold]:
        return [parse_threshold(t) for t in self.thresholds]

    def impaired(self) -> bool:
        """Whether any impairment applies to the session's traffic."""
        roles = [r for r in (self.roles.callees, self.roles.callers) if r is not None]
        return self.network.active or any(r.network.active for r in roles)

    def expected_duration_s(self) -> float:
        """How long the callers should take, for the workflow's completion timeout."""
        c = self.roles.callers
        # A call's own length: the hold time, and a flow's pauses (a flow's call lasts longer).
        call_s = c.hold_ms / 1000.0 + (c.flow.call_extra_s() if c.flow is not None else 0.0)
        if c.script is not None:  # its waits and DTMF plays
            call_s += script_ms(c.script) / 1000.0
        callees = self.roles.callees
        if callees is not None and callees.script is not None:  # its rings and waits
            call_s += in_call_ms(callees.script) / 1000.0
        if c.profile is not None:  # its length; max_calls may end it sooner, not later
            return (c.duration_s or 0.0) + call_s
        by_calls = (c.max_calls / c.rate) if c.max_calls else 0.0
        base = min(filter(None, [by_calls, c.duration_s])) if c.duration_s else by_calls
        return base + call_s
