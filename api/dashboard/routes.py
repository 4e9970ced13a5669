"""The dashboard's pages, its JSON helpers and the live stream (SSE)."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from sqlalchemy import func
from sqlmodel import col, select

from api import session_views as views
from api.auth import AUTH_RESPONSES, OperatorDep, PageDep, PrincipalDep, StreamPrincipalDep
from api.dashboard import signin
from api.dashboard.bridge import MqttBridge, Viewer
from api.dashboard.spec_editor import check, example_yaml
from api.deps import DbDep, SettingsDep, session_or_404
from api.errors import json_safe
from api.responses import COMMON, MAX_OFFSET, media
from backends.runner_tokens import LIVE_USER, broker_password, token_key
from sipflow import capacity_store, schedule_store, store
from sipflow.db import session_scope
from sipflow.models import FINAL_STATUSES, MetricInterval, RunnerRow, SessionRow
from sipflow.settings import Settings

STATIC = Path(__file__).parent / "static"
VENDOR_HINT = "the dashboard's chart library is not built: run deploy/setup.sh (npm ci)"
HEARTBEAT_S = 10.0
STATUS_EVERY_S = 1.0
NO_CACHE = {"Cache-Control": "no-cache"}


# -- lifespan: the MQTT bridge -------------------------------------------------------------------
def _loader(settings: Settings) -> Any:
    url = settings.resolved_database_url

    def load(sid: str) -> tuple[Sequence[MetricInterval], Sequence[RunnerRow]]:
        with session_scope(url) as db:
            return store.intervals(db, sid), store.runners(db, sid)

    async def aload(sid: str) -> tuple[Sequence[MetricInterval], Sequence[RunnerRow]]:
        return await run_in_threadpool(load, sid)

    return aload


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings

    def login() -> tuple[str, str]:
        return LIVE_USER, broker_password(token_key(settings), LIVE_USER)

    bridge = MqttBridge(settings.mqtt_host, settings.mqtt_port, _loader(settings), login)
    app.state.dashboard_bridge = bridge
    # Open live streams would hold uvicorn's graceful shutdown until they end: on SIGINT/SIGTERM
    # close them first, then let uvicorn's own handler run.
    restore = _chain_signals(lambda: asyncio.get_running_loop(), bridge)
    try:
        yield
    finally:
        restore()
        await bridge.close()


def _chain_signals(get_loop: Callable[[], asyncio.AbstractEventLoop], bridge: MqttBridge) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = get_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(bridge.close()))
        prev = previous.get(signum)
        if callable(prev):
            prev(signum, frame)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
        except (ValueError, OSError):
            previous.pop(sig, None)

    def restore() -> None:
        for sig, prev in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, prev)

    return restore


router = APIRouter(lifespan=lifespan)
pages = APIRouter(include_in_schema=False)
data = APIRouter(
    prefix="/dashboard/api", tags=["dashboard"], responses={**COMMON, **AUTH_RESPONSES}
)


# -- pages -----------------------------------------------------------------------------------
def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=NO_CACHE)


@pages.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@pages.get("/dashboard")
def dashboard_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


# Every page needs a sign-in (else a redirect to the sign-in page); the data they show comes
# from the routes below and the API, which check the tenant again.
@pages.get("/dashboard/")
def sessions_page(principal: PageDep) -> FileResponse:
    return _page("sessions.html")


@pages.get("/dashboard/new")
def new_page(principal: PageDep) -> FileResponse:
    return _page("new.html")


@pages.get("/dashboard/compare")
def compare_page(principal: PageDep) -> FileResponse:
    return _page("compare.html")


@pages.get("/dashboard/sessions/{session_id}")
def report_page(session_id: str, principal: PageDep, db: DbDep) -> FileResponse:
    session_or_404(db, session_id, principal.tenant)
    return _page("report.html")


@pages.get("/dashboard/schedules")
def schedules_page(principal: PageDep) -> FileResponse:
    return _page("schedules.html")


@pages.get("/dashboard/pools")
def pools_page(principal: PageDep) -> FileResponse:
    return _page("pools.html")


@pages.get("/dashboard/capacity")
def capacity_page(principal: PageDep) -> FileResponse:
    return _page("capacity.html")


@pages.get("/dashboard/capacity/{search_id}")
def capacity_search_page(search_id: str, principal: PageDep, db: DbDep) -> FileResponse:
    if capacity_store.get(db, search_id, principal.tenant) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no capacity search {search_id!r}")
    return _page("capacity.html")


@pages.get("/dashboard/admin")
def admin_page(principal: PageDep) -> FileResponse:
    return _page("admin.html")  # its data comes from /v1/keys, /v1/policy, /v1/audit (admins)


@pages.get("/dashboard/schedules/{schedule_id}")
def schedule_page(schedule_id: str, principal: PageDep, db: DbDep) -> FileResponse:
    if schedule_store.get(db, schedule_id, principal.tenant) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id!r}")
    return _page("schedule.html")


_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


@pages.get("/dashboard/static/{path:path}")
def static_file(path: str) -> Response:
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC.resolve()) or not file.is_file():
        if path.startswith("vendor/"):
            return PlainTextResponse(VENDOR_HINT, status.HTTP_404_NOT_FOUND)
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return FileResponse(file, media_type=_TYPES.get(file.suffix), headers=NO_CACHE)


# -- data for the pages ----------------------------------------------------------------------
@data.get("/sessions", summary="The sessions list with calls, success rate and duration")
def list_sessions(
    db: DbDep,
    principal: PrincipalDep,
    tenant: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    verdict: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    rows: Sequence[SessionRow] = []
    total = 0
    if tenant in (None, "", principal.tenant):  # another tenant's sessions are not there
        rows, total = store.list_sessions(
            db,
            tenant=principal.tenant,
            status=status_,
            verdict=verdict,
            limit=limit,
            offset=offset,
        )
    counts = _caller_counts(db, [r.id for r in rows])
    now = datetime.now(UTC)
    items = []
    for r in rows:
        created, ok, failed = counts.get(r.id, (0, 0, 0))
        measured = (r.summary or {}).get("measured") or {}
        if isinstance(measured.get("total_calls"), int | float):  # the workflow's own numbers
            created = int(measured["total_calls"])
            ok = int(measured.get("successful_calls") or 0)
            failed = int(measured.get("failed_calls") or 0)
        items.append(
            {
                **views.brief(r).model_dump(mode="json"),
                "duration_s": views.duration_s(r, now),
                "calls": created,
                "successful_calls": ok,
                "failed_calls": failed,
                "success_rate": round(100.0 * ok / (ok + failed), 3) if ok + failed else None,
            }
        )
    tenants = [principal.tenant]  # a key sees its own tenant only
    return {"total": total, "limit": limit, "offset": offset, "items": items, "tenants": tenants}


def _caller_counts(db: DbDep, ids: list[str]) -> dict[str, tuple[int, int, int]]:
    if not ids:
        return {}
    rows = db.exec(
        select(
            MetricInterval.session_id,
            func.sum(MetricInterval.calls_created),
            func.sum(MetricInterval.successful_calls),
            func.sum(MetricInterval.failed_calls),
        )
        .where(col(MetricInterval.session_id).in_(ids), MetricInterval.role == "caller")
        .group_by(MetricInterval.session_id)
    ).all()
    return {sid: (int(c or 0), int(o or 0), int(f or 0)) for sid, c, o, f in rows}


@data.get("/me", summary="Who is signed in: key id, tenant and role")
def me(principal: PrincipalDep) -> dict[str, str]:
    return {"key_id": principal.key_id, "tenant": principal.tenant, "role": principal.role.value}


@data.get("/spec/example", response_class=PlainTextResponse, summary="An example spec (YAML)")
def spec_example(principal: PrincipalDep) -> str:
    return example_yaml()


@data.post("/spec/check", summary="Validate a YAML spec; errors with the line of their field")
def spec_check(
    text: Annotated[str, Body(media_type="text/plain")], principal: OperatorDep
) -> dict[str, Any]:
    try:
        text.encode()
    except UnicodeEncodeError as exc:  # undecodable bytes arrive as lone surrogates
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "not UTF-8 text") from exc
    # The text's own mapping is echoed back: YAML may hold .nan, .inf, dates.
    checked = check(text)
    # A load profile's plan (calls/s over time), drawn before the session starts.
    plan = views.planned_rate(checked["spec"]) if checked["ok"] else None
    checked["planned_rate"] = [p.model_dump() for p in plan] if plan else None
    result: dict[str, Any] = json_safe(jsonable_encoder(checked))
    return result


@data.get(
    "/sessions/{session_id}/live",
    summary="Live charts: server-sent events from MQTT",
    response_class=StreamingResponse,
    responses={
        **media("text/event-stream", description="events until the session ends"),
        404: {"description": "no session with this id in the key's tenant"},
    },
)
async def live(
    session_id: str, request: Request, settings: SettingsDep, principal: StreamPrincipalDep
) -> StreamingResponse:
    url = settings.resolved_database_url
    first = await run_in_threadpool(_status, url, session_id, principal.tenant)
    if first is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id!r}")
    bridge: MqttBridge = request.app.state.dashboard_bridge
    viewer = await bridge.watch(session_id)
    return StreamingResponse(
        _events(bridge, viewer, session_id, url, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _status(url: str, sid: str, tenant: str | None = None) -> dict[str, Any] | None:
    with session_scope(url) as db:
        row = store.get_session(db, sid)
        if row is not None and tenant is not None and row.tenant != tenant:
            return None
        return None if row is None else {"status": row.status, "verdict": row.verdict}


def _sse(event: str, payload: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def _events(
    bridge: MqttBridge, viewer: Viewer, sid: str, url: str, current: dict[str, Any]
) -> AsyncIterator[str]:
    """snapshot, then point/runner per MQTT message, status on every change; `end` once the
    session is final (the browser then closes the stream)."""
    loop = asyncio.get_running_loop()
    try:
        yield "retry: 1000\n\n" + _sse("status", current)
        last_status = last_beat = loop.time()
        while True:
            try:
                event, payload = await asyncio.wait_for(viewer.queue.get(), STATUS_EVERY_S)
            except TimeoutError:
                event, payload = "", None
            if event == "close":
                return
            if event:
                yield _sse(event, payload)
                last_beat = loop.time()
            if viewer.overflow or bridge.closing:
                return
            now = loop.time()
            if now - last_status >= STATUS_EVERY_S:
                last_status = now
                st = await run_in_threadpool(_status, url, sid)
                if st is not None and st != current:
                    current = st
                    yield _sse("status", st)
                if st is None or st["status"] in FINAL_STATUSES:
                    # What the worker stored last is in the database now: a final snapshot.
                    yield _sse("end", st)
                    return
            if now - last_beat >= HEARTBEAT_S:
                last_beat = now
                yield ": keepalive\n\n"
    finally:
        await bridge.unwatch(sid, viewer)


router.include_router(pages)
router.include_router(data)
router.include_router(signin.router)
