"""The placement of a session's agents on a runner-host pool, and what the stack does for the
hosts that they must not do themselves (main task queue: it reads the database and holds the
broker's admin credential, which runner hosts never do)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from backends import broker_auth, host_logins
from sipflow import host_reservations, runner_hosts
from sipflow.db import session_scope
from sipflow.models import utcnow
from sipflow.pool_placement import HostShare, PoolTooSmall, spread
from sipflow.settings import Settings

POOL_TOO_SMALL = "PoolTooSmall"
HOST_REVOKED = "HostRevoked"


class PlaceOnPool(BaseModel):
    session_id: str
    tenant: str
    pool: str
    runner_ids: list[str]


class HostLogins(BaseModel):
    session_id: str
    tenant: str
    shares: list[HostShare]


class PoolActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn
    def place_on_pool(self, req: PlaceOnPool) -> list[HostShare]:
        """Which live host of the pool runs which runners, their slots reserved until the
        session ends (sipflow/host_reservations.py); too little capacity is final (the session
        ends in error with the numbers, before anything started). A retry returns the
        placement made before."""
        with session_scope(self.settings.resolved_database_url) as db:
            made = host_reservations.of_session(db, req.session_id, req.pool)
            if made:
                return made
            host_reservations.lock_pool(db, req.tenant, req.pool)
            host_reservations.forget_ended(db)
            live = runner_hosts.live_hosts(db, req.tenant, req.pool, self.settings)
            try:
                shares = spread(req.pool, req.runner_ids, [slot for _, slot in live])
            except PoolTooSmall as exc:
                db.rollback()
                raise ApplicationError(str(exc), type=POOL_TOO_SMALL, non_retryable=True) from exc
            key_of = {slot.host_id: h.key_id for h, slot in live}
            host_reservations.reserve(db, req.session_id, req.pool, shares, key_of)
            db.commit()
            return shares

    @activity.defn
    def make_host_logins(self, req: HostLogins) -> dict[str, str]:
        """The broker logins of the runners placed on runner hosts (backends/host_logins.py);
        runner id -> password, for the workflow to hand to each host with its start. A host
        whose key was revoked since the placement gets none (final: the session ends error)."""
        now = utcnow()
        with session_scope(self.settings.resolved_database_url) as db:
            states = {
                h.host_id: runner_hosts.state(h, k, self.settings, now)
                for h, k in runner_hosts.hosts(db, req.tenant)
            }
        revoked = sorted(s.host_id for s in req.shares if states.get(s.host_id) == "revoked")
        if revoked:
            raise ApplicationError(
                f"runner host {', '.join(revoked)} was revoked", type=HOST_REVOKED,
                non_retryable=True,
            )  # fmt: skip
        by_host = {s.host_id: s.runner_ids for s in req.shares}
        return host_logins.make_logins(self.settings, req.session_id, by_host)

    @activity.defn
    def release_pool(self, session_id: str) -> int:
        """After the hosts' teardown: the session's slot reservations end and its runners'
        broker logins go (a host holds no admin credential to remove them). Returns the
        reservations ended."""
        try:
            broker_auth.remove_session(self.settings, session_id)
        except (broker_auth.BrokerAuthError, OSError) as exc:
            # The sweeper removes them later; the slots are released either way.
            activity.logger.warning("runner logins of %s stay on the broker: %s", session_id, exc)
        with session_scope(self.settings.resolved_database_url) as db:
            return host_reservations.release(db, session_id)
