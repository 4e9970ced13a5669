"""ViSQOL (speech mode, v3 with the lattice mapper) of a received stream against the reference
audio, when the `visqol-python[lattice]` package is installed; otherwise None.

The degraded audio is rebuilt from the payloads exactly as for PESQ (runners/media_pesq.py:
by sequence number, a lost packet concealed by the previous frame at 70 %), then both signals
are upsampled 8 -> 16 kHz (speech mode works at 16 kHz). Its models ship in the wheel: nothing is
downloaded at run time. It is costly (~7.5 s of CPU per 14 s clip here), so a runner scores at
most MediaConfig.visqol_streams streams (SIPFLOW_MEDIA_VISQOL_MAX_CLIPS) and at most
MAX_SECONDS of each.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from runners.media_audio import RATE
from runners.media_pesq import MIN_PACKETS, first_packet, rebuild

log = logging.getLogger(__name__)
MAX_SECONDS = 10
SPEECH_RATE = 16000


def available() -> bool:
    try:
        import ai_edge_litert  # noqa: F401
        import scipy  # noqa: F401
        import visqol  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _api() -> Any:
    from visqol.api import VisqolApi

    api = VisqolApi()
    api.create(mode="speech", use_lattice_model=True)
    return api


def score(
    payloads: dict[int, bytes], last_ext: int, reference: list[int], codec: str
) -> float | None:
    """MOS-LQO of the packets from the first received to last_ext (None: too short, no
    package, or ViSQOL failed)."""
    try:
        import numpy as np
        from scipy.signal import resample_poly
    except ImportError:
        return None
    first = first_packet(payloads)
    n = min(last_ext + 1 - first, MAX_SECONDS * RATE // 160)
    if n < MIN_PACKETS or not reference or not available():
        return None
    ref, degraded = rebuild(payloads, n, reference, codec, first)
    up = SPEECH_RATE // RATE
    ref16 = resample_poly(ref.astype(np.float64) / 32768.0, up, 1)
    deg16 = resample_poly(degraded.astype(np.float64) / 32768.0, up, 1)
    try:
        result = _api().measure_from_arrays(ref16, deg16, SPEECH_RATE)
    except Exception as exc:  # too short, silent, ...
        log.info("ViSQOL gave no score: %s", exc)
        return None
    return round(float(result.moslqo), 3)
