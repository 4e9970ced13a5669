"""The placement of a session's agents on a runner-host pool (main task queue: it reads the
database, which runner hosts never do)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from sipflow import runner_hosts
from sipflow.db import session_scope
from sipflow.pool_placement import HostShare, PoolTooSmall, spread
from sipflow.settings import Settings

POOL_TOO_SMALL = "PoolTooSmall"


class PlaceOnPool(BaseModel):
    session_id: str
    tenant: str
    pool: str
    runner_ids: list[str]


class PoolActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn
    def place_on_pool(self, req: PlaceOnPool) -> list[HostShare]:
        """Which live host of the pool runs which runners; too little capacity is final (the
        session ends in error with the numbers, before anything started)."""
        with session_scope(self.settings.resolved_database_url) as db:
            slots = runner_hosts.live_slots(db, req.tenant, req.pool, self.settings)
        try:
            return spread(req.pool, req.runner_ids, slots)
        except PoolTooSmall as exc:
            raise ApplicationError(str(exc), type=POOL_TOO_SMALL, non_retryable=True) from exc
