"""`sipflow capacity run|list|show|cancel`: capacity searches through the API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from entrypoints.cli_schedules import ApiOption, JsonOption, _call, _load

capacity_app = typer.Typer(
    help="Capacity searches: the highest rate a SUT carries while criteria hold.",
    no_args_is_help=True,
)
out = Console()
IdArg = Annotated[str, typer.Argument(metavar="SEARCH_ID")]
FINAL = ("completed", "cancelled", "error")


def _get(api: str | None, path: str) -> Any:
    return _call(api, "GET", path, what="capacity search")


@capacity_app.command("run")
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Capacity spec, YAML/JSON")],
    api: ApiOption = None,
    wait: Annotated[bool, typer.Option(help="Follow it until it ends, printing each step")] = True,
    as_json: JsonOption = False,
) -> None:
    """Start a search (exit 2 with the wrong field's path); with --wait (default) print its
    steps as they end and the answer; exit 1 if not even the start rate held."""
    body = _call(api, "POST", "/v1/capacity", _load(spec_path), what="capacity search")
    sid = body["id"]
    if not wait:
        typer.echo(sid)
        return
    out.print(f"capacity search [bold]{sid}[/] started", highlight=False)
    shown = 0
    while True:
        d = _get(api, f"/v1/capacity/{sid}")
        steps = (d.get("result") or {}).get("steps") or []
        for s in steps[shown:]:
            mark = "[green]held[/]" if s["held"] else "[red]broke[/]"
            why = "" if s["held"] else f": {escape('; '.join(s['failed']))}"
            out.print(f"step {s['index'] + 1}: {s['rate']:g} calls/s {mark}{why}", highlight=False)
        shown = len(steps)
        if d["status"] in FINAL:
            break
        time.sleep(1)
    if as_json:
        out.print_json(data=d)
    else:
        _answer(d)
    raise typer.Exit(0 if d["status"] == "completed" and d["highest_held"] is not None else 1)


def _answer(d: dict[str, Any]) -> None:
    out.print(
        f"{escape(d['name'])} ({d['id']}): {d['status']}; highest rate that held: "
        f"[bold]{_rate(d['highest_held'])}[/], broke at {_rate(d['lowest_broken'])} "
        f"(stop: {d['stop'] or '-'})",
        highlight=False,
    )


def _rate(v: float | None) -> str:
    return f"{v:g} calls/s" if v is not None else "-"


@capacity_app.command("list")
def list_(api: ApiOption = None, as_json: JsonOption = False) -> None:
    """The tenant's capacity searches, newest first."""
    page = _get(api, "/v1/capacity?limit=500")
    if as_json:
        out.print_json(data=page)
        return
    table = Table(title=f"{page['total']} capacity searches", title_justify="left")
    for col in ("id", "name", "status", "held", "broke at", "steps", "created"):
        table.add_column(col)
    for c in page["items"]:
        table.add_row(c["id"], escape(c["name"]), c["status"], _rate(c["highest_held"]),
                      _rate(c["lowest_broken"]), str(c["steps"]), c["created_at"][:19])  # fmt: skip
    out.print(table)


@capacity_app.command("show")
def show(search_id: IdArg, api: ApiOption = None, as_json: JsonOption = False) -> None:
    """A search's steps (rate, held, measured in the window, the step's session) and answer."""
    d = _get(api, f"/v1/capacity/{search_id}")
    if as_json:
        out.print_json(data=d)
        return
    _answer(d)
    table = Table(title="steps", title_justify="left")
    for col in ("#", "rate", "held", "success %", "p95 ms", "achieved/s", "session", "failed"):
        table.add_column(col)
    for s in (d.get("result") or {}).get("steps") or []:
        m = s["measured"]
        table.add_row(str(s["index"] + 1), f"{s['rate']:g}", "yes" if s["held"] else "no",
                      _num(m.get("success_rate")), _num(m.get("response_time_p95_ms")),
                      _num(s.get("achieved_rate")), s["session_id"],
                      escape("; ".join(s["failed"])))  # fmt: skip
    out.print(table)


def _num(v: float | None) -> str:
    return f"{v:.1f}" if v is not None else "-"


@capacity_app.command("cancel")
def cancel(search_id: IdArg, api: ApiOption = None) -> None:
    """Cancel a running search (its running step is cancelled with its clean-up)."""
    _call(api, "POST", f"/v1/capacity/{search_id}/cancel", {}, what="capacity search")
    typer.echo(f"{search_id} cancelling")
