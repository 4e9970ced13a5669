"""Per-call audio results: stored from runners' media reports, read per call, summarised into the
metrics thresholds judge (sipflow/thresholds.py: mos_p5, mos_median, rtp_loss_pct, jitter_p95_ms,
one_way_audio_calls, no_audio_calls, media_calls)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from sipflow.call_script import Holds, holds_of
from sipflow.callee_script import STEP_PREFIX as CALLEE_STEP_PREFIX
from sipflow.media_expect import ExpectOut, has_audio, is_audio, is_dtmf, judge
from sipflow.messages import MediaReport
from sipflow.models import CallMediaRow
from sipflow.settings import get_settings
from sipflow.step_results import StepSummary

Audio = Literal["both", "one_way", "none"]
DIRECTION = {"caller": "caller_to_callee", "callee": "callee_to_caller"}
# What a runner of this role receives (the other role's direction).
RECEIVES = {"caller": "callee_to_caller", "callee": "caller_to_callee"}
# A transfer's named party: the transferred leg (transferee <-> target), in the same call.
TO_PARTY, FROM_PARTY = "callee_to_party", "party_to_callee"


def stream_key(src: str, ssrc: int, leg: str | None = None) -> str:
    """A stream by its source and SSRC; a transferee's one SIPp stream sent on to the named
    party is that leg's (the transferor's receiver reports the same source and SSRC)."""
    return f"{src}/{ssrc}" + (f"/{leg}" if leg else "")


def sent_direction(msg: MediaReport, leg: str | None) -> str:
    if leg == "party":
        return TO_PARTY
    return FROM_PARTY if msg.party else DIRECTION[msg.role]


def call_key(call_id: str, direction: str) -> str:
    """Through a relay both ends name a stream by its call and direction."""
    return f"call:{call_id}/{direction}"


def _upsert(db: Session, values: dict[str, Any], update: Sequence[str]) -> None:
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(CallMediaRow).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["session_id", "stream_key"],
        set_={k: getattr(stmt.excluded, k) for k in update},
    )
    db.execute(stmt)


SENDER_COLUMNS = ("call_id", "direction", "sender_runner", "codec")
RECEIVER_COLUMNS = (
    "receiver_runner",
    "received",
    "expected",
    "lost",
    "loss_pct",
    "duplicates",
    "reordered",
    "jitter_ms",
    "r_factor",
    "mos",
    "pesq",
    "visqol",
    "first_time",
    "last_time",
    "max_gap_ms",
    "after_gap_ms",
    "spans",
)


def store_media_report(db: Session, msg: MediaReport) -> int:
    """Idempotent (a redelivered report writes the same values); returns the rows written."""
    sid = msg.session_id
    for s in msg.sent:
        direction = sent_direction(msg, s.leg)
        _upsert(
            db,
            {
                "session_id": sid,
                "stream_key": call_key(s.call_id, direction)
                if msg.relay
                else stream_key(s.src, s.ssrc, s.leg),
                "call_id": s.call_id,
                "direction": direction,
                "sender_runner": msg.runner_id,
                "codec": msg.codec,
            },
            SENDER_COLUMNS,
        )
    for r in msg.received:
        relayed: dict[str, Any] = {}
        if msg.relay and r.call_id is not None:  # named by the receiver: its call and direction
            relayed = {"call_id": r.call_id, "direction": RECEIVES[msg.role]}
        key = (
            call_key(r.call_id, RECEIVES[msg.role])
            if relayed and r.call_id is not None
            else stream_key(r.src, r.ssrc, "party" if msg.party else None)
        )
        _upsert(
            db,
            {
                "session_id": sid,
                "stream_key": key,
                **relayed,
                "receiver_runner": msg.runner_id,
                "received": r.received,
                "expected": r.expected,
                "lost": r.lost,
                "loss_pct": round(100.0 * r.lost / r.expected, 3) if r.expected else 0.0,
                "duplicates": r.duplicates,
                "reordered": r.reordered,
                "jitter_ms": r.jitter_ms,
                "r_factor": r.r_factor,
                "mos": r.mos,
                "pesq": r.pesq,
                "visqol": r.visqol,
                "first_time": r.first_time,
                "last_time": r.last_time,
                "max_gap_ms": r.max_gap_ms,
                "after_gap_ms": r.after_gap_ms,
                "spans": [list(s) for s in r.spans] if r.spans is not None else None,
            },
            RECEIVER_COLUMNS + tuple(relayed),
        )
    store_dtmf(db, msg)
    store_expectations(db, msg)
    db.commit()
    extra = len(msg.dtmf_sent) + len(msg.dtmf_received) + len(msg.expected)
    return len(msg.sent) + len(msg.received) + extra


# What a runner expects arrives from the far end: its direction.
INBOUND = {"caller": "callee_to_caller", "callee": "caller_to_callee"}


def store_expectations(db: Session, msg: MediaReport) -> None:
    """A call script's expect_dtmf / expect audio, one row per call and step."""
    for e in msg.expected:
        digest = hashlib.sha1(e.call_id.encode()).hexdigest()[:20]
        values = {
            "session_id": msg.session_id,
            "stream_key": f"expect/{digest}/{e.step}"[:96],
            "call_id": e.call_id,
            "direction": INBOUND[msg.role],
            "receiver_runner": msg.runner_id,
            "expect_step": e.step,
            "expect_what": e.what[:80],
            "expect_at": e.at,
            "answered_at": e.answered,
        }
        _upsert(db, values, tuple(values)[2:])


