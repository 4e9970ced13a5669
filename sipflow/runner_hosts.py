"""Runner hosts in the database: one row per host credential (a `runner_host` API key bound to
a tenant and a pool), filled in by the host's heartbeats through the API.

A host never holds database credentials: `sipflow pools add-host` (or POST
/v1/hosts) makes the key and the row; the host sends its id, capacity and load
with that key; revoking the key refuses the host at once (its heartbeats get 401, and it stops).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic import Field as Check
from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, Session, SQLModel, col, select

from sipflow import account_store, host_reservations
from sipflow.accounts import ApiKeyRow, Role
from sipflow.models import utcnow
from sipflow.pool_placement import HostSlot, PoolTooSmall
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

HostState = Literal["new", "live", "stale", "dead", "revoked"]


class RunnerHostRow(SQLModel, table=True):
    __tablename__ = "runner_host"

    key_id: str = Field(primary_key=True, foreign_key="api_key.id", max_length=32)
    tenant: str = Field(index=True, max_length=64)
    pool: str = Field(index=True, max_length=64)
    # Set by the first heartbeat (None: the credential was never used).
    host_id: str | None = Field(default=None, unique=True, index=True, max_length=64)
    task_queue: str | None = Field(default=None, max_length=200)
    cores: int = 0
    max_agents: int = 0
    running_agents: int = 0
    addresses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Heartbeat(BaseModel):
    """What a host reports every SIPFLOW_RUNNER_HOST_HEARTBEAT_S."""

    host_id: str = Check(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    cores: int = Check(ge=1, le=4096)
    max_agents: int = Check(ge=0, le=100_000)
    running_agents: int = Check(ge=0, le=100_000)
    addresses: list[Annotated[str, Check(max_length=64)]] = Check(default=[], max_length=64)
    # Sessions the host holds something of (runners, namespaces): the answer says which of
    # them ended, for the host to sweep.
    sessions_present: list[Annotated[str, Check(max_length=64)]] = Check(
        default=[], max_length=10_000
    )


class HostAlreadyTaken(ValueError):
    pass


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def add_host(db: Session, tenant: str, pool: str, name: str = "") -> tuple[RunnerHostRow, str]:
    """A new host credential of the pool: its row and the key's secret (shown once)."""
    key, secret = account_store.create_key(
        db, tenant, Role.runner_host, name or f"runner host of {pool}"
    )
    row = RunnerHostRow(key_id=key.id, tenant=tenant, pool=pool, created_at=utcnow())
    db.add(row)
    db.commit()
    db.refresh(row)
    return row, secret


def of_key(db: Session, key_id: str) -> RunnerHostRow | None:
    return db.get(RunnerHostRow, key_id)


def host_task_queue(task_queue: str, host_id: str) -> str:
    """The task queue of a host: derived by the API from the host's unique id, never taken
    from the host, so a host cannot claim another host's work."""
    return f"{task_queue}-host-{host_id}"


def record_heartbeat(
    db: Session, row: RunnerHostRow, hb: Heartbeat, task_queue: str
) -> RunnerHostRow:
    """HostAlreadyTaken when another credential reports the same host id."""
    other = db.exec(select(RunnerHostRow).where(RunnerHostRow.host_id == hb.host_id)).first()
    if other is not None and other.key_id != row.key_id:
        raise HostAlreadyTaken(f"host id {hb.host_id!r} belongs to another credential")
    row.host_id, row.task_queue = hb.host_id, host_task_queue(task_queue, hb.host_id)
    row.cores, row.max_agents, row.running_agents = hb.cores, hb.max_agents, hb.running_agents
    row.addresses = list(hb.addresses)
    row.last_seen_at = utcnow()
    db.add(row)
    db.commit()
    db.refresh(row)
    return row


