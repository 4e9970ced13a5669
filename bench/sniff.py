"""Timestamps of SIP requests on the wire (AF_PACKET raw sockets; needs root): on the host's
loopback device, and on the loopback of every session namespace (`sipflow-*`) that appears while
it runs, where a session's runners talk to each other in the namespace mode."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import threading
import time
from pathlib import Path

ETH_P_ALL = 0x0003
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL(None, use_errno=True)


def _raw_socket(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setblocking(False)
    return s


def raw_socket_in(netns: Path, iface: str = "lo") -> socket.socket:
    """A raw socket on `iface` of network namespace `netns`. setns moves only the calling
    thread; it moves back before returning, and the socket stays in the namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            return _raw_socket(iface)
        finally:
            _libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


class InviteSniffer:
    """Records the first time an INVITE leaves each source address."""

    def __init__(self, method: bytes = b"INVITE ") -> None:
        self.method = method
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._host = _raw_socket("lo")
        self._in_ns: dict[str, socket.socket] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _watch_namespaces(self) -> None:
        present = {p.name: p for p in NETNS_DIR.glob("sipflow-*")}
        for name, path in present.items():
            if name not in self._in_ns:
                with contextlib.suppress(OSError):  # gone again, or not yet mounted
                    self._in_ns[name] = raw_socket_in(path)
        # A socket keeps its namespace (and the session's veth) alive: let go of removed ones.
        for name in set(self._in_ns) - set(present):
            self._in_ns.pop(name).close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._watch_namespaces()
            socks = [self._host, *self._in_ns.values()]
            readable, _, _ = select.select(socks, [], [], 0.005)
            for sock in readable:
                with contextlib.suppress(OSError):
                    while True:
                        self._record(sock.recv(65535), time.time())

    def _record(self, frame: bytes, now: float) -> None:
        ip = frame[14:]  # loopback frames carry an all-zero Ethernet header
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            return
        ihl = (ip[0] & 0x0F) * 4
        if ip[ihl + 8 : ihl + 8 + len(self.method)] == self.method:
            self.first_seen.setdefault(socket.inet_ntoa(ip[12:16]), now)

    def __enter__(self) -> InviteSniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in [self._host, *self._in_ns.values()]:
            sock.close()
