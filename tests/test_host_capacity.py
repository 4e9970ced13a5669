"""Slot reservations of runner-host placements (sipflow/host_reservations.py) on real SQLite
and PostgreSQL: placements between two heartbeats do not count the same free slots twice, also
when they run at the same time; a retried placement returns its own; the slots come back when
the session ends, is released, or its reservation expires."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select
from temporalio.exceptions import ApplicationError

from activities.pools import PlaceOnPool, PoolActivities
from sipflow import host_reservations, runner_hosts, store
from sipflow.db import session_scope
from sipflow.host_reservations import ReservationRow
from sipflow.models import utcnow
from sipflow.runner_hosts import Heartbeat
from sipflow.settings import Settings

POOL = "edge"


def setup_pool(url: str, max_agents: int) -> Settings:
    """One live host of `max_agents` slots (it just heartbeat, no agents running)."""
    settings = Settings(database_url=url, runner_host_stale_s=3600)  # type: ignore[call-arg]
    with session_scope(url) as db:
        row, _ = runner_hosts.add_host(db, "default", POOL)
        hb = Heartbeat(host_id="h1", cores=2, max_agents=max_agents, running_agents=0)
        runner_hosts.record_heartbeat(db, row, hb, "sipflow")
    return settings


def new_session(url: str, sid: str) -> None:
    spec = {"name": sid, "roles": {"callers": {"agents": 2, "rate": 1, "duration_s": 10}}}
    with session_scope(url) as db:
        store.create_session(db, sid, "default", sid, spec, None)


def place(settings: Settings, sid: str, agents: int = 2) -> list[str]:
    req = PlaceOnPool(
        session_id=sid,
        tenant="default",
        pool=POOL,
        runner_ids=[f"caller-{i}" for i in range(agents)],
    )
    shares = PoolActivities(settings).place_on_pool(req)
    return [r for s in shares for r in s.runner_ids]


def test_back_to_back_placements_do_not_double_count(database_url: str) -> None:
    settings = setup_pool(database_url, max_agents=3)
    for sid in ("s1", "s2", "s3"):
        new_session(database_url, sid)
    assert place(settings, "s1") == ["caller-0", "caller-1"]
    # The heartbeat still says 0 running: only the reservation knows 2 of 3 slots are taken.
    with pytest.raises(ApplicationError, match=r"1 free agent slots on 1 live hosts .* needs 2"):
        place(settings, "s2")
    # A retried placement (its answer lost) gets the same hosts, reserving nothing more.
    assert place(settings, "s1") == ["caller-0", "caller-1"]
    with session_scope(database_url) as db:
        assert host_reservations.reserved(db) != {}
        assert sum(host_reservations.reserved(db).values()) == 2
        # The heartbeat reporting s1's agents running does not count them twice.
        row = runner_hosts.hosts(db, "default", POOL)[0][0]
        hb = Heartbeat(host_id="h1", cores=2, max_agents=3, running_agents=2)
        runner_hosts.record_heartbeat(db, row, hb, "sipflow")
        assert [s.free for s in runner_hosts.live_slots(db, "default", POOL, settings)] == [1]
        # Released at the session's clean-up: the slots are free for the next one.
        assert host_reservations.release(db, "s1") == 1
        hb = Heartbeat(host_id="h1", cores=2, max_agents=3, running_agents=0)
        runner_hosts.record_heartbeat(db, row, hb, "sipflow")
    assert place(settings, "s2") == ["caller-0", "caller-1"]
    # A session with a final status holds nothing, released or not.
    with pytest.raises(ApplicationError, match="needs 2"):
        place(settings, "s3")
    with session_scope(database_url) as db:
        store.set_status(db, "s2", "completed")
    assert place(settings, "s3") == ["caller-0", "caller-1"]
    # An expired reservation (a session whose workflow vanished) holds nothing either.
    with session_scope(database_url) as db:
        r = db.exec(select(ReservationRow).where(ReservationRow.session_id == "s3")).one()
        r.expires_at = utcnow() - timedelta(seconds=1)
        db.add(r)
        db.commit()
        assert host_reservations.reserved(db) == {}


def test_concurrent_placements_take_each_slot_once(database_url: str) -> None:
    """Eight placements of 2 agents at once on 5 slots: exactly two get placed."""
    settings = setup_pool(database_url, max_agents=5)
    sids = [f"c{i}" for i in range(8)]
    for sid in sids:
        new_session(database_url, sid)
    placed: list[str] = []
    refused: list[str] = []
    other: list[BaseException] = []
    go = threading.Barrier(len(sids))

    def one(sid: str) -> None:
        go.wait()
        for _ in range(20):  # as Temporal retries a failed activity (a busy database)
            try:
                place(settings, sid)
                placed.append(sid)
                return
            except ApplicationError:
                refused.append(sid)
                return
            except Exception as exc:
                other.append(exc)
        raise AssertionError(f"{sid}: not placed nor refused in 20 tries: {other[-3:]}")

    threads = [threading.Thread(target=one, args=(sid,)) for sid in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(placed) == 2 and len(refused) == 6, (placed, refused, other)
    with session_scope(database_url) as db:
        assert sum(host_reservations.reserved(db).values()) == 4
