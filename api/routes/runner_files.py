"""What a containerized runner fetches at start: its config, accounts and scenario.

    GET /v1/runner/sessions/{session_id}/runners/{runner_id}/config     RunnerConfig (no secrets)
    GET /v1/runner/sessions/{session_id}/runners/{runner_id}/accounts   its SIP accounts
    GET /v1/runner/sessions/{session_id}/runners/{runner_id}/scenario   its scenario XML

Each needs `Authorization: Bearer <runner token>` (backends/runner_tokens.py): a token for that
runner of that session, accepted only while the session runs. No token or a wrong one: 401;
a right token for a session that does not run (any more): 403. Neither says more than that.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import DbDep, KeysDep, SettingsDep
from backends.container_plan import container_runner_config
from backends.runner_tokens import token_key, token_matches
from runners import scenario_files
from sipflow import plan, session_secrets, store
from sipflow.runner_config import AccountConfig, RunnerConfig
from sipflow.spec import SessionSpec

router = APIRouter(
    prefix="/runner/sessions/{session_id}/runners/{runner_id}",
    tags=["runner"],
    responses={
        401: {"description": "no runner token, or not this runner's"},
        403: {"description": "the session does not run"},
        409: {"description": "the dns target is not resolved, or (Fargate) callees not started"},
    },
)
bearer = HTTPBearer(auto_error=False, description="the runner token")


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or invalid runner token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def authorized_config(
    session_id: str,
    runner_id: str,
    settings: SettingsDep,
    db: DbDep,
    keys: KeysDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> RunnerConfig:
    """The runner's full config, if the token is this runner's and the session runs."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized()
    if not token_matches(token_key(settings), session_id, runner_id, credentials.credentials):
        raise _unauthorized()
    row = store.get_session(db, session_id)
    if row is None or row.status != "running":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the session does not run")
    # The stored spec says "***": the runner gets the passwords from the secret store.
    spec = SessionSpec.model_validate(session_secrets.filled(db, keys, row))
    if spec.target is not None and spec.target.dns is not None:
        found = row.resolved_target  # as the session's start resolved it
        if found is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, "the session's target is not resolved yet"
            )
        spec = plan.with_resolved_target(spec, found["host"], int(found["port"]))
    # Fargate tasks have no names for each other: callers reach callees at the addresses their
    # tasks got, stored when they started (before any caller starts).
    fargate = (spec.backend or settings.default_backend) == "fargate"
    peers = {r.runner_id: r.address for r in store.runners(db, session_id) if r.address}
    if fargate and spec.target is None and set(plan.runner_ids(spec, "callee")) - set(peers):
        raise HTTPException(status.HTTP_409_CONFLICT, "the session's callees have not started")
    cfg = container_runner_config(spec, session_id, runner_id, settings, peers if fargate else None)
    if cfg is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the session does not run")
    return cfg


ConfigDep = Annotated[RunnerConfig, Depends(authorized_config)]
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/config", response_model=RunnerConfig, summary="A runner's config")
def get_config(cfg: ConfigDep, response: Response) -> RunnerConfig:
    """Everything but the accounts and a custom scenario's XML (served separately)."""
    response.headers.update(NO_STORE)
    return cfg.model_copy(update={"accounts": [], "scenario_xml": None})


@router.get("/accounts", response_model=list[AccountConfig], summary="A runner's SIP accounts")
def get_accounts(cfg: ConfigDep, response: Response) -> list[AccountConfig]:
    response.headers.update(NO_STORE)
    return cfg.accounts


@router.get(
    "/scenario",
    summary="A runner's scenario (SIPp XML)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def get_scenario(cfg: ConfigDep) -> Response:
    if cfg.scenario == "custom":
        xml = cfg.scenario_xml or ""
    else:
        xml = scenario_files.built_in_path(cfg.scenario).read_text()
    return Response(xml, media_type="application/xml", headers=NO_STORE)
