"""A named party's SIP password is a secret like the callers' and callees': stored encrypted
(session/<id>/parties/<name>/<i>, schedule/<id>/session/parties/<name>/<i>), shown as "***",
filled in for the runners, kept by reference on "run again", on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sipflow import schedule_store, secret_store, session_secrets, store
from sipflow.crypto import keyring
from sipflow.db import session_scope
from sipflow.models import ScheduleRow
from sipflow.session_secrets import MASK, SecretReferenceError, secret_name
from sipflow.settings import Settings

PW = "carols-own-pw"


def party_spec(password: str) -> dict[str, Any]:
    return {
        "target": {"host": "127.0.0.1", "port": 5090, "registrar": True},
        "roles": {
            "callers": {"accounts": [{"user": "alice"}]},
            "callees": {"accounts": [{"user": "bob", "password": "bobs-pw"}]},
            "parties": {"carol": {"accounts": [{"user": "carol", "password": password}]}},
        },
    }


def test_party_password_is_a_session_secret(database_url: str, tmp_path: Path) -> None:
    keys = keyring(Settings(data_dir=tmp_path))
    with session_scope(database_url) as db:
        row = session_secrets.open_session(db, keys, "s1", "t", "n", party_spec(PW), None)
        assert PW not in json.dumps(row.spec)
        assert row.spec["roles"]["parties"]["carol"]["accounts"][0]["password"] == MASK
        name = secret_name("s1", "parties/carol", 0)
        assert name == "session/s1/parties/carol/0"
        assert secret_store.get(db, keys, "t", name) == PW
        # The runners' spec (api/routes/runner_files.py) has it again.
        filled = session_secrets.filled(db, keys, row)
        assert filled["roles"]["parties"]["carol"]["accounts"][0]["password"] == PW
        # "Run again" keeps it by reference (same party, same user) ...
        again = session_secrets.copy_from(db, keys, row, "t", party_spec(MASK))
        assert again["roles"]["parties"]["carol"]["accounts"][0]["password"] == PW
        # ... and names the party's field when it cannot.
        other = party_spec(MASK)
        other["roles"]["parties"]["carol"]["accounts"][0]["user"] = "dave"
        with pytest.raises(SecretReferenceError) as exc:
            session_secrets.copy_from(db, keys, row, "t", other)
        assert exc.value.loc == (
            "body", "roles", "parties", "carol", "accounts", 0, "password"
        )  # fmt: skip
        assert session_secrets.references(party_spec(MASK)) == [("parties/carol", 0)]


def test_sessions_stored_with_a_clear_party_password_are_sealed(
    database_url: str, tmp_path: Path
) -> None:
    """Rows stored before this (the party's password in clear) are sealed like any other."""
    keys = keyring(Settings(data_dir=tmp_path))
    with session_scope(database_url) as db:
        store.create_session(db, "old1", "t", "n", party_spec(PW), None)
        assert session_secrets.seal_stored(db, keys) == 1
        row = store.get_session(db, "old1")
        assert row is not None and PW not in json.dumps(row.spec)
        assert secret_store.get(db, keys, "t", "session/old1/parties/carol/0") == PW


def test_schedule_keeps_the_party_password_sealed(database_url: str, tmp_path: Path) -> None:
    keys = keyring(Settings(data_dir=tmp_path))
    spec = {"session": party_spec(PW)}
    with session_scope(database_url) as db:
        sealed = schedule_store.seal(db, keys, "t", "sch1", spec)
        db.commit()
        assert PW not in json.dumps(sealed)
        names = secret_store.names(db, "t", "schedule/sch1/")
        assert "schedule/sch1/session/parties/carol/0" in names, names
        row = ScheduleRow(id="sch1", tenant="t", name="n", spec=sealed)
        out = schedule_store.unsealed(db, keys, row)
        assert out["session"]["roles"]["parties"]["carol"]["accounts"][0]["password"] == PW
        # A "***" with nothing stored names the party's field.
        with pytest.raises(schedule_store.MissingSecret) as exc:
            schedule_store.seal(db, keys, "t", "sch2", {"session": party_spec(MASK)})
        assert exc.value.loc[-5:] == ("parties", "carol", "accounts", 0, "password")
