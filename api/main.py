"""The FastAPI application: `uvicorn api.main:app`. Migrates the database on startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from api.dashboard import router as dashboard_router
from api.routes import api_router
from api.secret_masking import masked_errors
from api.temporal import TemporalConnector, TemporalUnavailable, is_unavailable
from sipflow import session_secrets
from sipflow.crypto import keyring
from sipflow.db import migrate, session_scope
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings, get_settings

DESCRIPTION = """
Every test session is a durable Temporal workflow (`session-<id>`): it starts SIPp runners,
stores their metrics and ends with a verdict judged by the spec's thresholds.
"""


def _seal_stored_passwords(settings: Settings) -> None:
    """Sessions stored before passwords were write-only: their passwords into the secret store."""
    with session_scope(settings.resolved_database_url) as db:
        session_secrets.seal_stored(db, keyring(settings))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(migrate, settings.resolved_database_url)
        await run_in_threadpool(_seal_stored_passwords, settings)
        app.state.temporal = TemporalConnector(
            settings.temporal_address, settings.temporal_namespace, data_converter(settings)
        )
        yield

    app = FastAPI(
        title="sipflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        docs_url="/docs",
    )
    app.state.settings = settings
    app.include_router(api_router, prefix="/v1")
    app.include_router(dashboard_router)  # the dashboard under /dashboard/

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own reply, minus the secrets its `input` echoes.
        detail = jsonable_encoder(masked_errors(exc.errors()))
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(TemporalUnavailable)
    async def _temporal_unavailable(_: Request, exc: TemporalUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(RPCError)
    async def _rpc_error(_: Request, exc: RPCError) -> JSONResponse:
        code = status.HTTP_503_SERVICE_UNAVAILABLE if is_unavailable(exc) else 502
        return JSONResponse({"detail": f"Temporal: {exc}"}, code)

    return app


app = create_app()
