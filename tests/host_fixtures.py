"""Simulated machines for runner hosts: each a network namespace of its own with an address
from 198.18.0.0/15 on a bridge the test makes, and a mount namespace of its own for
/run/netns (a real machine's session namespaces are its own: names never clash).

    root namespace                           machine sfm<X>a          machine sfm<X>b
    bridge sfbr<X> 198.18.X.1/24  <== veth ==> eth0 198.18.X.2   <== veth ==> eth0 198.18.X.3
      Temporal, broker, API: DNAT of TCP       sessions' /24s of         sessions' /24s of
      to 198.18.X.1 -> 127.0.0.1               198.19.(32k).0/20         198.19.(32k+16).0/20
      Kamailio listens on 198.18.X.1           (routed via .2)           (routed via .3)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from backends.agent_processes import processes_using

ROOT = Path(__file__).resolve().parent.parent
# What a runner host must never need (docs/runner-hosts.md): kept out of its environment.
STACK_SECRETS = ("SIPFLOW_RUNNER_TOKEN_SECRET", "SIPFLOW_ENCRYPTION_KEYS")


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    res = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


@dataclass
class Machine:
    name: str  # its network namespace
    address: str
    session_pool: str  # SIPFLOW_NETNS_POOL: its sessions' /24s, routed to it


@dataclass
class Network:
    bridge: str
    gateway: str  # the root namespace's address on the bridge: the stack as machines see it
    machines: list[Machine]
    table: str


@contextmanager
def machines(count: int, tcp_ports: list[int]) -> Iterator[Network]:
    """`count` simulated machines that reach the stack's TCP ports at the gateway."""
    x = random.randint(100, 250)
    bridge, gateway, table = f"sfbr{x}", f"198.18.{x}.1", f"sfm{x}"
    made: list[Machine] = []
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{gateway}/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1")
        for i in range(count):
            ns, veth = f"sfm{x}{chr(97 + i)}", f"sfv{x}{chr(97 + i)}"
            m = Machine(ns, f"198.18.{x}.{2 + i}", f"198.19.{(x % 8) * 32 + i * 16}.0/20")
            sh("ip", "netns", "add", ns)
            made.append(m)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", bridge, "up")
            batch = [
                f"addr add {m.address}/24 dev eth0",
                "link set eth0 up",
                "link set lo up",
                f"route add default via {gateway}",
            ]
            sh("ip", "-n", ns, "-batch", "-", stdin="\n".join(batch) + "\n")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            sh("ip", "route", "add", m.session_pool, "via", m.address)
        ports = ", ".join(str(p) for p in tcp_ports)
        rules = f"""table ip {table} {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{bridge}" ip daddr {gateway} tcp dport {{ {ports} }} dnat to 127.0.0.1
  }}
}}
"""
        sh("nft", "-f", "-", stdin=rules)
        yield Network(bridge, gateway, made, table)
    finally:
        sh("nft", "delete", "table", "ip", table, check=False)
        for m in made:
            sh("ip", "route", "del", m.session_pool, check=False)
            sh("ip", "netns", "del", m.name, check=False)
        sh("ip", "link", "del", bridge, check=False)


class RunnerHostProcess:
    """`sipflow runner-host` inside a simulated machine."""

    def __init__(self, machine: Machine, data_dir: Path, pool: str, env: dict[str, str]) -> None:
        self.machine, self.data_dir, self.pool, self.env = machine, data_dir, pool, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "runner-host.log"

    def start(self) -> RunnerHostProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        script = 'mkdir -p /run/netns && mount -t tmpfs sipflow-host /run/netns && exec "$@"'
        argv = ["ip", "netns", "exec", self.machine.name, "unshare", "--mount"]
        argv += ["--propagation", "private", "sh", "-c", script, "sh"]
        argv += [sys.executable, "-c", "from entrypoints.runner_host import main; "
                 f"raise SystemExit(main({self.pool!r}))"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in STACK_SECRETS}
        env.update(PYTHONPATH=str(ROOT), SIPFLOW_DATA_DIR=str(self.data_dir))
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def _tree(self) -> set[int]:
        """The host process, its descendants and whatever runs files of its data dir."""
        assert self.proc is not None
        parents: dict[int, int] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    parents[int(d.name)] = int(
                        (d / "stat").read_text().rsplit(")", 1)[1].split()[1]
                    )
                except (OSError, IndexError, ValueError):
                    continue
        found = {self.proc.pid, *processes_using(self.data_dir)}
        grew = True
        while grew:
            more = {p for p, pp in parents.items() if pp in found} - found
            found |= more
            grew = bool(more)
        return found

    def kill_machine(self) -> None:
        """kill -9 of everything the machine runs for sipflow: a host that died."""
        for pid in self._tree():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_machine()


def wait_until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {what} in {timeout} s"
        time.sleep(0.3)