def store_dtmf(db: Session, msg: MediaReport) -> None:
    """DTMF rows: the sender names the call and the digits it played, the receiver the digits it
    detected in the stream of that source and SSRC (joined like the audio)."""
    sid = msg.session_id
    for s in msg.dtmf_sent:
        values = {
            "session_id": sid,
            "stream_key": stream_key(s.src, s.ssrc),
            "call_id": s.call_id,
            "direction": DIRECTION[msg.role],
            "sender_runner": msg.runner_id,
            "dtmf_sent": s.digits,
        }
        _upsert(db, values, ("call_id", "direction", "sender_runner", "dtmf_sent"))
    for r in msg.dtmf_received:
        received: dict[str, Any] = {
            "session_id": sid,
            "stream_key": stream_key(r.src, r.ssrc),
            "receiver_runner": msg.runner_id,
            "dtmf_received": r.digits,
            "dtmf_times": r.times,
        }
        _upsert(db, received, ("receiver_runner", "dtmf_received", "dtmf_times"))


# -- reading -----------------------------------------------------------------------------------
class DirectionOut(BaseModel):
    direction: str | None
    sender_runner: str | None
    receiver_runner: str | None
    audio: bool
    received: int | None
    expected: int | None
    lost: int | None
    loss_pct: float | None
    duplicates: int | None
    reordered: int | None
    jitter_ms: float | None
    r_factor: float | None
    mos: float | None
    pesq: float | None
    visqol: float | None = None  # ViSQOL speech MOS-LQO (mos: visqol)
    max_gap_ms: float | None = None  # the longest silence in the stream (a hold)
    after_gap_ms: float | None = None  # audio after it


class DtmfOut(BaseModel):
    """One DTMF play of a call: the digits sent and those the far end detected (None: the far
    end's report has not come, or it detected no stream from that sender)."""

    direction: str | None
    sent: str | None
    received: str | None
    match: bool


class CallOut(BaseModel):
    call_id: str
    audio: Audio
    mos: float | None  # the worse direction's
    directions: list[DirectionOut]
    dtmf: list[DtmfOut] = []
    expectations: list[ExpectOut] = []


class CallPage(BaseModel):
    session_id: str
    total: int
    limit: int
    offset: int
    items: list[CallOut]


