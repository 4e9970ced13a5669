"""/v1/sessions/{id}/calls: per-call audio results (roles' `media:`), a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import AUTH_RESPONSES, PrincipalDep
from api.deps import DbDep, session_or_404
from api.responses import MAX_OFFSET
from sipflow.media_store import CallPage, calls_page

router = APIRouter(prefix="/sessions", tags=["sessions"], responses=AUTH_RESPONSES)


@router.get(
    "/{session_id}/calls",
    response_model=CallPage,
    responses={404: {"description": "no session with this id in the key's tenant"}},
    summary="Per-call audio: each direction's packets, loss, jitter, E-model MOS",
)
def list_calls(
    session_id: str,
    db: DbDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CallPage:
    """Calls whose audio was analysed (the sample), in the order they were stored. `audio` is
    `both`, `one_way` or `none`; `mos` is the worse direction's."""
    session_or_404(db, session_id, principal.tenant)
    return calls_page(db, session_id, limit, offset)
