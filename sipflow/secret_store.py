"""Tenant-owned named secrets, encrypted at rest (AES-GCM under sipflow.crypto's keyring).

A secret is written and read back only by the code that uses it (a session's SIP passwords, later
schedules' webhook/SMTP secrets); what a user sees of it is whether it exists. The ciphertext is
bound to its tenant and name (associated data), so a row copied to another tenant or name does
not decrypt.
"""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from sipflow.crypto import Keyring
from sipflow.models import SecretRow, utcnow


def _aad(tenant: str, name: str) -> bytes:
    return f"{tenant}\x00{name}".encode()


def _row(db: Session, tenant: str, name: str) -> SecretRow | None:
    return db.exec(
        select(SecretRow).where(SecretRow.tenant == tenant, SecretRow.name == name)
    ).first()


def put(
    db: Session, keys: Keyring, tenant: str, name: str, value: str, commit: bool = True
) -> None:
    """Create or replace; encrypted under the current key."""
    key_id, blob = keys.encrypt(value.encode(), _aad(tenant, name))
    row = _row(db, tenant, name)
    now = utcnow()
    if row is None:
        row = SecretRow(tenant=tenant, name=name, created_at=now, key_id=key_id, ciphertext=blob)
    row.key_id, row.ciphertext, row.updated_at = key_id, blob, now
    db.add(row)
    if commit:
        db.commit()


def get(db: Session, keys: Keyring, tenant: str, name: str) -> str | None:
    """The clear value, for the code that uses it; None when there is no such secret."""
    row = _row(db, tenant, name)
    if row is None:
        return None
    return keys.decrypt(row.key_id, row.ciphertext, _aad(tenant, name)).decode()


def exists(db: Session, tenant: str, name: str) -> bool:
    return _row(db, tenant, name) is not None


def names(db: Session, tenant: str, prefix: str = "") -> list[str]:
    rows = db.exec(
        select(SecretRow.name)
        .where(SecretRow.tenant == tenant, col(SecretRow.name).startswith(prefix))
        .order_by(col(SecretRow.name))
    ).all()
    return list(rows)


def remove(db: Session, tenant: str, name: str) -> bool:
    result = db.exec(  # type: ignore[call-overload]
        delete(SecretRow).where(col(SecretRow.tenant) == tenant, col(SecretRow.name) == name)
    )
    db.commit()
    return bool(result.rowcount)


def reencrypt(db: Session, keys: Keyring) -> int:
    """Re-encrypt every secret not under the current key (after a rotation, before an old key
    is dropped); returns how many changed."""
    changed = 0
    for row in db.exec(select(SecretRow).where(SecretRow.key_id != keys.current)).all():
        aad = _aad(row.tenant, row.name)
        row.key_id, row.ciphertext = keys.encrypt(
            keys.decrypt(row.key_id, row.ciphertext, aad), aad
        )
        row.updated_at = utcnow()
        db.add(row)
        changed += 1
    db.commit()
    return changed
