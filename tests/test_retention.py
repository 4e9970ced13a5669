"""Retention on real SQLite and PostgreSQL and real folders: runs folders by age and by total
size (oldest first), per-interval rows by age, running sessions never touched; the CLI."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from sipflow import histogram, retention, store
from sipflow.db import session_scope
from sipflow.messages import Counters, StatsMessage
from sipflow.models import CallMediaRow, SessionRow
from sipflow.settings import Settings
from tests.test_cli_stack import SIPFLOW

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _stats(sid: str, seq: int) -> StatsMessage:
    return StatsMessage(
        session_id=sid,
        runner_id="caller-0",
        role="caller",
        seq=seq,
        time=1000.0 + seq,
        periodic=Counters(calls_created=1, successful_calls=1),
        cumulative=Counters(),
        histogram=histogram.from_samples([5.0]),
    )


def _session(s: Settings, sid: str, status: str, age_days: float, kb: int) -> None:
    with session_scope(s.resolved_database_url) as db:
        store.create_session(db, sid, "default", sid, {}, None)
        row = db.get(SessionRow, sid)
        assert row is not None
        row.status = status
        row.finished_at = NOW - timedelta(days=age_days) if status != "running" else None
        row.created_at = NOW - timedelta(days=age_days, hours=1)
        db.add(row)
        db.commit()
        for seq in (1, 2, 3):
            store.store_interval(db, _stats(sid, seq))
        db.add(CallMediaRow(session_id=sid, stream_key=f"127.0.0.1:4000/{sid}"))  # a call's row
        db.commit()
    folder = s.runs_dir / sid / "caller-0"
    folder.mkdir(parents=True)
    (folder / "main-stat.csv").write_bytes(b"x" * kb * 1024)


def _settings(tmp_path: Path, database_url: str, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, **kw)  # type: ignore[arg-type]


def test_purges_by_age_and_size_oldest_first(tmp_path: Path, database_url: str) -> None:
    s = _settings(
        tmp_path,
        database_url,
        retention_runs_days=30,
        retention_runs_max_bytes=450 * 1024,
        retention_rows_days=60,
    )
    _session(s, "old", "completed", 90, 100)  # past both ages
    _session(s, "mid", "error", 20, 200)  # young, but the oldest over the size cap
    _session(s, "new", "completed", 1, 200)
    _session(s, "live", "running", 100, 200)  # never touched, however old
    dry = retention.run(s, dry_run=True, now=NOW)
    assert set(dry.purged) == {"old", "mid"}
    assert (s.runs_dir / "old").exists() and retention.read_state(s.data_dir) is None

    result = retention.run(s, now=NOW)
    assert "days" in result.purged["old"] and "max_bytes" in result.purged["mid"]
    assert sorted(p.name for p in s.runs_dir.iterdir()) == ["live", "new"]
    assert result.folders_removed == 2 and result.sessions_rows_purged == 1
    assert result.rows_deleted == 4  # 3 intervals and 1 call of "old"
    with session_scope(s.resolved_database_url) as db:
        assert store.stored_seqs(db, "old") == {}
        assert store.stored_seqs(db, "mid") == {"caller-0": 3}
        assert store.stored_seqs(db, "live") == {"caller-0": 3}
        assert db.get(SessionRow, "old") is not None  # the verdict and summary stay
        calls = {r.session_id for r in db.exec(select(CallMediaRow)).all()}
        assert calls == {"mid", "new", "live"}
    state = retention.read_state(s.data_dir)
    assert state is not None and state["usage"]["runs_sessions"] == 2
    again = retention.run(s, now=NOW)
    assert again.folders_removed == 0 and again.sessions_rows_purged == 0


def test_low_disk_is_logged(tmp_path: Path, database_url: str, caplog) -> None:  # type: ignore[no-untyped-def]
    s = _settings(tmp_path, database_url, disk_warn_free_fraction=1.0)
    result = retention.run(s, now=NOW)
    assert result.usage["low"]
    assert any("almost full" in r.getMessage() for r in caplog.records)


def test_cli_show_and_run(tmp_path: Path) -> None:
    from sipflow.db import migrate

    data = tmp_path / "data"
    s = Settings(data_dir=data)
    migrate(s.resolved_database_url)
    _session(s, "old", "completed", 400, 10)
    env_run = [*SIPFLOW, "retention"]
    shown = subprocess.run(
        [*env_run, "show", "--data-dir", str(data), "--json"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["would_purge"]["purged"].keys() == {"old"} and body["last_pass"] is None
    ran = subprocess.run([*env_run, "run", "--data-dir", str(data)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "removed 1 runs folders" in " ".join(ran.stdout.split()), ran.stdout
    assert not (data / "runs" / "old").exists()
