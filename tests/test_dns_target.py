"""A target given by domain (target.dns) is resolved at session start by a DNS server of the
test's own (dnsmasq on loopback: NAPTR -> SRV -> A pointing at the test's Kamailio); the session
uses and shows the resolved address; an unresolvable domain ends the session with the reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from entrypoints.stack import free_port
from sipflow import store
from sipflow.db import session_scope
from sipflow.sip_dns import Unresolvable, resolve
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack, start_stack
from tests.sut.dnsmasq import dnsmasq
from tests.sut.kamailio import kamailio

ZONE = "sip.test"


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield port


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory: pytest.TempPathFactory, sut: int) -> Iterator[str]:
    records = [
        f"--naptr-record={ZONE},10,0,S,SIP+D2U,,_sip._udp.{ZONE}",
        # TCP is announced by SRV only, at a name with no address: the chain breaks there.
        f"--srv-host=_sip._udp.{ZONE},kam.{ZONE},{sut},0,1",
        f"--srv-host=_sip._tcp.{ZONE},gone.{ZONE},{sut},0,1",
        f"--host-record=kam.{ZONE},127.0.0.1",
        # Priority first: the lower one is tried first; one without an address is skipped.
        f"--srv-host=_sip._udp.backup.{ZONE},gone.{ZONE},{sut},0,1",
        f"--srv-host=_sip._udp.backup.{ZONE},kam.{ZONE},{sut},5,1",
        f"--srv-host=_sip._udp.backup.{ZONE},other.{ZONE},9,10,100",
        f"--host-record=other.{ZONE},127.0.0.9",
    ]
    with dnsmasq("127.0.0.1", free_port(), ZONE, records, tmp_path_factory.mktemp("dns")) as s:
        yield s


@pytest.fixture(scope="module")
def dns_stack(tmp_path_factory: pytest.TempPathFactory, dns_server: str) -> Iterator[RunningStack]:
    # The stack's worker inherits the environment: it resolves with the test's server only.
    saved = os.environ.get("SIPFLOW_DNS_SERVERS")
    os.environ["SIPFLOW_DNS_SERVERS"] = dns_server
    try:
        yield from start_stack(tmp_path_factory.mktemp("stack-dns"))
    finally:
        if saved is None:
            os.environ.pop("SIPFLOW_DNS_SERVERS", None)
        else:
            os.environ["SIPFLOW_DNS_SERVERS"] = saved


def _spec(domain: str, mode: str) -> dict[str, Any]:
    return {
        "name": "dns-target",
        "target": {"domain": domain, "dns": mode, "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": 20, "max_calls": 20, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["success_rate >= 100"],
    }


def test_resolver_follows_naptr_srv_a_and_says_where_the_chain_breaks(
    dns_server: str, sut: int
) -> None:
    found = resolve(ZONE, "udp", "naptr", [dns_server], 2)
    assert (found.host, found.port, found.transport) == ("127.0.0.1", sut, "udp")
    assert found.via == f"NAPTR {ZONE} -> SRV _sip._udp.{ZONE} -> kam.{ZONE} A 127.0.0.1"
    for _ in range(5):  # weights never reorder priorities
        backup = resolve(f"backup.{ZONE}", "udp", "srv", [dns_server], 2)
        assert (backup.host, backup.port) == ("127.0.0.1", sut), backup
    with pytest.raises(Unresolvable, match=f"no A/AAAA record for gone.{ZONE}"):
        resolve(ZONE, "tcp", "srv", [dns_server], 2)
    with pytest.raises(Unresolvable, match=f"SRV _sip._udp.nx.{ZONE}: no records"):
        resolve(f"nx.{ZONE}", "udp", "naptr", [dns_server], 2)


def test_session_calls_the_resolved_target_and_shows_it(dns_stack: RunningStack, sut: int) -> None:
    body = dns_stack.run(_spec(ZONE, "naptr"))
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    assert body["summary"]["measured"]["successful_calls"] == 20
    assert body["target"].startswith(f"{ZONE} -> 127.0.0.1:{sut}/udp (NAPTR {ZONE}"), body
    # Kept as found, for the runners whose config the API derives (container backends).
    with session_scope(dns_stack.stack.settings.resolved_database_url) as db:
        row = store.get_session(db, body["id"])
        assert row is not None and row.resolved_target is not None
        resolved = row.resolved_target
    assert (resolved["host"], resolved["port"], resolved["transport"]) == ("127.0.0.1", sut, "udp")


def test_unresolvable_target_ends_the_session_with_the_reason(dns_stack: RunningStack) -> None:
    body = dns_stack.run(_spec(f"nx.{ZONE}", "srv"), timeout=60)
    assert body["status"] == "error", body
    reasons = " | ".join(body["reasons"])
    assert f"target nx.{ZONE} not resolved" in reasons and "no records" in reasons, reasons
    assert body["summary"]["measured"].get("total_calls", 0) == 0


def test_dns_target_is_valid_on_every_backend() -> None:
    for backend in ("local", "docker", "fargate"):
        spec = _spec(ZONE, "srv") | {"backend": backend}
        assert SessionSpec.model_validate(spec).target is not None
    bad = _spec(ZONE, "srv")
    bad["target"]["dns"] = "mx"
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(bad)
    assert info.value.errors()[0]["loc"][:2] == ("target", "dns")
