"""A network namespace per session for the local backend: runners on addresses of their own,
reaching the host, other hosts, the broker and the API like a machine of their own would.

    host                                          namespace sipflow-<sid>
    sfh<sid> 10.250.N.1/24  <==== veth ====>  eth0 10.250.N.10 (callee 0), .100 (caller 0), ...
                                                   default route via 10.250.N.1

- Nothing bound on the host (a SUT, a SIPp or a PBX on 0.0.0.0:5060 or :8888) collides with the
  runners: their sockets live in the namespace.
- The host end is the host as runners see it: packets to 10.250.N.1 are DNATed to 127.0.0.1
  (`route_localnet` on the host end lets them in), so a SUT, broker or API bound to 127.0.0.1 or
  0.0.0.0 is reached there, on any port. What the host sends from 127.0.0.1 to a runner (a SUT
  on loopback calling a registered callee) is masqueraded to 10.250.N.1, so the runner answers
  the address it knows.
- Anything else (a host address, another machine) is routed by the host: a SUT elsewhere reaches
  the callees at their namespace addresses once it routes the pool to this machine.

Each session's rules are an nftables table of its own (`ip sipflow-<sid>`), removed with the
namespace (which takes the veth pair with it). Subnets come from a pool (default 10.250.0.0/16),
allocated machine-wide: the host ends on the machine's interfaces say which are taken.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from backends import delay_queue
from backends.locked_table import locked_table

log = logging.getLogger(__name__)
MACHINE_LOCK = Path("/tmp/sipflow-netns.lock")
NS_PREFIX = "sipflow-"
HOST_END = 1  # the host end of the veth takes .1 of the session's subnet


class NetnsError(RuntimeError):
    pass


def namespace(session_id: str) -> str:
    return f"{NS_PREFIX}{session_id}"


def host_veth(session_id: str) -> str:
    return f"sfh{session_id[:12]}"  # interface names are at most 15 characters


def nft_table(session_id: str) -> str:
    return f"{NS_PREFIX}{session_id}"


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True)
    return {n["name"] for n in json.loads(out.stdout or "[]")} if out.returncode == 0 else set()


def _host_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks of every interface of the host (its own namespace)."""
    out = _run(["ip", "-j", "-4", "addr", "show"], check=False)
    nets = []
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def nat_rules(session_id: str, host_end: str) -> str:
    veth, table = host_veth(session_id), nft_table(session_id)
    return f"""table ip {table} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{veth}" ip daddr {host_end} dnat to 127.0.0.1
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{veth}" ip saddr 127.0.0.0/8 masquerade
  }}
}}
"""


