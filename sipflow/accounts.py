"""API keys, dashboard sign-ins and roles: who may do what, in which tenant.

A key is a random 256-bit secret shown once at creation; only its SHA-256 digest is stored, so
a lookup is one indexed equality (microseconds) and a stolen database holds no usable key. A
tenant is a plain name on the key: every object a key creates or sees is that tenant's.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

KEY_PREFIX = "sfk_"  # recognisable in logs and by secret scanners
KEY_BYTES = 32  # 256 bits


class Role(StrEnum):
    viewer = "viewer"  # reads its tenant's sessions, reports and live streams
    operator = "operator"  # also starts, changes (rate) and cancels sessions
    admin = "admin"  # also manages keys and reads the audit log
    # A runner host of one pool (sipflow/runner_hosts.py): it may only register and heartbeat
    # that host; every other route refuses it.
    runner_host = "runner_host"


_RANK = {Role.runner_host: -1, Role.viewer: 0, Role.operator: 1, Role.admin: 2}


def allows(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


def new_secret(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(KEY_BYTES)


def digest(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex (a 256-bit random secret needs no salt)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def _ts(nullable: bool) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32)
    digest: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=120)
    tenant: str = Field(index=True, max_length=64)
    role: str = Field(max_length=16)
    created_at: datetime = _ts(False)
    expires_at: datetime | None = _ts(True)
    revoked_at: datetime | None = _ts(True)
    last_used_at: datetime | None = _ts(True)

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class WebLoginRow(SQLModel, table=True):
    """A dashboard sign-in: the cookie holds a random token, the row only its digest."""

    __tablename__ = "web_login"

    digest: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(foreign_key="api_key.id", index=True, max_length=32)
    created_at: datetime = _ts(False)
    expires_at: datetime = _ts(False)
