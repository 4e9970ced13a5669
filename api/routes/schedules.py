"""/v1/schedules: scheduled regression tests of the key's tenant, run by Temporal Schedules."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from temporalio.client import (
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from api import schedule_temporal
from api.auth import AUTH_RESPONSES, OperatorDep, Principal, PrincipalDep
from api.deps import DbDep, KeysDep, SettingsDep, TemporalDep
from api.responses import MAX_OFFSET, REFUSED, UNAVAILABLE, Responses
from api.schedule_schemas import (
    Backfill,
    DeliveryOut,
    Note,
    RunOut,
    ScheduleBrief,
    ScheduleDetail,
    ScheduleList,
)
from api.temporal import TemporalConnector, TemporalUnavailable
from sipflow import audit, schedule_store, tenant_policy
from sipflow.models import ScheduleRow, utcnow
from sipflow.schedule_spec import ScheduleSpec
from sipflow.settings import Settings
from sipflow.workflow_types import schedule_id as temporal_id

log = logging.getLogger(__name__)
router = APIRouter(prefix="/schedules", tags=["schedules"], responses=AUTH_RESPONSES)

NOT_FOUND: Responses = {404: {"description": "no schedule with this id in the key's tenant"}}


def owned_schedule(schedule_id: str, db: DbDep, principal: PrincipalDep) -> ScheduleRow:
    """The tenant's schedule; another tenant's is as unknown as one that does not exist."""
    row = schedule_store.get(db, schedule_id, principal.tenant)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id!r}")
    return row


OwnedScheduleDep = Annotated[ScheduleRow, Depends(owned_schedule)]


def _invalid(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": msg}])


def _checked(spec: ScheduleSpec, tenant: str, db: DbDep, settings: Settings) -> ScheduleSpec:
    """The spec in the key's tenant, within the tenant's policy (targets, quotas, webhook
    hosts) and the shortest interval; 422/429 with the field's path otherwise."""
    session = spec.session
    if "tenant" in session.model_fields_set and session.tenant != tenant:
        raise _invalid(("session", "tenant"), f"tenant comes from the API key: {tenant!r}")
    spec = spec.model_copy(update={"session": session.model_copy(update={"tenant": tenant})})
    for i, every in enumerate(spec.schedule.every_s):
        if every < settings.schedule_min_interval_s:
            raise _invalid(
                ("schedule", "every_s", i),
                f"{every:g} s is shorter than {settings.schedule_min_interval_s:g} s "
                "(SIPFLOW_SCHEDULE_MIN_INTERVAL_S)",
            )
    policy = tenant_policy.load(db, tenant, settings)
    try:
        tenant_policy.check_spec(policy, spec.session)
    except tenant_policy.PolicyViolation as exc:
        exc.loc = ("session", *exc.loc)
        raise
    for i, channel in enumerate(spec.alerts):
        if channel.kind == "webhook":
            host = urlsplit(channel.url).hostname or ""
            if reason := tenant_policy.target_refusal(policy, host):
                raise tenant_policy.PolicyViolation(
                    "target", ("alerts", str(i), "url"), "allowed_networks", f"webhook {reason}"
                )
    return spec


def _stored(db: DbDep, keys: KeysDep, row: ScheduleRow, spec: ScheduleSpec) -> dict[str, object]:
    """Secrets into the store, "***" into the row; the clear spec for Temporal."""
    clear = spec.model_dump(mode="json")
    try:
        row.spec = schedule_store.seal(db, keys, row.tenant, row.id, clear)
    except schedule_store.MissingSecret as exc:
        db.rollback()
        raise _invalid(exc.loc[1:], str(exc)) from exc
    return clear


