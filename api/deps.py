"""Dependencies of the routes, as `Annotated` aliases (settings, database session, Temporal),
and the 404 of an unknown session (or another tenant's). Who asks: api/auth.py.

The database session is gated: at most as many requests use the database at once as the API's
pool has connections (`db_gate`, an asyncio semaphore). The others wait on the event loop,
holding no thread, and no thread ever waits on the pool: a burst of requests queues instead of
taking every thread to wait for a connection (and timing out together).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlmodel import Session

from api.temporal import TemporalConnector
from sipflow import store
from sipflow.crypto import Keyring, keyring
from sipflow.db import get_engine
from sipflow.models import SessionRow
from sipflow.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_keyring(settings: SettingsDep) -> Keyring:
    return keyring(settings)


# The keys of secrets at rest (sipflow.secret_store).
KeysDep = Annotated[Keyring, Depends(get_keyring)]


def api_engine(settings: Settings) -> Engine:
    return get_engine(
        settings.resolved_database_url,
        settings.db_pool_size,
        settings.db_max_overflow,
        settings.db_pool_timeout_s,
    )


def db_capacity(settings: Settings) -> int:
    return settings.db_pool_size + settings.db_max_overflow


class DatabaseBusy(Exception):
    """No database connection became free in time (answered 503)."""


async def get_db(request: Request, settings: SettingsDep) -> AsyncIterator[Session]:
    gate: asyncio.Semaphore = request.app.state.db_gate
    try:
        async with asyncio.timeout(settings.api_db_wait_s):
            await gate.acquire()
    except TimeoutError:
        raise DatabaseBusy(f"no database connection free in {settings.api_db_wait_s:g} s") from None
    db = Session(api_engine(settings), expire_on_commit=False)
    try:
        yield db
    finally:
        try:
            await run_in_threadpool(db.close)
        finally:
            gate.release()


DbDep = Annotated[Session, Depends(get_db)]


def session_or_404(db: Session, session_id: str, tenant: str) -> SessionRow:
    """The tenant's session; another tenant's is as unknown as one that does not exist."""
    row = store.get_session(db, session_id)
    if row is None or row.tenant != tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id!r}")
    return row


async def get_temporal(request: Request) -> TemporalConnector:
    connector: TemporalConnector = request.app.state.temporal
    return connector


TemporalDep = Annotated[TemporalConnector, Depends(get_temporal)]
