"""Reference audio for media calls: a deterministic, speech-like 8 kHz signal encoded as headerless
G.711 (µ-law for PCMU, A-law for PCMA), the format SIPp's `<exec rtp_stream=...>` streams byte for
byte. Made once per runner at set-up in pure Python (no audioop, no numpy, no sox): the same bytes
on every machine, so what arrives can be compared with what was sent.

The signal: a few harmonics of a pitch that glides between 110 and 220 Hz, shaped by a syllable
envelope (4 per second, with pauses), at about -16 dBov: close enough to speech in level and
rhythm for loss and concealment to matter, and cheap to make (2 s of audio, looped by SIPp).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

Codec = Literal["PCMU", "PCMA"]
RATE = 8000
SECONDS = 2
PAYLOAD_TYPE: dict[str, int] = {"PCMU": 0, "PCMA": 8}


def ulaw_byte(sample: int) -> int:
    """ITU-T G.711 µ-law of a 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, clip) + bias
    exponent, mask = 7, 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def alaw_byte(sample: int) -> int:
    """ITU-T G.711 A-law of a 16-bit linear sample."""
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(-sample - 1 if sample < 0 else sample, 32767) >> 3  # 13 bits
    if magnitude < 32:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5  # 1..7
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (code | sign) ^ 0x55


def ulaw_sample(byte: int) -> int:
    """The linear sample of a µ-law byte (for decoding what arrived)."""
    b = ~byte & 0xFF
    t = (((b & 0x0F) << 3) + 0x84) << ((b & 0x70) >> 4)
    return 0x84 - t if b & 0x80 else t - 0x84


def speech_like(seconds: int = SECONDS) -> list[int]:
    """Deterministic 16-bit samples (see the module's docstring)."""
    out = []
    for n in range(RATE * seconds):
        t = n / RATE
        pitch = 165 + 55 * math.sin(2 * math.pi * 0.7 * t)
        phase = 2 * math.pi * pitch * t
        voiced = sum(math.sin(k * phase) / k for k in (1, 2, 3, 5))
        syllable = max(0.0, math.sin(2 * math.pi * 4 * t)) ** 2
        pause = 0.0 if (t % 1.0) > 0.8 else 1.0
        out.append(int(4000 * voiced * syllable * pause))
    return out


def encode(samples: list[int], codec: Codec) -> bytes:
    enc = ulaw_byte if codec == "PCMU" else alaw_byte
    return bytes(enc(s) for s in samples)


def reference_file(work_dir: Path, codec: Codec) -> Path:
    """The reference audio for `codec` in work_dir (made if missing); its name is what the
    scenario's rtp_stream names, relative to SIPp's working directory."""
    path = work_dir / f"reference.{'ulaw' if codec == 'PCMU' else 'alaw'}"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode(speech_like(), codec))
        tmp.replace(path)
    return path