async def _handle(temporal: TemporalConnector, row: ScheduleRow) -> ScheduleHandle:
    client = await temporal.get()
    return client.get_schedule_handle(temporal_id(row.id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleDetail,
    responses={**REFUSED, **UNAVAILABLE},
    summary="Create a scheduled regression test (a Temporal Schedule runs it)",
)
async def create_schedule(
    spec: ScheduleSpec,
    response: Response,
    db: DbDep,
    keys: KeysDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: OperatorDep,
) -> ScheduleDetail:
    """Secrets (SIP passwords, webhook tokens, SMTP passwords) are write-only: shown as "***"."""
    spec = await run_in_threadpool(_checked, spec, principal.tenant, db, settings)
    now = utcnow()
    row = ScheduleRow(
        id=uuid.uuid4().hex[:12],
        tenant=principal.tenant,
        name=spec.name,
        spec={},
        created_at=now,
        updated_at=now,
    )
    clear = _stored(db, keys, row, spec)
    schedule_store.create(db, row)
    try:
        client = await temporal.get()
        await client.create_schedule(
            temporal_id(row.id), schedule_temporal.build(row, clear, settings)
        )
    except (TemporalUnavailable, RPCError) as exc:
        log.warning("schedule %s not created in Temporal: %s", row.id, exc)
        schedule_store.remove(db, row)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"schedule not created: {exc}"
        ) from exc
    audit.record(db, principal.tenant, principal.key_id, "schedule.create", row.id)
    response.headers["Location"] = f"/v1/schedules/{row.id}"
    return ScheduleDetail(**ScheduleBrief.of(row).model_dump(), spec=row.spec)


