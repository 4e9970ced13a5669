"""Host addresses as SIP and sockets want them: IPv6 literals in brackets where a port follows
or inside a URI. Used by the domain and by the runner agent (the runner image holds it)."""

from __future__ import annotations

import ipaddress


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """A name or address of the host's loopback (127/8, ::1, localhost)."""
    if host.lower() in ("localhost", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uri_host(host: str) -> str:
    """`host` as the host part of a SIP URI or a host:port: [fd00::2] for an IPv6 literal."""
    bare = host.strip("[]")
    return f"[{bare}]" if is_ipv6(bare) else host


def host_port(host: str, port: int) -> str:
    return f"{uri_host(host)}:{port}"
