"""Revoking a runner host's key also ends its broker access (docs/runner-hosts.md).

The API answers 401 to the key at once; its runners' broker logins (the dynamic-security group
of the host, backends/host_logins.py) are deleted, which disconnects them, so a revoked host can
neither take new work nor publish anything more. A broker that cannot be reached does not stop
the revocation: the worker's sweep retries it (`sweep_revoked_hosts`).
"""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from backends import broker_auth, host_logins
from sipflow import account_store, runner_hosts
from sipflow.models import utcnow
from sipflow.settings import Settings

log = logging.getLogger(__name__)


def revoke_host_broker(db: Session, settings: Settings, key_id: str) -> list[str]:
    """The broker logins removed for the host of this (revoked) key; [] when there were none
    or the broker could not be reached (logged)."""
    row = runner_hosts.of_key(db, key_id)
    if row is None or row.host_id is None:
        return []
    try:
        return host_logins.revoke_host(settings, row.host_id)
    except (broker_auth.BrokerAuthError, OSError) as exc:
        log.warning("broker logins of revoked runner host %s stay for now: %s", row.host_id, exc)
        return []


def sweep_revoked_hosts(db: Session, settings: Settings) -> dict[str, list[str]]:
    """Host id -> broker logins removed, for every host whose key is revoked (the sweep's
    catch-up when the broker was down at the revocation)."""
    now = utcnow()
    removed: dict[str, list[str]] = {}
    for host in db.exec(select(runner_hosts.RunnerHostRow)).all():
        key = account_store.get_key(db, host.key_id)
        if host.host_id is None or (key is not None and key.usable(now)):
            continue
        gone = host_logins.revoke_host(settings, host.host_id)
        if gone:
            removed[host.host_id] = gone
    return removed