def tolerance(tolerance_s: float | None) -> float:
    """How long after a media step's moment what arrives still counts (settings default)."""
    if tolerance_s is not None:
        return tolerance_s
    return get_settings().media_expect_tolerance_ms / 1000.0


def dtmf_of(row: CallMediaRow) -> DtmfOut:
    sent, got = row.dtmf_sent, row.dtmf_received
    return DtmfOut(direction=row.direction, sent=sent, received=got, match=sent == got)


def call_of(
    call_id: str, rows: Sequence[CallMediaRow], tolerance_s: float | None = None
) -> CallOut:
    """A call from its rows: audio directions, its DTMF plays, its script's media steps judged
    (sipflow/media_expect.py)."""
    dtmf = [dtmf_of(r) for r in rows if is_dtmf(r)]
    expects = [r for r in rows if r.expect_step is not None]
    tol = tolerance(tolerance_s) if expects else 0.0
    expectations = [judge(r, rows, tol) for r in expects]
    rows = [r for r in rows if is_audio(r)]
    dirs = [
        DirectionOut(audio=has_audio(r), **r.model_dump(include=set(DirectionOut.model_fields)))
        for r in sorted(rows, key=lambda r: r.direction or "")
    ]
    with_audio = sum(d.audio for d in dirs)
    audio: Audio = "none" if with_audio == 0 else ("both" if with_audio == len(dirs) else "one_way")
    if len(dirs) == 1 and with_audio:  # only one direction was reported: the other had none
        audio = "one_way"
    scores = [d.mos for d in dirs if d.mos is not None]
    worst = min(scores) if scores else None
    return CallOut(
        call_id=call_id,
        audio=audio,
        mos=worst,
        directions=dirs,
        dtmf=dtmf,
        expectations=expectations,
    )


def analysed_rows(db: Session, session_id: str) -> Sequence[CallMediaRow]:
    """The audio rows (not DTMF) tied to a call."""
    return db.exec(
        select(CallMediaRow)
        .where(
            CallMediaRow.session_id == session_id,
            col(CallMediaRow.call_id).is_not(None),
            col(CallMediaRow.dtmf_sent).is_(None),
            col(CallMediaRow.dtmf_received).is_(None),
            col(CallMediaRow.expect_step).is_(None),
        )
        .order_by(col(CallMediaRow.id))
    ).all()


def dtmf_calls(db: Session, session_id: str, tolerance_s: float | None = None) -> list[CallOut]:
    """The calls that sent DTMF or expect something of the media, with all their rows."""
    ids = select(CallMediaRow.call_id).where(
        CallMediaRow.session_id == session_id,
        or_(col(CallMediaRow.dtmf_sent).is_not(None), col(CallMediaRow.expect_step).is_not(None)),
    )
    rows = db.exec(
        select(CallMediaRow)
        .where(CallMediaRow.session_id == session_id, col(CallMediaRow.call_id).in_(ids))
        .order_by(col(CallMediaRow.id))
    ).all()
    by_call: dict[str, list[CallMediaRow]] = {}
    for r in rows:
        by_call.setdefault(r.call_id or "", []).append(r)
    return [call_of(c, rs, tolerance_s) for c, rs in by_call.items()]


def hold_s_of(spec: dict[str, Any] | None) -> float | None:
    """The hold time of a session running the hold_resume flow with media, else None."""
    callers = ((spec or {}).get("roles") or {}).get("callers") or {}
    flow = callers.get("flow") or {}
    if flow.get("name") != "hold_resume" or callers.get("media") is None:
        return None
    return float(flow.get("hold_s", 1.0))


def held_steps_of(spec: dict[str, Any] | None) -> Holds | None:
    """What judge_hold judges in a session with media: the hold_resume flow's hold and resume
    steps, or a call script's first hold and first resume (its shortest hold as the time on
    hold; the resume judged only when every hold is resumed: audio after the longest silence)."""
    hold_s = hold_s_of(spec)
    if hold_s is not None:
        return Holds(hold_s, "hold", "resume")
    callers = ((spec or {}).get("roles") or {}).get("callers") or {}
    script = callers.get("script")
    if not script or callers.get("media") is None:
        return None
    return holds_of([str(s) for s in script])


