"""Admission (sipflow/admission.py) on SQLite and PostgreSQL: sessions run while their runners
fit, the others stay `queued`; concurrent admissions never overshoot the limit."""

from __future__ import annotations

import threading
from typing import Any

from sipflow import admission, store
from sipflow.db import session_scope
from sipflow.models import SessionRow


def spec(callees: int = 1, callers: int = 1) -> dict[str, Any]:
    return {
        "name": "a",
        "roles": {
            "callees": {"agents": callees, "scenario": "answer"},
            "callers": {"agents": callers, "scenario": "call", "rate": 1},
        },
    }


def queued(url: str, n: int, s: dict[str, Any] | None = None) -> list[str]:
    ids = [f"adm{i:03d}" for i in range(n)]
    with session_scope(url) as db:
        for sid in ids:
            store.create_session(db, sid, "t", sid, s or spec(), None)
            store.set_status(db, sid, "queued")
    return ids


def status(url: str, sid: str) -> str:
    with session_scope(url) as db:
        row = db.get(SessionRow, sid)
        assert row is not None
        return row.status


def test_runner_and_session_limits(database_url: str) -> None:
    a, b, c, d = queued(database_url, 4)
    with session_scope(database_url) as db:
        assert admission.admit(db, a, 2, max_runners=5, max_sessions=0)
        assert admission.admit(db, b, 2, max_runners=5, max_sessions=0)
        assert not admission.admit(db, c, 2, max_runners=5, max_sessions=0)  # 6 > 5
    assert (status(database_url, b), status(database_url, c)) == ("running", "queued")
    with session_scope(database_url) as db:
        store.finish_session(db, a, "completed", "pass", {}, [])
        assert admission.admit(db, c, 2, max_runners=5, max_sessions=2)
        assert not admission.admit(db, d, 2, max_runners=100, max_sessions=2)  # 2 running
        assert admission.admit(db, b, 2, max_runners=0, max_sessions=1)  # already running
        assert admission.counts(db) == {"queued": 1, "running": 2, "stopping": 0}


def test_a_session_alone_always_runs(database_url: str) -> None:
    (big,) = queued(database_url, 1, spec(callees=10, callers=10))
    with session_scope(database_url) as db:
        assert admission.admit(db, big, 20, max_runners=4, max_sessions=0)


def test_concurrent_admissions_do_not_overshoot(database_url: str) -> None:
    ids = queued(database_url, 24)
    admitted: list[str] = []
    lock = threading.Lock()

    def ask(sid: str) -> None:
        for _ in range(20):
            try:
                with session_scope(database_url) as db:
                    ok = admission.admit(db, sid, 2, max_runners=10, max_sessions=0)
            except Exception:  # SQLite: "database is locked" under contention; ask again
                continue
            if ok:
                with lock:
                    admitted.append(sid)
            return

    threads = [threading.Thread(target=ask, args=(sid,)) for sid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 5, admitted
    with session_scope(database_url) as db:
        assert admission.counts(db)["running"] == 5


def test_limit_derived_from_memory() -> None:
    assert admission.runner_limit(7, 50) == 7
    derived = admission.runner_limit(0, 50)
    assert derived == max(2, int(admission.machine_memory_mb() * 0.7) // 50)
    assert admission.runners_of(spec(callees=3, callers=2)) == 5
    assert admission.runners_of({"roles": {"callers": {}}}) == 1
