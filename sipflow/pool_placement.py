"""Spreading a role's agents over a pool's live runner hosts by free capacity (pure logic: the
workflow's placement activity and the API's admission check both use it, the bench times it).

Each agent goes to the host with the most free agent slots left at that moment (ties: the host
id), so equal hosts get equal shares (4 agents on 2 hosts: 2/2) and a bigger host takes more.
"""

from __future__ import annotations

from pydantic import BaseModel


class HostSlot(BaseModel):
    host_id: str
    task_queue: str
    free: int  # agent slots: max_agents - running agents, as its last heartbeat said


class HostShare(BaseModel):
    host_id: str
    task_queue: str
    runner_ids: list[str]


class PoolTooSmall(ValueError):
    """The pool's live hosts cannot take the session's agents; the message has the numbers."""

    def __init__(self, pool: str, needed: int, hosts: list[HostSlot]) -> None:
        free = sum(max(h.free, 0) for h in hosts)
        per_host = ", ".join(f"{h.host_id}: {max(h.free, 0)}" for h in hosts) or "none"
        super().__init__(
            f"pool {pool!r} has {free} free agent slots on {len(hosts)} live hosts "
            f"({per_host}); the session needs {needed}"
        )
        self.pool, self.needed, self.free = pool, needed, free
        self.loc: tuple[str, ...] = ("pool",)  # the spec field that named the pool


def spread(pool: str, runner_ids: list[str], hosts: list[HostSlot]) -> list[HostShare]:
    """Which host runs which of `runner_ids`; PoolTooSmall when their free slots do not add up.
    Hosts that get nothing are left out."""
    free = {h.host_id: max(h.free, 0) for h in hosts}
    if sum(free.values()) < len(runner_ids):
        raise PoolTooSmall(pool, len(runner_ids), hosts)
    by_id = {h.host_id: h for h in hosts}
    shares: dict[str, list[str]] = {}
    for runner_id in runner_ids:
        host = min(free, key=lambda h: (-free[h], h))
        free[host] -= 1
        shares.setdefault(host, []).append(runner_id)
    return [
        HostShare(host_id=h, task_queue=by_id[h].task_queue, runner_ids=ids)
        for h, ids in sorted(shares.items())
    ]