HELD = "callee_to_caller"  # the caller holds (sendonly): the callee (recvonly) must not send
HELD_SHARE = 0.8  # of hold_s silent: the hold is honoured
RESUMED_MIN_MS = 300  # audio after the silence: the resume is


def judge_hold(rows: Sequence[CallMediaRow], hold_s: float) -> dict[str, str]:
    """A hold_resume call's media: {step: why it failed} for `hold` (the held direction sent
    during the hold) and `resume` (no audio after it, or the other direction silent)."""
    by_dir = {r.direction: r for r in rows if is_audio(r)}
    held, other = by_dir.get(HELD), by_dir.get("caller_to_callee")
    silent_ms = HELD_SHARE * hold_s * 1000
    failed: dict[str, str] = {}
    if held is None or not has_audio(held):
        return {"hold": "no audio before the hold", "resume": "no audio after resume"}
    stopped_early = (
        other is not None
        and other.last_time is not None
        and held.last_time is not None
        and (other.last_time - held.last_time) * 1000 >= silent_ms
    )
    paused = (held.max_gap_ms or 0.0) >= silent_ms
    if not (paused or stopped_early):
        failed["hold"] = "audio during hold"
    if not paused or (held.after_gap_ms or 0.0) < RESUMED_MIN_MS or stopped_early:
        failed["resume"] = "no audio after resume"
    elif other is None or not has_audio(other):
        failed["resume"] = "no audio caller to callee"
    return failed


def judge_steps(
    db: Session,
    session_id: str,
    steps: list[StepSummary],
    spec: dict[str, Any] | None = None,
) -> None:
    """The media judgements a step table takes: a call script's media steps, and the hold and
    resume steps of the hold_resume flow with media (a call whose media failed a step counts as
    failed there, no longer passed)."""
    judge_script_steps(db, session_id, steps)
    holds = held_steps_of(spec)
    if holds is None:
        return
    names = {"hold": holds.hold_step, "resume": holds.resume_step}
    table = {(row.role, row.step): row for row in steps}
    by_call: dict[str, list[CallMediaRow]] = {}
    for r in analysed_rows(db, session_id):
        by_call.setdefault(r.call_id or "", []).append(r)
    for rows in by_call.values():
        for step, kind in judge_hold(rows, holds.hold_s).items():
            row = table.get(("caller", names[step] or ""))
            if row is None:
                continue
            row.passed = max(0, row.passed - 1)
            row.failed += 1
            row.failed_by[kind] = row.failed_by.get(kind, 0) + 1


def judge_script_steps(
    db: Session, session_id: str, steps: list[StepSummary], tolerance_s: float | None = None
) -> None:
    """The call scripts' media steps judged per call, in the step table of the role whose
    script has the step (a callee script's steps are named callee_...): passed the calls that
    met the step (SIPp counts none: the step is a <nop>), failed those that did not (with their
    kind in failed_by)."""
    table = {(row.role, row.step): row for row in steps}
    passed: dict[tuple[str, str], int] = {}
    for call in dtmf_calls(db, session_id, tolerance_s):
        for e in call.expectations:
            key = ("callee" if e.step.startswith(CALLEE_STEP_PREFIX) else "caller", e.step)
            row = table.get(key)
            if row is None:
                continue
            passed[key] = passed.get(key, 0) + e.passed
            if not e.passed:
                row.failed += 1
                kind = e.kind or "failed"
                row.failed_by[kind] = row.failed_by.get(kind, 0) + 1
    for key, n in passed.items():
        table[key].passed = n


