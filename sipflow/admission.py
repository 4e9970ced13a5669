"""Admission of sessions: at most as many running at once as the machine carries.

A session is admitted (status `queued` -> `running`) when the runners of the sessions already
running plus its own fit under the runner limit (and the session count under the session limit);
otherwise it stays `queued` and asks again. The check and the status change happen in one
transaction, serialized by an advisory lock on PostgreSQL and by SQLite's single writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from sipflow.models import SessionRow, utcnow

# Sessions that hold runners (or are about to): what admission counts.
ACTIVE_STATUSES = ("running", "stopping")
# Any fixed number: the PostgreSQL advisory lock that serializes admissions.
ADMISSION_LOCK_ID = 7_270_011


def machine_memory_mb() -> int:
    """MemTotal of this machine in MB (0 when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def runner_limit(max_running_runners: int, runner_memory_mb: int) -> int:
    """The configured limit, or what 70 % of the machine's memory carries (at least 2)."""
    if max_running_runners > 0:
        return max_running_runners
    memory = machine_memory_mb() or 4096
    return max(2, int(memory * 0.7) // max(1, runner_memory_mb))


def runners_of(spec: Mapping[str, Any] | None) -> int:
    """How many runners (agents) a stored spec starts on this machine, all roles (those on a
    runner-host pool run elsewhere)."""
    roles = (spec or {}).get("roles") or {}
    n = 0
    for role in ("callees", "callers"):
        r = roles.get(role)
        if isinstance(r, dict) and not (r.get("pool") or (spec or {}).get("pool")):
            n += int(r.get("agents", 1))
    return max(n, 1)


def _lock(db: Session) -> None:
    bind = db.get_bind()
    if bind.dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADMISSION_LOCK_ID})
    else:  # take SQLite's write lock before reading, so two admissions do not both fit
        db.execute(text("UPDATE session SET status = status WHERE 0"))


def admit(db: Session, session_id: str, runners: int, max_runners: int, max_sessions: int) -> bool:
    """Marks the session `running` if it fits beside the running ones; True if it runs now.
    Idempotent: a session already past `queued` is admitted."""
    _lock(db)
    row = db.get(SessionRow, session_id)
    if row is None:
        raise LookupError(session_id)
    if row.status not in ("queued", "pending"):
        db.rollback()
        return True
    active = db.exec(select(SessionRow.spec).where(col(SessionRow.status).in_(ACTIVE_STATUSES)))
    specs = list(active.all())
    used = sum(runners_of(s) for s in specs)
    fits = used + runners <= max_runners or not specs  # a lone session always runs
    if max_sessions > 0 and len(specs) >= max_sessions:
        fits = False
    if not fits:
        db.rollback()
        return False
    row.status = "running"
    row.started_at = row.started_at or utcnow()
    db.add(row)
    db.commit()
    return True


def counts(db: Session) -> dict[str, int]:
    """Sessions per non-final status, in one query (for `sipflow status` and the bench)."""
    out = dict.fromkeys(("queued", *ACTIVE_STATUSES), 0)
    rows = db.exec(
        select(SessionRow.status, func.count())
        .where(col(SessionRow.status).in_(list(out)))
        .group_by(SessionRow.status)
    ).all()
    out.update({status: n for status, n in rows})
    return out


def oldest_queued(db: Session, limit: int) -> list[str]:
    """The sessions queued longest (the first to ask again when runners free up)."""
    rows = db.exec(
        select(SessionRow.id)
        .where(SessionRow.status == "queued")
        .order_by(col(SessionRow.created_at))
        .limit(limit)
    ).all()
    return list(rows)
