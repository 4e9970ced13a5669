"""/v1/sessions: start a session (a Temporal workflow), list, inspect, change rate, cancel."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api import session_views as views
from api.auth import AUTH_RESPONSES, OperatorDep, OwnedSessionDep, PrincipalDep
from api.deps import DbDep, KeysDep, SettingsDep, TemporalDep, session_or_404
from api.responses import MAX_OFFSET, REFUSED, UNAVAILABLE, Responses
from api.schemas import (
    EXAMPLE_SPEC,
    EXAMPLE_SPEC_PROXY,
    CancelRequested,
    RateChange,
    RateChanged,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionMetricsOut,
)
from api.temporal import TemporalConnector, TemporalUnavailable
from sipflow import (
    audit,
    delay_limit,
    media_store,
    plan,
    runner_hosts,
    session_secrets,
    store,
    tenant_policy,
)
from sipflow.models import FINAL_STATUSES, SessionRow
from sipflow.pool_placement import PoolTooSmall
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.workflow_types import (
    QUERY_PROGRESS,
    SA_STATUS,
    SA_TARGET,
    SA_TENANT,
    UPDATE_SET_RATE,
    WORKFLOW_NAME,
    Progress,
    SessionInput,
    SetRate,
    workflow_id,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/sessions", tags=["sessions"], responses=AUTH_RESPONSES)

NOT_FOUND: Responses = {404: {"description": "no session with this id in the key's tenant"}}
FINISHED: Responses = {409: {"description": "the session has already finished"}}
QUERY_TIMEOUT = timedelta(seconds=2)
UPDATE_TIMEOUT = timedelta(seconds=10)

SpecBody = Annotated[
    SessionSpec,
    Body(
        openapi_examples={
            "local": {
                "summary": "Local callers and callees",
                "description": "sipflow starts callee and caller agents on the loopback.",
                "value": EXAMPLE_SPEC,
            },
            "proxy": {
                "summary": "Through a SIP proxy/registrar",
                "description": "Callees register at the target; callers call through it.",
                "value": EXAMPLE_SPEC_PROXY,
            },
        }
    ),
]


async def _running_handle(temporal: TemporalConnector, row: SessionRow) -> WorkflowHandle[Any, Any]:
    """The handle of the session's workflow; 409 unless it is still running, 503 if unreachable."""
    if row.status in FINAL_STATUSES:
        raise HTTPException(status.HTTP_409_CONFLICT, f"session {row.id} is {row.status}")
    client = await temporal.get()
    handle = client.get_workflow_handle(workflow_id(row.id))
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            msg = f"session {row.id} has no workflow"
            raise HTTPException(status.HTTP_409_CONFLICT, msg) from exc
        raise
    if desc.status != WorkflowExecutionStatus.RUNNING:
        state = desc.status.name.lower() if desc.status else "unknown"
        raise HTTPException(status.HTTP_409_CONFLICT, f"session {row.id}'s workflow is {state}")
    return handle


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionCreated,
    responses={
        **UNAVAILABLE,
        **REFUSED,
        422: {"description": "invalid spec; `loc` names the field (also a `tenant` not the key's)"},
    },
    summary="Start a test session (in the key's tenant)",
)
async def create_session(
    spec: SpecBody,
    request: Request,
    response: Response,
    db: DbDep,
    keys: KeysDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: OperatorDep,
    copy_secrets_from: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_-]{1,32}$",
            description='run again: each `"password": "***"` of the spec keeps the '
            "password of this session's account with the same role and user (same tenant)",
        ),
    ] = None,
) -> SessionCreated:
    """Passwords are write-only: stored encrypted, shown as `"***"` by every read."""
    spec = _in_tenant(spec, principal.tenant)
    _delay_carried(spec, settings)
    await run_in_threadpool(tenant_policy.enforce, principal.tenant, spec, db, settings)
    if spec.pools():
        await run_in_threadpool(_pool_capacity, db, principal.tenant, spec, settings)
    sid = uuid.uuid4().hex[:12]
    spec_json = _resolved_passwords(db, keys, spec, copy_secrets_from)
    target = plan.target_label(spec) if spec.target else None
    session_secrets.open_session(db, keys, sid, spec.tenant, spec.name, spec_json, target)
    audit.record(
        db, principal.tenant, principal.key_id, "session.create", sid,
        {"name": spec.name, "target": target},
    )  # fmt: skip
    try:
        client = await temporal.get()
        await client.start_workflow(
            WORKFLOW_NAME,
            SessionInput(session_id=sid, tenant=spec.tenant, spec=spec_json),
            id=workflow_id(sid),
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_TENANT, spec.tenant),
                    SearchAttributePair(SA_STATUS, "pending"),
                    SearchAttributePair(SA_TARGET, target or "direct"),
                ]
            ),
        )
    except (TemporalUnavailable, RPCError) as exc:
        log.warning("session %s not started: %s", sid, exc)
        store.mark_error(db, sid, f"the workflow could not be started: {exc}")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"session {sid} not started: {exc}"
        ) from exc
    links = views.links(request, settings, sid)
    response.headers["Location"] = links.self
    return SessionCreated(id=sid, workflow_id=workflow_id(sid), status="pending", links=links)


