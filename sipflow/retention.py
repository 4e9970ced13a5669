"""Retention: what old sessions leave on disk is purged by age and by total size, and the disk's
free space is watched, so the data directory never fills silently.

A finished session (completed, cancelled, error) keeps its session row, verdict and summary for
ever. What is purged:
- its runs folder (data_dir/runs/<id>: SIPp statistics and logs, captures, runner files) once it
  finished more than retention_runs_days ago, and, oldest first, while all runs folders together
  are larger than retention_runs_max_bytes;
- its detail rows (DETAIL_TABLES: the per-interval metrics and the per-call media rows) once it
  finished more than retention_rows_days ago (its charts and call list are gone then; the
  summary stays).
A running or pending session is never touched. Each pass writes data_dir/retention.json (what it
purged, the disk's usage), which `sipflow retention show` and `sipflow status` read; free space
below disk_warn_free_fraction of the file system is logged as a WARNING at every pass.
Run by the worker every retention_interval_s (entrypoints/worker.py) and by
`sipflow retention run`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import col

from sipflow.db import session_scope
from sipflow.models import (
    FINAL_STATUSES,
    CallEvidenceRow,
    CallMediaRow,
    MetricInterval,
    SessionRow,
)
from sipflow.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "retention.json"
# Per-session detail tables purged by age (session_id column): per-interval metrics and per-call
# media rows, the index of kept call evidence (its files are in the runs folder).
DETAIL_TABLES: tuple[Any, ...] = (MetricInterval, CallMediaRow, CallEvidenceRow)


@dataclass
class DiskUsage:
    runs_bytes: int
    runs_sessions: int
    fs_total_bytes: int
    fs_free_bytes: int
    warn_free_fraction: float

    @property
    def free_fraction(self) -> float:
        return self.fs_free_bytes / self.fs_total_bytes if self.fs_total_bytes else 1.0

    @property
    def low(self) -> bool:
        return self.free_fraction < self.warn_free_fraction

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"free_fraction": round(self.free_fraction, 4), "low": self.low}


@dataclass
class Plan:
    """What a pass purges: runs folders (session id -> bytes, why) and sessions whose rows go."""

    folders: dict[str, tuple[int, str]] = field(default_factory=dict)
    rows_of: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(b for b, _ in self.folders.values())


@dataclass
class Result:
    at: float
    dry_run: bool
    folders_removed: int
    bytes_freed: int
    sessions_rows_purged: int
    rows_deleted: int
    usage: dict[str, Any]
    purged: dict[str, str]  # session id -> why


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def folder_sizes(runs_dir: Path) -> dict[str, int]:
    if not runs_dir.is_dir():
        return {}
    return {p.name: _size(p) for p in runs_dir.iterdir() if p.is_dir()}


def usage(settings: Settings, sizes: dict[str, int] | None = None) -> DiskUsage:
    sizes = folder_sizes(settings.runs_dir) if sizes is None else sizes
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fs = shutil.disk_usage(settings.data_dir)
    return DiskUsage(
        runs_bytes=sum(sizes.values()),
        runs_sessions=len(sizes),
        fs_total_bytes=fs.total,
        fs_free_bytes=fs.free,
        warn_free_fraction=settings.disk_warn_free_fraction,
    )


def _finished(settings: Settings) -> dict[str, datetime]:
    """Finished sessions -> when they finished (created_at when finished_at is unknown)."""
    with session_scope(settings.resolved_database_url) as db:
        rows = db.execute(
            select(  # type: ignore[call-overload]
                SessionRow.id, SessionRow.finished_at, SessionRow.created_at
            ).where(col(SessionRow.status).in_(FINAL_STATUSES))
        ).all()
    out = {}
    for sid, finished, created in rows:
        when = finished or created
        out[sid] = when if when.tzinfo else when.replace(tzinfo=UTC)
    return out


def _with_rows(settings: Settings, ids: list[str]) -> list[str]:
    """Of these sessions, those that still have detail rows."""
    if not ids:
        return []
    found: set[str] = set()
    with session_scope(settings.resolved_database_url) as db:
        for table in DETAIL_TABLES:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = select(table.session_id).where(col(table.session_id).in_(chunk)).distinct()
                found.update(db.execute(q).scalars())
    return [s for s in ids if s in found]


def plan(settings: Settings, now: datetime | None = None) -> tuple[Plan, dict[str, int]]:
    now = now or datetime.now(UTC)
    sizes = folder_sizes(settings.runs_dir)
    finished = _finished(settings)
    p = Plan()
    runs_cut = now - timedelta(days=settings.retention_runs_days)
    # Oldest first: a finished session's folder; folders of unknown sessions are left alone.
    candidates = sorted((finished[s], s) for s in sizes if s in finished)
    for when, sid in candidates:
        if when < runs_cut:
            p.folders[sid] = (sizes[sid], f"finished {when:%Y-%m-%d %H:%M} (older than "
                              f"{settings.retention_runs_days:g} days)")  # fmt: skip
    total = sum(sizes.values()) - p.bytes
    for _when, sid in candidates:
        if total <= settings.retention_runs_max_bytes:
            break
        if sid not in p.folders:
            p.folders[sid] = (sizes[sid], "runs folders over retention_runs_max_bytes")
            total -= sizes[sid]
    rows_cut = now - timedelta(days=settings.retention_rows_days)
    p.rows_of = _with_rows(settings, sorted(s for s, w in finished.items() if w < rows_cut))
    return p, sizes


def run(settings: Settings, dry_run: bool = False, now: datetime | None = None) -> Result:
    """One pass: purge what plan() finds (unless dry_run), record it, warn on low disk."""
    p, sizes = plan(settings, now)
    rows_deleted = 0
    if not dry_run:
        for sid in p.folders:
            shutil.rmtree(settings.runs_dir / sid, ignore_errors=True)
            sizes.pop(sid, None)
        if p.rows_of:
            with session_scope(settings.resolved_database_url) as db:
                for table in DETAIL_TABLES:
                    for i in range(0, len(p.rows_of), 500):
                        chunk = p.rows_of[i : i + 500]
                        res = db.execute(delete(table).where(col(table.session_id).in_(chunk)))
                        rows_deleted += res.rowcount or 0  # type: ignore[attr-defined]
                db.commit()
    u = usage(settings, sizes)
    result = Result(
        at=time.time(),
        dry_run=dry_run,
        folders_removed=len(p.folders),
        bytes_freed=p.bytes,
        sessions_rows_purged=len(p.rows_of),
        rows_deleted=rows_deleted,
        usage=u.as_dict(),
        purged={sid: why for sid, (_, why) in p.folders.items()},
    )
    if p.folders or p.rows_of:
        log.info(
            "retention%s: %d runs folders (%d bytes), detail rows of %d sessions",
            " (dry run)" if dry_run else "",
            len(p.folders),
            p.bytes,
            len(p.rows_of),
        )
    if u.low:
        log.warning(
            "disk of %s almost full: %d of %d bytes free (%.1f%% < %.1f%%)",
            settings.data_dir,
            u.fs_free_bytes,
            u.fs_total_bytes,
            100 * u.free_fraction,
            100 * settings.disk_warn_free_fraction,
        )
    if not dry_run:
        write_state(settings.data_dir, result)
    return result


def write_state(data_dir: Path, result: Result) -> None:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=1))
    tmp.replace(path)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body


def start_periodic(settings: Settings, stop: threading.Event) -> threading.Thread:
    """A daemon thread: a pass at start and every settings.retention_interval_s until `stop`."""

    def loop() -> None:
        while True:
            try:
                run(settings)
            except Exception:  # the next pass tries again; the worker goes on
                log.exception("retention pass failed")
            if stop.wait(settings.retention_interval_s):
                return

    thread = threading.Thread(target=loop, name="retention", daemon=True)
    thread.start()
    return thread
