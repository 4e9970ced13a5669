"""/v1/policy: the caller's tenant policy — where its sessions may send traffic and how much.
Anyone of the tenant reads it (so a refused session can be understood); admins change it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import AUTH_RESPONSES, AdminDep, PrincipalDep
from api.deps import DbDep, SettingsDep
from sipflow import audit, tenant_policy
from sipflow.models import TenantPolicyRow
from sipflow.tenant_policy import TenantPolicy

router = APIRouter(prefix="/policy", tags=["policy"], responses=AUTH_RESPONSES)


class PolicyOut(TenantPolicy):
    tenant: str
    source: Literal["tenant", "settings"]  # its own, or the settings' default


def _out(db: DbDep, tenant: str, settings: SettingsDep) -> PolicyOut:
    own = db.get(TenantPolicyRow, tenant) is not None
    policy = tenant_policy.load(db, tenant, settings)
    return PolicyOut(tenant=tenant, source="tenant" if own else "settings", **policy.model_dump())


@router.get("", response_model=PolicyOut, summary="The tenant's policy (its own or the default)")
def get_policy(db: DbDep, principal: PrincipalDep, settings: SettingsDep) -> PolicyOut:
    return _out(db, principal.tenant, settings)


@router.put("", response_model=PolicyOut, summary="Replace the tenant's policy (admins)")
def put_policy(
    body: TenantPolicy, db: DbDep, principal: AdminDep, settings: SettingsDep
) -> PolicyOut:
    tenant_policy.save(db, principal.tenant, body)
    audit.record(
        db, principal.tenant, principal.key_id, "policy.set", principal.tenant,
        body.model_dump(mode="json"),
    )  # fmt: skip
    return _out(db, principal.tenant, settings)


class PolicyReset(BaseModel):
    reset: bool  # False: the tenant had no policy of its own


@router.delete(
    "", response_model=PolicyReset, summary="Back to the settings' default policy (admins)"
)
def reset_policy(db: DbDep, principal: AdminDep) -> PolicyReset:
    removed = tenant_policy.delete(db, principal.tenant)
    if removed:
        audit.record(db, principal.tenant, principal.key_id, "policy.reset", principal.tenant)
    return PolicyReset(reset=removed)