def _resolved_passwords(
    db: DbDep, keys: KeysDep, spec: SessionSpec, copy_from: str | None
) -> dict[str, Any]:
    """The spec as JSON with every "***" replaced by the copied session's password; 422 with
    the field's `loc` when one cannot be."""
    spec_json = spec.model_dump(mode="json")
    try:
        if copy_from is not None:
            source = store.get_session(db, copy_from)
            if source is None or source.tenant != spec.tenant:  # another tenant's: not there
                raise session_secrets.SecretReferenceError(
                    ("query", "copy_secrets_from"), f"no session {copy_from!r}"
                )
            return session_secrets.copy_from(db, keys, source, spec.tenant, spec_json)
        if refs := session_secrets.references(spec_json):
            role, i = refs[0]
            raise session_secrets.SecretReferenceError(
                ("body", *session_secrets.account_loc(role, i)),
                "'***' keeps a password by reference: name the session it is copied from "
                "(copy_secrets_from)",
            )
    except session_secrets.SecretReferenceError as exc:
        detail = [{"type": "value_error", "loc": list(exc.loc), "msg": exc.msg}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    return spec_json


def _pool_capacity(db: DbDep, tenant: str, spec: SessionSpec, settings: SettingsDep) -> None:
    """422 before anything starts when a pool's live hosts cannot take the session's agents
    (the workflow checks again when it places them: hosts may go in between)."""
    try:
        runner_hosts.check_capacity(db, tenant, spec, settings)
    except PoolTooSmall as exc:
        detail = [{"type": "value_error", "loc": ["body", *exc.loc], "msg": str(exc)}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc


def _delay_carried(spec: SessionSpec, settings: Settings) -> None:
    """A delayed session on the local backend within what its delayer carries; the worker
    checks again (schedules and capacity searches reach it without this route)."""
    if (spec.backend or settings.default_backend) != "local":
        return
    refused = delay_limit.refusal(spec, settings.delayer_max_calls_per_s)
    if refused:
        loc, msg = refused
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": None}]
        )


def _in_tenant(spec: SessionSpec, tenant: str) -> SessionSpec:
    """The spec in the key's tenant; a body that names another tenant is refused, not moved."""
    if "tenant" in spec.model_fields_set and spec.tenant != tenant:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", "tenant"),
                    "msg": f"tenant comes from the API key: {tenant!r}, not {spec.tenant!r}",
                    "input": spec.tenant,
                }
            ]
        )
    return spec.model_copy(update={"tenant": tenant})


