"""`sipflow flows list|show NAME`: the built-in call flows (sipflow/flows.py), read from the
catalogue itself (no API needed): parameters, steps, messages, success, and the SIPp XML."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sipflow.flows import FLOWS, FlowSpec, render

flows_app = typer.Typer(help="The built-in call flows.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@flows_app.command("list")
def flows_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout")] = False,
) -> None:
    """Each flow: its parameters (with defaults), steps and what counts as success."""
    items: list[dict[str, Any]] = [f.describe() for f in FLOWS.values()]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(title=f"{len(items)} built-in flows", title_justify="left")
    for col in ("flow", "parameters", "steps", "success"):
        table.add_column(col, overflow="fold")
    for f in items:
        params = ", ".join(f"{p['name']}={p['default']}" for p in f["parameters"])
        table.add_row(
            escape(str(f["name"])),
            escape(params or "-"),
            escape(" > ".join(f["steps"])),
            escape(str(f["success"])),
        )
    out.print(table)


def _params(name: str, pairs: list[str]) -> Any:
    values: dict[str, Any] = {"name": name}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            err.print(f"--param {escape(pair)}: give NAME=VALUE")
            raise typer.Exit(2)
        values[key] = value
    try:
        return TypeAdapter(FlowSpec).validate_python(values)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in e["loc"][1:]) or "name"
            err.print(f"flow.{escape(loc)}: {escape(e['msg'])}")
        raise typer.Exit(2) from None


@flows_app.command("show")
def flows_show(
    name: Annotated[str, typer.Argument(help="The flow, e.g. ring_no_answer")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, e.g. cancel_after_s=3")
    ] = None,
    xml: Annotated[
        Literal["caller", "callee", "party"] | None,
        typer.Option(
            help="Print this side's SIPp XML (with the parameters) instead; party: the named "
            "party's (a transfer target's)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The entry as JSON")] = False,
) -> None:
    """One flow: parameters, steps, the messages of one call, success; or its SIPp XML."""
    if name not in FLOWS:
        err.print(f"unknown flow {escape(name)!r}; built-ins: {', '.join(FLOWS)}")
        raise typer.Exit(2)
    params = _params(name, param or [])
    flow = FLOWS[name]
    if xml is not None:
        if xml == "callee" and flow.callee is None:
            err.print(f"the {name} flow has no callee side (the target answers)")
            raise typer.Exit(2)
        if xml == "party" and flow.party is None:
            err.print(f"the {name} flow has no named party's side")
            raise typer.Exit(2)
        typer.echo(render(params, xml), nl=False)
        return
    entry: dict[str, Any] = flow.describe()
    if as_json:
        typer.echo(json.dumps(entry, indent=2))
        return
    out.print(f"[bold]{escape(name)}[/bold]: {escape(flow.title)}")
    out.print(f"success: {escape(flow.success)}")
    out.print("steps: " + escape(" > ".join(flow.steps)))
    if flow.callee_steps:
        out.print("callee steps: " + escape(" > ".join(flow.callee_steps)))
    if flow.party is not None:
        out.print("named party's steps: " + escape(" > ".join(flow.party_steps)))
    for p in entry["parameters"]:
        out.print(f"  {escape(p['name'])} (default {p['default']}): {escape(p['description'])}")
    out.print("messages:")
    for m in flow.messages:
        out.print(f"  {escape(m)}")
