"""/v1/pools and /v1/hosts: a tenant's runner-host pools, their hosts' state and load, host
credentials (admins), and the hosts' own heartbeat (their runner_host key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from api.auth import AUTH_RESPONSES, AdminDep, HostDep, PrincipalDep
from api.deps import DbDep, KeysDep, SettingsDep
from api.responses import Responses
from sipflow import audit, host_reservations, payload_codec, runner_hosts, store
from sipflow.models import FINAL_STATUSES, utcnow
from sipflow.runner_hosts import Heartbeat, HostAlreadyTaken

router = APIRouter(tags=["pools"], responses=AUTH_RESPONSES)
PoolPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
NO_POOL: Responses = {404: {"description": "no host credential of this pool in the tenant"}}


class HostOut(BaseModel):
    key_id: str
    pool: str
    host_id: str | None
    task_queue: str | None
    state: str = Field(
        description="new (never heard from), live, stale, dead (by heartbeat age), revoked"
    )
    cores: int
    max_agents: int
    running_agents: int
    reserved_agents: int = Field(
        description="slots placements took for sessions whose agents may not run yet"
    )
    free_agents: int
    addresses: list[str]
    last_seen_at: datetime | None
    heartbeat_age_s: float | None


class PoolOut(BaseModel):
    pool: str
    hosts: int
    live_hosts: int
    max_agents: int = Field(description="of the live hosts")
    running_agents: int = Field(description="of the live hosts")
    free_agents: int = Field(description="of the live hosts: what a new session may take")


class PoolList(BaseModel):
    items: list[PoolOut]


class HostList(BaseModel):
    pool: str
    items: list[HostOut]


class HostAdd(BaseModel):
    pool: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: Annotated[str, Field(max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


class HostAdded(BaseModel):
    key_id: str
    pool: str
    secret: str = Field(
        description="the host's key (SIPFLOW_API_KEY of `sipflow runner-host`): shown once"
    )


class HeartbeatAnswer(BaseModel):
    pool: str
    tenant: str
    task_queue: str = Field(description="the host's task queue (from its id)")
    sweep: list[str] = Field(
        description="sessions the host holds something of that ended: remove it"
    )
    codec_keys: list[str] = Field(
        default=[],
        description="the host's own payload codec keys (h:<host>:<id>:base64, current first): "
        "what its worker decodes and encodes its activities with; derived from the stack's "
        "keys and the host id, they decode nothing of other hosts or tenants",
    )


def _hosts(db: DbDep, settings: SettingsDep, tenant: str, pool: str | None) -> list[HostOut]:
    now = utcnow()
    rows = runner_hosts.hosts(db, tenant, pool)
    held = host_reservations.reserved(db, [h.key_id for h, _ in rows])
    return [
        HostOut(**runner_hosts.describe(h, k, settings, now, held.get(h.key_id, 0)))
        for h, k in rows
    ]


@router.get("/pools", response_model=PoolList, summary="The tenant's runner-host pools")
def list_pools(db: DbDep, settings: SettingsDep, principal: PrincipalDep) -> PoolList:
    pools: dict[str, PoolOut] = {}
    for h in _hosts(db, settings, principal.tenant, None):
        p = pools.setdefault(
            h.pool,
            PoolOut(
                pool=h.pool, hosts=0, live_hosts=0, max_agents=0, running_agents=0, free_agents=0
            ),
        )
        p.hosts += 1
        if h.state == "live":
            p.live_hosts += 1
            p.max_agents += h.max_agents
            p.running_agents += h.running_agents
            p.free_agents += h.free_agents
    return PoolList(items=list(pools.values()))


@router.get(
    "/pools/{pool}/hosts", response_model=HostList, responses=NO_POOL, summary="A pool's hosts"
)
def list_hosts(
    pool: PoolPath, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> HostList:
    items = _hosts(db, settings, principal.tenant, pool)
    if not items:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pool {pool!r}")
    return HostList(pool=pool, items=items)


@router.post(
    "/hosts",
    status_code=status.HTTP_201_CREATED,
    response_model=HostAdded,
    summary="A new host credential of a pool of the tenant (the pool exists from its first "
    "host on); a runner_host key, revoked by DELETE /v1/keys/{id}",
)
def add_host(body: HostAdd, db: DbDep, principal: AdminDep) -> HostAdded:
    pool = body.pool
    row, secret = runner_hosts.add_host(db, principal.tenant, pool, body.name)
    audit.record(
        db, principal.tenant, principal.key_id, "pool.add_host", row.key_id, {"pool": pool}
    )
    return HostAdded(key_id=row.key_id, pool=pool, secret=secret)


@router.put(
    "/hosts/heartbeat",
    response_model=HeartbeatAnswer,
    responses={409: {"description": "another credential reports this host id"}},
    summary="A runner host registers / reports its capacity and load (its runner_host key)",
)
def heartbeat(
    body: Heartbeat, db: DbDep, settings: SettingsDep, keys: KeysDep, principal: HostDep
) -> HeartbeatAnswer:
    row = runner_hosts.of_key(db, principal.key_id)
    if row is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is bound to no pool")
    try:
        row = runner_hosts.record_heartbeat(db, row, body, settings.task_queue)
    except HostAlreadyTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    # Ended (or unknown, or another tenant's: not the host's business) sessions are swept.
    sweep = []
    for sid in body.sessions_present:
        session = store.get_session(db, sid)
        if session is None or session.tenant != row.tenant or session.status in FINAL_STATUSES:
            sweep.append(sid)
    queue = row.task_queue or ""
    return HeartbeatAnswer(
        pool=row.pool,
        tenant=row.tenant,
        task_queue=queue,
        sweep=sweep,
        codec_keys=payload_codec.host_key_entries(keys, body.host_id),
    )
