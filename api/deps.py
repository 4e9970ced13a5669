"""Dependencies of the routes, as `Annotated` aliases (settings, database session, Temporal),
and the 404 of an unknown session (or another tenant's). Who asks: api/auth.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlmodel import Session

from api.temporal import TemporalConnector
from sipflow import store
from sipflow.db import session_scope
from sipflow.models import SessionRow
from sipflow.settings import Settings


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.resolved_database_url) as db:
        yield db


DbDep = Annotated[Session, Depends(get_db)]


def session_or_404(db: Session, session_id: str, tenant: str) -> SessionRow:
    """The tenant's session; another tenant's is as unknown as one that does not exist."""
    row = store.get_session(db, session_id)
    if row is None or row.tenant != tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id!r}")
    return row


def get_temporal(request: Request) -> TemporalConnector:
    connector: TemporalConnector = request.app.state.temporal
    return connector


TemporalDep = Annotated[TemporalConnector, Depends(get_temporal)]