def calls_page(db: Session, session_id: str, limit: int, offset: int) -> CallPage:
    """The session's analysed calls by Call-ID, a page of them."""
    total = db.exec(
        select(func.count(func.distinct(CallMediaRow.call_id))).where(
            CallMediaRow.session_id == session_id, col(CallMediaRow.call_id).is_not(None)
        )
    ).one()
    ids = db.exec(
        select(CallMediaRow.call_id)
        .where(CallMediaRow.session_id == session_id, col(CallMediaRow.call_id).is_not(None))
        .group_by(CallMediaRow.call_id)
        .order_by(func.min(CallMediaRow.id))
        .offset(offset)
        .limit(limit)
    ).all()
    rows = db.exec(
        select(CallMediaRow).where(
            CallMediaRow.session_id == session_id, col(CallMediaRow.call_id).in_(list(ids))
        )
    ).all()
    by_call: dict[str, list[CallMediaRow]] = {}
    for r in rows:
        by_call.setdefault(r.call_id or "", []).append(r)
    items = [call_of(c, by_call.get(c, [])) for c in ids if c is not None]
    return CallPage(session_id=session_id, total=total, limit=limit, offset=offset, items=items)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def worst_per_call(rows: Sequence[CallMediaRow], score: str) -> list[float]:
    """Each call's lowest `score` over its directions (a row without a call: its own)."""
    worst: dict[str, float] = {}
    for i, r in enumerate(rows):
        value = getattr(r, score)
        if value is not None:
            key = r.call_id or f"#{i}"
            worst[key] = min(float(value), worst.get(key, float(value)))
    return list(worst.values())


def measured(db: Session, session_id: str) -> dict[str, float | None]:
    """The media metrics of a session; {} when it analysed no audio (a session without media:
    a threshold on them then fails for want of a value)."""
    rows = analysed_rows(db, session_id)
    if not rows:
        return dtmf_measured(dtmf_calls(db, session_id))
    by_call: dict[str, list[CallMediaRow]] = {}
    for r in rows:
        by_call.setdefault(r.call_id or "", []).append(r)
    calls = [call_of(c, rs) for c, rs in by_call.items()]
    heard = [r for r in rows if has_audio(r)]
    expected = sum(r.expected or 0 for r in heard)
    lost = sum(r.lost or 0 for r in heard)
    # A call is as good as its worse direction: one lossy direction is what its listener hears,
    # and the call's clean other direction must not pull the session's median up.
    mos = worst_per_call(heard, "mos")
    jitter = [r.jitter_ms for r in heard if r.jitter_ms is not None]
    pesq = worst_per_call(heard, "pesq")
    visqol = worst_per_call(heard, "visqol")
    return {
        "media_calls": float(len(calls)),
        "mos_median": percentile(mos, 50),
        "mos_p5": percentile(mos, 5),
        "rtp_loss_pct": (100.0 * lost / expected) if expected else None,
        "jitter_p95_ms": percentile(jitter, 95),
        "pesq_median": percentile(pesq, 50),
        "pesq_p5": percentile(pesq, 5),
        "visqol_median": percentile(visqol, 50),
        "visqol_p5": percentile(visqol, 5),
        "one_way_audio_calls": float(sum(c.audio == "one_way" for c in calls)),
        "no_audio_calls": float(sum(c.audio == "none" for c in calls)),
        **dtmf_measured(dtmf_calls(db, session_id)),
    }


def dtmf_measured(calls: Sequence[CallOut]) -> dict[str, float | None]:
    """dtmf_calls: calls that sent or expected DTMF; dtmf_mismatch_calls: those of them where a
    play's digits did not arrive as sent, or an expect_dtmf was not met (no value when no call
    had DTMF)."""
    calls = [c for c in calls if c.dtmf or any(_dtmf(e) for e in c.expectations)]
    if not calls:
        return {}
    bad = sum(
        any(not d.match for d in c.dtmf if d.sent is not None)
        or any(_dtmf(e) and not e.passed for e in c.expectations)
        for c in calls
    )
    return {"dtmf_calls": float(len(calls)), "dtmf_mismatch_calls": float(bad)}


def _dtmf(e: ExpectOut) -> bool:
    return e.expected.startswith("dtmf ")
