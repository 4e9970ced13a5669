"""The local backend's network namespaces, on real kernels parts (root): a session's runners
reach a SUT on the host's loopback and one on another "host" (a namespace this test makes, on
198.18.0.0/15), are reached by it, and never collide with SIP software bound on the host."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.netns import NamespaceNetworks, host_veth, namespace, namespaces
from entrypoints.stack import free_port
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio

UDP_CLIENT = """
import socket, sys
host_end, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[3], 0))
s.settimeout(5)
s.sendto(b"ping", (host_end, port))
print(s.recvfrom(100)[0].decode(), s.recvfrom(100)[0].decode())
"""


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def leftovers(sid: str) -> list[str]:
    found = []
    if namespace(sid) in namespaces():
        found.append(f"netns {namespace(sid)}")
    if f"sipflow-{sid}" in nft_tables():
        found.append(f"nft table sipflow-{sid}")
    link = subprocess.run(["ip", "link", "show", "dev", host_veth(sid)], capture_output=True)
    if link.returncode == 0:
        found.append(f"veth {host_veth(sid)}")
    return found


def test_runner_reaches_host_loopback_and_is_reached_from_it(tmp_path: Path) -> None:
    nets = NamespaceNetworks(tmp_path)
    sid = uuid.uuid4().hex[:12]
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))  # a service bound to the host's loopback only
    server.settimeout(5)
    try:
        prefix = nets.provision(sid, [10])
        assert nets.provision(sid, [10]) == prefix  # idempotent
        port = str(server.getsockname()[1])
        argv = ["ip", "netns", "exec", namespace(sid), sys.executable, "-c", UDP_CLIENT]
        client = subprocess.Popen(
            [*argv, f"{prefix}.1", port, f"{prefix}.10"],
            stdout=subprocess.PIPE,
            text=True,
        )
        data, peer = server.recvfrom(100)
        assert (data, peer[0]) == (b"ping", f"{prefix}.10")  # DNATed in, source kept
        server.sendto(b"pong", peer)  # the reply ...
        server.sendto(b"call", peer)  # ... and a new request from the host's loopback
        out, _ = client.communicate(timeout=10)
        assert out.split() == ["pong", "call"]
    finally:
        server.close()
        removed = nets.teardown(sid)
    assert sorted(removed) == sorted(
        [f"nft table sipflow-{sid}", f"netns sipflow-{sid}", f"veth {host_veth(sid)}"]
    )
    assert leftovers(sid) == [] and nets.teardown(sid) == []


def test_subnets_are_allocated_machine_wide(tmp_path: Path) -> None:
    a, b = NamespaceNetworks(tmp_path / "a"), NamespaceNetworks(tmp_path / "b")
    s1, s2 = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    try:
        assert a.provision(s1, [10]) != b.provision(s2, [10]), "two stacks, one subnet"
    finally:
        a.teardown(s1)
        b.teardown(s2)


@contextlib.contextmanager
def held_udp(port: int) -> Iterator[None]:
    """Hold 0.0.0.0:port as other SIP software would; if something already holds it, fine."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        s.bind(("0.0.0.0", port))
    try:
        yield
    finally:
        s.close()


def direct_spec(**callers: Any) -> dict[str, Any]:
    return {
        "name": "netns-direct",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 50, "max_calls": 50, **callers},
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def test_sessions_pass_while_5060_and_8888_are_held(sqlite_stack: RunningStack) -> None:
    with held_udp(5060), held_udp(8888):
        body = sqlite_stack.run(direct_spec())
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 50
    addresses = {r["address"] for r in body["runners"]}
    assert all(a.startswith("10.250.") for a in addresses), addresses
    assert leftovers(body["id"]) == []


