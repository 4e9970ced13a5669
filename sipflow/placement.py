"""Where a session's runners run, as the workflow carries it from activity to activity.

A session's runners are *placed*: each placement names the backend that runs them (and, for
backends that have them, a runner host or the task queue of the worker that drives them) plus
the network that backend made for them. The backend is resolved once, when the network is
provisioned; every later activity gets the placement and never re-reads the spec to learn it.
A runner's address is known only once it started (a container, a cloud task), so starting
runners returns them.
"""

from __future__ import annotations

from pydantic import BaseModel

from sipflow.messages import Role


class Placement(BaseModel):
    """Some (today: all) of one session's runners on one backend.

    Its JSON is a superset of what the provision activity returned before placements existed
    (session_id, subnet, backend, name), so histories and activities of sessions started then
    still decode.
    """

    session_id: str
    backend: str = "local"
    # A runner host of a pool, and the task queue of the worker that starts/stops runners
    # there; None: the session's own worker, on its own machine or engine.
    host: str | None = None
    task_queue: str | None = None
    # The runners placed here; empty in placements made before they were listed (all of them).
    runner_ids: list[str] = []
    # The network the backend made: local, a /24 prefix of the loopback range ("127.201.7");
    # docker, the bridge network's CIDR and name.
    subnet: str = ""
    name: str | None = None
    # Whether the backend can start runners ahead, held until a `go` control message (its
    # runners get their config from it, not from a source that cannot say so), and knows where
    # the callees are reached before they start (so held callers start beside them).
    prestart: bool = False
    # The runners' broker logins were made with the placement (beside the network), so
    # starting them need not make them (False in placements made before).
    broker_logins: bool = False


class StartedRunner(BaseModel):
    """A runner that a backend started (or found already started), with its address."""

    runner_id: str
    role: Role
    address: str
