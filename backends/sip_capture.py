"""The session's SIP capture: one process per session, beside its runners (started by the local
backend inside the session's network namespace, or on the host's loopback for loopback sessions).

An AF_PACKET socket sees every interface of the namespace; what it keeps is SIP only (UDP, or a
TCP segment that starts a SIP message), written as raw-IP pcap into a ring of files:
`ring-NNNNNN.pcap`, each at most max_bytes / max_files, the oldest deleted when there are more
than max_files. Disk use stays under max_bytes whatever the session's length. On SIGTERM (the
backend's teardown), at its deadline, or when its folder goes, it flushes, writes `capture.json`
(counts, files dropped, the most it held on disk) and exits.

    python -m backends.sip_capture --dir D --max-bytes N --max-files K --deadline-s S
        [--prefix 127.201.7.] [--ready FILE] [--session SID]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import struct
import time
from pathlib import Path
from typing import BinaryIO

from sipflow.sip_pcap import GLOBAL_HEADER, looks_like_sip, parse_ip, write_record

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
LINK_HEADER = 14  # Ethernet (veth) and loopback's all-zero header alike
RCVBUF = 16 * 1024 * 1024
SOL_PACKET, PACKET_STATISTICS, SO_ATTACH_FILTER = 263, 6, 26
LOOPBACK_IFINDEX = 1  # in every network namespace
# Classic BPF run by the kernel: drop a packet leaving on loopback (it is seen again arriving),
# so Python is woken once per packet. (code, jt, jf, k)
NOT_LOOPBACK_OUT = [
    (0x20, 0, 0, 0xFFFFF004),  # A = pkttype (SKF_AD_OFF + SKF_AD_PKTTYPE)
    (0x15, 0, 3, PACKET_OUTGOING),  # outgoing? else accept
    (0x20, 0, 0, 0xFFFFF008),  # A = ifindex (SKF_AD_OFF + SKF_AD_IFINDEX)
    (0x15, 0, 1, LOOPBACK_IFINDEX),  # on loopback? drop, else accept
    (0x06, 0, 0, 0),
    (0x06, 0, 0, 0x40000),
]


def attach_filter(sock: socket.socket) -> ctypes.Array[ctypes.c_char]:
    """Attaches NOT_LOOPBACK_OUT; returns the program's buffer (keep it alive)."""
    prog = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in NOT_LOOPBACK_OUT))
    fprog = struct.pack("HL", len(NOT_LOOPBACK_OUT), ctypes.addressof(prog))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return prog


def kernel_counts(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) the kernel counted for this socket since the last call."""
    packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return packets, drops


class Ring:
    """pcap files in a ring: total size never above max_bytes."""

    def __init__(self, folder: Path, max_bytes: int, max_files: int) -> None:
        self.folder = folder
        self.max_files = max(1, max_files)
        self.file_bytes = max(len(GLOBAL_HEADER) + 1, max_bytes // self.max_files)
        self.files: list[tuple[Path, int]] = []  # closed files and their sizes
        self.path: Path | None = None
        self.out: BinaryIO | None = None
        self.size = 0  # of the current file
        self.index = 0
        self.packets = 0
        self.dropped_files = 0
        self.too_big = 0  # packets larger than a whole file: not kept
        self.held_bytes_max = 0
        folder.mkdir(parents=True, exist_ok=True)

    def held(self) -> int:
        """Bytes on disk now: the closed files kept and the current one."""
        return sum(size for _, size in self.files) + (self.size if self.out else 0)

    def _next_file(self) -> None:
        if self.out is not None and self.path is not None:
            self.out.close()
            self.files.append((self.path, self.size))
        # Room for the new file first: never more than max_files on disk.
        while len(self.files) > self.max_files - 1:
            self.files.pop(0)[0].unlink(missing_ok=True)
            self.dropped_files += 1
        self.path = self.folder / f"ring-{self.index:06d}.pcap"
        self.index += 1
        self.out = self.path.open("wb")
        self.out.write(GLOBAL_HEADER)
        self.size = len(GLOBAL_HEADER)

    def add(self, t: float, raw: bytes) -> None:
        need = 16 + len(raw)
        if len(GLOBAL_HEADER) + need > self.file_bytes:
            self.too_big += 1
            return
        if self.out is None or self.size + need > self.file_bytes:
            self._next_file()
        assert self.out is not None
        self.size += write_record(self.out, t, raw)
        self.packets += 1
        # Every file is at most file_bytes and there are at most max_files: <= max_bytes.
        self.held_bytes_max = max(self.held_bytes_max, self.held())

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


def _prefix_bytes(prefix: str | None) -> bytes | None:
    if not prefix:
        return None
    parts = [int(x) for x in prefix.strip(".").split(".")]
    return bytes(parts)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    ring = Ring(folder, args.max_bytes, args.max_files)
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    _prog = attach_filter(sock)
    if args.ready:
        Path(args.ready).write_text(str(os.getpid()))
    deadline = time.monotonic() + args.deadline_s
    prefix = _prefix_bytes(args.prefix)
    seen = sip = 0
    last_flush = last_check = time.monotonic()
    while not stop:
        now = time.monotonic()
        if now > deadline:
            break
        if now - last_check > 2:
            last_check = now
            if not folder.exists():  # the session's folder went: nothing to keep it for
                break
        readable, _, _ = select.select([sock], [], [], 0.05)
        if not readable:
            if time.monotonic() - last_flush > 0.5:
                ring.flush()
                last_flush = time.monotonic()
            continue
        while True:
            try:
                frame, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            seen += 1
            if addr[0] == "lo" and addr[2] == PACKET_OUTGOING:
                continue  # loopback shows each packet twice: keep its arrival
            raw = frame[LINK_HEADER:]
            if (
                prefix is not None
                and raw[:1] == b"\x45"
                and raw[12:15] != prefix
                and raw[16:19] != prefix
            ):
                continue
            p = parse_ip(raw)
            if p is None or not looks_like_sip(p.payload):
                continue
            sip += 1
            ring.add(time.time(), raw)
        if time.monotonic() - last_flush > 0.5:
            ring.flush()
            last_flush = time.monotonic()
    ring.close()
    _, kernel_drops = kernel_counts(sock)
    sock.close()
    stats = {
        "session": args.session,
        "frames_seen": seen,
        "kernel_drops": kernel_drops,  # frames the socket's buffer had no room for
        "sip_packets": sip,
        "packets_kept": ring.packets,
        "files_dropped": ring.dropped_files,
        "too_big": ring.too_big,
        "max_bytes": args.max_bytes,
        "max_files": ring.max_files,
        "held_bytes_max": ring.held_bytes_max,
        "cpu_s": round(time.process_time(), 3),
    }
    if folder.exists():
        (folder / "capture.json").write_text(json.dumps(stats))
    print(json.dumps(stats), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backends.sip_capture")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--max-bytes", type=int, required=True)
    ap.add_argument("--max-files", type=int, required=True)
    ap.add_argument("--deadline-s", type=float, default=6 * 3600)
    ap.add_argument("--prefix", default=None, help="keep IPv4 packets of this /24 only")
    ap.add_argument("--ready", default=None)
    ap.add_argument("--session", default="")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
