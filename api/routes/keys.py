"""/v1/keys: a tenant's admins create (secret shown once), list and revoke its API keys."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, status

from api.account_schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from api.auth import AUTH_RESPONSES, AdminDep, Responses
from api.deps import DbDep, SettingsDep
from backends.host_logins import revoke_host_broker
from sipflow import account_store, audit
from sipflow.accounts import Role

router = APIRouter(prefix="/keys", tags=["keys"], responses=AUTH_RESPONSES)
NO_KEY: Responses = {404: {"description": "no key with this id in the admin's tenant"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key in the admin's tenant; its secret is in this answer only",
)
def create_key(body: KeyCreate, db: DbDep, principal: AdminDep) -> KeyCreated:
    expires = timedelta(days=body.expires_days) if body.expires_days else None
    row, secret = account_store.create_key(db, principal.tenant, body.role, body.name, expires)
    audit.record(
        db, principal.tenant, principal.key_id, "key.create", row.id,
        {"name": row.name, "role": row.role},
    )  # fmt: skip
    return KeyCreated(**KeyOut.model_validate(row).model_dump(), secret=secret)


@router.get("", response_model=KeyList, summary="The tenant's keys (without secrets)")
def list_keys(db: DbDep, principal: AdminDep) -> KeyList:
    rows = account_store.list_keys(db, principal.tenant)
    return KeyList(items=[KeyOut.model_validate(r) for r in rows])


@router.delete(
    "/{key_id}",
    response_model=KeyOut,
    responses=NO_KEY,
    summary="Revoke a key (at once: its requests and dashboard sign-ins get 401)",
)
def revoke_key(key_id: str, db: DbDep, settings: SettingsDep, principal: AdminDep) -> KeyOut:
    row = account_store.get_key(db, key_id)
    if row is None or row.tenant != principal.tenant:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key {key_id!r}")
    first = row.revoked_at is None
    row = account_store.revoke_key(db, key_id) or row
    if first:
        audit.record(db, principal.tenant, principal.key_id, "key.revoke", key_id)
    if row.role == Role.runner_host:  # its runners lose the broker too
        revoke_host_broker(db, settings, key_id)
    return KeyOut.model_validate(row)
