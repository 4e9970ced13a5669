"""Every route of the app, walked from app.routes so a new route cannot forget: without a
credential 401 (pages: a redirect to the sign-in page), with another tenant's admin key 404 for
every object named in the path, with a viewer's key 403 for every write. The few public routes
are listed here by name, with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from sipflow import audit
from sipflow.accounts import Role
from sipflow.db import session_scope
from tests.api_fixtures import api_client_fixture, client_as, mint_key, seed_session  # noqa: F401

# Routes anyone may call: what they answer holds nothing of a tenant.
PUBLIC = {
    "/v1/health": "reachability only, for load balancers",
    "/v1/openapi.json": "the API's description",
    "/docs": "the API's documentation",
    "/docs/oauth2-redirect": "part of the documentation page",
    "/redoc": "the API's documentation",
    "/": "a redirect to the dashboard (which asks to sign in)",
    "/dashboard": "a redirect to the dashboard (which asks to sign in)",
    "/dashboard/static/{path:path}": "the pages' scripts and styles, no data",
    "/dashboard/signin": "where one signs in",
}
# CORS preflights: browsers send them without credentials; they answer the UI's origin only.
PREFLIGHTS = {("OPTIONS", "/v1/codec/encode"), ("OPTIONS", "/v1/codec/decode")}
# Runner files take a per-runner token (backends/runner_tokens.py), never an API key.
RUNNER_TOKEN = re.compile(r"^/v1/runner/")
# Writes any signed-in role may do (POST /v1/flows/xml renders a flow's XML, stores nothing).
ANY_ROLE_WRITES = {("POST", "/dashboard/signout"), ("POST", "/v1/flows/xml")}
# Objects every tenant shares (still behind a key): path parameter -> a value to walk with.
SHARED = {"/v1/flows/{name}": ("name", "busy")}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
SID, RID = "a0a0a0a0a0a0", "caller-0"


def routes(app: Any) -> Iterator[tuple[str, str, bool]]:
    """(method, path, is an HTML page) of every route."""
    for route in iter_route_contexts(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, route.path, not route.include_in_schema and method == "GET"


def objects(database_url: str) -> dict[str, str]:
    """For every path parameter, an object of tenant team-a."""
    seed_session(database_url, SID)  # team-a's running session with runner caller-0
    key_id = _key_id(database_url)
    with session_scope(database_url) as db:
        audit.record(db, "team-a", key_id, "session.create", SID)
    return {
        "session_id": SID,
        "runner_id": RID,
        "key_id": key_id,
        "schedule_id": _schedule_id(database_url),
        "search_id": _search_id(database_url),
        "pool": _pool(database_url),
        "call_id": _evidence_call(database_url),
        **dict(SHARED.values()),
    }


def _evidence_call(database_url: str) -> str:
    """A kept call of team-a's session (its files need not exist for the walk)."""
    from sipflow.models import CallEvidenceRow

    with session_scope(database_url) as db:
        db.add(
            CallEvidenceRow(session_id=SID, call_id="1-1@walked", key="0" * 24, outcome="failed")
        )
        db.commit()
    return "1-1@walked"


def _pool(database_url: str) -> str:
    from sipflow import runner_hosts

    with session_scope(database_url) as db:
        runner_hosts.add_host(db, "team-a", "walked-pool")
    return "walked-pool"


def _search_id(database_url: str) -> str:
    from sipflow import capacity_store

    with session_scope(database_url) as db:
        capacity_store.create(db, "search0", "team-a", "walked", {})
    return "search0"


def _schedule_id(database_url: str) -> str:
    from sipflow import schedule_store
    from sipflow.models import ScheduleRow, utcnow

    now = utcnow()
    row = ScheduleRow(id="sched0", tenant="team-a", name="walked", spec={}, created_at=now,
                      updated_at=now)  # fmt: skip
    with session_scope(database_url) as db:
        schedule_store.create(db, row)
    return row.id


def _key_id(database_url: str) -> str:
    from sipflow import account_store

    with session_scope(database_url) as db:
        row, _ = account_store.create_key(db, "team-a", Role.viewer, "walked")
    return row.id


def fill(path: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0]
        if name not in values:
            pytest.fail(f"{path}: no team-a object for path parameter {name!r}; add one here")
        return values[name]

    return re.sub(r"\{([^}]+)\}", one, path)


def call(client: TestClient, method: str, url: str) -> Any:
    body: dict[str, Any] = {"json": {}} if method in WRITES else {}
    return client.request(method, url, follow_redirects=False, **body)


def test_every_route_needs_the_right_key(api_client: TestClient, database_url: str) -> None:
    values = objects(database_url)
    anonymous = client_as(api_client, None)
    other_tenant = client_as(api_client, mint_key(database_url, "team-b", Role.admin))
    viewer = client_as(api_client, mint_key(database_url, "team-a", Role.viewer))
    checked: list[str] = []
    failures: list[str] = []

    def expect(what: str, ok: bool, r: Any) -> None:
        if not ok:
            failures.append(f"{what}: {r.status_code} {r.text[:120]}")

    for method, path, page in routes(api_client.app):
        if path in PUBLIC or (method, path) in PREFLIGHTS:
            continue
        url = fill(path, values)
        name = f"{method} {path}"
        checked.append(name)
        if RUNNER_TOKEN.match(path):
            r = call(anonymous, method, url)
            expect(f"{name} without a token", r.status_code == 401, r)
            r = call(other_tenant, method, url)
            expect(f"{name} with an API key", r.status_code == 401, r)
            continue
        r = call(anonymous, method, url)
        if page:
            to_sign_in = r.headers.get("location", "").startswith("/dashboard/signin?next=")
            expect(f"{name} without a sign-in", r.status_code == 303 and to_sign_in, r)
        else:
            expect(f"{name} without a key", r.status_code == 401, r)
            expect(f"{name} WWW-Authenticate", "www-authenticate" in r.headers, r)
        if "{" in path and path not in SHARED:
            r = call(other_tenant, method, url)
            expect(f"{name} as team-b", r.status_code == 404, r)
        elif method == "GET":  # a list: team-a's objects are not in team-b's answer
            r = call(other_tenant, method, url)
            leaked = [v for v in (values["session_id"], values["key_id"]) if v in r.text]
            expect(f"{name} as team-b lists {leaked}", not leaked, r)
        if method in WRITES and (method, path) not in ANY_ROLE_WRITES:
            r = call(viewer, method, url)
            expect(f"{name} as a viewer", r.status_code == 403, r)

    assert not failures, "\n".join(failures)
    # The walk saw the routes it is about (a broken walk must not pass by seeing nothing).
    for must in (
        "POST /v1/sessions/{session_id}/cancel",
        "GET /v1/sessions/{session_id}/report.csv",
        "GET /dashboard/sessions/{session_id}",
        "GET /dashboard/api/sessions/{session_id}/live",
        "DELETE /v1/keys/{key_id}",
        "GET /v1/audit",
        "GET /metrics",
    ):
        assert must in checked, checked
