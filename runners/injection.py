"""The injection CSV (`-inf`, SEQUENTIAL) that feeds accounts and callees to the scenarios.

One layout for every built-in scenario, one row per call, SIPp cycles through the rows:

    [field0] user            [field1] user's domain
    [field2] "[authentication username=U password=P]" or empty (SIPp expands a keyword
             injected from a CSV field; a keyword nested in a scenario line is not parsed)
    [field3] callee user     [field4] request-URI host (SUT domain, or host:port)
    [field5] contact host:port (this runner's own SIP address)
    [field6] "1" when the account has a password, else "0": call.xml answers a 401/407 to its
             INVITE with credentials only then (expanding [field2] into a variable to test it
             would make SIPp compute a digest, a fatal error before any challenge)
    [field7] the named party's user (party_to: a transfer's target), only when there is one

Accounts, callees and party users go round robin independently: row i = accounts[i % A],
call_to[i % C], party_to[i % P]. `rows_for` gives fields 0-5, `injection_rows` all of them
(what the agent writes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from sipflow.addresses import host_port, uri_host
from sipflow.runner_config import AccountConfig, RunnerConfig

Phase = Literal["register", "main"]
DEFAULT_USER = "sipflow"
_FORBIDDEN = set(";[]\r\n\t ")


# A bracketed IPv6 literal (a host, or host:port) passes SIPp's injection as it is (measured).
_IPV6_HOST = re.compile(r"^\[[0-9A-Fa-f:.]+\]")


def _check(value: str, what: str) -> str:
    bad = _FORBIDDEN.intersection(_IPV6_HOST.sub("", value, count=1))
    if bad:
        shown = "" if what == "password" else f" {value!r}"  # a password is never echoed
        raise ValueError(f"{what}{shown} contains characters SIPp cannot inject: {sorted(bad)}")
    return value


def auth_field(account: AccountConfig) -> str:
    if account.password is None:
        return ""
    user = _check(account.user, "user")
    password = _check(account.password, "password")
    return f"[authentication username={user} password={password}]"


def _row(account: AccountConfig, domain: str, callee: str, target: str, contact: str) -> list[str]:
    return [
        _check(account.user, "user"),
        _check(account.domain or domain, "domain"),
        auth_field(account),
        _check(callee, "callee"),
        _check(target, "target"),
        _check(contact, "contact"),
    ]


def rows_for(cfg: RunnerConfig, phase: Phase) -> list[list[str]]:
    contact = host_port(cfg.local_ip, cfg.local_port)
    accounts = cfg.accounts or [AccountConfig(user=DEFAULT_USER)]
    if phase == "register":
        if cfg.registrar is None:
            raise ValueError("register phase needs a registrar")
        domain = cfg.registrar.domain
        return [_row(accounts[0], domain, "", domain, contact)]
    if cfg.scenario == "register" and cfg.registrar is not None:
        target = cfg.registrar.domain
    else:
        target = cfg.domain or cfg.remote or uri_host(cfg.local_ip)
    registrar_domain = cfg.registrar.domain if cfg.registrar else None
    domain = cfg.domain or registrar_domain or uri_host(cfg.local_ip)
    callees = cfg.call_to or [DEFAULT_USER]
    n = max(len(accounts), len(callees), len(cfg.party_to))
    return [
        _row(accounts[i % len(accounts)], domain, callees[i % len(callees)], target, contact)
        for i in range(n)
    ]


def has_credentials(account: AccountConfig) -> str:
    return "1" if account.password is not None else "0"


def injection_rows(cfg: RunnerConfig, phase: Phase) -> list[list[str]]:
    """rows_for plus field6, the credentials flag of the row's account, and field7, the row's
    party user (main phase, when the config names party users)."""
    accounts = cfg.accounts or [AccountConfig(user=DEFAULT_USER)]
    party = cfg.party_to if phase == "main" else []
    return [
        [
            *row,
            has_credentials(accounts[0 if phase == "register" else i % len(accounts)]),
            *([_check(party[i % len(party)], "party user")] if party else []),
        ]
        for i, row in enumerate(rows_for(cfg, phase))
    ]


def write_injection(path: Path, rows: list[list[str]]) -> Path:
    text = "SEQUENTIAL\n" + "".join(";".join(r) + "\n" for r in rows)
    # Holds passwords: readable by the runner's user only, from its creation on.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
