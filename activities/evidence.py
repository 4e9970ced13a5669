"""The evidence activity: after the session's teardown (its capture stopped), keep the failed
calls and a sample of answered ones from the capture ring (sipflow/evidence.py) and index them
in the database. The agent never touches the database; this runs in the worker."""

from __future__ import annotations

import logging

from pydantic import BaseModel
from temporalio import activity

from sipflow import evidence_store
from sipflow.db import session_scope
from sipflow.evidence import extract
from sipflow.flows import final_code_of
from sipflow.models import SessionRow
from sipflow.settings import Settings

log = logging.getLogger(__name__)


class CollectEvidence(BaseModel):
    session_id: str


class EvidenceResult(BaseModel):
    kept: int = 0
    failed: int = 0
    answered: int = 0  # or ended on a flow's expected code
    ring_files: int = 0
    files_dropped: int = 0


class EvidenceActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn
    def collect_evidence(self, req: CollectEvidence) -> EvidenceResult:
        """Idempotent: a retry finds the kept files and writes the same rows."""
        session_dir = self.settings.runs_dir / req.session_id
        with session_scope(self.settings.resolved_database_url) as db:
            row = db.get(SessionRow, req.session_id)
            expected = final_code_of(row.spec if row is not None else None)  # a flow's success
            kept, stats = extract(
                session_dir,
                self.settings.evidence_max_failed,
                self.settings.evidence_good_calls,
                expected if expected != 200 else None,
            )
            evidence_store.replace(db, req.session_id, kept)
        failed = sum(1 for k in kept if k.outcome == "failed")
        log.info(
            "session %s: kept %d calls' evidence (%d failed)", req.session_id, len(kept), failed
        )
        return EvidenceResult(
            kept=len(kept),
            failed=failed,
            answered=len(kept) - failed,
            ring_files=int(stats.get("ring_files", 0)),
            files_dropped=int(stats.get("files_dropped", 0)),
        )
