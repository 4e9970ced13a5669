"""`sipflow tenants policy show|set|reset`: a tenant's allowed targets and quotas, in the
database (table tenant_policy). A tenant without a policy of its own gets the settings' one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError

from sipflow import tenant_policy
from sipflow.db import migrate, session_scope
from sipflow.settings import get_settings
from sipflow.tenant_policy import Quotas, TenantPolicy

tenants_app = typer.Typer(help="Tenants: their policies.", no_args_is_help=True)
policy_app = typer.Typer(
    help="Where a tenant's sessions may send traffic, and how much.", no_args_is_help=True
)
tenants_app.add_typer(policy_app, name="policy")

TenantArg = Annotated[str, typer.Argument(metavar="TENANT")]
DbOption = Annotated[
    str | None,
    typer.Option("--database-url", help="[default: $SIPFLOW_DATABASE_URL or the data dir's]"),
]
QUOTA_HELP = "0: unlimited; not given: kept"


def _url(database_url: str | None) -> str:
    url = database_url or get_settings().resolved_database_url
    migrate(url)  # a fresh data dir has no tables yet
    return url


@policy_app.command("show")
def show(tenant: TenantArg, database_url: DbOption = None) -> None:
    """Print the tenant's policy as JSON (its own, or the settings' default)."""
    url = _url(database_url)
    with session_scope(url) as db:
        own = db.get(tenant_policy.TenantPolicyRow, tenant) is not None
        policy = tenant_policy.load(db, tenant, get_settings())
    body = {"tenant": tenant, "source": "tenant" if own else "settings"}
    typer.echo(json.dumps({**body, **policy.model_dump(mode="json")}, indent=2))


@policy_app.command("set")
def set_policy(
    tenant: TenantArg,
    allow_network: Annotated[
        list[str] | None, typer.Option(help="CIDR (repeatable; replaces the list)")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(help="host name or *.domain (repeatable; replaces the list)"),
    ] = None,
    agents: Annotated[int | None, typer.Option(min=0, help=QUOTA_HELP)] = None,
    calls_per_s: Annotated[float | None, typer.Option(min=0, help=QUOTA_HELP)] = None,
    calls_per_session: Annotated[int | None, typer.Option(min=0, help=QUOTA_HELP)] = None,
    duration_s: Annotated[float | None, typer.Option(min=0, help=QUOTA_HELP)] = None,
    concurrent_sessions: Annotated[int | None, typer.Option(min=0, help=QUOTA_HELP)] = None,
    unlimited: Annotated[
        bool, typer.Option(help="Start from any target (but special addresses), no quota")
    ] = False,
    database_url: DbOption = None,
) -> None:
    """Change the tenant's policy: start from its current one (or --unlimited), apply options."""
    url = _url(database_url)
    with session_scope(url) as db:
        current = (
            TenantPolicy.unlimited()
            if unlimited
            else tenant_policy.load(db, tenant, get_settings())
        )
        changes = {
            "agents": agents,
            "calls_per_s": calls_per_s,
            "calls_per_session": calls_per_session,
            "duration_s": duration_s,
            "concurrent_sessions": concurrent_sessions,
        }
        quotas = current.quotas.model_dump()
        quotas.update({k: (v or None) for k, v in changes.items() if v is not None})
        try:
            policy = TenantPolicy(
                allowed_networks=current.allowed_networks
                if allow_network is None
                else allow_network,
                allowed_hosts=current.allowed_hosts if allow_host is None else allow_host,
                quotas=Quotas.model_validate(quotas),
            )
        except ValidationError as exc:
            typer.echo(f"invalid policy: {exc}", err=True)
            raise typer.Exit(2) from exc
        tenant_policy.save(db, tenant, policy)
    typer.echo(json.dumps({"tenant": tenant, **policy.model_dump(mode="json")}, indent=2))


@policy_app.command("reset")
def reset(tenant: TenantArg, database_url: DbOption = None) -> None:
    """Remove the tenant's own policy: it gets the settings' default again."""
    with session_scope(_url(database_url)) as db:
        removed = tenant_policy.delete(db, tenant)
    typer.echo(f"{tenant}: {'back to the default policy' if removed else 'had no policy'}")
