"""Agent slots reserved on runner hosts at placement (docs/runner-hosts.md, "Capacity").

A host's free slots in its heartbeat lag behind placements: a session placed a moment ago has
not started its agents when the next session is placed. So the placement reserves the slots it
takes (one row per session and host, with the runners it put there), and a host's free slots
are `max_agents - max(running_agents, reserved)`: a session's reserved slots count from its
placement on, and once its agents run (and the heartbeat reports them) they are not counted
twice. A reservation ends when its session's clean-up releases it, when the session has a final
status, or when it expires (the session's expected length, twice, plus 15 minutes: a session
whose workflow vanished does not hold slots forever).

Placements of one pool are serialized: the placement first writes the pool's host rows (an
UPDATE that changes nothing), which takes their row locks on PostgreSQL and the write lock on
SQLite, then reads the free slots and inserts its reservations in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, DateTime, and_, delete, func, not_, update
from sqlmodel import Field, Session, SQLModel, col, select

from sipflow.models import FINAL_STATUSES, SessionRow, utcnow
from sipflow.pool_placement import HostShare

DEFAULT_HOLD_S = 3600.0
EXTRA_HOLD_S = 900.0


class ReservationRow(SQLModel, table=True):
    __tablename__ = "runner_host_reservation"

    session_id: str = Field(primary_key=True, max_length=32)
    key_id: str = Field(
        primary_key=True, foreign_key="runner_host.key_id", max_length=32, index=True
    )
    pool: str = Field(max_length=64)
    host_id: str = Field(max_length=64)
    task_queue: str = Field(max_length=200)
    runner_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    agents: int = 0  # len(runner_ids), summed by the database
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def lock_pool(db: Session, tenant: str, pool: str) -> None:
    """Serializes placements on the pool (see the module's doc)."""
    from sipflow.runner_hosts import RunnerHostRow

    db.exec(  # type: ignore[call-overload]
        update(RunnerHostRow)
        .where(col(RunnerHostRow.tenant) == tenant, col(RunnerHostRow.pool) == pool)
        .values(pool=RunnerHostRow.pool)
    )


def _in_force(now: datetime) -> Any:
    """Reservations whose session has no final status (or no row yet) and that did not expire."""
    ended = select(SessionRow.id).where(col(SessionRow.status).in_(FINAL_STATUSES))
    return and_(col(ReservationRow.expires_at) > now, col(ReservationRow.session_id).not_in(ended))


def reserved(db: Session, key_ids: Sequence[str] | None = None) -> dict[str, int]:
    """Host credential (key id) -> agent slots held by reservations still in force."""
    query = (
        select(ReservationRow.key_id, func.sum(ReservationRow.agents))
        .where(_in_force(utcnow()))
        .group_by(col(ReservationRow.key_id))
    )
    if key_ids is not None:
        query = query.where(col(ReservationRow.key_id).in_(list(key_ids)))
    return {k: int(n or 0) for k, n in db.exec(query).all()}


def of_session(db: Session, session_id: str, pool: str) -> list[HostShare]:
    """The session's reservations on the pool as shares (a retried placement returns them)."""
    rows = db.exec(
        select(ReservationRow)
        .where(ReservationRow.session_id == session_id, ReservationRow.pool == pool)
        .order_by(col(ReservationRow.host_id))
    ).all()
    return [
        HostShare(host_id=r.host_id, task_queue=r.task_queue, runner_ids=list(r.runner_ids))
        for r in rows
    ]


def hold_s(db: Session, session_id: str) -> float:
    """How long a session's reservation lasts at most: twice its expected length + 15 min."""
    from sipflow.spec import SessionSpec

    row = db.get(SessionRow, session_id)
    if row is None:
        return DEFAULT_HOLD_S
    try:
        return SessionSpec.model_validate(row.spec).expected_duration_s() * 2 + EXTRA_HOLD_S
    except ValueError:
        return DEFAULT_HOLD_S


def reserve(
    db: Session, session_id: str, pool: str, shares: list[HostShare], key_of: dict[str, str]
) -> None:
    """Adds the session's reservations (in the caller's transaction; it commits)."""
    now = utcnow()
    expires = now + timedelta(seconds=hold_s(db, session_id))
    for s in shares:
        db.add(
            ReservationRow(
                session_id=session_id,
                key_id=key_of[s.host_id],
                pool=pool,
                host_id=s.host_id,
                task_queue=s.task_queue,
                runner_ids=list(s.runner_ids),
                agents=len(s.runner_ids),
                created_at=now,
                expires_at=expires,
            )
        )


def release(db: Session, session_id: str) -> int:
    """Ends the session's reservations; returns how many there were."""
    result = db.exec(  # type: ignore[call-overload]
        delete(ReservationRow).where(col(ReservationRow.session_id) == session_id)
    )
    db.commit()
    return int(result.rowcount or 0)


def forget_ended(db: Session) -> None:
    """Deletes reservations that no longer hold anything (ended or expired sessions)."""
    db.exec(delete(ReservationRow).where(not_(_in_force(utcnow()))))  # type: ignore[call-overload]
