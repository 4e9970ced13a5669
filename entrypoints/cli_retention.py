"""`sipflow retention show|run`: what old sessions keep on disk, and purging it by hand (the
worker does the same every SIPFLOW_RETENTION_INTERVAL_S; sipflow/retention.py)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sipflow import retention
from sipflow.settings import Settings, get_settings

out = Console()
retention_app = typer.Typer(help="Purge old sessions' runs folders and rows by age and size.")

DataDirOption = Annotated[
    Path | None, typer.Option(help="Files of the stack [default: $SIPFLOW_DATA_DIR or var]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _settings(data_dir: Path | None) -> Settings:
    s = get_settings()
    return s if data_dir is None else s.model_copy(update={"data_dir": data_dir})


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def usage_line(u: dict[str, Any]) -> str:
    line = (
        f"runs folders {human(u['runs_bytes'])} ({u['runs_sessions']} sessions); file system "
        f"{human(u['fs_free_bytes'])} free of {human(u['fs_total_bytes'])} "
        f"({100 * u['free_fraction']:.1f}%)"
    )
    return line + (" [red]LOW[/]" if u["low"] else "")


@retention_app.command("show")
def show(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Settings, disk usage, what a pass would purge now, and the last pass."""
    s = _settings(data_dir)
    result = retention.run(s, dry_run=True)
    last = retention.read_state(s.data_dir)
    policy = {
        "runs_days": s.retention_runs_days,
        "runs_max_bytes": s.retention_runs_max_bytes,
        "rows_days": s.retention_rows_days,
        "interval_s": s.retention_interval_s,
        "disk_warn_free_fraction": s.disk_warn_free_fraction,
    }
    if as_json:
        body = {"policy": policy, "would_purge": asdict(result), "last_pass": last}
        typer.echo(json.dumps(body))
        return
    out.print(
        f"policy: runs folders kept {s.retention_runs_days:g} days and at most "
        f"{human(s.retention_runs_max_bytes)} in all; per-interval rows kept "
        f"{s.retention_rows_days:g} days; worker pass every {s.retention_interval_s:g}s"
    )
    out.print("usage: " + usage_line(result.usage))
    out.print(
        f"a pass now would remove {result.folders_removed} runs folders "
        f"({human(result.bytes_freed)}) and the rows of {result.sessions_rows_purged} sessions"
    )
    if last:
        ago = time.time() - float(last["at"])
        out.print(
            f"last pass {ago:.0f}s ago: {last['folders_removed']} folders "
            f"({human(last['bytes_freed'])}), {last['rows_deleted']} rows"
        )
    else:
        out.print("no pass yet")


@retention_app.command("run")
def run(
    data_dir: DataDirOption = None,
    dry_run: Annotated[bool, typer.Option(help="Only say what would be purged")] = False,
    as_json: JsonOption = False,
) -> None:
    """One retention pass now."""
    s = _settings(data_dir)
    result = retention.run(s, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(asdict(result)))
        return
    table = Table(title="retention" + (" (dry run)" if dry_run else ""))
    table.add_column("session")
    table.add_column("why")
    for sid, why in result.purged.items():
        table.add_row(sid, why)
    if result.purged:
        out.print(table)
    verb = "would remove" if dry_run else "removed"
    out.print(
        f"{verb} {result.folders_removed} runs folders ({human(result.bytes_freed)}); "
        f"rows of {result.sessions_rows_purged} sessions ({result.rows_deleted} rows)"
    )
    out.print("usage: " + usage_line(result.usage))
