"""Where a tenant's sessions may send traffic and how much: its policy, and the check of a spec.

A policy is an allow-list of target networks and host names plus quotas. A tenant without a row
in `tenant_policy` gets the settings' policy (SIPFLOW_POLICY_*, SIPFLOW_QUOTA_*).

Targets:
- An IP address is allowed when an allowed network holds it. Link-local (169.254.0.0/16 with the
  cloud metadata address, fe80::/10), multicast, broadcast and unspecified addresses are allowed
  only by a network inside their own range: a catch-all such as 0.0.0.0/0 lets public addresses
  through, never those.
- A host name is allowed only when listed (exactly, or "*.example.net" for the names under a
  domain; "*" for any). Names are not resolved: an address looked up now may differ from the one
  the runners get later (DNS rebinding), so a name is trusted as named. "localhost" is loopback.

`enforce(tenant, spec, db, settings)` raises PolicyViolation: kind "target" (the API answers 422
naming the field) or "quota" (429 naming the limit).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlmodel import Session, col, func, select

from sipflow.models import FINAL_STATUSES, SessionRow, TenantPolicyRow, utcnow
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses no traffic generator should reach unless a tenant names them on purpose.
SPECIAL_RANGES: tuple[tuple[str, IPNetwork], ...] = (
    ("unspecified", ipaddress.ip_network("0.0.0.0/32")),
    ("unspecified", ipaddress.ip_network("::/128")),
    ("broadcast", ipaddress.ip_network("255.255.255.255/32")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
)
LOCALHOST = ("127.0.0.1", "::1")


def _network(v: str) -> str:
    return str(ipaddress.ip_network(v, strict=False))


def _host_pattern(v: str) -> str:
    v = v.strip().lower().rstrip(".")
    if not v or any(c.isspace() or ord(c) < 32 for c in v):
        raise ValueError("not a host name pattern")
    return v


Network = Annotated[str, AfterValidator(_network)]
HostPattern = Annotated[str, Field(max_length=253), AfterValidator(_host_pattern)]


class Quotas(BaseModel):
    """Per-session limits and the number of sessions at once; None: unlimited."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    agents: Annotated[int | None, Field(ge=1)] = None  # in one session, all roles
    calls_per_s: Annotated[float | None, Field(gt=0)] = None
    calls_per_session: Annotated[int | None, Field(ge=1)] = None
    duration_s: Annotated[float | None, Field(gt=0)] = None
    concurrent_sessions: Annotated[int | None, Field(ge=1)] = None


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_networks: list[Network] = []
    allowed_hosts: list[HostPattern] = []
    quotas: Quotas = Quotas()

    @classmethod
    def unlimited(cls) -> TenantPolicy:
        """Any target but the special addresses, no quota: for tests that measure capacity."""
        return cls(allowed_networks=["0.0.0.0/0", "::/0"], allowed_hosts=["*"])

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantPolicy:
        def limit(v: float) -> float | None:
            return v if v > 0 else None

        return cls(
            allowed_networks=settings.policy_allowed_networks,
            allowed_hosts=settings.policy_allowed_hosts,
            quotas=Quotas(
                agents=int(settings.quota_agents) or None,
                calls_per_s=limit(settings.quota_calls_per_s),
                calls_per_session=int(settings.quota_calls_per_session) or None,
                duration_s=limit(settings.quota_duration_s),
                concurrent_sessions=int(settings.quota_concurrent_sessions) or None,
            ),
        )


@dataclass
class PolicyViolation(Exception):
    kind: Literal["target", "quota"]
    loc: tuple[str, ...]  # the spec's field
    limit: str  # the policy's entry: "allowed_networks", "agents", "concurrent_sessions", ...
    message: str
    maximum: float | None = None

    def __str__(self) -> str:
        return self.message


# -- storage -------------------------------------------------------------------------------------
def load(db: Session, tenant: str, settings: Settings) -> TenantPolicy:
    row = db.get(TenantPolicyRow, tenant)
    if row is None:
        return TenantPolicy.from_settings(settings)
    return TenantPolicy.model_validate(row.policy)


def save(db: Session, tenant: str, policy: TenantPolicy) -> None:
    row = db.get(TenantPolicyRow, tenant) or TenantPolicyRow(
        tenant=tenant, policy={}, updated_at=utcnow()
    )
    row.policy = policy.model_dump(mode="json")
    row.updated_at = utcnow()
    db.add(row)
    db.commit()


def delete(db: Session, tenant: str) -> bool:
    row = db.get(TenantPolicyRow, tenant)
    if row is None:
        return False
    db.delete(row)
    db.commit()
    return True


