"""/v1/sessions: start a session (a Temporal workflow), list, inspect, change rate, cancel."""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.deps import DbDep, SettingsDep, TemporalDep
from api.schemas import (
    EXAMPLE_SPEC,
    EXAMPLE_SPEC_PROXY,
    CancelRequested,
    Links,
    MergedPoint,
    MetricPoint,
    RateChange,
    RateChanged,
    RunnerOut,
    RunnerSeries,
    SessionBrief,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionMetricsOut,
)
from api.temporal import TemporalConnector, TemporalUnavailable
from sipflow import histogram, store
from sipflow.models import FINAL_STATUSES, Interval, MetricInterval, SessionRow
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from sipflow.summary import failure_reasons, summarize
from sipflow.thresholds import ThresholdResult, evaluate
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
router = APIRouter(prefix="/sessions", tags=["sessions"])

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "no session with this id"}}
UNAVAILABLE: Responses = {503: {"description": "Temporal is unreachable"}}
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


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _finite(v: float | None) -> float | None:
    """JSON has no infinity (a percentile above the last histogram bound): report null."""
    return v if v is None or math.isfinite(v) else None


def _links(request: Request, settings: Settings, sid: str) -> Links:
    ns = settings.temporal_namespace
    return Links(
        self=str(request.url_for("get_session", session_id=sid)),
        metrics=str(request.url_for("get_session_metrics", session_id=sid)),
        temporal_ui=f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{ns}/workflows/"
        f"{workflow_id(sid)}",
    )


def _brief(row: SessionRow) -> SessionBrief:
    return SessionBrief(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        status=row.status,
        verdict=row.verdict,
        target=row.target,
        created_at=_utc(row.created_at) or row.created_at,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
    )


