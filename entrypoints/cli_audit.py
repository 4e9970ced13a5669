"""`sipflow audit list`: a tenant's audit log (who started, changed or cancelled which session,
managed which key or policy), straight from the database like `sipflow keys`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sipflow import audit
from sipflow.db import migrate, session_scope
from sipflow.settings import Settings

audit_app = typer.Typer(help="The audit log of a tenant.", no_args_is_help=True)
out = Console()


@audit_app.command("list")
def audit_list(
    tenant: Annotated[str, typer.Option(help="Whose events")] = "default",
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. session.cancel, key.create")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout")] = False,
) -> None:
    """The tenant's events, newest first."""
    url = Settings().resolved_database_url  # not cached: the environment of this call
    migrate(url)  # a fresh data dir has no tables yet
    with session_scope(url) as db:
        rows, total = audit.events(db, tenant, limit=limit, action=action)
        items = [r.model_dump(mode="json") for r in rows]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(title=f"{len(items)} of {total} events of {escape(tenant)}", title_justify="left")
    for col in ("time", "action", "object", "key", "detail"):
        table.add_column(col, overflow="fold", no_wrap=col in ("time", "action"))
    for e in items:
        detail = json.dumps(e["detail"], separators=(",", ":")) if e["detail"] else ""
        table.add_row(
            e["time"][:19].replace("T", " "),
            escape(e["action"]),
            escape(e["object_id"] or "-"),
            escape(e["key_id"] or "-"),
            escape(detail),
        )
    out.print(table)
