"""Resolves a target given by domain (target.dns) at session start and records the result on
the session (its `target`, shown in the session's detail)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from sipflow import store, tenant_policy
from sipflow.db import session_scope
from sipflow.settings import Settings
from sipflow.sip_dns import Mode, Unresolvable, resolve


class ResolveTarget(BaseModel):
    session_id: str
    tenant: str
    domain: str
    transport: str
    mode: Mode
    backend: str | None = None  # the spec's; None: the worker's default


class ResolvedTarget(BaseModel):
    host: str
    port: int
    transport: str
    via: str


class DnsActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url
        self.servers = [s.strip() for s in settings.dns_servers.split(",") if s.strip()]
        self.timeout_s = settings.dns_timeout_s

    @activity.defn
    def resolve_target(self, req: ResolveTarget) -> ResolvedTarget:
        """Unresolvable, or resolved to an address the tenant may not test: a non-retryable
        failure with the reason (the session ends `error`)."""
        try:
            found = resolve(req.domain, req.transport, req.mode, self.servers, self.timeout_s)
        except Unresolvable as exc:
            raise ApplicationError(
                f"target {req.domain} not resolved: {exc}", non_retryable=True
            ) from None
        with session_scope(self.url) as db:
            # The tenant's allowed targets apply to the address the name leads to.
            policy = tenant_policy.load(db, req.tenant, self.settings)
        refusal = tenant_policy.target_refusal(policy, found.host)
        if refusal:
            raise ApplicationError(
                f"{req.domain} resolved ({found.via}): {refusal}", non_retryable=True
            )
        shown = f"{req.domain} -> {found.host}:{found.port}/{found.transport} ({found.via})"
        resolved = ResolvedTarget(
            host=found.host, port=found.port, transport=found.transport, via=found.via
        )
        with session_scope(self.url) as db:
            # Stored as found: container runners' configs are derived from it by the API.
            store.set_target(db, req.session_id, shown, resolved.model_dump())
        return resolved
