"""Activity inputs as the previous release's workflow code sent them.

A session that was running when the worker was upgraded may have an activity scheduled by the
old code: it arrives here with the old input (a session id, role counts, no placement). These
functions turn it into what the current activities take. Only then is the backend learned from
the stored spec; remove this module once no session of release 0.1.0 can be running.
"""

from __future__ import annotations

from collections.abc import Mapping

from sipflow import plan, store
from sipflow.db import session_scope
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


def stored_backend(settings: Settings, session_id: str) -> str:
    with session_scope(settings.resolved_database_url) as db:
        row = store.get_session(db, session_id)
        backend = SessionSpec.model_validate(row.spec).backend if row is not None else None
    return backend or settings.default_backend


def placement(settings: Settings, session_id: str) -> Placement:
    return Placement(session_id=session_id, backend=stored_backend(settings, session_id))


def runner_ids(callees: int, callers: int) -> list[str]:
    return [plan.runner_id("callee", i) for i in range(callees)] + [
        plan.runner_id("caller", i) for i in range(callers)
    ]


def peers(placement: Placement, spec: SessionSpec) -> Mapping[str, str]:
    """Where the callees of a session started by the old code are: on the docker backend at
    their runner id, on the local backend at .(10 + k) of the session's subnet."""
    callees = plan.runner_ids(spec, "callee")
    if placement.backend == "docker":
        return {r: r for r in callees}
    return {r: f"{placement.subnet}.{10 + i}" for i, r in enumerate(callees)}
