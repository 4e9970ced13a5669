"""Routes per resource, collected into one router under /v1."""

from fastapi import APIRouter

from api.responses import COMMON
from api.routes import (
    audit,
    calls,
    capacity,
    codec,
    evidence,
    exports,
    flows,
    health,
    keys,
    policy,
    pools,
    retention,
    runner_files,
    schedules,
    scripts,
    sessions,
)

api_router = APIRouter(responses=COMMON)
api_router.include_router(sessions.router)
api_router.include_router(calls.router)
api_router.include_router(evidence.router)
api_router.include_router(exports.router)
api_router.include_router(health.router)
api_router.include_router(runner_files.router)
api_router.include_router(codec.router)
api_router.include_router(codec.preflight)
api_router.include_router(keys.router)
api_router.include_router(audit.router)
api_router.include_router(policy.router)
api_router.include_router(schedules.router)
api_router.include_router(capacity.router)
api_router.include_router(pools.router)
api_router.include_router(scripts.router)
api_router.include_router(flows.router)
api_router.include_router(retention.router)
