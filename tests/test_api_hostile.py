"""Each hostile input of issue 9 against the API on real SQLite and PostgreSQL (Temporal
unreachable): the right 4xx, and nothing created."""

from __future__ import annotations

import copy
import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sipflow import store, tenant_policy
from sipflow.db import session_scope
from sipflow.tenant_policy import Quotas, TenantPolicy
from tests.api_fixtures import (
    VALID_SPEC,
    ApiServer,
    api_client_fixture,  # noqa: F401
    bearer,
    client_as,
    dead_address,
    finish,
    make_settings,
    mint_key,
    seed_session,
)


def spec_with(**changes: Any) -> dict[str, Any]:
    """VALID_SPEC with `changes` applied at dotted paths ("roles.callers.rate": 5)."""
    spec = copy.deepcopy(VALID_SPEC)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {}) if not p.isdigit() else node[int(p)]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return spec


def sessions_stored(url: str) -> int:
    with session_scope(url) as db:
        return store.list_sessions(db)[1]


def post_raw(client: TestClient, body: str) -> Any:
    return client.post(
        "/v1/sessions", content=body.encode(), headers={"Content-Type": "application/json"}
    )


def field_of(reply: Any) -> list[list[Any]]:
    return [e["loc"] for e in reply.json()["detail"]]


