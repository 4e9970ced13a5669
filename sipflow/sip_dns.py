"""Where a SIP domain is served, by DNS (RFC 3263): NAPTR -> SRV -> A/AAAA.

`resolve` is called by an activity at session start (activities/dns_target.py); the result is
the host, port and transport the session's runners then use, and the records it came from (shown
in the session's detail).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.resolver

Mode = Literal["naptr", "srv"]
# NAPTR services (RFC 3263) and SRV prefixes per transport.
NAPTR_SERVICE = {"udp": "SIP+D2U", "tcp": "SIP+D2T"}
SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp"}


class Unresolvable(Exception):
    """The domain does not lead to an address; the message says where the chain broke."""


@dataclass(frozen=True)
class Resolved:
    host: str
    port: int
    transport: str
    via: str  # how: "NAPTR sip.test -> SRV _sip._udp.sip.test -> kam.sip.test A 127.0.0.1"


def resolver(servers: list[str], timeout_s: float) -> dns.resolver.Resolver:
    """The system's resolver, or one asking only `servers` ("ip" or "ip:port", one port)."""
    if not servers:
        r = dns.resolver.Resolver()
    else:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [s.rsplit(":", 1)[0] if s.count(":") == 1 else s for s in servers]
        ports = {int(s.rsplit(":", 1)[1]) for s in servers if s.count(":") == 1}
        if ports:
            r.port = ports.pop()
    r.lifetime = r.timeout = timeout_s
    return r


def _query(r: dns.resolver.Resolver, name: str, rdtype: str) -> list[object]:
    """The answer's records; [] for no such name or no such record; Unresolvable when the DNS
    cannot be asked (timeout, refused)."""
    try:
        return list(r.resolve(name, rdtype))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise Unresolvable(f"{rdtype} {name}: {exc}") from None


def _pick_srv(records: list[object]) -> list[object]:
    """SRV records in the order to try them: by priority, then weighted at random (RFC 2782)."""
    out: list[object] = []
    for prio in sorted({rec.priority for rec in records}):  # type: ignore[attr-defined]
        group = [rec for rec in records if rec.priority == prio]  # type: ignore[attr-defined]
        while group:
            weights = [rec.weight + 0.01 for rec in group]  # type: ignore[attr-defined]
            choice = random.choices(group, weights)[0]
            group.remove(choice)
            out.append(choice)
    return out


def _address(r: dns.resolver.Resolver, name: str) -> tuple[str, str] | None:
    for rdtype in ("A", "AAAA"):
        found = _query(r, name, rdtype)
        if found:
            return str(found[0]), rdtype
    return None


def resolve(
    domain: str, transport: str, mode: Mode, servers: list[str], timeout_s: float
) -> Resolved:
    """The first address the domain's records lead to, for `transport`; Unresolvable with the
    reason when none does."""
    r = resolver(servers, timeout_s)
    domain = domain.rstrip(".")
    steps: list[str] = []
    srv_name = f"{SRV_PREFIX[transport]}.{domain}"
    if mode == "naptr":
        naptrs = [
            rec
            for rec in _query(r, domain, "NAPTR")
            if rec.service.decode().upper() == NAPTR_SERVICE[transport]  # type: ignore[attr-defined]
            and rec.flags.decode().upper() == "S"  # type: ignore[attr-defined]
        ]
        naptrs.sort(key=lambda rec: (rec.order, rec.preference))  # type: ignore[attr-defined]
        if naptrs:
            srv_name = str(naptrs[0].replacement).rstrip(".")  # type: ignore[attr-defined]
            steps.append(f"NAPTR {domain}")
        else:
            steps.append(f"NAPTR {domain} (none for {NAPTR_SERVICE[transport]})")
    srvs = _pick_srv(_query(r, srv_name, "SRV"))
    if not srvs:
        raise Unresolvable(" -> ".join([*steps, f"SRV {srv_name}: no records"]))
    steps.append(f"SRV {srv_name}")
    for rec in srvs:
        name = str(rec.target).rstrip(".")  # type: ignore[attr-defined]
        found = _address(r, name)
        if found is not None:
            address, rdtype = found
            steps.append(f"{name} {rdtype} {address}")
            port = int(rec.port)  # type: ignore[attr-defined]
            return Resolved(address, port, transport, " -> ".join(steps))
    names = ", ".join(str(rec.target).rstrip(".") for rec in srvs)  # type: ignore[attr-defined]
    raise Unresolvable(" -> ".join([*steps, f"no A/AAAA record for {names}"]))