@contextlib.contextmanager
def remote_host(tmp_path: Path, ipv6: bool = False) -> Iterator[tuple[str, str, str]]:
    """A namespace standing for another machine on 198.18.N.2 (ipv6: fd18:N::2), routed
    through this host: yields (namespace, its address, the host end's veth). Forwarding is
    turned on for this veth only (what the admin does for the interface facing the SUT: the
    kernel asks the interface a packet arrives by; the session's veth forwards by itself)."""
    tag = uuid.uuid4().hex[:8]
    ns, veth = f"sftest-{tag}", f"sft{tag}"
    octet = int(tag[:2], 16)
    here, there = f"198.18.{octet}.1", f"198.18.{octet}.2"
    here6, there6 = f"fd18:{tag[:4]}::1", f"fd18:{tag[:4]}::2"  # ULA: the tenant policy allows it
    cmds = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
        ["ip", "addr", "add", f"{here}/24", "dev", veth],
        ["ip", "-6", "addr", "add", f"{here6}/64", "dev", veth, "nodad"],
        ["sysctl", "-q", "-w", f"net.ipv4.conf.{veth}.forwarding=1"],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", ns, "addr", "add", f"{there}/24", "dev", "eth0"],
        ["ip", "-n", ns, "-6", "addr", "add", f"{there6}/64", "dev", "eth0", "nodad"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "route", "add", "default", "via", here],
        ["ip", "-n", ns, "-6", "route", "add", "default", "via", here6],
    ]
    if ipv6:
        cmds.insert(5, ["sysctl", "-q", "-w", f"net.ipv6.conf.{veth}.force_forwarding=1"])
    # `ip netns exec` mounts these over /etc: the host's name resolves locally and no resolver
    # is asked (Kamailio reverse-resolves its listen address at start: 10 s of timeouts).
    etc = Path("/etc/netns") / ns
    etc.mkdir(parents=True, exist_ok=True)
    address = there6 if ipv6 else there
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n{address} sut.remote.test\n")
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    try:
        for argv in cmds:
            subprocess.run(argv, check=True, capture_output=True)
        yield ns, address, veth
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def veth_packets(veth: str) -> int:
    stats = Path(f"/sys/class/net/{veth}/statistics")
    return int((stats / "rx_packets").read_text()) + int((stats / "tx_packets").read_text())


def test_remote_sut_registers_and_routes_calls(sqlite_stack: RunningStack, tmp_path: Path) -> None:
    """Kamailio on "another machine": callees register through it with digest auth, callers
    call them through it, it sends its INVITEs to the callees' namespace addresses."""
    with remote_host(tmp_path) as (ns, address, veth):
        port = free_port()
        with kamailio(port, tmp_path / "kamailio", ip=address, netns=ns):
            before = veth_packets(veth)
            spec = {
                "name": "remote-sut",
                "target": {"host": address, "port": port, "registrar": True},
                "roles": {
                    "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
                    "callers": {"rate": 20, "max_calls": 40, "accounts": [{"user": "alice"}]},
                },
                "thresholds": ["success_rate >= 100", "failed_calls == 0"],
            }
            body = sqlite_stack.run(spec)
            crossed = veth_packets(veth) - before
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 40
    assert body["summary"]["roles"]["callee"]["successful_calls"] == 40
    # REGISTER x2 + 40 x (INVITE, 100, 180?, 200, ACK, BYE, 200) each way through the SUT.
    assert crossed >= 40 * 8, crossed
    assert leftovers(body["id"]) == []


def ipv6_forwarding_per_interface() -> bool:
    return Path("/proc/sys/net/ipv6/conf/all/force_forwarding").exists() or (
        Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip() == "1"
    )


