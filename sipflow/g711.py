"""ITU-T G.711 (µ-law for PCMU, A-law for PCMA) in pure Python: the reference audio the runners
stream, uploaded audio converted for them, and what arrives decoded for scoring. Standard library
only: the runner image holds this module (tests/test_layers.py)."""

from __future__ import annotations

from typing import Literal

Codec = Literal["PCMU", "PCMA"]
RATE = 8000


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


def alaw_sample(byte: int) -> int:
    """The linear sample of an A-law byte."""
    b = byte ^ 0x55
    exponent, mantissa = (b & 0x70) >> 4, b & 0x0F
    t = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return t if b & 0x80 else -t


def encode(samples: list[int], codec: Codec) -> bytes:
    enc = ulaw_byte if codec == "PCMU" else alaw_byte
    return bytes(enc(s) for s in samples)
