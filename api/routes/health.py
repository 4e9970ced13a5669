"""/v1/health: is the database reachable, is Temporal reachable."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from api.deps import SettingsDep, TemporalDep
from api.schemas import Check, Health
from sipflow.db import session_scope

router = APIRouter(tags=["health"])
TIMEOUT_S = 3.0


def _check_db(url: str) -> Check:
    try:
        with session_scope(url) as db:
            db.connection().execute(text("SELECT 1"))
        return Check(ok=True)
    except Exception as exc:
        return Check(ok=False, detail=str(exc).splitlines()[0])


async def _check_temporal(temporal: TemporalDep) -> Check:
    try:
        client = await temporal.get()
        ok = await client.service_client.check_health(timeout=timedelta(seconds=TIMEOUT_S))
        return Check(ok=bool(ok), detail=None if ok else "not serving")
    except Exception as exc:
        return Check(ok=False, detail=str(exc).splitlines()[0] if str(exc) else repr(exc))


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "the database or Temporal is unreachable"}},
    summary="Reachability of the database and Temporal",
)
async def health(response: Response, settings: SettingsDep, temporal: TemporalDep) -> Health:
    db_check, temporal_check = await asyncio.gather(
        run_in_threadpool(_check_db, settings.resolved_database_url), _check_temporal(temporal)
    )
    result = Health(
        ok=db_check.ok and temporal_check.ok, database=db_check, temporal=temporal_check
    )
    if not result.ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return result