@router.get("", response_model=ScheduleList, summary="The tenant's schedules, newest first")
def list_schedules(
    db: DbDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> ScheduleList:
    rows, total = schedule_store.list_for(db, principal.tenant, limit, offset)
    return ScheduleList(
        total=total, limit=limit, offset=offset, items=[ScheduleBrief.of(r) for r in rows]
    )


@router.get(
    "/{schedule_id}",
    response_model=ScheduleDetail,
    responses=NOT_FOUND,
    summary="A schedule: its spec, next runs, recent runs with verdicts, alert deliveries",
)
async def get_schedule(
    db: DbDep, temporal: TemporalDep, principal: PrincipalDep, row: OwnedScheduleDep
) -> ScheduleDetail:
    del principal  # the dependency of `row` checked the tenant
    next_runs, missed = [], None
    try:
        desc = await (await _handle(temporal, row)).describe()
        next_runs = list(desc.info.next_action_times[:5])
        missed = desc.info.num_actions_missed_catchup_window + desc.info.num_actions_skipped_overlap
    except (TemporalUnavailable, RPCError) as exc:  # the stored part still answers
        log.debug("describe of schedule %s failed: %s", row.id, exc)
    return ScheduleDetail(
        **ScheduleBrief.of(row).model_dump(),
        spec=row.spec,
        next_runs=next_runs,
        missed_runs=missed,
        runs=_runs(db, row.id, 50, None),
        alerts=[DeliveryOut.of(d) for d in schedule_store.deliveries(db, row.id)],
    )


@router.get(
    "/{schedule_id}/runs",
    response_model=list[RunOut],
    responses=NOT_FOUND,
    summary="The schedule's runs, newest first (filter by state)",
)
def list_runs(
    db: DbDep,
    row: OwnedScheduleDep,
    state: Annotated[str | None, Query(pattern=r"^[a-z]{1,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RunOut]:
    return _runs(db, row.id, limit, state)


def _runs(db: DbDep, schedule: str, limit: int, state: str | None) -> list[RunOut]:
    rows = schedule_store.runs(db, schedule, limit, state)
    ids = [r.session_id for r in rows]
    measured = schedule_store.measured_of(db, ids)
    searches = schedule_store.capacity_runs(db, ids)
    return [
        RunOut.of(
            r, measured.get(r.session_id), "capacity" if r.session_id in searches else "session"
        )
        for r in rows
    ]


@router.put(
    "/{schedule_id}",
    response_model=ScheduleDetail,
    responses={**NOT_FOUND, **REFUSED, **UNAVAILABLE},
    summary='Replace a schedule\'s spec (a new version; "***" keeps a stored secret)',
)
async def update_schedule(
    spec: ScheduleSpec,
    db: DbDep,
    keys: KeysDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    principal: OperatorDep,
    row: OwnedScheduleDep,
) -> ScheduleDetail:
    spec = await run_in_threadpool(_checked, spec, principal.tenant, db, settings)
    _stored(db, keys, row, spec)
    clear = schedule_store.unsealed(db, keys, row)  # "***" resolved to the kept secrets
    new = schedule_temporal.build(row, clear, settings)
    handle = await _handle(temporal, row)
    await handle.update(lambda _: ScheduleUpdate(schedule=new))
    row.name, row.version = spec.name, row.version + 1
    schedule_store.save(db, row)
    audit.record(db, principal.tenant, principal.key_id, "schedule.update", row.id)
    return ScheduleDetail(**ScheduleBrief.of(row).model_dump(), spec=row.spec)


async def _set_paused(
    db: DbDep,
    temporal: TemporalConnector,
    principal: Principal,
    row: ScheduleRow,
    paused: bool,
    note: str | None,
) -> ScheduleBrief:
    handle = await _handle(temporal, row)
    text = note or ("paused" if paused else "resumed")
    await (handle.pause(note=text) if paused else handle.unpause(note=text))
    row.paused, row.note = paused, note
    schedule_store.save(db, row)
    action = "schedule.pause" if paused else "schedule.resume"
    audit.record(db, principal.tenant, principal.key_id, action, row.id)
    return ScheduleBrief.of(row)


@router.post(
    "/{schedule_id}/pause",
    response_model=ScheduleBrief,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Pause a schedule (no runs until resumed), with a note",
)
async def pause_schedule(
    body: Note, db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedScheduleDep
) -> ScheduleBrief:
    return await _set_paused(db, temporal, principal, row, True, body.note)


@router.post(
    "/{schedule_id}/resume",
    response_model=ScheduleBrief,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Resume a paused schedule, with a note",
)
async def resume_schedule(
    body: Note, db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedScheduleDep
) -> ScheduleBrief:
    return await _set_paused(db, temporal, principal, row, False, body.note)


@router.post(
    "/{schedule_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScheduleBrief,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Start a run now (even while another runs)",
)
async def trigger_schedule(
    db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedScheduleDep
) -> ScheduleBrief:
    await (await _handle(temporal, row)).trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    audit.record(db, principal.tenant, principal.key_id, "schedule.trigger", row.id)
    return ScheduleBrief.of(row)


@router.post(
    "/{schedule_id}/backfill",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ScheduleBrief,
    responses={**NOT_FOUND, **UNAVAILABLE, 422: {"description": "end_at not after start_at"}},
    summary="Run the schedule's due times of a past time range, one after the other",
)
async def backfill_schedule(
    body: Backfill, db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedScheduleDep
) -> ScheduleBrief:
    if body.end_at <= body.start_at:
        raise _invalid(("end_at",), "end_at must be after start_at")
    await (await _handle(temporal, row)).backfill(
        ScheduleBackfill(
            start_at=body.start_at, end_at=body.end_at, overlap=ScheduleOverlapPolicy.BUFFER_ALL
        )
    )
    audit.record(db, principal.tenant, principal.key_id, "schedule.backfill", row.id)
    return ScheduleBrief.of(row)


@router.delete(
    "/{schedule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **UNAVAILABLE},
    summary="Delete a schedule (its sessions stay)",
)
async def delete_schedule(
    db: DbDep, temporal: TemporalDep, principal: OperatorDep, row: OwnedScheduleDep
) -> Response:
    try:
        await (await _handle(temporal, row)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    schedule_store.remove_runs(db, row.id)
    schedule_store.remove(db, row)
    audit.record(db, principal.tenant, principal.key_id, "schedule.delete", row.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
