"""/v1/capacity: capacity searches of the key's tenant — the highest rate a SUT carries while
the criteria hold (sipflow.capacity), each step an ordinary session with its own report."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from api.auth import AUTH_RESPONSES, OperatorDep, PrincipalDep
from api.deps import DbDep, SettingsDep, TemporalDep
from api.responses import MAX_OFFSET, REFUSED, UNAVAILABLE, Responses
from api.temporal import TemporalUnavailable
from sipflow import audit, capacity_store, tenant_policy
from sipflow.capacity import CapacitySearchSpec
from sipflow.capacity_store import CapacitySearchRow
from sipflow.session_secrets import masked
from sipflow.spec import SessionSpec
from sipflow.workflow_types import (
    CAPACITY_NAME,
    SA_STATUS,
    SA_TENANT,
    CapacityInput,
    capacity_workflow_id,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/capacity", tags=["capacity"], responses=AUTH_RESPONSES)
NOT_FOUND: Responses = {404: {"description": "no capacity search with this id in the tenant"}}


class CapacityBrief(BaseModel):
    id: str
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    highest_held: float | None
    lowest_broken: float | None
    stop: str | None
    steps: int


class CapacityDetail(CapacityBrief):
    workflow_id: str
    spec: dict[str, Any]  # passwords as "***"
    result: dict[str, Any] | None  # sipflow.capacity.SearchResult: every step's measurements
    reason: str | None


class CapacityList(BaseModel):
    total: int
    items: list[CapacityBrief]


def _brief(row: CapacitySearchRow) -> dict[str, Any]:
    res = row.result or {}
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "highest_held": res.get("highest_held"),
        "lowest_broken": res.get("lowest_broken"),
        "stop": res.get("stop"),
        "steps": len(res.get("steps") or []),
    }


def _owned(db: DbDep, search_id: str, tenant: str) -> CapacitySearchRow:
    row = capacity_store.get(db, search_id, tenant)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no capacity search {search_id!r}")
    return row


def _in_tenant(spec: CapacitySearchSpec, tenant: str) -> CapacitySearchSpec:
    named = spec.session.get("tenant")
    if named is not None and named != tenant:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "session", "tenant"),
                    "msg": f"tenant comes from the API key: {tenant!r}",
                }
            ]
        )
    return spec.model_copy(update={"session": {**spec.session, "tenant": tenant}})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CapacityDetail,
    responses={**UNAVAILABLE, **REFUSED, 422: {"description": "invalid spec; `loc` names it"}},
    summary="Start a capacity search (steps the rate up, then bisects, until criteria break)",
)
async def create_search(
    spec: CapacitySearchSpec,
    db: DbDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: OperatorDep,
) -> CapacityDetail:
    spec = _in_tenant(spec, principal.tenant)
    # Every step is a session within the tenant's policy: checked at the highest rate it may run.
    at_ceiling = SessionSpec.model_validate(spec.step_spec(spec.ceiling, 0))
    try:
        await run_in_threadpool(tenant_policy.enforce, principal.tenant, at_ceiling, db, settings)
    except tenant_policy.PolicyViolation as exc:
        if exc.loc[:3] == ("roles", "callers", "rate"):
            exc.loc = ("ceiling",)
        else:
            exc.loc = ("session", *exc.loc)
        raise
    search_id = uuid.uuid4().hex[:12]
    spec_json = spec.model_dump(mode="json")
    stored = {**spec_json, "session": masked(spec_json["session"])}
    capacity_store.create(db, search_id, principal.tenant, spec.name, stored)
    audit.record(db, principal.tenant, principal.key_id, "capacity.create", search_id)
    try:
        client = await temporal.get()
        await client.start_workflow(
            CAPACITY_NAME,
            CapacityInput(search_id=search_id, tenant=principal.tenant, spec=spec_json),
            id=capacity_workflow_id(search_id),
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_TENANT, principal.tenant),
                    SearchAttributePair(SA_STATUS, "pending"),
                ]
            ),
        )
    except (TemporalUnavailable, RPCError) as exc:
        capacity_store.update(db, search_id, "error", None, f"not started: {exc}")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"capacity search {search_id} not started: {exc}"
        ) from exc
    return _detail(_owned(db, search_id, principal.tenant))


def _detail(row: CapacitySearchRow) -> CapacityDetail:
    return CapacityDetail(
        **_brief(row),
        workflow_id=capacity_workflow_id(row.id),
        spec=row.spec,
        result=row.result,
        reason=row.reason,
    )


@router.get("", response_model=CapacityList, summary="The tenant's capacity searches, newest first")
def list_searches(
    db: DbDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CapacityList:
    rows, total = capacity_store.listing(db, principal.tenant, limit, offset)
    return CapacityList(total=total, items=[CapacityBrief(**_brief(r)) for r in rows])


@router.get(
    "/{search_id}",
    response_model=CapacityDetail,
    responses=NOT_FOUND,
    summary="A capacity search: its state, every step's measurements and the answer",
)
def get_search(search_id: str, db: DbDep, principal: PrincipalDep) -> CapacityDetail:
    return _detail(_owned(db, search_id, principal.tenant))


@router.post(
    "/{search_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CapacityDetail,
    responses={**NOT_FOUND, **UNAVAILABLE, 409: {"description": "the search has ended"}},
    summary="Cancel a capacity search (its running step is cancelled with its clean-up)",
)
async def cancel_search(
    search_id: str, db: DbDep, temporal: TemporalDep, principal: OperatorDep
) -> CapacityDetail:
    row = _owned(db, search_id, principal.tenant)
    if row.status not in ("pending", capacity_store.RUNNING):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"capacity search {search_id} is {row.status}"
        )
    try:
        client = await temporal.get()
        await client.get_workflow_handle(capacity_workflow_id(search_id)).cancel()
    except (TemporalUnavailable, RPCError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"not cancelled: {exc}") from exc
    audit.record(db, principal.tenant, principal.key_id, "capacity.cancel", search_id)
    return _detail(row)
