"""Per-call evidence of a session (sipflow/evidence.py): the kept calls, a call's ladder (its SIP
messages as captured) and its pcap. Another tenant's session is a 404, like a missing one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.auth import AUTH_RESPONSES, PrincipalDep
from api.deps import DbDep, SettingsDep, session_or_404
from sipflow import evidence_store
from sipflow.evidence_store import EvidenceList, Ladder
from sipflow.models import CallEvidenceRow

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=AUTH_RESPONSES)
PCAP_TYPE = "application/vnd.tcpdump.pcap"
NOT_KEPT: dict[int | str, dict[str, Any]] = {
    404: {"description": "no session with this id in the key's tenant, or no evidence kept for "
          "this call (only failed calls and a sample of answered ones are kept)"},
    410: {"description": "the evidence was kept but retention removed the session's files"},
}  # fmt: skip


@router.get(
    "/{session_id}/evidence",
    response_model=EvidenceList,
    responses={404: {"description": "no session with this id in the key's tenant"}},
    summary="Calls with evidence: every failed call (up to a bound) and a sample of answered ones",
)
def list_evidence(
    session_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> EvidenceList:
    """The calls whose SIP messages were kept from the session's capture, oldest first, the
    failure reasons with their example calls, and what the capture did."""
    session_or_404(db, session_id, principal.tenant)
    return evidence_store.listing(db, session_id, settings.runs_dir / session_id)


def _row(db: DbDep, session_id: str, call_id: str, tenant: str) -> CallEvidenceRow:
    session_or_404(db, session_id, tenant)
    row = evidence_store.find(db, session_id, call_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evidence kept for call {call_id}")
    return row


@router.get(
    "/{session_id}/calls/{call_id}/ladder",
    response_model=Ladder,
    responses=NOT_KEPT,
    summary="A call's SIP messages as captured: time, source, destination, headers, body",
)
def call_ladder(
    session_id: str, call_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> Ladder:
    row = _row(db, session_id, call_id, principal.tenant)
    found = evidence_store.ladder(settings.runs_dir / session_id, row)
    if found is None:
        raise HTTPException(status.HTTP_410_GONE, "retention removed this session's files")
    return found


@router.get(
    "/{session_id}/calls/{call_id}/pcap",
    response_class=FileResponse,
    responses={200: {"content": {PCAP_TYPE: {}}, "description": "the call's packets"}, **NOT_KEPT},
    summary="A call's SIP packets as a pcap file (tcpdump, Wireshark)",
)
def call_pcap(
    session_id: str, call_id: str, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> FileResponse:
    row = _row(db, session_id, call_id, principal.tenant)
    path = evidence_store.pcap(settings.runs_dir / session_id, row)
    if path is None:
        raise HTTPException(status.HTTP_410_GONE, "retention removed this session's files")
    return FileResponse(path, media_type=PCAP_TYPE, filename=f"{session_id}-{row.key}.pcap")