@pytest.mark.skipif(
    not ipv6_forwarding_per_interface(),
    reason="IPv6 forwarding is off and this kernel has no per-interface force_forwarding (6.17+)",
)
def test_remote_ipv6_sut_registers_and_routes_calls(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    """Kamailio on "another machine" reached over IPv6 only (a ULA prefix inside the test's
    namespace): callees register through it, it calls them at their ULA namespace addresses."""
    with remote_host(tmp_path, ipv6=True) as (ns, address, veth):
        port = free_port()
        with kamailio(port, tmp_path / "kamailio6", ip=address, netns=ns):
            before = veth_packets(veth)
            spec = {
                "name": "remote-sut-v6",
                "target": {"host": address, "port": port, "registrar": True},
                "roles": {
                    "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
                    "callers": {"rate": 20, "max_calls": 20, "accounts": [{"user": "alice"}]},
                },
                "thresholds": ["success_rate >= 100", "failed_calls == 0"],
            }
            body = sqlite_stack.run(spec)
            crossed = veth_packets(veth) - before
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["summary"]["roles"]["callee"]["successful_calls"] == 20
    addresses = {r["address"] for r in body["runners"]}
    assert all(a.startswith("fd57:ee1f:5ee5:") for a in addresses), addresses
    assert crossed >= 20 * 8, crossed  # through the remote host's veth, not a shortcut
    assert leftovers(body["id"]) == []


@contextlib.contextmanager
def host_ipv6_address() -> Iterator[str]:
    """An IPv6 address of this host (on lo) that is not ::1: what a SUT here would listen on."""
    address = f"fd5e:5f10:7e57::{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "-6", "addr", "del", f"{address}/128", "dev", "lo"])


def test_ipv6_target_registers_and_routes_calls(sqlite_stack: RunningStack, tmp_path: Path) -> None:
    """SIP over IPv6: runners take the namespace's ULA addresses when the target is IPv6."""
    with host_ipv6_address() as address:
        port = free_port()
        with kamailio(port, tmp_path / "kamailio", ip=address):
            spec = {
                "name": "ipv6-sut",
                "target": {"host": address, "port": port, "registrar": True},
                "roles": {
                    "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
                    "callers": {"rate": 20, "max_calls": 20, "accounts": [{"user": "alice"}]},
                },
                "thresholds": ["success_rate >= 100", "failed_calls == 0"],
            }
            body = sqlite_stack.run(spec)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), (
        body["reasons"],
        body["runners"],
    )
    assert body["summary"]["roles"]["callee"]["successful_calls"] == 20
    addresses = {r["address"] for r in body["runners"]}
    assert all(a.startswith("fd57:ee1f:5ee5:") for a in addresses), addresses
    assert leftovers(body["id"]) == []


def test_ipv6_target_on_host_loopback_is_refused(sqlite_stack: RunningStack) -> None:
    spec = {
        "name": "ipv6-loopback",
        "target": {"host": "::1", "port": 5060, "registrar": False},
        "roles": {"callees": {"agents": 1}, "callers": {"max_calls": 1}},
    }
    body = sqlite_stack.run(spec)
    assert (body["status"], body["verdict"]) == ("error", "error"), body
    assert any("::1" in r and "route_localnet" in r for r in body["reasons"]), body["reasons"]
    assert body["runners"] == [] and leftovers(body["id"]) == []


def test_agents_are_forked_into_the_session_namespace(sqlite_stack: RunningStack) -> None:
    """The fork server's agents: in the session's namespace, each in a session of its own (so
    stop's killpg reaches its SIPp), and forked (no Python start-up of their own)."""
    sid = sqlite_stack.submit(direct_spec(rate=5, max_calls=None, duration_s=20))
    try:
        sqlite_stack.wait_phase(sid, "running callers")
        ns_inode = Path(f"/run/netns/{namespace(sid)}").stat().st_ino
        pid_files = sorted((sqlite_stack.runs_dir / sid).glob("*/agent.pid"))
        assert [p.parent.name for p in pid_files] == ["callee-0", "caller-0"]
        for pid_file in pid_files:
            pid = int(pid_file.read_text())
            assert Path(f"/proc/{pid}/ns/net").stat().st_ino == ns_inode, pid_file
            assert os.getsid(pid) == pid
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"runners.fork_server" in cmdline, cmdline
    finally:
        sqlite_stack.http.post(f"/v1/sessions/{sid}/cancel")
    body = sqlite_stack.wait(sid)
    assert body["status"] == "cancelled", body
    assert leftovers(sid) == []
