"""GET /metrics: the API's Prometheus series (text format) with the database's gauges
(sessions by tenant, status and verdict; active runners), for a scraper holding the metrics
token (sipflow/metrics_token.py). Served at the root, Prometheus' default metrics_path."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from api.auth import UNAUTHORIZED, unauthorized
from api.deps import SettingsDep
from sipflow.metrics_db import DatabaseCollector
from sipflow.metrics_token import metrics_token

router = APIRouter(tags=["metrics"])
scrape_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="The metrics token (SIPFLOW_METRICS_TOKEN or data_dir/secrets/metrics.token)",
)


def _database_registry(request: Request, url: str) -> CollectorRegistry:
    state = request.app.state
    if getattr(state, "metrics_registry", None) is None:  # one per app
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(url))
        state.metrics_registry = registry
    reg: CollectorRegistry = state.metrics_registry
    return reg


def _render(db_registry: CollectorRegistry) -> bytes:
    return generate_latest(REGISTRY) + generate_latest(db_registry)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **UNAUTHORIZED,
    },
    summary="Prometheus metrics (needs the metrics token, not an API key)",
)
async def metrics(
    request: Request,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(scrape_scheme)],
) -> Response:
    refusal = unauthorized("the metrics token is needed (an API key does not open /metrics)")
    if bearer is None:
        raise refusal
    expected = await run_in_threadpool(metrics_token, settings)
    if not hmac.compare_digest(bearer.credentials.encode(), expected.encode()):
        raise refusal
    db_registry = _database_registry(request, settings.resolved_database_url)
    body = await run_in_threadpool(_render, db_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
