"""Schedules, their runs and alert deliveries in the database; their secrets in the secret store.

A schedule's row holds its spec with "***" for every secret: the SIP passwords of its session
spec (`schedule/<id>/session/<role>/<i>`, a named party's role `parties/<name>`) and its
channels' tokens and passwords (`schedule/<id>/alerts/<i>/<field>`). A "***" sent back on
update keeps the stored secret.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, delete, func, select

from sipflow import capacity, secret_store
from sipflow.capacity_store import CapacitySearchRow
from sipflow.crypto import Keyring
from sipflow.models import AlertDeliveryRow, ScheduleRow, ScheduleRunRow, SessionRow, utcnow

MASK = "***"
ROLES = ("callees", "callers")
CHANNEL_SECRETS = ("token", "password")


class MissingSecret(ValueError):
    """A "***" that no stored secret fills; `loc` names the field."""

    def __init__(self, loc: tuple[str | int, ...]) -> None:
        super().__init__("'***' keeps a stored secret, but there is none to keep")
        self.loc = loc


def _slots(spec: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any], str]]:
    """(path, holder, key) of every secret of a schedule spec."""
    roles = (spec.get("session") or {}).get("roles") or {}
    sides: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        ((role,), roles.get(role) or {}) for role in ROLES
    ]
    sides += [(("parties", name), p or {}) for name, p in (roles.get("parties") or {}).items()]
    for where, role_spec in sides:
        for i, account in enumerate(role_spec.get("accounts") or []):
            yield ("session", "roles", *where, "accounts", i, "password"), account, "password"
    for i, channel in enumerate(spec.get("alerts") or []):
        for key in CHANNEL_SECRETS:
            if key in channel:
                yield ("alerts", i, key), channel, key


def _secret_name(schedule_id: str, path: tuple[str | int, ...]) -> str:
    if path[0] == "session":  # ("session", "roles", *role, "accounts", i, "password")
        role = "/".join(str(p) for p in path[2:-3])
        return f"schedule/{schedule_id}/session/{role}/{path[-2]}"
    return f"schedule/{schedule_id}/alerts/{path[1]}/{path[2]}"


def seal(
    db: Session, keys: Keyring, tenant: str, schedule_id: str, spec: dict[str, Any]
) -> dict[str, Any]:
    """Secrets of `spec` into the secret store (not committed); the spec with "***" for them."""
    out = copy.deepcopy(spec)
    for path, holder, key in _slots(out):
        value, name = holder.get(key), _secret_name(schedule_id, path)
        if value is None:
            continue
        if value == MASK:
            if not secret_store.exists(db, tenant, name):
                raise MissingSecret(("body", *path))
        else:
            secret_store.put(db, keys, tenant, name, value, commit=False)
        holder[key] = MASK
    return out


def unsealed(db: Session, keys: Keyring, row: ScheduleRow) -> dict[str, Any]:
    """The row's spec with its secrets in clear: for the schedule's action and the alerts."""
    out = copy.deepcopy(row.spec)
    for path, holder, key in _slots(out):
        if holder.get(key) == MASK:
            holder[key] = secret_store.get(db, keys, row.tenant, _secret_name(row.id, path))
    return out


def drop_secrets(db: Session, tenant: str, schedule_id: str) -> None:
    for name in secret_store.names(db, tenant, f"schedule/{schedule_id}/"):
        secret_store.remove(db, tenant, name)


# -- schedules -----------------------------------------------------------------------------------
def get(db: Session, schedule_id: str, tenant: str | None = None) -> ScheduleRow | None:
    row = db.get(ScheduleRow, schedule_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        return None
    return row


def create(db: Session, row: ScheduleRow) -> ScheduleRow:
    db.add(row)
    db.commit()
    db.refresh(row)
    return row


def save(db: Session, row: ScheduleRow) -> ScheduleRow:
    row.updated_at = utcnow()
    db.add(row)
    db.commit()
    db.refresh(row)
    return row


def list_for(db: Session, tenant: str, limit: int, offset: int) -> tuple[list[ScheduleRow], int]:
    where = ScheduleRow.tenant == tenant
    total = int(db.exec(select(func.count()).select_from(ScheduleRow).where(where)).one())
    rows = db.exec(
        select(ScheduleRow).where(where).order_by(col(ScheduleRow.created_at).desc())
        .limit(limit).offset(offset)
    ).all()  # fmt: skip
    return list(rows), total


def remove(db: Session, row: ScheduleRow) -> None:
    drop_secrets(db, row.tenant, row.id)
    db.delete(row)
    db.commit()


# -- runs ----------------------------------------------------------------------------------------
# The state of a run the tenant's policy refused to start (e.g. its concurrent-sessions quota).
SKIPPED = "skipped"
# The state of a run cancelled before its end (overlap policy "cancel other").
CANCELLED = "cancelled"


def skip_run(db: Session, row: ScheduleRunRow, reason: str) -> None:
    row.state, row.verdict, row.note, row.judged_at = SKIPPED, SKIPPED, reason[:255], utcnow()
    db.add(row)
    db.commit()


def record_run(
    db: Session,
    schedule_id: str,
    session_id: str,
    scheduled_at: datetime | None,
    late_s: float | None = None,
    missed: int | None = None,
) -> ScheduleRunRow:
    """Idempotent (a retried activity records the run once)."""
    row = db.exec(select(ScheduleRunRow).where(ScheduleRunRow.session_id == session_id)).first()
    if row is None:
        row = ScheduleRunRow(
            schedule_id=schedule_id,
            session_id=session_id,
            scheduled_at=scheduled_at,
            started_at=utcnow(),
            late_s=late_s,
            missed=missed,
        )
        db.add(row)
        db.commit()
        db.refresh(row)
    return row


def run(db: Session, session_id: str) -> ScheduleRunRow | None:
    return db.exec(select(ScheduleRunRow).where(ScheduleRunRow.session_id == session_id)).first()


def runs(
    db: Session, schedule_id: str, limit: int = 100, state: str | None = None
) -> list[ScheduleRunRow]:
    query = select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == schedule_id)
    if state is not None:
        query = query.where(ScheduleRunRow.state == state)
    query = query.order_by(col(ScheduleRunRow.id).desc()).limit(limit)
    return list(db.exec(query).all())


def measured_of(db: Session, session_ids: list[str]) -> dict[str, dict[str, float | None]]:
    """Each session's stored metrics (those that finished); a capacity search's answer."""
    if not session_ids:
        return {}
    query = select(SessionRow.id, SessionRow.summary).where(col(SessionRow.id).in_(session_ids))
    out = {sid: (summary or {}).get("measured") or {} for sid, summary in db.exec(query).all()}
    return out | {sid: capacity.measured_of(res) for sid, res in _searches(db, session_ids)}


def capacity_runs(db: Session, run_ids: list[str]) -> set[str]:
    """Which of these runs are capacity searches (a capacity schedule's runs)."""
    return {sid for sid, _ in _searches(db, run_ids)}


def _searches(db: Session, ids: list[str]) -> list[tuple[str, Mapping[str, Any] | None]]:
    if not ids:
        return []
    query = select(CapacitySearchRow.id, CapacitySearchRow.result).where(
        col(CapacitySearchRow.id).in_(ids)
    )
    return [(sid, res) for sid, res in db.exec(query).all()]


def previous_state(
    db: Session, schedule_id: str, before_id: int, with_skipped: bool = False
) -> str | None:
    """The state of the last run judged before this one (the run's own row id). Skipped and
    cancelled runs say nothing about the SUT: left out unless `with_skipped`."""
    query = (
        select(ScheduleRunRow.state)
        .where(
            ScheduleRunRow.schedule_id == schedule_id,
            col(ScheduleRunRow.state).is_not(None),
            col(ScheduleRunRow.id) < before_id,
            *([] if with_skipped else [col(ScheduleRunRow.state).not_in([SKIPPED, CANCELLED])]),
        )
        .order_by(col(ScheduleRunRow.id).desc())
        .limit(1)
    )
    return db.exec(query).first()


def passing_measurements(
    db: Session, schedule_id: str, before_id: int, n: int
) -> list[tuple[str, dict[str, float | None]]]:
    """(session id, measured) of the last `n` runs before this one whose state is pass (a
    capacity schedule's runs: their search's answer as sipflow.capacity.CAPACITY_METRICS)."""
    query = (
        select(ScheduleRunRow.session_id, SessionRow.summary, CapacitySearchRow.result)
        .outerjoin(SessionRow, col(SessionRow.id) == col(ScheduleRunRow.session_id))
        .outerjoin(CapacitySearchRow, col(CapacitySearchRow.id) == col(ScheduleRunRow.session_id))
        .where(
            ScheduleRunRow.schedule_id == schedule_id,
            ScheduleRunRow.state == "pass",
            col(ScheduleRunRow.id) < before_id,
        )
        .order_by(col(ScheduleRunRow.id).desc())
        .limit(n)
    )
    return [
        (sid, (summary or {}).get("measured") or {} if summary else capacity.measured_of(found))
        for sid, summary, found in db.exec(query).all()
    ]


def record_delivery(db: Session, row: AlertDeliveryRow) -> None:
    db.add(row)
    db.commit()


def deliveries(db: Session, schedule_id: str, limit: int = 50) -> list[AlertDeliveryRow]:
    query = (
        select(AlertDeliveryRow)
        .where(AlertDeliveryRow.schedule_id == schedule_id)
        .order_by(col(AlertDeliveryRow.id).desc())
        .limit(limit)
    )
    return list(db.exec(query).all())


def remove_runs(db: Session, schedule_id: str) -> None:
    db.exec(delete(ScheduleRunRow).where(col(ScheduleRunRow.schedule_id) == schedule_id))  # type: ignore[call-overload]
    db.exec(delete(AlertDeliveryRow).where(col(AlertDeliveryRow.schedule_id) == schedule_id))  # type: ignore[call-overload]
    db.commit()


def missed_before(db: Session, schedule_id: str, run_id: int) -> int:
    """The highest count of missed runs an earlier run of the schedule saw (0: none known)."""
    seen = db.exec(
        select(func.max(ScheduleRunRow.missed)).where(
            ScheduleRunRow.schedule_id == schedule_id, col(ScheduleRunRow.id) < run_id
        )
    ).first()
    return int(seen or 0)
