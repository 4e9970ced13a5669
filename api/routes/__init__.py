"""Routes per resource, collected into one router under /v1."""

from fastapi import APIRouter

from api.routes import audit, exports, health, keys, runner_files, sessions

api_router = APIRouter()
api_router.include_router(sessions.router)
api_router.include_router(exports.router)
api_router.include_router(health.router)
api_router.include_router(runner_files.router)
api_router.include_router(keys.router)
api_router.include_router(audit.router)
