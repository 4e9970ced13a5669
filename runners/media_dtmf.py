"""DTMF as RFC 4733 (RFC 2833) telephone-events in the call's RTP: sent by SIPp, detected by the
runner's RTP receiver, tied to the call like the audio streams (docs/media.md).

Sending: SIPp 3.6.1's `<exec play_dtmf="DIGITS,MS"/>` builds the events itself (its
prepare_dtmf): 20 "RTP no-op" packets (payload type 97, 400 ms) to open the stream, then per digit
packets every 20 ms for MS ms (marker bit on the first, the duration growing), three end packets
(E bit, same timestamp), then a pause of MS ms. Payload type 96 and volume 10 are fixed by SIPp;
the SDP therefore offers `a=rtpmap:96 telephone-event/8000`. Each play_dtmf gets a new SSRC:
0x01020305 for the first of the SIPp process, +1 for each next one, in the order the calls run
it; the action that plays also logs `sipflow-dtmf <Call-ID> <digits>`, so the n-th such line is
the call of SSRC 0x01020305 + n. The packets leave a raw socket with the source port SIPp
writes into the SDP's m=audio line ([media_port+N]): the runner's RTP receiver port.

Detecting: one event per RTP timestamp (RFC 4733 2.5: all packets of one event share it), in the
order the events first arrive; the end packets' retransmissions (same timestamp) are one event.
Each digit's moment is the arrival of its first packet (a call script's expect_dtmf counts the
digits that arrived by its step: sipflow/media_expect.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from sipflow.runner_config import DTMF_LEAD_MS, dtmf_play_ms

DTMF_PT = 96  # SIPp's play_dtmf (fixed)
NOOP_PT = 97  # its stream-opening no-op packets (draft-wing-avt-rtp-noop)
SSRC_BASE = 0x01020305  # the first play_dtmf's SSRC in a SIPp process
LOG_TAG = "sipflow-dtmf"
EVENTS = "0123456789*#ABCD"
EVENT = struct.Struct("!BBH")
SDP_LINES = f"a=rtpmap:{DTMF_PT} telephone-event/8000\n      a=fmtp:{DTMF_PT} 0-15"
LEAD_MS = DTMF_LEAD_MS
play_ms = dtmf_play_ms


def play_action(digits: str, duration_ms: int) -> str:
    """The SIPp action elements that send `digits` and log the call's Call-ID for the join."""
    return (
        f'<exec play_dtmf="{digits},{duration_ms}"/><log message="{LOG_TAG} [call_id] {digits}"/>'
    )


def sent_events(log_file: Path) -> list[tuple[str, int, str]]:
    """(Call-ID, SSRC, digits) of every play_dtmf SIPp ran, from its log."""
    if not log_file.exists():
        return []
    out: list[tuple[str, int, str]] = []
    for line in log_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == LOG_TAG:
            out.append((parts[1], (SSRC_BASE + len(out)) & 0xFFFFFFFF, parts[2]))
    return out


EXPECT_TAG = "sipflow-expect"  # sipflow/call_script.py EXPECT_LOG


def expectations(log_file: Path) -> list[tuple[str, str, str]]:
    """(Call-ID, step, what) of a call script's expect_dtmf / expect audio steps, from the log."""
    if not log_file.exists():
        return []
    out: list[tuple[str, str, str]] = []
    for line in log_file.read_text(errors="replace").splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[0] == EXPECT_TAG:
            out.append((parts[1], parts[2], parts[3].strip()))
    return out


@dataclass
class EventStream:
    """The telephone-events of one stream (source address + SSRC)."""

    src: str
    ssrc: int
    packets: int = 0
    _events: dict[int, int] = field(default_factory=dict)  # RTP timestamp -> event
    _arrived: dict[int, float] = field(default_factory=dict)  # RTP timestamp -> first arrival
    _ended: set[int] = field(default_factory=set)

    def add(self, timestamp: int, payload: bytes, arrival: float = 0.0) -> None:
        self.packets += 1
        if len(payload) < EVENT.size:
            return
        event, flags, _duration = EVENT.unpack_from(payload)
        if event >= len(EVENTS):
            return  # not a DTMF event (RFC 4733 tones, flash, ...)
        if timestamp not in self._events:  # insertion order = first arrival
            self._events[timestamp] = event
            self._arrived[timestamp] = arrival
        if flags & 0x80:
            self._ended.add(timestamp)

    @property
    def digits(self) -> str:
        return "".join(EVENTS[e] for e in self._events.values())

    @property
    def times(self) -> list[float]:
        """When each digit's first packet arrived (epoch seconds), in the order of `digits`."""
        return list(self._arrived.values())

    @property
    def ended(self) -> int:
        """Events whose end (E bit) arrived."""
        return len(self._ended)
