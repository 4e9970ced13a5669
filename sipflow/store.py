"""Reads and writes of sessions, runners and metric intervals (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from sipflow.messages import DoneMessage, StatsMessage
from sipflow.models import Interval, MetricInterval, RunnerRow, SessionRow, utcnow


def create_session(
    db: Session, session_id: str, tenant: str, name: str, spec: dict[str, Any], target: str | None
) -> SessionRow:
    """Idempotent: a second call for the same id returns the stored row."""
    row = db.get(SessionRow, session_id)
    if row is None:
        row = SessionRow(
            id=session_id, tenant=tenant, name=name, spec=spec, target=target, created_at=utcnow()
        )
        db.add(row)
        db.commit()
    return row


def set_target(
    db: Session, session_id: str, target: str, resolved: dict[str, Any] | None = None
) -> None:
    """The target as resolved at the session's start (a dns target): shown, and as found."""
    row = db.get(SessionRow, session_id)
    if row is None:
        raise LookupError(session_id)
    row.target = target[:255]
    row.resolved_target = resolved
    db.add(row)
    db.commit()


def set_status(db: Session, session_id: str, status: str) -> None:
    row = db.get(SessionRow, session_id)
    if row is None:
        raise LookupError(session_id)
    row.status = status
    if status == "running" and row.started_at is None:
        row.started_at = utcnow()
    db.add(row)
    db.commit()


def finish_session(
    db: Session,
    session_id: str,
    status: str,
    verdict: str,
    summary: dict[str, Any],
    reasons: list[str],
) -> None:
    row = db.get(SessionRow, session_id)
    if row is None:
        raise LookupError(session_id)
    row.status, row.verdict, row.summary, row.reasons = status, verdict, summary, reasons
    row.finished_at = row.finished_at or utcnow()
    db.add(row)
    db.commit()


def upsert_runner(db: Session, session_id: str, runner_id: str, role: str, address: str) -> None:
    row = _runner(db, session_id, runner_id)
    if row is None:
        db.add(RunnerRow(session_id=session_id, runner_id=runner_id, role=role, address=address))
        db.commit()


def _runner(db: Session, session_id: str, runner_id: str) -> RunnerRow | None:
    return db.exec(
        select(RunnerRow).where(
            RunnerRow.session_id == session_id, RunnerRow.runner_id == runner_id
        )
    ).first()


def never_started(db: Session, session_id: str, runner_ids: list[str]) -> set[str]:
    """Runners that will not start any more: the session is stopping and they were never
    registered (e.g. callers of a session whose callees failed to register)."""
    row = db.get(SessionRow, session_id)
    if row is None or row.status != "stopping":
        return set()
    started = {r.runner_id for r in runners(db, session_id)}
    return set(runner_ids) - started


def runner_last_seq(db: Session, session_id: str, runner_id: str) -> int | None:
    row = _runner(db, session_id, runner_id)
    return row.last_seq if row is not None else None


# A runner's state only moves forward; a late retained "running" must not undo "done". "lost"
# is the exception: after a broker restart the will is published and the agent comes back.
_FINAL = {"done", "failed", "lost"}


def set_runner_state(
    db: Session, session_id: str, runner_id: str, state: str, detail: str | None
) -> bool:
    """True when the stored state changed."""
    row = _runner(db, session_id, runner_id)
    if row is None or row.state == state or row.state in ("done", "failed"):
        return False
    row.state, row.detail = state, detail
    db.add(row)
    db.commit()
    return True


def store_done(db: Session, msg: DoneMessage) -> None:
    row = _runner(db, msg.session_id, msg.runner_id)
    if row is None:
        row = RunnerRow(session_id=msg.session_id, runner_id=msg.runner_id, role=msg.role)
    row.exit_code, row.ok, row.last_seq = msg.exit_code, msg.ok, msg.last_seq
    row.summary = msg.summary.model_dump()
    row.failure_reasons = msg.failure_reasons
    if msg.registration is not None:
        row.registration = msg.registration.model_dump(mode="json")
    if msg.steps:
        row.steps = [s.model_dump(mode="json") for s in msg.steps]
    if row.state not in _FINAL or row.state == "lost":
        row.state = "done" if msg.ok else "failed"
    if msg.error:
        row.detail = msg.error
    db.add(row)
    db.commit()