@router.get("", response_model=SessionList, summary="List the tenant's sessions, newest first")
def list_sessions(
    db: DbDep,
    principal: PrincipalDep,
    tenant: Annotated[
        str | None, Query(description="only the key's own tenant has sessions to list")
    ] = None,
    status_: Annotated[
        str | None, Query(alias="status", description="pending, running, completed, ...")
    ] = None,
    verdict: Annotated[str | None, Query(description="pass, fail or error")] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> SessionList:
    if tenant not in (None, principal.tenant):  # another tenant's sessions are not there
        return SessionList(total=0, limit=limit, offset=offset, items=[])
    if since is not None:
        try:
            since = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:  # outside datetime's range in UTC: before or after every session
            if since.year > 1:
                return SessionList(total=0, limit=limit, offset=offset, items=[])
            since = None
    rows, total = store.list_sessions(
        db,
        tenant=principal.tenant,
        status=status_,
        verdict=verdict,
        since=since,
        limit=limit,
        offset=offset,
    )
    return SessionList(
        total=total, limit=limit, offset=offset, items=[views.brief(r) for r in rows]
    )


@router.get(
    "/{session_id}",
    response_model=SessionDetail,
    responses=NOT_FOUND,
    summary="A session: status, verdict, metrics, thresholds, runners, live progress",
)
async def get_session(
    session_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: PrincipalDep,
) -> SessionDetail:
    row = session_or_404(db, session_id, principal.tenant)
    runner_rows = store.runners(db, session_id)
    media = media_store.measured(db, session_id)
    judge = partial(media_store.judge_steps, db, session_id, spec=row.spec)
    shown = views.outcome(row, store.intervals(db, session_id), runner_rows, media, judge)
    progress = None
    if row.status not in FINAL_STATUSES:
        progress = await _progress(temporal, session_id)
    return SessionDetail(
        **views.brief(row).model_dump(),
        workflow_id=workflow_id(session_id),
        spec=row.spec,
        measured=shown.measured,
        roles=shown.metrics.roles,
        intervals=shown.metrics.intervals,
        thresholds=shown.thresholds,
        thresholds_final=shown.thresholds_final,
        summary=row.summary,
        reasons=shown.reasons,
        flow=views.flow_name(row.spec),
        steps=shown.metrics.steps,
        runners=views.runners_out(row.spec, runner_rows),
        progress=progress,
        planned_rate=views.planned_rate(row.spec),
        call_durations=views.call_durations(shown.metrics.duration_histogram),
        links=views.links(request, settings, session_id),
    )


async def _progress(temporal: TemporalConnector, session_id: str) -> Progress | None:
    """The workflow's `progress` query, or None if Temporal or the workflow does not answer."""
    try:
        client = await temporal.get()
        handle = client.get_workflow_handle(workflow_id(session_id))
        result: Progress = await handle.query(
            QUERY_PROGRESS, result_type=Progress, rpc_timeout=QUERY_TIMEOUT
        )
        return result
    except Exception as exc:  # a detail page must not fail because the live view does
        log.debug("progress query of %s failed: %s", session_id, exc)
        return None


@router.get(
    "/{session_id}/metrics",
    response_model=SessionMetricsOut,
    responses=NOT_FOUND,
    summary="Time series per runner and merged per second per role",
)
def get_session_metrics(session_id: str, db: DbDep, principal: PrincipalDep) -> SessionMetricsOut:
    session_or_404(db, session_id, principal.tenant)
    ivs = store.intervals(db, session_id)
    return SessionMetricsOut(
        session_id=session_id, runners=views.runner_series(ivs), merged=views.merged_series(ivs)
    )


@router.post(
    "/{session_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelRequested,
    responses={**NOT_FOUND, **FINISHED, **UNAVAILABLE},
    summary="Cancel a running session (the workflow stops its runners and records the result)",
)
async def cancel_session(
    session_id: str, db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedSessionDep
) -> CancelRequested:
    handle = await _running_handle(temporal, row)
    await handle.cancel()
    audit.record(db, principal.tenant, principal.key_id, "session.cancel", session_id)
    return CancelRequested(id=session_id)


@router.post(
    "/{session_id}/rate",
    response_model=RateChanged,
    responses={
        **NOT_FOUND,
        **FINISHED,
        **UNAVAILABLE,
        429: {"description": "over the tenant's calls_per_s quota"},
    },
    summary="Change the callers' call rate of a running session",
)
async def set_rate(
    session_id: str,
    body: RateChange,
    db: DbDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: OperatorDep,
    row: OwnedSessionDep,
) -> RateChanged:
    policy = await run_in_threadpool(tenant_policy.load, db, row.tenant, settings)
    tenant_policy.check_rate(policy, body.rate, ("rate",))
    handle = await _running_handle(temporal, row)
    try:
        result = await handle.execute_update(
            UPDATE_SET_RATE, SetRate(rate=body.rate), rpc_timeout=UPDATE_TIMEOUT
        )
    except WorkflowUpdateFailedError as exc:
        cause = (
            exc.cause.message if exc.cause is not None and hasattr(exc.cause, "message") else exc
        )
        raise HTTPException(status.HTTP_409_CONFLICT, f"rate not changed: {cause}") from exc
    audit.record(
        db, principal.tenant, principal.key_id, "session.rate", session_id, {"rate": body.rate}
    )
    return RateChanged(id=session_id, rate=body.rate, result=_jsonable(result))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value