ACCOUNT = {"user": "bob", "password": "pw", "domain": "sip.test"}
HOSTILE_SPECS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "target 0.0.0.0": (
        spec_with(target={"host": "0.0.0.0", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target metadata": (
        spec_with(target={"host": "169.254.169.254", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target name": (
        spec_with(target={"host": "example.com", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target broadcast": (
        spec_with(target={"host": "255.255.255.255", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target multicast": (
        spec_with(target={"host": "224.0.0.1", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target public": (
        spec_with(target={"host": "8.8.8.8", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target mapped metadata": (
        spec_with(target={"host": "::ffff:169.254.169.254", "registrar": False}),
        ["body", "target", "host"],
    ),
    "target CRLF": (
        spec_with(target={"host": "127.0.0.1\r\nX: y", "registrar": False}),
        ["body", "target", "host"],
    ),
    "max_calls huge": (
        spec_with(**{"roles.callers.max_calls": 10**12}),
        ["body", "roles", "callers", "max_calls"],
    ),
    "max_concurrent huge": (
        spec_with(**{"roles.callers.max_concurrent": 10**9}),
        ["body", "roles", "callers", "max_concurrent"],
    ),
    "100k accounts": (
        spec_with(**{"roles.callers.accounts": [{"user": f"u{i}"} for i in range(100_000)]}),
        ["body", "roles", "callers", "accounts"],
    ),
    "100k thresholds": (
        spec_with(thresholds=["failed_calls == 0"] * 100_000),
        ["body", "thresholds"],
    ),
    "100k call_to": (
        spec_with(**{"roles.callers.call_to": ["bob"] * 100_000}),
        ["body", "roles", "callers", "call_to"],
    ),
    "CRLF in domain": (
        spec_with(**{"roles.callers.accounts": [{**ACCOUNT, "domain": "sip.test\r\nVia: x"}]}),
        ["body", "roles", "callers", "accounts", 0, "domain"],
    ),
    "CRLF in password": (
        spec_with(**{"roles.callers.accounts": [{**ACCOUNT, "password": "a\r\nb"}]}),
        ["body", "roles", "callers", "accounts", 0, "password"],
    ),
    "NUL in password": (
        spec_with(**{"roles.callers.accounts": [{**ACCOUNT, "password": "a\x00b"}]}),
        ["body", "roles", "callers", "accounts", 0, "password"],
    ),
    "CRLF in call_to": (
        spec_with(**{"roles.callers.call_to": ["bob\r\nTo: x"]}),
        ["body", "roles", "callers", "call_to"],
    ),
    "NUL in name": (spec_with(name="a\x00b"), ["body", "name"]),
    "LF in name": (spec_with(name="a\nb"), ["body", "name"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SPECS))
def test_hostile_spec_is_422_naming_the_field_and_creates_nothing(
    api_client: TestClient, database_url: str, case: str
) -> None:
    spec, loc = HOSTILE_SPECS[case]
    r = api_client.post("/v1/sessions", json=spec)
    assert r.status_code == 422, r.text
    locs = field_of(r)
    assert any(found[: len(loc)] == loc for found in locs), locs
    assert sessions_stored(database_url) == 0


NON_FINITE = {
    "rate": '"roles":{"callers":{"rate":%s,"max_calls":5}}',
    "duration_s": '"roles":{"callers":{"duration_s":%s}}',
    "timeout_s": '"timeout_s":%s,"roles":{"callers":{"max_calls":5}}',
    "cpus": '"roles":{"callers":{"max_calls":5,"resources":{"cpus":%s}}}',
}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_422_in_valid_json(
    api_client: TestClient, database_url: str, number: str
) -> None:
    for field, body in NON_FINITE.items():
        r = post_raw(api_client, "{" + body % number + "}")
        assert r.status_code == 422, (field, r.text)
        json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in the reply"))
        assert any(field in loc for loc in field_of(r)), (field, r.text)
    assert sessions_stored(database_url) == 0


def test_rate_change_rejects_nan(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "s-nan")
    r = api_client.post(
        "/v1/sessions/s-nan/rate",
        content=b'{"rate": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "NaN" not in r.text.replace('"NaN"', "")


@pytest.mark.parametrize("path", ["/v1/sessions", "/dashboard/api/sessions"])
def test_huge_offsets_and_limits_are_422(api_client: TestClient, path: str) -> None:
    for query in ("offset=9223372036854775808", "offset=-1", "limit=0", "limit=100000"):
        assert api_client.get(f"{path}?{query}").status_code == 422, query
    assert api_client.get(f"{path}?offset=1000").status_code == 200


def test_control_characters_in_path_or_query_are_422(api_client: TestClient) -> None:
    assert api_client.get("/v1/sessions?tenant=a%00b").status_code == 422
    assert api_client.get("/v1/sessions/a%00b").status_code == 422
    assert api_client.get("/v1/sessions?tenant=a%0d%0ab").status_code == 422


def test_non_ascii_runner_token_is_401(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "s-tok")
    for token in ("sfr1.\xe9", "sfr1.é", "\u2028", ""):
        r = api_client.get(
            "/v1/runner/sessions/s-tok/runners/caller-0/config",
            headers={"Authorization": f"Bearer {token}".encode()},
        )
        assert r.status_code == 401, (token, r.text)


def test_body_over_the_limit_is_413_and_creates_nothing(
    api_client: TestClient, database_url: str
) -> None:
    big = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = api_client.post("/v1/sessions", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    r = api_client.post(
        "/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert sessions_stored(database_url) == 0


def test_413_comes_before_the_body_is_sent(tmp_path: Any) -> None:
    """A served API answers a declared 10 MB body with 413 having read none of it."""
    settings = make_settings(f"sqlite:///{tmp_path / 'api.db'}", dead_address())
    with ApiServer(settings) as server, socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(
            b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n{"
        )
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 413")


def test_junit_xml_is_well_formed_with_control_characters_stored(
    api_client: TestClient, database_url: str
) -> None:
    """Rows written before specs refused them (and reasons from a SUT) may hold any text."""
    spec = {**VALID_SPEC, "name": "bad\x01name\x1b"}
    seed_session(database_url, "s-xml", spec=spec)
    finish(database_url, "s-xml", "fail", measured={"success_rate": 90.0})
    r = api_client.get("/v1/sessions/s-xml/junit.xml")
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    assert root.tag == "testsuites" and "bad\ufffdname" in root.attrib["name"]


def test_target_refused_by_policy_names_the_field(
    api_client: TestClient, database_url: str
) -> None:
    with session_scope(database_url) as db:
        tenant_policy.save(db, "team-a", TenantPolicy(allowed_networks=["127.0.0.0/8"]))
    r = api_client.post(
        "/v1/sessions", json=spec_with(target={"host": "10.0.0.1", "registrar": False})
    )
    assert r.status_code == 422
    item = r.json()["detail"][0]
    assert item["loc"] == ["body", "target", "host"]
    assert item["type"] == "target_not_allowed" and item["ctx"]["limit"] == "allowed_networks"
    # The same target, allowed by another tenant's (default) policy, gets past the check.
    other = spec_with(target={"host": "10.0.0.1", "registrar": False})
    other.pop("tenant", None)
    team_b = client_as(api_client, mint_key(database_url, "team-b"))
    assert team_b.post("/v1/sessions", json=other).status_code == 503  # Temporal is down
    assert sessions_stored(database_url) == 1


QUOTA_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[Any]]] = {
    "agents": ({"agents": 2}, {}, ["body", "roles"]),
    "calls_per_s": ({"calls_per_s": 5}, {}, ["body", "roles", "callers", "rate"]),
    "calls_per_session": (
        {"calls_per_session": 10},
        {},
        ["body", "roles", "callers", "max_calls"],
    ),
    "duration_s": (
        {"duration_s": 1},
        {"roles.callers.max_calls": 100},
        ["body", "roles", "callers", "duration_s"],
    ),
}


@pytest.mark.parametrize("limit", sorted(QUOTA_CASES))
def test_quota_is_429_naming_the_limit(
    api_client: TestClient, database_url: str, limit: str
) -> None:
    quotas, changes, loc = QUOTA_CASES[limit]
    with session_scope(database_url) as db:
        tenant_policy.save(db, "team-a", TenantPolicy(quotas=Quotas(**quotas)))
    r = api_client.post("/v1/sessions", json=spec_with(**changes))
    assert r.status_code == 429, r.text
    item = r.json()["detail"][0]
    assert (item["ctx"]["limit"], item["loc"]) == (limit, loc), item
    assert sessions_stored(database_url) == 0


def test_concurrent_sessions_quota_is_429(api_client: TestClient, database_url: str) -> None:
    with session_scope(database_url) as db:
        tenant_policy.save(db, "team-a", TenantPolicy(quotas=Quotas(concurrent_sessions=1)))
    seed_session(database_url, "s-run")
    r = api_client.post("/v1/sessions", json=VALID_SPEC)
    assert r.status_code == 429 and r.headers["Retry-After"]
    assert r.json()["detail"][0]["ctx"] == {"limit": "concurrent_sessions", "max": 1}
    assert sessions_stored(database_url) == 1
    # Once it ended, the next one gets past the quota (and fails on Temporal, which is down).
    finish(database_url, "s-run", "pass", measured={"success_rate": 100.0})
    assert api_client.post("/v1/sessions", json=VALID_SPEC).status_code == 503


def test_rate_change_over_the_quota_is_429(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "s-rate")
    with session_scope(database_url) as db:
        tenant_policy.save(db, "team-a", TenantPolicy(quotas=Quotas(calls_per_s=50)))
    r = api_client.post("/v1/sessions/s-rate/rate", json={"rate": 60})
    assert r.status_code == 429 and r.json()["detail"][0]["ctx"]["limit"] == "calls_per_s"


def test_database_exhausted_is_503_and_health_still_answers(database_url: str) -> None:
    """Every connection of the gate taken: a listing waits api_db_wait_s then gets 503; the
    health check answers at once, on connections of its own."""
    from api.main import create_app

    settings = make_settings(database_url, dead_address()).model_copy(
        update={"api_db_wait_s": 0.5, "db_pool_size": 1, "db_max_overflow": 0}
    )
    with TestClient(create_app(settings), headers=bearer(mint_key(database_url))) as client:
        gate = client.app.state.db_gate  # type: ignore[attr-defined]
        client.portal.call(gate.acquire)
        try:
            t0 = time.monotonic()
            r = client.get("/v1/sessions")
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            assert time.monotonic() - t0 < 5
            t0 = time.monotonic()
            health = client.get("/v1/health")
            assert health.json()["database"]["ok"] is True, health.text
            assert time.monotonic() - t0 < settings.health_timeout_s + 2
        finally:
            gate.release()
        assert client.get("/v1/sessions").status_code == 200


def test_health_is_503_not_a_hang_when_the_database_does_not_answer(
    api_client: TestClient,
) -> None:
    """A database that accepts TCP connections and never answers: 503 within the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        app = api_client.app
        settings = app.state.settings  # type: ignore[attr-defined]
        app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
            update={
                "database_url": f"postgresql+psycopg://x@127.0.0.1:{port}/x",
                "health_timeout_s": 1.0,
            }
        )
        try:
            t0 = time.monotonic()
            r = api_client.get("/v1/health")
            elapsed = time.monotonic() - t0
        finally:
            app.state.settings = settings  # type: ignore[attr-defined]
    assert r.status_code == 503
    assert r.json()["database"]["ok"] is False
    assert elapsed < 3, elapsed
