"""The local user's admin key: `sipflow up` (every embedded stack) makes sure one is usable and
keeps it in data_dir/admin.key (mode 0600), where the CLI finds it."""

from __future__ import annotations

import os
from pathlib import Path

from sipflow import account_store
from sipflow.accounts import Role
from sipflow.db import migrate, session_scope
from sipflow.models import utcnow
from sipflow.settings import Settings

LOCAL_ADMIN_NAME = "local admin (sipflow up)"


def read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def write_key(path: Path, secret: str) -> None:
    """Readable by the owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)  # an older file may have had another mode


def ensure_admin_key(database_url: str, key_file: Path, tenant: str) -> str:
    """The admin key in key_file if it is still usable, else a new one written there."""
    migrate(database_url)
    with session_scope(database_url) as db:
        secret = read_key(key_file)
        row = account_store.key_by_secret(db, secret) if secret else None
        if secret and row and row.usable(utcnow()) and row.role == Role.admin.value:
            return secret
        _, secret = account_store.create_key(db, tenant, Role.admin, LOCAL_ADMIN_NAME)
    write_key(key_file, secret)
    return secret


def cli_key(settings: Settings) -> str | None:
    """The key the CLI sends: SIPFLOW_API_KEY, else the local admin key of the data dir."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    return read_key(settings.admin_key_file)
