"""PESQ (ITU-T P.862, narrow band) of a received stream against the reference audio, when the
`pesq` package (and numpy) is installed; otherwise None.

The audio is rebuilt from the payloads by sequence number: SIPp starts every stream at sequence
0 with the first byte of the reference file and loops the file, so packet k carries samples
k*160 .. k*160+159 of the looped reference. A lost packet is concealed as a phone would: the
previous frame repeated at 70 % (G.711 Appendix I does better; this is the simple kind).
Scoring starts at the first packet received: a stream sent on to a transfer target mid-way
(runners/media_transfer.py) is heard from there, against the reference from there.
At most MAX_SECONDS of a stream are scored (PESQ costs ~35 ms of CPU per 4 s here).
"""

from __future__ import annotations

import logging
from typing import Any

from runners.media_audio import RATE, alaw_sample, ulaw_sample

log = logging.getLogger(__name__)
FRAME = 160  # samples per 20 ms packet
MIN_PACKETS = 50  # 1 s: shorter is not scored
MAX_SECONDS = 20
CONCEAL_GAIN = 0.7


def available() -> bool:
    try:
        import numpy  # noqa: F401
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def rebuild(
    payloads: dict[int, bytes], n: int, reference: list[int], codec: str, first: int = 0
) -> tuple[Any, Any]:
    """(reference, degraded) int16 arrays of n packets from packet `first`: the received audio
    by sequence number, a lost packet concealed as the previous frame at CONCEAL_GAIN."""
    import numpy as np

    decode = ulaw_sample if codec == "PCMU" else alaw_sample
    table = np.array([decode(b) for b in range(256)], dtype=np.int16)
    degraded = np.zeros(n * FRAME, dtype=np.int16)
    prev = np.zeros(FRAME, dtype=np.int16)
    for k in range(n):
        data = payloads.get(first + k)
        if data is not None and len(data) >= FRAME:
            frame = table[np.frombuffer(data[:FRAME], dtype=np.uint8)]
        else:
            frame = (prev * CONCEAL_GAIN).astype(np.int16)
        degraded[k * FRAME : (k + 1) * FRAME] = frame
        prev = frame
    # The looped reference, as packet `first` onwards carry it.
    ref = np.resize(np.array(reference, dtype=np.int16), (first + n) * FRAME)[first * FRAME :]
    return ref, degraded


def first_packet(payloads: dict[int, bytes]) -> int:
    return min(payloads, default=0)


def score(
    payloads: dict[int, bytes], last_ext: int, reference: list[int], codec: str
) -> float | None:
    """MOS-LQO of the packets from the first received to last_ext (None: too short, no
    package, or PESQ found no speech)."""
    try:
        import numpy  # noqa: F401
        from pesq import pesq
    except ImportError:
        return None
    first = first_packet(payloads)
    n = min(last_ext + 1 - first, MAX_SECONDS * RATE // FRAME)
    if n < MIN_PACKETS or not reference:
        return None
    ref, degraded = rebuild(payloads, n, reference, codec, first)
    try:
        value: Any = pesq(RATE, ref, degraded, "nb")
    except Exception as exc:  # e.g. NoUtterancesError: nothing that sounds like speech
        log.info("PESQ gave no score: %s", exc)
        return None
    return round(float(value), 3)
