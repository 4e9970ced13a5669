"""/v1/audit: who started, changed or cancelled which session and managed which key (admins,
their own tenant's events only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.account_schemas import AuditEventOut, AuditPage
from api.auth import AUTH_RESPONSES, AdminDep
from api.deps import DbDep
from sipflow import audit

router = APIRouter(prefix="/audit", tags=["audit"], responses=AUTH_RESPONSES)


@router.get("", response_model=AuditPage, summary="The tenant's audit log, newest first")
def audit_log(
    db: DbDep,
    principal: AdminDep,
    action: Annotated[str | None, Query(description="e.g. session.cancel, key.create")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> AuditPage:
    rows, total = audit.events(db, principal.tenant, limit=limit, offset=offset, action=action)
    return AuditPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[AuditEventOut.model_validate(r) for r in rows],
    )
