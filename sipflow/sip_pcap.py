"""SIP in pcap files: the classic pcap format (raw IP link type) written by the session's capture
(backends/sip_capture.py) and read back by the evidence extraction (sipflow/evidence.py).

Only what the evidence needs: IPv4/IPv6 + UDP (and TCP segments that start a SIP message), one
SIP message per packet, no reassembly.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_RAW = 101  # each record is an IP packet (v4 or v6, by its first nibble)
SNAPLEN = 65535
GLOBAL_HEADER = struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)
RECORD = struct.Struct("<IIII")

_REQUEST = re.compile(rb"^([A-Z]+) (\S+) SIP/2\.0\r?$")
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)


def looks_like_sip(payload: bytes) -> bool:
    """A SIP request or response starts this payload (its first line)."""
    if payload.startswith(b"SIP/2.0 "):
        return True
    end = payload.find(b"\n", 0, 512)
    return end > 0 and _REQUEST.match(payload[:end].rstrip(b"\n")) is not None


def call_id_of(payload: bytes) -> str | None:
    m = _CALL_ID.search(payload, 0, 8192)
    return m.group(1).decode(errors="replace") if m else None


@dataclass(frozen=True)
class Packet:
    time: float
    src: str  # "ip:port" (IPv6: "[ip]:port")
    dst: str
    transport: str  # udp | tcp
    payload: bytes
    raw: bytes  # the IP packet as captured


def _endpoint(ip: bytes, port: int) -> str:
    addr = ipaddress.ip_address(ip)
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def parse_ip(raw: bytes, time: float = 0.0) -> Packet | None:
    """The UDP/TCP payload of an IP packet, or None (not IP, not UDP/TCP, truncated)."""
    if len(raw) < 20:
        return None
    version = raw[0] >> 4
    if version == 4:
        ihl = (raw[0] & 0x0F) * 4
        proto, src, dst, l4 = raw[9], raw[12:16], raw[16:20], raw[ihl:]
        if (int.from_bytes(raw[6:8], "big") & 0x1FFF) != 0:
            return None  # a later fragment: no header of its own
    elif version == 6 and len(raw) >= 40:
        proto, src, dst, l4 = raw[6], raw[8:24], raw[24:40], raw[40:]
    else:
        return None
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack("!HH", l4[:4])
        payload, transport = l4[8:], "udp"
    elif proto == 6 and len(l4) >= 20:
        sport, dport = struct.unpack("!HH", l4[:4])
        payload, transport = l4[(l4[12] >> 4) * 4 :], "tcp"
    else:
        return None
    return Packet(time, _endpoint(src, sport), _endpoint(dst, dport), transport, payload, raw)


def write_record(out: BinaryIO, time: float, raw: bytes) -> int:
    """Appends one packet; returns the bytes written."""
    sec = int(time)
    out.write(RECORD.pack(sec, int((time - sec) * 1_000_000), len(raw), len(raw)))
    out.write(raw)
    return RECORD.size + len(raw)


def write_pcap(path: Path, packets: Iterable[Packet]) -> int:
    """A pcap file of these packets; returns how many."""
    n = 0
    with path.open("wb") as out:
        out.write(GLOBAL_HEADER)
        for p in packets:
            write_record(out, p.time, p.raw)
            n += 1
    return n


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """(time, IP packet) of every whole record of a raw-IP pcap file. A file cut short (the
    capture was killed mid-write) ends at its last whole record."""
    with path.open("rb") as f:
        head = f.read(len(GLOBAL_HEADER))
        if len(head) < len(GLOBAL_HEADER):
            return
        magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", head)
        if magic != MAGIC or link != LINKTYPE_RAW:
            raise ValueError(f"{path}: not a raw-IP pcap file written by sipflow's capture")
        while True:
            rec = f.read(RECORD.size)
            if len(rec) < RECORD.size:
                return
            sec, usec, incl, _orig = RECORD.unpack(rec)
            raw = f.read(incl)
            if len(raw) < incl:
                return
            yield sec + usec / 1_000_000, raw


def sip_packets(paths: Iterable[Path]) -> Iterator[Packet]:
    """SIP packets of these pcap files, in file order."""
    for path in paths:
        for t, raw in read_pcap(path):
            p = parse_ip(raw, t)
            if p is not None and looks_like_sip(p.payload):
                yield p


@dataclass
class SipMessage:
    time: float
    src: str
    dst: str
    transport: str
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @property
    def status(self) -> int | None:
        if self.first_line.startswith("SIP/2.0 "):
            code = self.first_line[8:11]
            return int(code) if code.isdigit() else None
        return None

    @property
    def method(self) -> str:
        """The request's method, or a response's CSeq method."""
        if self.status is None:
            return self.first_line.split(" ", 1)[0]
        cseq = self.header("CSeq") or ""
        parts = cseq.split()
        return parts[1] if len(parts) > 1 else "?"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "src": self.src,
            "dst": self.dst,
            "transport": self.transport,
            "first_line": self.first_line,
            "headers": [[k, v] for k, v in self.headers],
            "body": self.body,
        }


def parse_sip(p: Packet) -> SipMessage:
    text = p.payload.decode("utf-8", errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    if not _ and "\n\n" in text:
        head, _, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded header line
            k, v = headers[-1]
            headers[-1] = (k, f"{v} {line.strip()}")
        elif ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return SipMessage(p.time, p.src, p.dst, p.transport, lines[0].strip(), headers, body)
