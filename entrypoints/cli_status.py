"""`sipflow status`: the processes of the stack `sipflow up` runs on a data directory, with how
often each was restarted (written by entrypoints/supervisor.py), its sessions queued and
running, and its disk."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from entrypoints.cli_retention import human
from entrypoints.supervisor import read_status
from sipflow import admission, retention
from sipflow.db import session_scope
from sipflow.settings import get_settings

out = Console()


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ago(t: Any) -> str:
    return "-" if not isinstance(t, int | float) else f"{time.time() - t:.0f}s ago"


def status(
    data_dir: Annotated[
        Path | None, typer.Option(help="Files of the stack [default: $SIPFLOW_DATA_DIR or var]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The stack's processes under `sipflow up`: running or not, restarts, last exit; where
    Prometheus scrapes them."""
    root = data_dir or get_settings().data_dir
    body = read_status(root)
    if body is None:
        out.print(f"no stack status in {root}: `sipflow up` has not run there")
        raise typer.Exit(1)
    up = _alive(body.get("pid"))
    procs: dict[str, dict[str, Any]] = body.get("processes", {})  # type: ignore[assignment]
    for p in procs.values():
        p["running"] = up and not p.get("waiting") and _alive(p.get("pid"))
    disk = _disk(root)
    sessions = _sessions(root)
    if as_json:
        doc = {"up": up, "pid": body.get("pid"), "processes": procs, "disk": disk}
        typer.echo(json.dumps(doc | {"metrics": body.get("metrics") or {}, "sessions": sessions}))
        raise typer.Exit(0 if up else 1)
    table = Table(title=f"sipflow up (pid {body.get('pid')}): {'running' if up else 'not running'}")
    for col in ("process", "pid", "state", "restarts", "last exit", "started"):
        table.add_column(col)
    for name, p in procs.items():
        state = (
            "running" if p["running"] else ("waiting to restart" if p.get("waiting") else "down")
        )
        code = p.get("last_exit")
        last = "-" if p.get("last_exit_at") is None else f"{code} ({_ago(p['last_exit_at'])})"
        table.add_row(
            name,
            str(p.get("pid") or "-"),
            state,
            str(p.get("restarts", 0)),
            last,
            _ago(p.get("started_at")),
        )
    out.print(table)
    metrics: dict[str, str] = body.get("metrics") or {}  # type: ignore[assignment]
    if metrics:
        urls = ", ".join(f"{name} {url}" for name, url in metrics.items())
        out.print(f"metrics (Prometheus): {urls}")
    if sessions is None:
        out.print("sessions: the database is not reachable")
    else:
        out.print(
            f"sessions: {sessions['running']} running, {sessions['queued']} queued "
            f"(waiting for runners to fit), {sessions['stopping']} stopping"
        )
    runs = "-" if disk["runs_bytes"] is None else human(disk["runs_bytes"])
    out.print(
        f"disk: {human(disk['fs_free_bytes'])} free of {human(disk['fs_total_bytes'])} "
        f"({100 * disk['free_fraction']:.1f}%){' [red]LOW[/]' if disk['low'] else ''}; "
        f"runs folders {runs} at the last retention pass ({_ago(disk['last_pass_at'])}); "
        "`sipflow retention show` for more"
    )
    raise typer.Exit(0 if up else 1)


def _sessions(root: Path) -> dict[str, int] | None:
    """Sessions per non-final status in the stack's database; None when it cannot be read."""
    url = get_settings().model_copy(update={"data_dir": root}).resolved_database_url
    try:
        with session_scope(url) as db:
            return admission.counts(db)
    except Exception:  # no database yet, or it is down: status still shows the processes
        return None


def _disk(root: Path) -> dict[str, Any]:
    """The data dir's file system now, the runs folders' size at the last retention pass."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    fs = shutil.disk_usage(root)
    last = retention.read_state(root) or {}
    warn = get_settings().disk_warn_free_fraction
    free = fs.free / fs.total if fs.total else 1.0
    return {
        "fs_free_bytes": fs.free,
        "fs_total_bytes": fs.total,
        "free_fraction": round(free, 4),
        "low": free < warn,
        "runs_bytes": (last.get("usage") or {}).get("runs_bytes"),
        "last_pass_at": last.get("at"),
    }