def store_interval(db: Session, msg: StatsMessage) -> bool:
    """Insert one stats message; a duplicate (same session, runner, seq) is a no-op. True if new."""
    values = {"session_id": msg.session_id, **Interval.from_message(msg).model_dump()}
    bind = db.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(MetricInterval).values(**values).on_conflict_do_nothing()
    returning = stmt.returning(MetricInterval.id)  # type: ignore[call-overload]
    inserted = db.execute(returning).first() is not None
    db.commit()
    return inserted


def store_intervals(db: Session, msgs: list[StatsMessage]) -> int:
    """Insert stats messages in one statement and commit; duplicates (same session, runner,
    seq) are no-ops. Returns how many rows were new."""
    return len(store_new_intervals(db, msgs))


def store_new_intervals(db: Session, msgs: list[StatsMessage]) -> list[StatsMessage]:
    """store_intervals, returning the messages whose rows were new (the metrics count those)."""
    if not msgs:
        return []
    rows = [{"session_id": m.session_id, **Interval.from_message(m).model_dump()} for m in msgs]
    bind = db.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(MetricInterval).values(rows).on_conflict_do_nothing()
    returning = stmt.returning(  # type: ignore[call-overload]
        MetricInterval.session_id, MetricInterval.runner_id, MetricInterval.seq
    )
    new = {(sid, rid, seq) for sid, rid, seq in db.execute(returning).all()}
    db.commit()
    fresh = []
    for m in msgs:  # a message twice in one batch: its row is new once
        key = (m.session_id, m.runner_id, m.seq)
        if key in new:
            new.discard(key)
            fresh.append(m)
    return fresh


def runner_rows(db: Session, session_id: str) -> dict[str, tuple[str, int | None]]:
    """runner id -> (state, last_seq from its done message)."""
    rows = db.exec(
        select(RunnerRow.runner_id, RunnerRow.state, RunnerRow.last_seq).where(
            RunnerRow.session_id == session_id
        )
    ).all()
    return {rid: (state, last) for rid, state, last in rows}


def stored_seqs(db: Session, session_id: str) -> dict[str, int]:
    """Number of stored intervals per runner."""
    rows = db.exec(
        select(MetricInterval.runner_id, func.count())
        .where(MetricInterval.session_id == session_id)
        .group_by(MetricInterval.runner_id)
    ).all()
    return {rid: n for rid, n in rows}


def intervals(db: Session, session_id: str) -> Sequence[MetricInterval]:
    return db.exec(
        select(MetricInterval)
        .where(MetricInterval.session_id == session_id)
        .order_by(col(MetricInterval.time), col(MetricInterval.runner_id))
    ).all()


def runners(db: Session, session_id: str) -> Sequence[RunnerRow]:
    return db.exec(
        select(RunnerRow)
        .where(RunnerRow.session_id == session_id)
        .order_by(col(RunnerRow.runner_id))
    ).all()


def list_sessions(
    db: Session,
    *,
    tenant: str | None = None,
    status: str | None = None,
    verdict: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[SessionRow], int]:
    q = select(SessionRow)
    if tenant:
        q = q.where(SessionRow.tenant == tenant)
    if status:
        q = q.where(SessionRow.status == status)
    if verdict:
        q = q.where(SessionRow.verdict == verdict)
    if since:
        q = q.where(col(SessionRow.created_at) >= since)
    total = db.exec(select(func.count()).select_from(q.subquery())).one()
    rows = db.exec(q.order_by(col(SessionRow.created_at).desc()).offset(offset).limit(limit)).all()
    return rows, total


def get_session(db: Session, session_id: str) -> SessionRow | None:
    return db.get(SessionRow, session_id)


def mark_error(db: Session, session_id: str, reason: str) -> None:
    """A session that could not be started (e.g. Temporal unreachable): error, with the reason."""
    row = db.get(SessionRow, session_id)
    if row is None:
        raise LookupError(session_id)
    row.status, row.verdict = "error", "error"
    row.reasons = [*(row.reasons or []), reason]
    row.finished_at = row.finished_at or utcnow()
    db.add(row)
    db.commit()
