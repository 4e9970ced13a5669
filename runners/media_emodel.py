"""The E-model (ITU-T G.107), simplified to what a receiver of one RTP stream can know: its
packet loss. Pure functions.

Assumptions (stated in docs/media.md too):
- Default values of G.107 for everything but the codec and the network: Ro - Is = 93.2 (no
  noise, default sidetone and loudness ratings), echo well controlled (Idte ~ 0), A = 0.
- Delay: mouth-to-ear delay Ta = packetization (20 ms) + a jitter buffer of
  max(40 ms, 2 x the measured RFC 3550 jitter); clocks are not synchronised, so network delay
  is not measured. Id = Idd(Ta), 0 below 100 ms (G.107 §7.4).
- Codec: G.711 (PCMU and PCMA) with packet-loss concealment: Ie = 0, Bpl = 25.1 (G.113
  Appendix I); loss taken as random (BurstR = 1). Packets late beyond the jitter buffer are not
  counted as lost (the loss is what did not arrive at all).
- MOS is MOS-CQE from R (G.107 Annex B). G.711 without loss: R = 93.2, MOS = 4.41.
"""

from __future__ import annotations

import math

R0_MINUS_IS = 93.2
IE: dict[str, float] = {"PCMU": 0.0, "PCMA": 0.0}
BPL: dict[str, float] = {"PCMU": 25.1, "PCMA": 25.1}
PACKET_MS = 20.0
MIN_JITTER_BUFFER_MS = 40.0


def delay_impairment(ta_ms: float) -> float:
    """Idd of G.107 for an absolute delay Ta (no echo terms)."""
    if ta_ms <= 100.0:
        return 0.0
    x = math.log2(ta_ms / 100.0)
    return 25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)


def effective_equipment_impairment(codec: str, loss_pct: float, burst_r: float = 1.0) -> float:
    ie, bpl = IE.get(codec, 0.0), BPL.get(codec, 25.1)
    ppl = max(0.0, min(100.0, loss_pct))
    return ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(codec: str, loss_pct: float, jitter_ms: float) -> float:
    ta = PACKET_MS + max(MIN_JITTER_BUFFER_MS, 2.0 * jitter_ms)
    r = R0_MINUS_IS - delay_impairment(ta) - effective_equipment_impairment(codec, loss_pct)
    return max(0.0, min(100.0, r))


def mos_cqe(r: float) -> float:
    """G.107 Annex B: R -> MOS-CQE (1 .. 4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
