"""Reads and writes of API keys and dashboard sign-ins (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from sipflow.accounts import ApiKeyRow, Role, WebLoginRow, digest, new_secret
from sipflow.models import utcnow


def _aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def create_key(
    db: Session,
    tenant: str,
    role: Role,
    name: str = "",
    expires_in: timedelta | None = None,
) -> tuple[ApiKeyRow, str]:
    """A new key and its secret (the only time the secret exists outside the caller)."""
    secret = new_secret()
    now = utcnow()
    row = ApiKeyRow(
        id=uuid.uuid4().hex[:12],
        digest=digest(secret),
        name=name or f"{role.value} key",
        tenant=tenant,
        role=role.value,
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
    )
    db.add(row)
    db.commit()
    return row, secret


def _fix(row: ApiKeyRow | None) -> ApiKeyRow | None:
    # As loaded values, not changes: a row marked dirty here would be flushed by the request's
    # next query, and its write transaction would hold SQLite's lock for the request's life.
    if row is not None:
        for name in ("created_at", "expires_at", "revoked_at", "last_used_at"):
            set_committed_value(row, name, _aware(getattr(row, name)))
    return row


def key_by_secret(db: Session, secret: str) -> ApiKeyRow | None:
    """The key whose secret this is, usable or not."""
    return _fix(db.exec(select(ApiKeyRow).where(ApiKeyRow.digest == digest(secret))).first())


def get_key(db: Session, key_id: str) -> ApiKeyRow | None:
    return _fix(db.get(ApiKeyRow, key_id))


def list_keys(db: Session, tenant: str | None = None) -> Sequence[ApiKeyRow]:
    q = select(ApiKeyRow)
    if tenant is not None:
        q = q.where(ApiKeyRow.tenant == tenant)
    rows = db.exec(q.order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))).all()
    return [r for r in rows if _fix(r)]


def revoke_key(db: Session, key_id: str) -> ApiKeyRow | None:
    """Idempotent: a revoked key keeps its first revocation time. None if there is no such key."""
    row = get_key(db, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.add(row)
        db.commit()
    return row


def touch_key(db: Session, row: ApiKeyRow, every: timedelta) -> None:
    """Record a use, at most once per `every` (a write per request would cost more than the
    lookup it records)."""
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= every:
        row.last_used_at = now
        db.add(row)
        db.commit()


# -- dashboard sign-ins ------------------------------------------------------------------------
def create_login(db: Session, key: ApiKeyRow, ttl: timedelta) -> str:
    """A new sign-in for this key; returns the cookie's token (only its digest is stored)."""
    token = secrets_token()
    now = utcnow()
    db.add(WebLoginRow(digest=digest(token), key_id=key.id, created_at=now, expires_at=now + ttl))
    db.commit()
    return token


def secrets_token() -> str:
    return new_secret(prefix="")


def login_key(db: Session, token: str) -> ApiKeyRow | None:
    """The key behind a sign-in that has not expired (the key itself may be unusable)."""
    login = db.get(WebLoginRow, digest(token))
    if login is None or (_aware(login.expires_at) or utcnow()) <= utcnow():
        return None
    return get_key(db, login.key_id)


def delete_login(db: Session, token: str) -> None:
    login = db.get(WebLoginRow, digest(token))
    if login is not None:
        db.delete(login)
        db.commit()


def purge_logins(db: Session) -> int:
    """Remove expired sign-ins; how many."""
    rows = db.exec(select(WebLoginRow).where(col(WebLoginRow.expires_at) <= utcnow())).all()
    for row in rows:
        db.delete(row)
    db.commit()
    return len(rows)
