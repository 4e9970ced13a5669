"""What the report's media panel draws: the MOS distribution, loss and jitter over the session's
seconds, and the worst calls — from the per-direction rows of sipflow.media_store."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel
from sqlmodel import Session

from sipflow.media_store import CallOut, analysed_rows, call_of, has_audio
from sipflow.models import CallMediaRow

MOS_BINS = [(1.0 + 0.25 * i, 1.25 + 0.25 * i) for i in range(14)]  # 1.0 .. 4.5
WORST = 10


class MosBin(BaseModel):
    low: float
    high: float
    directions: int


class MediaSecond(BaseModel):
    time: int  # the whole second a direction's audio began in (epoch)
    directions: int
    loss_pct: float | None  # of the packets expected in those directions
    jitter_ms: float | None  # their mean jitter


class MediaPanel(BaseModel):
    mos: list[MosBin]
    over_time: list[MediaSecond]
    worst: list[CallOut]  # the calls with the lowest MOS (no audio first), at most WORST


def _bins(rows: Sequence[CallMediaRow]) -> list[MosBin]:
    counts = [0] * len(MOS_BINS)
    for r in rows:
        if r.mos is not None:
            i = min(max(int((r.mos - 1.0) / 0.25), 0), len(MOS_BINS) - 1)
            counts[i] += 1
    return [
        MosBin(low=lo, high=hi, directions=n) for (lo, hi), n in zip(MOS_BINS, counts, strict=True)
    ]


def _seconds(rows: Sequence[CallMediaRow]) -> list[MediaSecond]:
    by: dict[int, list[CallMediaRow]] = {}
    for r in rows:
        if r.first_time is not None and has_audio(r):
            by.setdefault(math.floor(r.first_time), []).append(r)
    out = []
    for t, group in sorted(by.items()):
        expected = sum(r.expected or 0 for r in group)
        jitter = [r.jitter_ms for r in group if r.jitter_ms is not None]
        out.append(
            MediaSecond(
                time=t,
                directions=len(group),
                loss_pct=100.0 * sum(r.lost or 0 for r in group) / expected if expected else None,
                jitter_ms=sum(jitter) / len(jitter) if jitter else None,
            )
        )
    return out


def panel(db: Session, session_id: str) -> MediaPanel:
    rows = analysed_rows(db, session_id)
    by_call: dict[str, list[CallMediaRow]] = {}
    for r in rows:
        by_call.setdefault(r.call_id or "", []).append(r)
    calls = [call_of(c, rs) for c, rs in by_call.items()]
    rank = {"none": 0, "one_way": 1, "both": 2}
    calls.sort(key=lambda c: (rank[c.audio], c.mos if c.mos is not None else -1.0))
    return MediaPanel(mos=_bins(rows), over_time=_seconds(rows), worst=calls[:WORST])