# -- checks --------------------------------------------------------------------------------------
def target_refusal(policy: TenantPolicy, host: str) -> str | None:
    """Why `host` is not an allowed target, or None if it is."""
    if host.lower().rstrip(".") == "localhost":
        refusals = [target_refusal(policy, a) for a in LOCALHOST]
        return None if None in refusals else refusals[0]
    try:
        address: IPAddress = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _name_refusal(policy, host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    special = next((kind for kind, net in SPECIAL_RANGES if address in net), None)
    for text in policy.allowed_networks:
        net = ipaddress.ip_network(text)
        if address.version != net.version or address not in net:
            continue
        if special is None or any(
            kind == special and net.subnet_of(rng)  # type: ignore[arg-type]
            for kind, rng in SPECIAL_RANGES
            if rng.version == net.version
        ):
            return None
    what = f"a {special} address" if special else "not in an allowed network"
    return f"target {host} is {what} (allowed_networks: {', '.join(policy.allowed_networks)})"


def _name_refusal(policy: TenantPolicy, host: str) -> str | None:
    name = host.lower().rstrip(".")
    for pattern in policy.allowed_hosts:
        if pattern == "*" or pattern == name:
            return None
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return None
    return f"target host name {host} is not in allowed_hosts (names are not resolved)"


def calls_bound(spec: SessionSpec) -> float:
    """The most calls the session can make: max_calls, else its rate over its duration."""
    c = spec.roles.callers
    if c.max_calls is not None:
        return c.max_calls
    if c.profile is not None:
        return math.ceil(c.profile.planned_calls())
    return math.ceil(c.rate * (c.duration_s or 0))


def check_rate(policy: TenantPolicy, rate: float, loc: tuple[str, ...]) -> None:
    q = policy.quotas.calls_per_s
    if q is not None and rate > q:
        raise PolicyViolation("quota", loc, "calls_per_s", f"rate {rate} over {q} calls/s", q)


def check_spec(policy: TenantPolicy, spec: SessionSpec) -> None:
    """The spec against the policy's targets and per-session quotas (no database)."""
    # A dns target's address is checked once resolved, at session start (activities/dns_target).
    if spec.target is not None and spec.target.host is not None:
        _check_host(policy, spec.target.host, ("target", "host"))
    opts = spec.roles.callers.call_options
    if opts is not None and opts.outbound_proxy is not None:  # where the traffic really goes
        proxy_loc = ("roles", "callers", "call_options", "outbound_proxy", "host")
        _check_host(policy, opts.outbound_proxy.host, proxy_loc)
    q = policy.quotas
    roles = [r for r in (spec.roles.callees, spec.roles.callers) if r is not None]
    agents = sum(r.agents for r in roles) + sum(p.agents for p in spec.roles.parties.values())
    if q.agents is not None and agents > q.agents:
        msg = f"{agents} agents over the tenant's {q.agents}"
        raise PolicyViolation("quota", ("roles",), "agents", msg, q.agents)
    callers = spec.roles.callers
    rate_loc = ("roles", "callers", "profile" if callers.profile else "rate")
    check_rate(policy, callers.peak_rate(), rate_loc)
    calls = calls_bound(spec)
    if q.calls_per_session is not None and calls > q.calls_per_session:
        msg = f"{calls:g} calls over the tenant's {q.calls_per_session} per session"
        loc = ("roles", "callers", "max_calls")
        raise PolicyViolation("quota", loc, "calls_per_session", msg, q.calls_per_session)
    duration = spec.expected_duration_s()
    if q.duration_s is not None and duration > q.duration_s:
        msg = f"{duration:g} s of traffic over the tenant's {q.duration_s:g} s"
        loc = ("roles", "callers", "duration_s")
        raise PolicyViolation("quota", loc, "duration_s", msg, q.duration_s)


def _check_host(policy: TenantPolicy, host: str, loc: tuple[str, ...]) -> None:
    reason = target_refusal(policy, host)
    if reason:
        limit = "allowed_networks" if _is_ip(host) else "allowed_hosts"
        raise PolicyViolation("target", loc, limit, reason)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


def running_sessions(db: Session, tenant: str) -> int:
    query = select(func.count()).where(
        SessionRow.tenant == tenant, col(SessionRow.status).not_in(FINAL_STATUSES)
    )
    return int(db.exec(query).one())


def enforce(tenant: str, spec: SessionSpec, db: Session, settings: Settings) -> TenantPolicy:
    """Raise PolicyViolation unless `tenant` may start `spec` now; the policy applied."""
    policy = load(db, tenant, settings)
    check_spec(policy, spec)
    limit = policy.quotas.concurrent_sessions
    if limit is not None:
        running = running_sessions(db, tenant)
        if running >= limit:
            msg = f"{running} sessions of tenant {tenant} run; at most {limit} at once"
            raise PolicyViolation("quota", (), "concurrent_sessions", msg, limit)
    return policy
