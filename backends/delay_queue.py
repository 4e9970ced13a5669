"""Delay and jitter of a session's traffic where the kernel has no netem: the session's
namespace queues what its runners receive (NFQUEUE, input hook) to the session's delayer process
(`backends.delayer`), which lets each packet through after delay ± jitter.

- Rules: iptables (its nftables flavour) in the session's namespace. This kernel has the xtables
  NFQUEUE target but not nftables' own `queue` expression. The input hook, as for loss: a verdict
  on the output hook would reach SIPp's sendto. The metrics stream (the broker's port) and SIPp's
  control socket are exempt, as for loss and rate.
- A role's delay replaces the session's for that role's addresses (as a role's rate does).
- The process: one per session, detached from the worker (a restarted worker finds it by its
  command line), started before the rules so no packet waits on a queue nobody reads, stopped
  with the namespace. It exits by itself once the namespace's name is gone.

The rate it carries is measured (bench/delayer_rate.py) and stated: SIPFLOW_DELAYER_MAX_CALLS_PER_S;
sessions planned above it are refused before anything starts (sipflow/delay_limit.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from backends.agent_processes import command_lines, terminate
from sipflow.plan import CONTROL_PORT
from sipflow.spec import Impairment

log = logging.getLogger(__name__)
MODULE = "backends.delayer"
SESSION_QUEUE = 0
READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 2.0


class DelayError(RuntimeError):
    pass


def queues(
    session: Impairment, roles: Mapping[str, tuple[Impairment, list[str]]]
) -> list[tuple[int, Impairment, list[str]]]:
    """(queue number, impairment, addresses it applies to; [] = every other address), role
    queues first: the first rule that matches a packet decides its queue."""
    out = []
    for k, (impairment, addresses) in enumerate(roles.values()):
        if impairment.delay_ms and addresses:
            out.append((1 + k, impairment, addresses))
    if session.delay_ms:
        out.append((SESSION_QUEUE, session, []))
    return out


def rules(planned: list[tuple[int, Impairment, list[str]]], broker_port: int, version: int) -> str:
    """The namespace's filter table for iptables-restore (version 4) or ip6tables-restore (6)."""
    lines = [
        "*filter",
        ":INPUT ACCEPT [0:0]",
        f"-A INPUT -p tcp --sport {broker_port} -j ACCEPT",
        f"-A INPUT -p tcp --dport {broker_port} -j ACCEPT",
        f"-A INPUT -p udp --dport {CONTROL_PORT} -j ACCEPT",
    ]
    bits = 32 if version == 4 else 128
    for num, _, addresses in planned:
        mine = [a for a in addresses if ipaddress.ip_address(a).version == version]
        if addresses and not mine:
            continue
        target = f"-j NFQUEUE --queue-num {num}"
        if not mine:
            lines.append(f"-A INPUT {target}")
        for address in mine:
            lines.append(f"-A INPUT -d {address}/{bits} {target}")
    return "\n".join([*lines, "COMMIT", ""])


def _argv(session_id: str, ns: str, planned: list[tuple[int, Impairment, list[str]]]) -> list[str]:
    argv = [sys.executable, "-m", MODULE, "--session", session_id, "--netns", ns]
    for num, impairment, _ in planned:
        argv += ["--queue", f"{num}:{impairment.delay_ms or 0}:{impairment.jitter_ms or 0}"]
    return argv


def running(session_id: str) -> dict[int, list[str]]:
    """pid -> command line of this session's delayer(s)."""
    needle = f"\0--session\0{session_id}\0".encode()
    module = f"\0{MODULE}\0".encode()
    return {
        pid: cmdline.decode(errors="replace").rstrip("\0").split("\0")
        for pid, cmdline in command_lines()
        if needle in cmdline and module in cmdline
    }


def start(
    state_dir: Path,
    session_id: str,
    ns: str,
    session: Impairment,
    roles: Mapping[str, tuple[Impairment, list[str]]],
    broker_port: int,
) -> int | None:
    """Idempotent: the session's delayer runs with these queues and the rules feed it. Returns
    its pid, or None when nothing is delayed (then no rules either)."""
    planned = queues(session, roles)
    if not planned:
        stop(session_id, state_dir)
        return None
    argv = _argv(session_id, ns, planned)
    same = [p for p, cmd in running(session_id).items() if cmd[1 : len(argv)] == argv[1:]]
    pid = same[0] if same else None
    if pid is None:
        stop(session_id, state_dir)
        pid = _spawn(state_dir, session_id, ns, argv)
    in_ns = ["ip", "netns", "exec", ns]
    for version, tool in ((4, "iptables-restore"), (6, "ip6tables-restore")):
        res = subprocess.run(
            [*in_ns, tool], input=rules(planned, broker_port, version),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if res.returncode != 0:
            raise DelayError(f"{tool} in {ns}: {res.stderr.strip() or res.stdout.strip()}")
    return pid


def _spawn(state_dir: Path, session_id: str, ns: str, argv: list[str]) -> int:
    ready = state_dir / f"delayer-{session_id}.ready"
    ready.unlink(missing_ok=True)
    log_file = _log(state_dir, session_id)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv, "--ready", str(ready)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,  # outlives a worker that dies; the stack's Ctrl-C is not its
        )  # fmt: skip
    # Reaped here when it ends, whoever stops it (no zombie under a long-lived worker).
    threading.Thread(target=proc.wait, name=f"delayer-{session_id}", daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            said = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise DelayError(
                "the delayer did not start"
                + (f": {' | '.join(said)}" if said else f" within {READY_TIMEOUT_S:g} s")
            )
        time.sleep(0.02)
    ready.unlink(missing_ok=True)
    return proc.pid


def _log(state_dir: Path, session_id: str) -> Path:
    return state_dir / f"delayer-{session_id}.log"


def stop(session_id: str, state_dir: Path) -> list[str]:
    """Ends the session's delayer(s): SIGTERM, then SIGKILL. Returns what it stopped. Its log,
    made before it was started, says whether there can be one: no scan of every process for
    the sessions that never had one."""
    log_file = _log(state_dir, session_id)
    if not log_file.exists():
        return []
    pids = terminate(lambda: list(running(session_id)), STOP_GRACE_S)
    with contextlib.suppress(OSError):  # what it said (packets, lateness, CPU) to the worker's log
        for line in log_file.read_text(errors="replace").splitlines()[-4:]:
            log.info("session %s: %s", session_id, line)
    log_file.unlink(missing_ok=True)
    return [f"delayer {pid}" for pid in pids]
