"""`sipflow schedules ...`: scheduled regression tests through the API, with the CLI's key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from entrypoints.admin_key import cli_key
from sipflow.settings import Settings, get_settings
from sipflow.spec_file import SpecFileError, load_spec_data

schedules_app = typer.Typer(
    help="Scheduled regression tests: create, list, show, pause, resume, trigger, delete.",
    no_args_is_help=True,
)
out = Console()
EXIT_INVALID, EXIT_ERROR = 2, 3

IdArg = Annotated[str, typer.Argument(metavar="SCHEDULE_ID")]
ApiOption = Annotated[
    str | None,
    typer.Option("--api", help="API base URL [default: $SIPFLOW_API_URL or http://127.0.0.1:8000]"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
NoteOption = Annotated[str | None, typer.Option(help="Why (shown on the schedule)")]


def _call(api: str | None, method: str, path: str, body: Any = None, what: str = "schedule") -> Any:
    url = (api or get_settings().api_url).rstrip("/")
    key = cli_key(Settings())
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.request(method, f"{url}{path}", json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the sipflow API at {url}: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if resp.status_code == 422:
        typer.echo(f"invalid {what}:", err=True)
        for e in resp.json().get("detail", []):
            loc = ".".join(str(p) for p in e.get("loc", [])[1:])
            typer.echo(f"  {loc}: {e.get('msg')}", err=True)
        raise typer.Exit(EXIT_INVALID)
    if resp.status_code >= 400:
        typer.echo(f"the API answered {resp.status_code}: {resp.text}", err=True)
        raise typer.Exit(EXIT_ERROR)
    return resp.json() if resp.content else None


def _load(path: Path) -> dict[str, Any]:
    try:
        return load_spec_data(path)
    except SpecFileError as exc:
        for line in exc.errors:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_INVALID) from None


@schedules_app.command("create")
def create(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Schedule spec, YAML/JSON")],
    api: ApiOption = None,
) -> None:
    """Create a schedule from a file (exit 2 with the wrong field's path)."""
    body = _call(api, "POST", "/v1/schedules", _load(spec_path))
    typer.echo(body["id"])


@schedules_app.command("update")
def update(schedule_id: IdArg, spec_path: Annotated[Path, typer.Argument(metavar="SPEC")],
           api: ApiOption = None) -> None:  # fmt: skip
    """Replace a schedule's spec ("***" keeps a stored secret)."""
    body = _call(api, "PUT", f"/v1/schedules/{schedule_id}", _load(spec_path))
    typer.echo(f"{body['id']} version {body['version']}")


@schedules_app.command("list")
def list_(api: ApiOption = None, as_json: JsonOption = False) -> None:
    """The tenant's schedules."""
    page = _call(api, "GET", "/v1/schedules?limit=500")
    if as_json:
        out.print_json(data=page)
        return
    table = Table(title=f"{page['total']} schedules", title_justify="left")
    for col in ("id", "name", "version", "state", "note"):
        table.add_column(col)
    for s in page["items"]:
        state = "paused" if s["paused"] else "active"
        table.add_row(s["id"], escape(s["name"]), str(s["version"]), state, escape(s["note"] or ""))
    out.print(table)


@schedules_app.command("show")
def show(schedule_id: IdArg, api: ApiOption = None, as_json: JsonOption = False) -> None:
    """A schedule: next runs, recent runs with their verdicts, alert deliveries."""
    d = _call(api, "GET", f"/v1/schedules/{schedule_id}")
    if as_json:
        out.print_json(data=d)
        return
    out.print(f"[bold]{escape(d['name'])}[/] ({d['id']}, v{d['version']}, "
              f"{'paused' if d['paused'] else 'active'})")  # fmt: skip
    out.print(f"next runs: {', '.join(d['next_runs'][:3]) or '-'}; missed: {d['missed_runs']}")
    table = Table(title="runs", title_justify="left")
    for col in ("session", "due", "state", "regressed", "note"):
        table.add_column(col)
    for r in d["runs"]:
        regressed = ", ".join(f"{x['metric']} {x['delta']:+g}" for x in r["regressed"] or []
                              if x["delta"] is not None)  # fmt: skip
        table.add_row(r["session_id"], r["scheduled_at"] or "-", r["state"] or "running",
                      regressed, escape(r["note"] or ""))  # fmt: skip
    out.print(table)
    for a in d["alerts"]:
        if not a["ok"]:
            out.print(f"[red]alert {a['kind']} to {escape(a['channel'])} failed[/] after "
                      f"{a['attempts']} attempts: {escape(a['error'] or '')}")  # fmt: skip


def _action(path: str, api: str | None, body: Any = None) -> Any:
    return _call(api, "POST", path, body if body is not None else {})


@schedules_app.command("pause")
def pause(schedule_id: IdArg, note: NoteOption = None, api: ApiOption = None) -> None:
    """No runs until resumed."""
    _action(f"/v1/schedules/{schedule_id}/pause", api, {"note": note})
    typer.echo(f"{schedule_id} paused")


@schedules_app.command("resume")
def resume(schedule_id: IdArg, note: NoteOption = None, api: ApiOption = None) -> None:
    _action(f"/v1/schedules/{schedule_id}/resume", api, {"note": note})
    typer.echo(f"{schedule_id} resumed")


@schedules_app.command("trigger")
def trigger(schedule_id: IdArg, api: ApiOption = None) -> None:
    """Start a run now."""
    _action(f"/v1/schedules/{schedule_id}/trigger", api)
    typer.echo(f"{schedule_id} triggered")


@schedules_app.command("backfill")
def backfill(
    schedule_id: IdArg,
    start: Annotated[str, typer.Option(help="ISO 8601 start of the range")],
    end: Annotated[str, typer.Option(help="ISO 8601 end of the range")],
    api: ApiOption = None,
) -> None:
    """Run the due times of a past range."""
    _action(f"/v1/schedules/{schedule_id}/backfill", api, {"start_at": start, "end_at": end})
    typer.echo(f"{schedule_id} backfilled {start} .. {end}")


@schedules_app.command("delete")
def delete(schedule_id: IdArg, api: ApiOption = None) -> None:
    """Delete a schedule (its sessions stay)."""
    _call(api, "DELETE", f"/v1/schedules/{schedule_id}")
    typer.echo(f"{schedule_id} deleted")