class NamespaceNetworks:
    def __init__(
        self, state_dir: Path, pool: str = "10.250.0.0/16", pool6: str = "fd57:ee1f:5ee5::/48"
    ) -> None:
        self.state_dir = state_dir
        self.pool = ipaddress.IPv4Network(pool)
        self.pool6 = ipaddress.IPv6Network(pool6)
        if self.pool.prefixlen > 24:
            raise ValueError(f"the namespace pool {pool} must be /24 or larger")
        if self.pool6.prefixlen > 64 - (24 - self.pool.prefixlen):
            raise ValueError(f"the IPv6 pool {pool6} must hold a /64 for every /24 of {pool}")
        state_dir.mkdir(parents=True, exist_ok=True)

    def address6(self, prefix: str, host: int) -> str:
        """The IPv6 address of host number `host` of the session whose IPv4 /24 is `prefix`
        ('10.250.7'): the /64 of the ULA pool with the same index, so nothing more is allocated."""
        index = (int(ipaddress.IPv4Address(f"{prefix}.0")) - int(self.pool.network_address)) >> 8
        return str(self.pool6.network_address + (index << 64) + host)

    def _locked(self) -> AbstractContextManager[dict[str, Any]]:
        """The allocation table (session id -> subnet), under the machine-wide lock."""
        return locked_table(self.state_dir / "namespaces.json", MACHINE_LOCK)

    def _free_subnet(self, table: dict[str, str]) -> ipaddress.IPv4Network:
        taken = [ipaddress.IPv4Network(s) for s in table.values()] + _host_networks()
        for subnet in self.pool.subnets(new_prefix=24):
            if not any(subnet.overlaps(t) for t in taken):
                return subnet
        raise NetnsError(f"no free /24 left in the namespace pool {self.pool}")

    def provision(self, session_id: str, hosts: list[int]) -> str:
        """Idempotent: the session's namespace, veth, addresses and rules; returns the subnet's
        first three octets (e.g. '10.250.7'), as the loopback mode does.

        Only the claim runs under the machine-wide lock: the table entry and the veth's host end
        with its address, which is what other stacks look at. The rest runs beside other
        sessions' provisioning."""
        try:
            with self._locked() as table:
                if session_id not in table:
                    table[session_id] = str(self._free_subnet(table))
                subnet = ipaddress.IPv4Network(table[session_id])
                prefix = str(subnet.network_address).rsplit(".", 1)[0]
                self._claim(session_id, f"{prefix}.{HOST_END}", self.address6(prefix, HOST_END))
            self._build(session_id, prefix, hosts)
        except NetnsError:
            self.teardown(session_id)
            raise
        return prefix

    def _claim(self, session_id: str, host_end: str, host_end6: str) -> None:
        ns, veth = namespace(session_id), host_veth(session_id)
        if ns not in namespaces():
            _run(["ip", "netns", "add", ns])
        if not _run(["ip", "-j", "link", "show", "dev", veth], check=False).strip():
            _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run(["ip", "addr", "replace", f"{host_end}/24", "dev", veth])
        _run(["ip", "-6", "addr", "replace", f"{host_end6}/64", "dev", veth, "nodad"])

    def _build(self, session_id: str, prefix: str, hosts: list[int]) -> None:
        ns, veth = namespace(session_id), host_veth(session_id)
        host_end = f"{prefix}.{HOST_END}"
        Path(f"/proc/sys/net/ipv4/conf/{veth}/route_localnet").write_text("1")
        # The host routes what its runners send elsewhere without machine-wide forwarding: the
        # kernel asks the receiving interface, so the veth forwards (IPv6: force_forwarding,
        # Linux 6.17+; older kernels need net.ipv6.conf.all.forwarding). Answers from another
        # host still need forwarding on the interface they arrive by: docs/networks.md.
        Path(f"/proc/sys/net/ipv4/conf/{veth}/forwarding").write_text("1")
        force6 = Path(f"/proc/sys/net/ipv6/conf/{veth}/force_forwarding")
        if force6.exists():
            force6.write_text("1")
        _run(["ip", "link", "set", veth, "up"])
        batch = [f"addr replace {prefix}.{host}/24 dev eth0" for host in hosts]
        # nodad: a tentative address cannot be bound, and SIPp starts right away.
        batch += [f"addr replace {self.address6(prefix, h)}/64 dev eth0 nodad" for h in hosts]
        batch += ["link set lo up", "link set eth0 up", f"route replace default via {host_end}"]
        batch += [f"route replace default via {self.address6(prefix, HOST_END)}"]
        _run(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(batch) + "\n")
        table = nft_table(session_id)
        # add + delete first: one atomic transaction that also replaces an earlier attempt's.
        rules = f"add table ip {table}\ndelete table ip {table}\n" + nat_rules(session_id, host_end)
        _run(["nft", "-f", "-"], stdin=rules)

    def _remove(self, session_id: str) -> list[str]:
        removed = []
        ns, table, veth = namespace(session_id), nft_table(session_id), host_veth(session_id)
        removed += delay_queue.stop(session_id, self.state_dir)  # it keeps the namespace alive
        if (
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True).returncode
            == 0
        ):
            removed.append(f"nft table {table}")
        # The veth goes first, by name: a namespace's deletion frees its links later, in the
        # kernel's own time, so what is left after `ip netns del` would be a race.
        if _run(["ip", "-j", "link", "show", "dev", veth], check=False).strip():
            _run(["ip", "link", "del", veth], check=False)
            removed.append(f"veth {veth}")
        if ns in namespaces():
            _run(["ip", "netns", "del", ns], check=False)
            removed.append(f"netns {ns}")
        return removed

    def teardown(self, session_id: str) -> list[str]:
        """Idempotent: removes the session's namespace, veth and rules; returns what it removed.
        The subnet is free again once both its table entry and its host end are gone."""
        removed = self._remove(session_id)
        with self._locked() as table:
            table.pop(session_id, None)
        return removed

    def allocated(self) -> set[str]:
        """Sessions that hold a subnet of this stack's table."""
        with self._locked() as table:
            return set(table)
