"""`sipflow pools list|hosts POOL|add-host POOL`: runner-host pools through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from entrypoints.cli_schedules import ApiOption, JsonOption, _call

pools_app = typer.Typer(
    help="Runner-host pools: machines that run a session's agents (docs/runner-hosts.md).",
    no_args_is_help=True,
)
out = Console()
PoolArg = Annotated[str, typer.Argument(metavar="POOL")]


@pools_app.command("list")
def list_pools(api: ApiOption = None, as_json: JsonOption = False) -> None:
    """The tenant's pools: hosts, live hosts, agents running and free."""
    body = _call(api, "GET", "/v1/pools", what="pool")
    if as_json:
        out.print_json(data=body)
        return
    table = Table("pool", "hosts", "live", "max agents", "running", "free")
    for p in body["items"]:
        table.add_row(
            escape(p["pool"]), str(p["hosts"]), str(p["live_hosts"]),
            str(p["max_agents"]), str(p["running_agents"]), str(p["free_agents"]),
        )  # fmt: skip
    out.print(table)


def _age(h: dict[str, Any]) -> str:
    return "-" if h["heartbeat_age_s"] is None else f"{h['heartbeat_age_s']:.0f} s"


@pools_app.command("hosts")
def hosts(pool: PoolArg, api: ApiOption = None, as_json: JsonOption = False) -> None:
    """A pool's hosts with their state (live/stale/dead by heartbeat age) and load."""
    body = _call(api, "GET", f"/v1/pools/{pool}/hosts", what="pool")
    if as_json:
        out.print_json(data=body)
        return
    table = Table("host", "state", "agents", "cores", "addresses", "heartbeat", "key")
    for h in body["items"]:
        table.add_row(
            escape(h["host_id"] or "(not yet seen)"), h["state"],
            f"{h['running_agents']}/{h['max_agents']}"
            + (f" ({h['reserved_agents']} reserved)" if h.get("reserved_agents") else ""),
            str(h["cores"]),
            escape(", ".join(h["addresses"])), _age(h), h["key_id"],
        )  # fmt: skip
    out.print(table)


@pools_app.command("add-host")
def add_host(
    pool: PoolArg,
    name: Annotated[str, typer.Option(help="A note on the credential")] = "",
    api: ApiOption = None,
) -> None:
    """A credential for one more host of the pool (admin). Prints the key (shown once): the
    host runs `SIPFLOW_API_KEY=<key> sipflow runner-host --pool POOL`. Revoke it with
    `sipflow keys revoke ID`."""
    body = _call(api, "POST", "/v1/hosts", {"pool": pool, "name": name}, what="pool")
    typer.echo(f"host credential {body['key_id']} of pool {body['pool']} (shown once):", err=True)
    typer.echo(body["secret"])
