"""The call_evidence table: which calls of a session have evidence (sipflow/evidence.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete
from sqlmodel import Session, col, select

from sipflow.evidence import Kept, capture_stats, ladder_file, pcap_file
from sipflow.models import CallEvidenceRow


class EvidenceCall(BaseModel):
    call_id: str
    outcome: str  # answered | expected (a flow's expected rejection, e.g. busy's 486) | failed
    reason: str | None
    final_code: int | None
    method: str
    first_time: float
    messages: int
    partial: bool


class CaptureStats(BaseModel):
    """What the session's capture did: SIP packets kept, packets the kernel dropped for want of
    room (then a call "without final response" may be a gap of the capture), ring files
    dropped (the earliest calls forgotten), the most it held on disk and its bound."""

    sip_packets: int | None = None
    kernel_drops: int | None = None
    files_dropped: int | None = None
    held_bytes_max: int | None = None
    max_bytes: int | None = None


class EvidenceList(BaseModel):
    calls: list[EvidenceCall]
    # reason -> Call-IDs with that reason (the report's failure reasons link to them)
    by_reason: dict[str, list[str]]
    capture: CaptureStats | None = None


class LadderMessage(BaseModel):
    time: float
    src: str
    dst: str
    transport: str
    first_line: str
    headers: list[tuple[str, str]]
    body: str


class Ladder(BaseModel):
    call_id: str
    outcome: str
    reason: str | None
    final_code: int | None
    partial: bool
    messages: list[LadderMessage]


def replace(db: Session, session_id: str, kept: list[Kept]) -> None:
    db.exec(delete(CallEvidenceRow).where(col(CallEvidenceRow.session_id) == session_id))  # type: ignore[call-overload]
    for k in kept:
        db.add(
            CallEvidenceRow(
                session_id=session_id,
                call_id=k.call_id[:255],
                key=k.key,
                outcome=k.outcome,
                reason=(k.reason or None) and k.reason[:255],
                final_code=k.final_code,
                method=k.method[:32],
                first_time=k.first_time,
                messages=k.messages,
                partial=k.partial,
            )
        )
    db.commit()


def listing(db: Session, session_id: str, session_dir: Path | None = None) -> EvidenceList:
    rows = db.exec(
        select(CallEvidenceRow)
        .where(CallEvidenceRow.session_id == session_id)
        .order_by(col(CallEvidenceRow.first_time))
    ).all()
    calls = [EvidenceCall(**r.model_dump(include=set(EvidenceCall.model_fields))) for r in rows]
    by_reason: dict[str, list[str]] = {}
    for c in calls:
        if c.reason:
            by_reason.setdefault(c.reason, []).append(c.call_id)
    stats = capture_stats(session_dir) if session_dir is not None else {}
    capture = CaptureStats.model_validate(stats) if stats else None
    return EvidenceList(calls=calls, by_reason=by_reason, capture=capture)


def find(db: Session, session_id: str, call_id: str) -> CallEvidenceRow | None:
    return db.exec(
        select(CallEvidenceRow).where(
            CallEvidenceRow.session_id == session_id, CallEvidenceRow.call_id == call_id
        )
    ).first()


def ladder(session_dir: Path, row: CallEvidenceRow) -> Ladder | None:
    """The kept ladder, or None when retention removed the runs folder."""
    path = ladder_file(session_dir, row.key)
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return Ladder.model_validate(data)


def pcap(session_dir: Path, row: CallEvidenceRow) -> Path | None:
    path = pcap_file(session_dir, row.key)
    return path if path.exists() else None
