"""Storage on real SQLite and PostgreSQL: migrations, exactly-once intervals, runner states."""

from __future__ import annotations

from sipflow import histogram, store
from sipflow.db import migrate, session_scope
from sipflow.messages import Counters, DoneMessage, StatsMessage
from sipflow.summary import summarize


def stats(seq: int, ok: int, failed: int = 0, rid: str = "caller-0") -> StatsMessage:
    return StatsMessage(
        session_id="s1",
        runner_id=rid,
        role="caller",
        seq=seq,
        time=1000.0 + seq,
        periodic=Counters(calls_created=ok + failed, successful_calls=ok, failed_calls=failed),
        cumulative=Counters(),
        histogram=histogram.from_samples([5.0] * ok),
    )


def test_migrations_are_idempotent(database_url: str) -> None:
    migrate(database_url)  # second run on an up-to-date schema is a no-op
    with session_scope(database_url) as db:
        store.create_session(db, "s1", "default", "n", {"a": 1}, None)
        assert store.list_sessions(db)[1] == 1


def test_redelivered_interval_is_stored_once(database_url: str) -> None:
    with session_scope(database_url) as db:
        store.create_session(db, "s1", "default", "n", {}, None)
        store.upsert_runner(db, "s1", "caller-0", "caller", "127.0.0.1")
        assert store.store_interval(db, stats(1, 10))
        assert store.store_interval(db, stats(2, 7, 3))
        assert not store.store_interval(db, stats(1, 10))  # redelivery
        assert store.stored_seqs(db, "s1") == {"caller-0": 2}
        m = summarize(store.intervals(db, "s1"), store.runners(db, "s1"))
        assert m.measured["successful_calls"] == 17
        assert m.measured["failed_calls"] == 3
        assert m.measured["success_rate"] == 85.0
        assert m.measured["response_time_p95_ms"] == 5.0
        # 20 calls created in two one-second intervals; the empty exit row does not count.
        assert store.store_interval(db, stats(3, 0))
        m = summarize(store.intervals(db, "s1"), store.runners(db, "s1"))
        assert m.measured["achieved_rate"] == 10.0


def test_runner_state_never_moves_back(database_url: str) -> None:
    with session_scope(database_url) as db:
        store.create_session(db, "s1", "default", "n", {}, None)
        store.upsert_runner(db, "s1", "callee-0", "callee", "127.0.0.1")
        assert store.set_runner_state(db, "s1", "callee-0", "ready", None)
        store.store_done(
            db,
            DoneMessage(
                session_id="s1",
                runner_id="callee-0",
                role="callee",
                last_seq=4,
                exit_code=0,
                ok=True,
                summary=Counters(),
            ),
        )
        assert not store.set_runner_state(db, "s1", "callee-0", "running", None)
        assert not store.set_runner_state(db, "s1", "callee-0", "lost", None)
        (row,) = store.runners(db, "s1")
        assert (row.state, row.last_seq) == ("done", 4)
