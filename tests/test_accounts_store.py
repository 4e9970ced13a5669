"""API keys, dashboard sign-ins and the audit log on real SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import text

from sipflow import account_store, audit
from sipflow.accounts import KEY_PREFIX, Role, allows
from sipflow.db import session_scope
from sipflow.models import utcnow


def test_a_key_is_stored_as_its_digest_only(database_url: str) -> None:
    with session_scope(database_url) as db:
        row, secret = account_store.create_key(db, "team-a", Role.operator, "ci")
        assert secret.startswith(KEY_PREFIX) and len(secret) >= len(KEY_PREFIX) + 43  # 256 bits
        assert row.digest == hashlib.sha256(secret.encode()).hexdigest()
        dump = db.connection().execute(text("SELECT * FROM api_key")).all()
    assert secret not in repr(dump)
    with session_scope(database_url) as db:
        found = account_store.key_by_secret(db, secret)
        assert found is not None and (found.id, found.tenant, found.role) == (
            row.id, "team-a", "operator",
        )  # fmt: skip
        assert found.usable(utcnow()) and found.created_at.tzinfo is not None
        assert account_store.key_by_secret(db, secret + "x") is None
        _, other = account_store.create_key(db, "team-a", Role.viewer)
        assert other != secret


def test_revoked_and_expired_keys_are_unusable(database_url: str) -> None:
    with session_scope(database_url) as db:
        row, secret = account_store.create_key(db, "t", Role.admin)
        short, short_secret = account_store.create_key(
            db, "t", Role.viewer, expires_in=timedelta(days=1)
        )
        assert account_store.revoke_key(db, row.id) is not None
        first = account_store.get_key(db, row.id)
        assert first is not None and first.revoked_at is not None
        account_store.revoke_key(db, row.id)  # idempotent: the first time stays
        again = account_store.get_key(db, row.id)
        assert again is not None and again.revoked_at == first.revoked_at
        assert account_store.revoke_key(db, "nope") is None
    with session_scope(database_url) as db:
        revoked = account_store.key_by_secret(db, secret)
        assert revoked is not None and not revoked.usable(utcnow())
        expiring = account_store.key_by_secret(db, short_secret)
        assert expiring is not None and expiring.expires_at is not None
        assert expiring.usable(utcnow())
        assert not expiring.usable(utcnow() + timedelta(days=1, seconds=1))
        assert [k.id for k in account_store.list_keys(db, "t")] == [row.id, short.id]
        assert account_store.list_keys(db, "other") == []


def test_last_use_is_written_at_most_once_per_interval(database_url: str) -> None:
    with session_scope(database_url) as db:
        row, _ = account_store.create_key(db, "t", Role.viewer)
        account_store.touch_key(db, row, timedelta(minutes=1))
    with session_scope(database_url) as db:
        first = account_store.get_key(db, row.id)
        assert first is not None and first.last_used_at is not None
        used = first.last_used_at
        account_store.touch_key(db, first, timedelta(minutes=1))
    with session_scope(database_url) as db:
        same = account_store.get_key(db, row.id)
        assert same is not None and same.last_used_at == used
        account_store.touch_key(db, same, timedelta(0))
    with session_scope(database_url) as db:
        later = account_store.get_key(db, row.id)
        assert later is not None and later.last_used_at is not None
        assert later.last_used_at > used


def test_sign_ins_keep_a_digest_and_expire(database_url: str) -> None:
    with session_scope(database_url) as db:
        key, _ = account_store.create_key(db, "t", Role.viewer)
        token = account_store.create_login(db, key, timedelta(hours=1))
        old = account_store.create_login(db, key, timedelta(seconds=-1))
        stored = db.connection().execute(text("SELECT * FROM web_login")).all()
        assert token not in repr(stored) and old not in repr(stored)
        found = account_store.login_key(db, token)
        assert found is not None and found.id == key.id
        assert account_store.login_key(db, old) is None  # expired
        assert account_store.login_key(db, "not-a-token") is None
        assert account_store.purge_logins(db) == 1
        account_store.delete_login(db, token)
        assert account_store.login_key(db, token) is None


def test_audit_events_per_tenant_newest_first_paged(database_url: str) -> None:
    with session_scope(database_url) as db:
        for i in range(5):
            audit.record(db, "team-a", "k1", "session.create", f"s{i}", {"name": f"n{i}"})
        audit.record(db, "team-b", "k2", "session.cancel", "sb")
        rows, total = audit.events(db, "team-a", limit=2)
        assert total == 5 and [r.object_id for r in rows] == ["s4", "s3"]
        rows, _ = audit.events(db, "team-a", limit=2, offset=4)
        assert [r.object_id for r in rows] == ["s0"]
        assert rows[0].detail == {"name": "n0"} and rows[0].key_id == "k1"
        rows, total = audit.events(db, "team-b")
        assert total == 1 and rows[0].action == "session.cancel"
        assert audit.events(db, "team-a", action="session.cancel")[1] == 0


def test_roles_are_ordered() -> None:
    assert allows(Role.admin, Role.operator) and allows(Role.operator, Role.operator)
    assert not allows(Role.viewer, Role.operator) and not allows(Role.operator, Role.admin)