def state(
    row: RunnerHostRow, key: ApiKeyRow | None, settings: Settings, now: datetime
) -> HostState:
    if key is None or not key.usable(now):
        return "revoked"
    seen = _aware(row.last_seen_at)
    if seen is None:
        return "new"
    age = (now - seen).total_seconds()
    if age <= settings.runner_host_stale_s:
        return "live"
    return "stale" if age <= settings.runner_host_dead_s else "dead"


def hosts(
    db: Session, tenant: str, pool: str | None = None
) -> Sequence[tuple[RunnerHostRow, ApiKeyRow | None]]:
    query = select(RunnerHostRow, ApiKeyRow).join(
        ApiKeyRow, col(ApiKeyRow.id) == col(RunnerHostRow.key_id), isouter=True
    )
    query = query.where(RunnerHostRow.tenant == tenant)
    if pool is not None:
        query = query.where(RunnerHostRow.pool == pool)
    rows = db.exec(query.order_by(col(RunnerHostRow.pool), col(RunnerHostRow.host_id))).all()
    return [(h, account_store._fix(k)) for h, k in rows]


def free_slots(row: RunnerHostRow, reserved: int) -> int:
    """Agent slots a new placement may take: the reserved ones count until the heartbeat
    reports their agents running (host_reservations)."""
    return max(row.max_agents - max(row.running_agents, reserved), 0)


def describe(
    row: RunnerHostRow,
    key: ApiKeyRow | None,
    settings: Settings,
    now: datetime,
    reserved: int = 0,
) -> dict[str, Any]:
    seen = _aware(row.last_seen_at)
    return {
        "key_id": row.key_id,
        "pool": row.pool,
        "host_id": row.host_id,
        "task_queue": row.task_queue,
        "state": state(row, key, settings, now),
        "cores": row.cores,
        "max_agents": row.max_agents,
        "running_agents": row.running_agents,
        "reserved_agents": reserved,
        "free_agents": free_slots(row, reserved),
        "addresses": list(row.addresses),
        "last_seen_at": seen,
        "heartbeat_age_s": round((now - seen).total_seconds(), 1) if seen else None,
    }


def live_hosts(
    db: Session, tenant: str, pool: str, settings: Settings
) -> list[tuple[RunnerHostRow, HostSlot]]:
    """The pool's live hosts and their free agent slots, reservations counted."""
    now = utcnow()
    live = [
        h
        for h, key in hosts(db, tenant, pool)
        if h.host_id and h.task_queue and state(h, key, settings, now) == "live"
    ]
    held = host_reservations.reserved(db, [h.key_id for h in live])
    return [
        (
            h,
            HostSlot(
                host_id=h.host_id or "",
                task_queue=h.task_queue or "",
                free=free_slots(h, held.get(h.key_id, 0)),
            ),
        )
        for h in live
    ]


def live_slots(db: Session, tenant: str, pool: str, settings: Settings) -> list[HostSlot]:
    """The pool's live hosts and their free agent slots (what placement spreads over)."""
    return [slot for _, slot in live_hosts(db, tenant, pool, settings)]


def pool_needs(spec: SessionSpec) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Pool -> (agents the session puts there, the spec field that names it)."""
    needs: dict[str, tuple[int, tuple[str, ...]]] = {}
    for role, role_spec, path in (
        ("callee", spec.roles.callees, "callees"),
        ("caller", spec.roles.callers, "callers"),
    ):
        pool = spec.role_pool(role)
        if role_spec is None or pool is None:
            continue
        loc = ("roles", path, "pool") if role_spec.pool else ("pool",)
        agents, first = needs.get(pool, (0, loc))
        needs[pool] = (agents + role_spec.agents, first)
    return needs


def check_capacity(db: Session, tenant: str, spec: SessionSpec, settings: Settings) -> None:
    """PoolTooSmall (with the spec field as `loc`) when a pool's live hosts lack free slots."""
    for pool, (agents, loc) in pool_needs(spec).items():
        slots = live_slots(db, tenant, pool, settings)
        if sum(s.free for s in slots) < agents:
            exc = PoolTooSmall(pool, agents, slots)
            exc.loc = loc
            raise exc
