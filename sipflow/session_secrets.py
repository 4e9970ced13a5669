"""A session's SIP passwords: kept in the secret store, shown and stored everywhere else as "***".

The session row's spec holds "***" where the submitted spec had a password; the passwords
themselves are secrets named session/<id>/<role>/<index> of the session's tenant. The workflow
gets the clear spec (its payloads are encrypted by sipflow.payload_codec), and so do runners.
"Run again" names the session it copies: each "***" of the new spec takes the stored password of
the source's account with the same role and user (same tenant only).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from sqlalchemy import String, cast
from sqlmodel import Session, select

from sipflow import secret_store, store
from sipflow.crypto import Keyring
from sipflow.models import SessionRow

MASK = "***"
ROLES = ("callees", "callers")


class SecretReferenceError(ValueError):
    """A "***" password that no stored password fills; `loc` names the field."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def secret_name(session_id: str, role: str, index: int) -> str:
    return f"session/{session_id}/{role}/{index}"


def _accounts(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(role, index, account) of every account: the role is "callees", "callers" or, for a
    named party, "parties/<name>" (its secrets: session/<id>/parties/<name>/<index>)."""
    roles = spec.get("roles") or {}
    sides = [(role, roles.get(role) or {}) for role in ROLES]
    sides += [(f"parties/{name}", p or {}) for name, p in (roles.get("parties") or {}).items()]
    for role, role_spec in sides:
        for i, account in enumerate(role_spec.get("accounts") or []):
            yield role, i, account


def account_loc(role: str, index: int) -> tuple[str | int, ...]:
    """Where an account's password is in the spec (a 422's `loc`)."""
    return ("roles", *role.split("/"), "accounts", index, "password")


def masked(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy with every password replaced by "***"."""
    out = copy.deepcopy(spec)
    for _, _, account in _accounts(out):
        if account.get("password") is not None:
            account["password"] = MASK
    return out


def references(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """Where the spec says "***" (a password kept by reference)."""
    return [(r, i) for r, i, a in _accounts(spec) if a.get("password") == MASK]


def open_session(
    db: Session,
    keys: Keyring,
    session_id: str,
    tenant: str,
    name: str,
    spec: dict[str, Any],
    target: str | None,
) -> SessionRow:
    """Store the session's row with its spec masked and its passwords as secrets, in one
    transaction; idempotent like store.create_session."""
    row = store.get_session(db, session_id)
    if row is not None:
        return row
    if refs := references(spec):
        role, i = refs[0]
        raise SecretReferenceError(account_loc(role, i), "a '***' password must be resolved first")
    for role, i, account in _accounts(spec):
        if account.get("password") is not None:
            put = secret_store.put
            put(db, keys, tenant, secret_name(session_id, role, i), account["password"], False)
    return store.create_session(db, session_id, tenant, name, masked(spec), target)


def seal_stored(db: Session, keys: Keyring) -> int:
    """Move the clear passwords of rows stored before the secret store into it (the API does
    this at start, after migrating); returns how many rows changed. Idempotent."""
    candidates = db.exec(
        select(SessionRow).where(cast(SessionRow.spec, String).like("%password%"))
    ).all()
    changed = 0
    for row in candidates:
        clear = [
            (r, i, a) for r, i, a in _accounts(row.spec) if a.get("password") not in (None, MASK)
        ]
        if not clear:
            continue
        for role, i, account in clear:
            put = secret_store.put
            put(db, keys, row.tenant, secret_name(row.id, role, i), account["password"], False)
        row.spec = masked(row.spec)
        db.add(row)
        changed += 1
    db.commit()
    return changed


def filled(db: Session, keys: Keyring, row: SessionRow) -> dict[str, Any]:
    """The row's spec with its stored passwords (for the runners of the session)."""
    spec = copy.deepcopy(row.spec)
    for role, i, account in _accounts(spec):
        if account.get("password") == MASK:
            account["password"] = secret_store.get(
                db, keys, row.tenant, secret_name(row.id, role, i)
            )
    return spec


def copy_from(
    db: Session, keys: Keyring, source: SessionRow, tenant: str, spec: dict[str, Any]
) -> dict[str, Any]:
    """The new spec with each "***" replaced by the password of the source session's account
    of the same role and user. The source must be the same tenant's (the caller checks that it
    exists for this tenant)."""
    out = copy.deepcopy(spec)
    if source.tenant != tenant:
        raise SecretReferenceError(("query", "copy_secrets_from"), "no such session")
    stored = {(r, a.get("user")): i for r, i, a in _accounts(source.spec) if a.get("password")}
    for role, i, account in _accounts(out):
        if account.get("password") != MASK:
            continue
        index = stored.get((role, account.get("user")))
        value = None
        if index is not None:
            value = secret_store.get(db, keys, tenant, secret_name(source.id, role, index))
        if value is None:
            raise SecretReferenceError(
                ("body", *account_loc(role, i)),
                f"'***' keeps a password by reference, but session {source.id} has none for "
                f"{role} user {account.get('user')!r}",
            )
        account["password"] = value
    return out