def _row_or_404(db: DbDep, session_id: str) -> SessionRow:
    row = store.get_session(db, session_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id!r}")
    return row


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
    responses={**UNAVAILABLE, 422: {"description": "invalid spec; `loc` names the field"}},
    summary="Start a test session",
)
async def create_session(
    spec: SpecBody,
    request: Request,
    response: Response,
    db: DbDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> SessionCreated:
    sid = uuid.uuid4().hex[:12]
    spec_json = spec.model_dump(mode="json")
    target = f"{spec.target.host}:{spec.target.port}" if spec.target else None
    store.create_session(db, sid, spec.tenant, spec.name, spec_json, target)
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
    links = _links(request, settings, sid)
    response.headers["Location"] = links.self
    return SessionCreated(id=sid, workflow_id=workflow_id(sid), status="pending", links=links)


@router.get("", response_model=SessionList, summary="List sessions, newest first")
def list_sessions(
    db: DbDep,
    tenant: str | None = None,
    status_: Annotated[
        str | None, Query(alias="status", description="pending, running, completed, ...")
    ] = None,
    verdict: Annotated[str | None, Query(description="pass, fail or error")] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SessionList:
    if since is not None:
        since = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
    rows, total = store.list_sessions(
        db,
        tenant=tenant,
        status=status_,
        verdict=verdict,
        since=since,
        limit=limit,
        offset=offset,
    )
    return SessionList(total=total, limit=limit, offset=offset, items=[_brief(r) for r in rows])


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
) -> SessionDetail:
    row = _row_or_404(db, session_id)
    runner_rows = store.runners(db, session_id)
    metrics = summarize(store.intervals(db, session_id), runner_rows)
    measured = {k: _finite(v) for k, v in metrics.measured.items()}

    thresholds, final = _thresholds(row, metrics.measured)
    reasons = row.reasons if row.reasons is not None else failure_reasons(metrics, runner_rows)
    progress = None
    if row.status not in FINAL_STATUSES:
        progress = await _progress(temporal, session_id)
    return SessionDetail(
        **_brief(row).model_dump(),
        workflow_id=workflow_id(session_id),
        spec=row.spec,
        measured=measured,
        roles=metrics.roles,
        intervals=metrics.intervals,
        thresholds=thresholds,
        thresholds_final=final,
        summary=row.summary,
        reasons=reasons,
        runners=[RunnerOut.model_validate(r, from_attributes=True) for r in runner_rows],
        progress=progress,
        links=_links(request, settings, session_id),
    )


def _thresholds(
    row: SessionRow, measured: dict[str, float | None]
) -> tuple[list[ThresholdResult], bool]:
    """The workflow's results if it stored them, else the spec's thresholds on `measured`."""
    stored = (row.summary or {}).get("thresholds")
    if isinstance(stored, list):
        try:
            results = [ThresholdResult.model_validate(t) for t in stored]
            return [r.model_copy(update={"measured": _finite(r.measured)}) for r in results], True
        except ValidationError:
            log.warning("session %s: unexpected thresholds in summary", row.id)
    try:
        spec = SessionSpec.model_validate(row.spec)
    except ValidationError:
        return [], False
    results = evaluate(spec.parsed_thresholds(), measured)
    return [r.model_copy(update={"measured": _finite(r.measured)}) for r in results], False


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
def get_session_metrics(session_id: str, db: DbDep) -> SessionMetricsOut:
    _row_or_404(db, session_id)
    ivs = store.intervals(db, session_id)
    return SessionMetricsOut(session_id=session_id, runners=_per_runner(ivs), merged=_merged(ivs))


def _per_runner(ivs: Iterable[Interval]) -> list[RunnerSeries]:
    series: dict[str, RunnerSeries] = {}
    for iv in ivs:
        s = series.setdefault(
            iv.runner_id, RunnerSeries(runner_id=iv.runner_id, role=iv.role, points=[])
        )
        s.points.append(MetricPoint.model_validate(iv, from_attributes=True))
    for s in series.values():
        s.points.sort(key=lambda p: p.seq)
    return sorted(series.values(), key=lambda s: s.runner_id)


def _merged(ivs: Any) -> dict[str, list[MergedPoint]]:
    """Per role and whole second: counters summed, histograms merged into percentiles.

    Roles stay apart so that a call is not counted twice (once by its caller, once by its callee).
    """
    buckets: dict[str, dict[int, list[MetricInterval]]] = defaultdict(lambda: defaultdict(list))
    for iv in ivs:
        buckets[iv.role][math.floor(iv.time)].append(iv)
    merged: dict[str, list[MergedPoint]] = {}
    for role, seconds in sorted(buckets.items()):
        points = []
        for second, group in sorted(seconds.items()):
            hist = histogram.merge(
                iv.histogram for iv in group if len(iv.histogram or []) == histogram.N_BUCKETS
            )
            points.append(
                MergedPoint(
                    time=second,
                    runners=len(group),
                    current_calls=sum(iv.current_calls for iv in group),
                    call_rate=sum(iv.call_rate for iv in group),
                    calls_created=sum(iv.calls_created for iv in group),
                    successful_calls=sum(iv.successful_calls for iv in group),
                    failed_calls=sum(iv.failed_calls for iv in group),
                    retransmissions=sum(iv.retransmissions for iv in group),
                    response_time_p50_ms=_finite(histogram.percentile(hist, 50)),
                    response_time_p95_ms=_finite(histogram.percentile(hist, 95)),
                    response_time_p99_ms=_finite(histogram.percentile(hist, 99)),
                )
            )
        merged[role] = points
    return merged


@router.post(
    "/{session_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelRequested,
    responses={**NOT_FOUND, **FINISHED, **UNAVAILABLE},
    summary="Cancel a running session (the workflow stops its runners and records the result)",
)
async def cancel_session(session_id: str, db: DbDep, temporal: TemporalDep) -> CancelRequested:
    row = _row_or_404(db, session_id)
    handle = await _running_handle(temporal, row)
    await handle.cancel()
    return CancelRequested(id=session_id)


@router.post(
    "/{session_id}/rate",
    response_model=RateChanged,
    responses={**NOT_FOUND, **FINISHED, **UNAVAILABLE},
    summary="Change the callers' call rate of a running session",
)
async def set_rate(
    session_id: str, body: RateChange, db: DbDep, temporal: TemporalDep
) -> RateChanged:
    row = _row_or_404(db, session_id)
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
    return RateChanged(id=session_id, rate=body.rate, result=_jsonable(result))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value
