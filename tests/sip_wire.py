"""What SIP said on the wire: every SIP response (and INVITE request) seen on any interface of
the host's network namespace (AF_PACKET raw socket, needs root), kept by Call-ID. A test compares
its counts with what sipflow stored, independently of SIPp's and sipflow's own bookkeeping."""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

ETH_P_ALL = 0x0003
_STATUS = re.compile(rb"^SIP/2\.0 ([1-6][0-9]{2}) ")
_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.I | re.M)
_CSEQ = re.compile(rb"^CSeq\s*:\s*[0-9]+\s+([A-Z]+)", re.I | re.M)
_CSEQ_NUMBER = re.compile(rb"^CSeq\s*:\s*([0-9]+)\s+([A-Z]+)", re.I | re.M)
_REQUEST = re.compile(rb"^([A-Z]+) sip:")
_DIRECTION = re.compile(rb"^a=(sendonly|recvonly|sendrecv|inactive)\s*$", re.M)


class SipWire:
    """Responses sent from UDP port `from_port` (the SUT's: the calls' outcomes as the callers
    got them, and nothing of other SIP software on the machine)."""

    def __init__(self, from_port: int) -> None:
        self.from_port = from_port
        # Call-ID -> final response codes to its INVITE (a proxy's and a UA's copies are one).
        self.invite_finals: dict[str, set[int]] = {}
        # Call-ID -> the INVITEs sent from the port: (CSeq number, SDP direction or "").
        self.invites: dict[str, set[tuple[int, str]]] = {}
        # Call-ID -> every request sent from the port: (method, CSeq number).
        self.requests: dict[str, set[tuple[str, int]]] = {}
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        # Every packet of the host passes here (other tests' load too): a deep buffer, so a
        # loaded machine does not drop the few this test counts (seen: 79 of 80 200s).
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, 33, 32 * 1024 * 1024)  # SO_RCVBUFFORCE
        self._sock.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._sock], [], [], 0.05)
            if readable:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        self._record(self._sock.recv(65535))

    def _record(self, frame: bytes) -> None:
        ip = frame[14:]  # Ethernet (veth) or loopback's all-zero header: 14 bytes either way
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            return
        udp = ip[(ip[0] & 0x0F) * 4 :]
        if int.from_bytes(udp[0:2], "big") != self.from_port:
            return
        payload = udp[8:]
        if _REQUEST.match(payload):
            self._request(payload)
            return
        status = _STATUS.match(payload)
        if status is None or int(status.group(1)) < 200:
            return
        call_id, cseq = _CALL_ID.search(payload), _CSEQ.search(payload)
        if call_id and cseq and cseq.group(1) == b"INVITE":
            self.invite_finals.setdefault(call_id.group(1).decode(), set()).add(
                int(status.group(1))
            )

    def _request(self, payload: bytes) -> None:
        call_id, cseq = _CALL_ID.search(payload), _CSEQ_NUMBER.search(payload)
        if not (call_id and cseq):
            return
        key, number, method = call_id.group(1).decode(), int(cseq.group(1)), cseq.group(2)
        self.requests.setdefault(key, set()).add((method.decode(), number))
        if method == b"INVITE":
            direction = _DIRECTION.search(payload)
            seen = (number, direction.group(1).decode() if direction else "")
            self.invites.setdefault(key, set()).add(seen)

    def codes(self) -> Counter[int]:
        """Calls by the final response their INVITE got (a call with a challenge, 401/407 then
        200, counts as its last: the highest class it reached is not what ended it, so the
        challenge codes are dropped when another final came)."""
        out: Counter[int] = Counter()
        for finals in self.invite_finals.values():
            ended = finals - {401, 407} or finals
            out[min(ended)] += 1
        return out


@contextmanager
def sip_wire(from_port: int) -> Iterator[SipWire]:
    wire = SipWire(from_port)
    wire._thread.start()
    try:
        yield wire
    finally:
        wire._stop.set()
        wire._thread.join(2)
        wire._sock.close()
