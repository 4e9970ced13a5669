"""Timestamps of SIP requests seen on the loopback device (AF_PACKET raw socket; needs root)."""

from __future__ import annotations

import socket
import threading
import time

ETH_P_ALL = 0x0003


class InviteSniffer:
    """Records the first time an INVITE leaves each source address on `lo`."""

    def __init__(self, method: bytes = b"INVITE ") -> None:
        self.method = method
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._sock.recv(65535)
            except TimeoutError:
                continue
            now = time.time()
            ip = frame[14:]  # loopback frames carry an all-zero Ethernet header
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            if ip[ihl + 8 : ihl + 8 + len(self.method)] == self.method:
                src = socket.inet_ntoa(ip[12:16])
                self.first_seen.setdefault(src, now)

    def __enter__(self) -> InviteSniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
