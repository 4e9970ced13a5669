"""Removes what sessions that no longer run left behind, on every backend.

A session's own cleanup stops its runners and tears its network down; this catches what a dead
session left (its workflow terminated, the database restored, an engine that was down during
teardown). A backend says which sessions it holds something for; whoever runs the sweep says
which of them may still run (the entrypoints: stored status not final and workflow still open;
`db_still_running` here is the stored status alone). Unknown sessions (no row) are swept too,
so point it only at backends this stack owns (the local backend's state is this stack's data
directory; the docker backend's is the engine's labelled objects).

    sipflow sweep              # one sweep, prints what it removed
    sipflow sweep --every 300

The worker runs the same sweep every SIPFLOW_SWEEP_INTERVAL_S seconds when that is > 0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from backends import broker_auth
from backends.base import RunnerBackend
from backends.host_logins import sweep_revoked_hosts
from backends.registry import Backends, names
from sipflow import store
from sipflow.db import session_scope
from sipflow.models import FINAL_STATUSES
from sipflow.placement import Placement
from sipflow.settings import Settings

log = logging.getLogger(__name__)


def db_still_running(settings: Settings) -> Callable[[str], bool]:
    def still_running(session_id: str) -> bool:
        with session_scope(settings.resolved_database_url) as db:
            row = store.get_session(db, session_id)
            return row is not None and row.status not in FINAL_STATUSES

    return still_running


def sweep(backend: RunnerBackend, still_running: Callable[[str], bool]) -> dict[str, list[str]]:
    """Session id -> what was removed for it (names, addresses) on this backend."""
    removed: dict[str, list[str]] = {}
    for sid in sorted(backend.sessions_present()):
        if still_running(sid):
            continue
        placement = Placement(session_id=sid, backend=backend.name)
        backend.stop(placement, grace_s=5)  # let agents report `done` if they still can
        gone = backend.teardown(placement)
        if gone:
            log.info("swept session %s on %s: %s", sid, backend.name, ", ".join(gone))
            removed[sid] = gone
    return removed


def sweep_broker(settings: Settings, still_running: Callable[[str], bool]) -> dict[str, list[str]]:
    """Session id -> broker clients removed: runner credentials of sessions that no longer run."""
    with broker_auth.admin(settings) as admin:
        present = {broker_auth.session_of(u) for u in broker_auth.runner_users(admin)}
        dead = {sid for sid in present if not still_running(sid)}
        gone = broker_auth.remove_sessions(admin, dead)
    removed: dict[str, list[str]] = {}
    for user in gone:
        removed.setdefault(broker_auth.session_of(user), []).append(user)
    for sid, users in removed.items():
        log.info("swept session %s on the broker: %s", sid, ", ".join(users))
    return removed


def sweep_all(
    backends: Backends, still_running: Callable[[str], bool], only: Iterable[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """Backend -> session -> what was removed ("mqtt": runner credentials on the broker, when
    every backend is swept). A backend that cannot be reached (an engine that is down) is
    logged and skipped: the next sweep tries again."""
    result: dict[str, dict[str, list[str]]] = {}
    for name in only or names():
        try:
            removed = sweep(backends.get(name), still_running)
        except Exception as exc:
            log.warning("sweep of the %s backend failed: %s", name, exc)
            continue
        if removed:
            result[name] = removed
    if only is None:  # the broker's runner credentials belong to no backend
        try:
            removed = sweep_broker(backends.settings, still_running)
        except Exception as exc:
            log.warning("sweep of the broker's runner credentials failed: %s", exc)
        else:
            if removed:
                result["mqtt"] = removed
        try:  # runner hosts revoked while the broker was down (backends/host_logins.py)
            with session_scope(backends.settings.resolved_database_url) as db:
                hosts = sweep_revoked_hosts(db, backends.settings)
        except Exception as exc:
            log.warning("sweep of revoked runner hosts' broker logins failed: %s", exc)
        else:
            if hosts:
                result["revoked-hosts"] = hosts
    return result


def start_periodic(
    settings: Settings,
    backends: Backends,
    still_running: Callable[[str], bool],
    stop: threading.Event,
) -> threading.Thread:
    """A daemon thread sweeping every settings.sweep_interval_s until `stop` is set."""

    def loop() -> None:
        while not stop.wait(settings.sweep_interval_s):
            sweep_all(backends, still_running)

    thread = threading.Thread(target=loop, name="sweeper", daemon=True)
    thread.start()
    return thread
