"""/v1/health: is the database reachable, is Temporal reachable.

It never waits behind other requests: the database is checked on an engine and threads of its
own (not the routes' pool or gate), and each check has health_timeout_s; a check that does not
answer in time counts as down (503), never as a hang.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text
from sqlmodel import Session

from api.deps import SettingsDep, TemporalDep
from api.schemas import Check, Health
from sipflow.db import get_engine

router = APIRouter(tags=["health"])
# Health checks in flight at once: a hung database holds at most these threads.
CHECK_THREADS = 2


def _check_db(url: str, timeout_s: float) -> Check:
    try:
        engine = get_engine(url, pool_size=1, max_overflow=1, pool_timeout=timeout_s)
        with Session(engine) as db:
            db.connection().execute(text("SELECT 1"))
        return Check(ok=True)
    except Exception as exc:
        return Check(ok=False, detail=str(exc).splitlines()[0])


async def _db(request: Request, url: str, timeout_s: float) -> Check:
    state = request.app.state
    if getattr(state, "health_threads", None) is None:  # one per app (and its event loop)
        state.health_threads = anyio.CapacityLimiter(CHECK_THREADS)
    try:
        async with asyncio.timeout(timeout_s):
            return await anyio.to_thread.run_sync(
                _check_db, url, timeout_s, limiter=state.health_threads, abandon_on_cancel=True
            )
    except TimeoutError:
        return Check(ok=False, detail=f"no answer in {timeout_s:g} s")


async def _check_temporal(temporal: TemporalDep, timeout_s: float) -> Check:
    try:
        async with asyncio.timeout(timeout_s):
            client = await temporal.get()
            ok = await client.service_client.check_health(timeout=timedelta(seconds=timeout_s))
        return Check(ok=bool(ok), detail=None if ok else "not serving")
    except TimeoutError:
        return Check(ok=False, detail=f"no answer in {timeout_s:g} s")
    except Exception as exc:
        return Check(ok=False, detail=str(exc).splitlines()[0] if str(exc) else repr(exc))


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "the database or Temporal is unreachable"}},
    summary="Reachability of the database and Temporal",
)
async def health(
    request: Request, response: Response, settings: SettingsDep, temporal: TemporalDep
) -> Health:
    timeout_s = settings.health_timeout_s
    db_check, temporal_check = await asyncio.gather(
        _db(request, settings.resolved_database_url, timeout_s),
        _check_temporal(temporal, timeout_s),
    )
    result = Health(
        ok=db_check.ok and temporal_check.ok, database=db_check, temporal=temporal_check
    )
    if not result.ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return result
