"""The FastAPI application: `uvicorn api.main:app`. Migrates the database on startup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from temporalio.service import RPCError

from api import errors
from api.auth import SignInRequired
from api.body_limit import BodyLimitMiddleware
from api.dashboard import router as dashboard_router
from api.dashboard.signin import SIGNIN_PATH
from api.deps import db_capacity
from api.request_guard import RequestGuardMiddleware
from api.routes import api_router
from api.routes.metrics import router as metrics_router
from api.temporal import TemporalConnector, TemporalUnavailable, is_unavailable
from sipflow import session_secrets
from sipflow.crypto import keyring
from sipflow.db import migrate, session_scope
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings, get_settings

DESCRIPTION = """
Every test session is a durable Temporal workflow (`session-<id>`): it starts SIPp runners,
stores their metrics and ends with a verdict judged by the spec's thresholds.

`/metrics` (Prometheus) takes the metrics token instead of an API key. Every other route but
`/v1/health` needs an API key: `Authorization: Bearer sfk_...` (`sipflow keys
create`, or `POST /v1/keys` as an admin). A key belongs to one tenant and has a role: viewer
(read), operator (also start, change and cancel sessions), admin (also keys and the audit log).
Another tenant's objects answer 404.
"""

# Threads beyond the database's connections (anyio's default is 40).
THREADS_SPARE = 16


def _seal_stored_passwords(settings: Settings) -> None:
    """Sessions stored before passwords were write-only: their passwords into the secret store."""
    with session_scope(settings.resolved_database_url) as db:
        session_secrets.seal_stored(db, keyring(settings))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(migrate, settings.resolved_database_url)
        # As many requests use the database at once as the pool has connections; the thread
        # pool keeps threads beyond those for the routes' other work (files, closing sessions).
        app.state.db_gate = asyncio.Semaphore(db_capacity(settings))
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, db_capacity(settings) + THREADS_SPARE)
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
    app.add_middleware(RequestGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)  # outermost
    errors.install(app)
    app.include_router(api_router, prefix="/v1")
    app.include_router(dashboard_router)  # the dashboard under /dashboard/
    app.include_router(metrics_router)  # /metrics, where Prometheus looks by default

    @app.exception_handler(SignInRequired)
    async def _sign_in(_: Request, exc: SignInRequired) -> RedirectResponse:
        return RedirectResponse(
            f"{SIGNIN_PATH}?{urlencode({'next': exc.path})}", status.HTTP_303_SEE_OTHER
        )

    @app.exception_handler(TemporalUnavailable)
    async def _temporal_unavailable(_: Request, exc: TemporalUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(RPCError)
    async def _rpc_error(_: Request, exc: RPCError) -> JSONResponse:
        code = status.HTTP_503_SERVICE_UNAVAILABLE if is_unavailable(exc) else 502
        return JSONResponse({"detail": f"Temporal: {exc}"}, code)

    return app


app = create_app()
