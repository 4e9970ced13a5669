"""One SIPp process: start, readiness, live control, clean stop with escalation."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Literal

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]
TCP_LISTEN = "0A"


def proc_net_address(ip: str, port: int) -> str:
    """ip:port as /proc/net/{udp,tcp}[6] write it: 32-bit words in host (little-endian) order."""
    if ":" in ip:
        packed = socket.inet_pton(socket.AF_INET6, ip)
        words = "".join(f"{int.from_bytes(packed[i : i + 4], 'little'):08X}" for i in (0, 4, 8, 12))
        return f"{words}:{port:04X}"
    packed = socket.inet_aton(ip)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def proc_net_table(ip: str, transport: Transport) -> str:
    """The /proc/net table an ip's sockets are listed in: udp, tcp, udp6, tcp6."""
    return f"{transport}6" if ":" in ip else transport


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        pass
    return inodes


def is_listening(pid: int, ip: str, port: int, transport: Transport) -> bool:
    """True when process pid holds a socket bound to ip:port (TCP: in LISTEN state)."""
    inodes = _socket_inodes(pid)
    want = proc_net_address(ip, port)
    table = Path(f"/proc/{pid}/net/{proc_net_table(ip, transport)}")
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) < 10 or parts[1] != want or parts[9] not in inodes:
            continue
        if transport == "udp" or parts[3] == TCP_LISTEN:
            return True
    return False


class SippProcess:
    def __init__(self, argv: list[str], cwd: Path, output: Path) -> None:
        self.argv = argv
        self.cwd = cwd
        self.output = output
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self.started_at = 0.0
        self.stop_requested_at: float | None = None
        self.terminated_at: float | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> int:
        log.info("starting %s", " ".join(self.argv))
        self._out = self.output.open("ab")
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the agent's group does not reach SIPp directly
        )
        self.started_at = time.monotonic()
        return self._proc.pid

    def poll(self) -> int | None:
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None and self._out is not None:
            self._out.close()
            self._out = None
        return code

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def _signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def request_stop(self) -> None:
        """SIGUSR1: SIPp places no new calls and exits (code 0) when the running calls end."""
        if self.stop_requested_at is None:
            log.info("SIGUSR1 to SIPp %s", self.pid)
            self.stop_requested_at = time.monotonic()
            self._signal(signal.SIGUSR1)

    def escalate(self, grace_s: float, term_grace_s: float) -> None:
        """After request_stop: SIGTERM after grace_s (SIPp still writes its last stat row),
        SIGKILL term_grace_s later."""
        if self.stop_requested_at is None or self.poll() is not None:
            return
        now = time.monotonic()
        if self.terminated_at is None and now - self.stop_requested_at >= grace_s:
            log.warning("SIPp %s still running %.1fs after SIGUSR1: SIGTERM", self.pid, grace_s)
            self.terminated_at = now
            self._signal(signal.SIGTERM)
        elif (
            self.terminated_at is not None
            and not self.killed
            and now - self.terminated_at >= term_grace_s
        ):
            log.warning("SIPp %s ignores SIGTERM: SIGKILL", self.pid)
            self.killed = True
            self._signal(signal.SIGKILL)

    def kill(self) -> None:
        self.killed = True
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()


def send_control(ip: str, port: int, command: str) -> None:
    """A command on SIPp's UDP control socket; `cset rate 20` == typing `set rate 20`."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(command.encode(), (ip, port))
