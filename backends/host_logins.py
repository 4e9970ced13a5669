"""Broker logins of runners on runner hosts, made by the stack, never by the host.

A runner host holds neither the runner token secret nor the broker's admin credential
(docs/runner-hosts.md). The main task queue makes the broker logins of the runners placed on a
host (as backends/broker_auth.py does for the worker's own runners: the same username, role and
derived password) and puts each of them in a dynamic-security group of that host,
`host/<host id>`; the workflow hands the passwords to the host in its start activity's input
(encrypted under the host's own codec key). Revoking the host's key deletes every client of
its group: the broker kicks the connected ones and refuses them from then on (the API does it
when it revokes the key, `revoke_host_broker`; a broker that cannot be reached then does not
stop the revocation: the worker's sweep catches up, `sweep_revoked_hosts`).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, select

from backends import broker_auth
from backends.broker_auth import DynsecAdmin
from backends.runner_tokens import broker_password, runner_broker_user, token_key
from sipflow import account_store, runner_hosts
from sipflow.messages import runner_client_id
from sipflow.models import utcnow
from sipflow.settings import Settings

log = logging.getLogger(__name__)
GROUP_PREFIX = "host/"


def host_group(host_id: str) -> str:
    return f"{GROUP_PREFIX}{host_id}"


def add_host_runners(
    a: DynsecAdmin, key: bytes, session_id: str, host_id: str, runner_ids: list[str]
) -> dict[str, str]:
    """Idempotent: the runners' roles and clients, members of the host's group. Returns
    runner id -> its broker password (what the host's agents log in with)."""
    group = host_group(host_id)
    commands: list[dict[str, Any]] = [{"command": "createGroup", "groupname": group}]
    passwords: dict[str, str] = {}
    for rid in runner_ids:
        user = runner_broker_user(session_id, rid)
        passwords[rid] = broker_password(key, user)
        commands.append(
            {
                "command": "createRole",
                "rolename": user,
                "acls": broker_auth.runner_acls(session_id, rid),
            }
        )
        commands.append(
            {
                "command": "createClient",
                "username": user,
                "password": passwords[rid],
                "clientid": runner_client_id(session_id, rid),
                "roles": [{"rolename": user}],
            }
        )
        # A client that existed already (a retried activity) joins the group here.
        commands.append({"command": "addGroupClient", "groupname": group, "username": user})
    broker_auth._check(a.run(commands), "already")
    return passwords


def make_logins(
    settings: Settings, session_id: str, runners_by_host: dict[str, list[str]]
) -> dict[str, str]:
    """Runner id -> broker password, for the runners of every host of the session."""
    key = token_key(settings)
    passwords: dict[str, str] = {}
    with broker_auth.admin(settings) as a:
        for host_id, runner_ids in sorted(runners_by_host.items()):
            passwords |= add_host_runners(a, key, session_id, host_id, runner_ids)
    return passwords


def group_clients(a: DynsecAdmin, host_id: str) -> list[str]:
    (r,) = a.run([{"command": "getGroup", "groupname": host_group(host_id)}])
    if r.get("error"):
        return []  # no group: the host never ran a runner
    clients = r.get("data", {}).get("group", {}).get("clients", [])
    return [c["username"] for c in clients if "username" in c]


def revoke_host(settings: Settings, host_id: str) -> list[str]:
    """Deletes the broker logins of every runner the host runs (the broker disconnects them)
    and its group; returns the usernames removed."""
    with broker_auth.admin(settings) as a:
        users = group_clients(a, host_id)
        commands: list[dict[str, Any]] = []
        for user in users:
            commands.append({"command": "deleteClient", "username": user})
            commands.append({"command": "deleteRole", "rolename": user})
        commands.append({"command": "deleteGroup", "groupname": host_group(host_id)})
        broker_auth._check(a.run(commands), "not found")
    if users:
        log.info("revoked the broker logins of runner host %s: %s", host_id, ", ".join(users))
    return users


def revoke_host_broker(db: Session, settings: Settings, key_id: str) -> list[str]:
    """The broker logins removed for the host of this (revoked) key; [] when there were none
    or the broker could not be reached (logged)."""
    row = runner_hosts.of_key(db, key_id)
    if row is None or row.host_id is None:
        return []
    try:
        return revoke_host(settings, row.host_id)
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
        gone = revoke_host(settings, host.host_id)
        if gone:
            removed[host.host_id] = gone
    return removed
