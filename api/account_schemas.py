"""Request and response bodies of /v1/keys and /v1/audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sipflow.accounts import Role


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    role: Role = Role.viewer
    expires_days: Annotated[int | None, Field(ge=1, le=3650)] = None

    @field_validator("role")
    @classmethod
    def _not_host(cls, v: Role) -> Role:
        if v == Role.runner_host:
            raise ValueError("runner_host keys are bound to a pool: POST /v1/hosts")
        return v


class KeyOut(BaseModel):
    """A key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    tenant: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(KeyOut):
    secret: str = Field(description="the key itself: shown this once, stored only as a digest")


class KeyList(BaseModel):
    items: list[KeyOut]


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    time: datetime
    tenant: str
    key_id: str | None
    action: str
    object_id: str | None
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AuditEventOut]
