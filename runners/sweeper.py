"""Removes the containers and networks of sessions that no longer run (docker backend).

A session's own teardown removes what it made; this catches what a dead session left behind
(its workflow terminated, the database restored, an engine that was down during teardown).
What belongs to a session is found by its labels; a session counts as running until its stored
status is final (completed, cancelled, error). Unknown sessions (no row) are swept too.

    python -m runners.sweeper            # one sweep, prints what it removed
    python -m runners.sweeper --every 300

The worker runs the same sweep every SIPFLOW_DOCKER_SWEEP_INTERVAL_S seconds when that is > 0.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable

from runners.docker_backend import DockerBackend
from sipflow.settings import Settings, get_settings

log = logging.getLogger(__name__)
FINAL_STATUSES = ("completed", "cancelled", "error")


def db_still_running(settings: Settings) -> Callable[[str], bool]:
    from sipflow import store
    from sipflow.db import session_scope

    def still_running(session_id: str) -> bool:
        with session_scope(settings.resolved_database_url) as db:
            row = store.get_session(db, session_id)
            return row is not None and row.status not in FINAL_STATUSES

    return still_running


def sweep(backend: DockerBackend, still_running: Callable[[str], bool]) -> dict[str, list[str]]:
    """Session id -> names of the containers and networks removed for it."""
    removed: dict[str, list[str]] = {}
    for sid in sorted(backend.sessions_present()):
        if still_running(sid):
            continue
        backend.stop(sid, grace_s=5)  # let agents report `done` if they still can
        names = backend.teardown(sid)
        if names:
            log.info("swept session %s: %s", sid, ", ".join(names))
            removed[sid] = names
    return removed


def start_periodic(settings: Settings, stop: threading.Event) -> threading.Thread:
    """A daemon thread sweeping every settings.docker_sweep_interval_s until `stop` is set."""

    def loop() -> None:
        still_running = db_still_running(settings)
        while not stop.wait(settings.docker_sweep_interval_s):
            try:
                sweep(DockerBackend.from_settings(settings), still_running)
            except Exception:  # the engine may be down for a while: try again next time
                log.exception("docker sweep failed")

    thread = threading.Thread(target=loop, name="docker-sweeper", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.sweeper", description=__doc__)
    parser.add_argument("--every", type=float, default=0, help="sweep every N seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings()
    still_running = db_still_running(settings)
    while True:
        removed = sweep(DockerBackend.from_settings(settings), still_running)
        for sid, names in removed.items():
            print(f"{sid}: removed {', '.join(names)}")
        if args.every <= 0:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
