"""Per-stream analysis of the RTP a runner receives (RFC 3550): packets, loss, duplicates,
reordering and interarrival jitter, per stream (source address + SSRC).

The runner's SDP names this receiver's port, not SIPp's media port: SIPp only sends (rtp_stream
from its own media port) and measures nothing it receives. A plain UDP socket sees what survived
the network (an nftables drop on the input path included), which is what a phone would play.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

from runners.media_dtmf import DTMF_PT, NOOP_PT, EventStream

CLOCK_HZ = 8000  # G.711
MAX_STREAMS = 200_000  # bound on memory: streams beyond it are counted, not analysed
SEQ_MOD = 1 << 16
RTP_HEADER = struct.Struct("!BBHII")
PAUSED_S = 0.2  # a longer silence is a paused stream (hold), not jitter
# When audio arrived, for a script's `expect audio` judged at its moment: runs of packets split
# by a longer silence than SPAN_GAP_S (well under the 1 s window the step looks at, so a window
# that overlaps a run holds a packet), at most MAX_SPANS per stream (a report's size bound).
SPAN_GAP_S = PAUSED_S
MAX_SPANS = 16


def sampled(src: str, ssrc: int, sample_pct: float) -> bool:
    """Whether the stream from src ('ip:port') with this SSRC is analysed: a hash both ends of a
    call compute alike (the sender lists only the streams the receiver analyses)."""
    if sample_pct >= 100:
        return True
    return zlib.crc32(f"{src}/{ssrc}".encode()) % 10000 < round(sample_pct * 100)


@dataclass
class StreamStats:
    src: str
    ssrc: int
    payload_type: int
    first_time: float
    last_time: float = 0.0
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    jitter_ts: float = 0.0  # RFC 3550 A.8, in timestamp units
    # The longest silence between two packets (a paused stream: hold) and when it ended.
    max_gap_s: float = 0.0
    gap_end: float = 0.0
    max_ext: int = -1
    base_ext: int = -1
    cycles: int = 0
    # [first, last] arrival of each run of packets (SPAN_GAP_S, MAX_SPANS); the last run's end
    # is last_time (kept there: one comparison per packet).
    _runs: list[list[float]] = field(default_factory=list, repr=False)
    # Payloads by extended sequence number, kept only for a perceptual score (PESQ).
    payloads: dict[int, bytes] | None = field(default=None, repr=False)
    _seen: set[int] = field(default_factory=set, repr=False)
    _transit: float | None = field(default=None, repr=False)

    def add(self, seq: int, timestamp: int, arrival: float, payload: bytes = b"") -> None:
        gap = arrival - self.last_time if self.last_time else 0.0
        if gap > self.max_gap_s:
            self.max_gap_s, self.gap_end = gap, arrival
        if gap > SPAN_GAP_S or not self._runs:
            if self._runs:
                self._runs[-1][1] = self.last_time
            start_run(self._runs, arrival)
        self.last_time = arrival
        if self.max_ext < 0:
            ext = seq
            self.base_ext = ext
        else:
            max_seq = self.max_ext % SEQ_MOD
            delta = (seq - max_seq) % SEQ_MOD
            if delta < SEQ_MOD // 2:  # ahead (or equal)
                if seq < max_seq:
                    self.cycles += SEQ_MOD
                ext = self.cycles + seq
            else:  # behind: late or duplicate
                ext = self.max_ext - ((max_seq - seq) % SEQ_MOD)
        if ext in self._seen:
            self.duplicates += 1
            return
        self._seen.add(ext)
        self.received += 1
        if self.payloads is not None:
            self.payloads[ext] = payload
        if ext < self.max_ext:
            self.reordered += 1
        else:
            self.max_ext = ext
        if ext < self.base_ext:
            self.base_ext = ext
        transit = arrival * CLOCK_HZ - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            # a timestamp jump (a new loop of the file) or a paused stream is no jitter
            if d < CLOCK_HZ * 60 and gap < PAUSED_S:
                self.jitter_ts += (d - self.jitter_ts) / 16.0
        self._transit = transit

    @property
    def spans(self) -> list[tuple[float, float]]:
        """(first, last) arrival of each run of packets."""
        runs = [(a, b) for a, b in self._runs]
        if runs:
            runs[-1] = (runs[-1][0], self.last_time)
        return runs

    @property
    def expected(self) -> int:
        return self.max_ext - self.base_ext + 1 if self.max_ext >= 0 else 0

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.expected if self.expected else 0.0

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self.jitter_ts / CLOCK_HZ


def start_run(spans: list[list[float]], arrival: float) -> None:
    """A run of packets starts (after a silence); beyond MAX_SPANS the two runs with the shortest
    silence between them become one (the long silences, what a window could miss, stay)."""
    spans.append([arrival, arrival])
    if len(spans) > MAX_SPANS:
        i = min(range(len(spans) - 1), key=lambda k: spans[k + 1][0] - spans[k][1])
        spans[i : i + 2] = [[spans[i][0], spans[i + 1][1]]]


def _payload_offset(data: bytes) -> int:
    """Where the payload starts: after the CSRCs and a header extension (RFC 3550 5.1, 5.3.1)."""
    offset = RTP_HEADER.size + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    return min(offset, len(data))


class RtpReceiver:
    """A thread that receives on (ip, port) and keeps per-stream statistics."""

    def __init__(
        self, ip: str, port: int, sample_pct: float = 100.0, keep_payloads: int = 0
    ) -> None:
        """keep_payloads: for how many streams (the first ones) to keep the audio (PESQ)."""
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self.sample_pct = sample_pct
        self.keep_payloads = keep_payloads
        self.streams: dict[tuple[str, int], StreamStats] = {}
        self.not_sampled: set[tuple[str, int]] = set()
        self.overflow = 0  # packets of streams beyond MAX_STREAMS
        self.invalid = 0  # datagrams that are no RTP
        # DTMF (telephone-events, runners/media_dtmf.py): every stream, not only the sample.
        self.dtmf: dict[tuple[str, int], EventStream] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.handle(data, f"{addr[0]}:{addr[1]}", time.time())

    def handle(self, data: bytes, src: str, arrival: float) -> None:
        if len(data) < RTP_HEADER.size or data[0] >> 6 != 2:
            self.invalid += 1
            return
        _b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
        key = (src, ssrc)
        if b1 & 0x7F in (DTMF_PT, NOOP_PT):
            self._event(key, ts, data, arrival)
            return
        stream = self.streams.get(key)
        if stream is None:
            if key in self.not_sampled:
                return
            if not sampled(src, ssrc, self.sample_pct):
                self.not_sampled.add(key)
                return
            if len(self.streams) >= MAX_STREAMS:
                self.overflow += 1
                return
            stream = self.streams[key] = StreamStats(src, ssrc, b1 & 0x7F, arrival)
            if len(self.streams) <= self.keep_payloads:
                stream.payloads = {}
        stream.add(seq, ts, arrival, data[_payload_offset(data) :])

    def _event(self, key: tuple[str, int], ts: int, data: bytes, arrival: float) -> None:
        events = self.dtmf.get(key)
        if events is None:
            if len(self.dtmf) >= MAX_STREAMS:
                self.overflow += 1
                return
            events = self.dtmf[key] = EventStream(*key)
        if data[1] & 0x7F == DTMF_PT:
            events.add(ts, data[_payload_offset(data) :], arrival)
        else:
            events.packets += 1
