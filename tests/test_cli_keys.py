"""`sipflow keys create|list|revoke` straight on the database (SQLite and PostgreSQL), and the
local admin key of `sipflow up` that the CLI finds."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from entrypoints.admin_key import cli_key, ensure_admin_key
from entrypoints.cli import app
from sipflow import account_store
from sipflow.db import session_scope
from sipflow.models import utcnow
from sipflow.settings import Settings

runner = CliRunner()


def test_keys_create_list_revoke(database_url: str) -> None:
    env = {"SIPFLOW_DATABASE_URL": database_url}
    made = runner.invoke(
        app,
        ["keys", "create", "--tenant", "team-a", "--role", "operator", "--name", "ci",
         "--expires-days", "7"],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("sfk_") and "shown only now" in made.stderr
    with session_scope(database_url) as db:
        row = account_store.key_by_secret(db, secret)
    assert row is not None and (row.tenant, row.role, row.name) == ("team-a", "operator", "ci")
    assert row.expires_at is not None and row.usable(utcnow())

    listed = runner.invoke(app, ["keys", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (item,) = json.loads(listed.stdout)
    assert item["id"] == row.id and secret not in listed.stdout and "digest" not in item
    table = runner.invoke(app, ["keys", "list", "--tenant", "team-a"], env=env)
    assert row.id in table.stdout and "operator" in table.stdout
    other = runner.invoke(app, ["keys", "list", "--tenant", "x", "--json"], env=env)
    assert json.loads(other.stdout) == []

    revoked = runner.invoke(app, ["keys", "revoke", row.id], env=env)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    with session_scope(database_url) as db:
        again = account_store.key_by_secret(db, secret)
    assert again is not None and not again.usable(utcnow())
    assert runner.invoke(app, ["keys", "revoke", "nope"], env=env).exit_code == 3

    bad = ["keys", "create", "--tenant", "Team A", "--role", "admin"]
    assert runner.invoke(app, bad, env=env).exit_code == 2
    bad_role = ["keys", "create", "--tenant", "t", "--role", "root"]
    assert runner.invoke(app, bad_role, env=env).exit_code == 2


def test_the_local_admin_key_is_kept_0600_and_replaced_when_unusable(
    database_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "data" / "admin.key"
    first = ensure_admin_key(database_url, key_file, "default")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first
    assert ensure_admin_key(database_url, key_file, "default") == first  # still usable: kept
    with session_scope(database_url) as db:
        row = account_store.key_by_secret(db, first)
        assert row is not None and (row.tenant, row.role) == ("default", "admin")
        account_store.revoke_key(db, row.id)
    key_file.chmod(0o644)
    second = ensure_admin_key(database_url, key_file, "default")
    assert second != first and key_file.read_text().strip() == second
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # The CLI sends SIPFLOW_API_KEY if set, else the data dir's admin.key.
    assert cli_key(Settings(data_dir=tmp_path / "data")) == second
    assert cli_key(Settings(data_dir=tmp_path / "data", api_key="sfk_env")) == "sfk_env"  # type: ignore[arg-type]
    assert cli_key(Settings(data_dir=tmp_path / "none")) is None
