"""Authentication and tenancy of the API and the dashboard (real databases, Temporal down):
keys and their roles, tenant from the credential, sign-in cookie, CSRF, keys and audit routes."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, AdminWithoutCsrfDep
from sipflow import account_store
from sipflow.accounts import Role
from sipflow.db import session_scope
from tests.api_fixtures import (
    VALID_SPEC,
    api_client_fixture,  # noqa: F401
    client_as,
    mint_key,
    seed_session,
)

BASE = "http://testserver"


def test_no_bad_revoked_or_expired_key_is_401(api_client: TestClient, database_url: str) -> None:
    with session_scope(database_url) as db:
        revoked, revoked_secret = account_store.create_key(db, "team-a", Role.admin)
        account_store.revoke_key(db, revoked.id)
        _, expired_secret = account_store.create_key(
            db, "team-a", Role.admin, expires_in=timedelta(seconds=-1)
        )
    for key in (None, "sfk_wrong", revoked_secret, expired_secret):
        r = client_as(api_client, key).get("/v1/sessions")
        assert r.status_code == 401, (key, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    anonymous = client_as(api_client, None)
    assert anonymous.get("/v1/sessions", headers={"Authorization": "Basic eDp5"}).status_code == 401
    non_ascii = {"Authorization": "Bearer sfk_\u00e9".encode()}
    assert anonymous.get("/v1/sessions", headers=non_ascii).status_code == 401  # type: ignore[arg-type]
    assert api_client.get("/v1/sessions").status_code == 200
    assert client_as(api_client, None).get("/v1/health").status_code == 503  # public, Temporal down


def test_tenant_comes_from_the_key(api_client: TestClient, database_url: str) -> None:
    other = copy.deepcopy(VALID_SPEC)
    other["tenant"] = "team-b"
    r = api_client.post("/v1/sessions", json=other)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "tenant"]]
    assert "team-a" in r.json()["detail"][0]["msg"]
    no_tenant = {k: v for k, v in VALID_SPEC.items() if k != "tenant"}
    assert api_client.post("/v1/sessions", json=no_tenant).status_code == 503  # Temporal down
    with session_scope(database_url) as db:
        tenants = db.connection().execute(text("SELECT tenant FROM session")).scalars().all()
    assert tenants == ["team-a"]  # the 422 stored nothing; the other is in the key's tenant


def test_another_tenants_session_is_404_and_not_listed(
    api_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "a00000000001")
    b = client_as(api_client, mint_key(database_url, "team-b", Role.admin))
    for path in ("", "/metrics", "/report.json", "/report.csv", "/junit.xml"):
        assert api_client.get(f"/v1/sessions/a00000000001{path}").status_code in (200, 409)
        assert b.get(f"/v1/sessions/a00000000001{path}").status_code == 404, path
    assert b.get("/dashboard/api/sessions/a00000000001/live").status_code == 404
    assert b.post("/v1/sessions/a00000000001/cancel").status_code == 404
    assert b.get("/v1/sessions").json()["total"] == 0
    listed = b.get("/dashboard/api/sessions").json()
    assert (listed["total"], listed["tenants"]) == (0, ["team-b"])


def test_roles(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "a00000000002")
    viewer = client_as(api_client, mint_key(database_url, "team-a", Role.viewer))
    operator = client_as(api_client, mint_key(database_url, "team-a", Role.operator))
    assert viewer.get("/v1/sessions/a00000000002").status_code == 200
    for method, path, body in (
        ("POST", "/v1/sessions", VALID_SPEC),
        ("POST", "/v1/sessions/a00000000002/cancel", None),
        ("POST", "/v1/sessions/a00000000002/rate", {"rate": 5}),
        ("POST", "/v1/keys", {"role": "viewer"}),
    ):
        r = viewer.request(method, path, json=body)
        assert r.status_code == 403, (path, r.text)
    # An operator passes (Temporal is down: 503), but keys and the audit log are admins'.
    assert operator.post("/v1/sessions/a00000000002/cancel").status_code == 503
    assert operator.post("/v1/keys", json={"role": "viewer"}).status_code == 403
    assert operator.get("/v1/audit").status_code == 403
    assert operator.get("/v1/keys").status_code == 403


def test_keys_created_once_listed_without_secret_revoked(
    api_client: TestClient, database_url: str
) -> None:
    r = api_client.post("/v1/keys", json={"name": "ci", "role": "operator", "expires_days": 30})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("sfk_") and created["tenant"] == "team-a"
    assert created["expires_at"] is not None
    listed = api_client.get("/v1/keys").json()["items"]
    assert created["id"] in [k["id"] for k in listed]
    assert secret not in str(listed) and all("secret" not in k for k in listed)

    ci = client_as(api_client, secret)
    assert ci.get("/v1/sessions").status_code == 200
    b_admin = client_as(api_client, mint_key(database_url, "team-b", Role.admin))
    assert b_admin.delete(f"/v1/keys/{created['id']}").status_code == 404
    assert created["id"] not in str(b_admin.get("/v1/keys").json())
    r = api_client.delete(f"/v1/keys/{created['id']}")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert ci.get("/v1/sessions").status_code == 401
    assert api_client.post("/v1/keys", json={"role": "root"}).status_code == 422


def test_audit_log_says_who_did_what(api_client: TestClient, database_url: str) -> None:
    api_client.post("/v1/sessions", json=VALID_SPEC)  # 503, but a row was created
    key = api_client.post("/v1/keys", json={"role": "viewer"}).json()
    api_client.delete(f"/v1/keys/{key['id']}")
    api_client.delete(f"/v1/keys/{key['id']}")  # again: not a second event
    page = api_client.get("/v1/audit").json()
    assert [e["action"] for e in page["items"]] == ["key.revoke", "key.create", "session.create"]
    assert page["total"] == 3
    assert {e["tenant"] for e in page["items"]} == {"team-a"}
    assert len({e["key_id"] for e in page["items"]}) == 1  # api_client's own key
    assert page["items"][1]["object_id"] == key["id"]
    assert (
        api_client.get("/v1/audit", params={"limit": 1, "offset": 2}).json()["items"][0]["action"]
        == "session.create"
    )
    b_admin = client_as(api_client, mint_key(database_url, "team-b", Role.admin))
    assert b_admin.get("/v1/audit").json()["total"] == 0


def _sign_in(client: TestClient, key: str) -> TestClient:
    browser = client_as(client, None)
    r = browser.post(
        "/dashboard/signin",
        data={"key": key, "next": "/dashboard/sessions/x"},
        headers={"Origin": BASE},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/sessions/x", r.text
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Path=/" in session
    csrf = next(c for c in cookies if c.startswith(f"{CSRF_COOKIE}="))
    assert "HttpOnly" not in csrf
    return browser


def test_dashboard_sign_in_cookie_and_csrf(api_client: TestClient, database_url: str) -> None:
    seed_session(database_url, "a00000000003")
    browser = client_as(api_client, None)
    r = browser.get("/dashboard/sessions/a00000000003", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/signin?next=%2Fdashboard%2Fsessions%2Fa00000000003"
    assert browser.get("/dashboard/signin").status_code == 200
    bad = browser.post("/dashboard/signin", data={"key": "sfk_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "Unknown, revoked or expired" in bad.text
    evil = browser.post(
        "/dashboard/signin",
        data={"key": mint_key(database_url)},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403

    operator_key = mint_key(database_url, "team-a", Role.operator)
    browser = _sign_in(api_client, operator_key)
    token = browser.cookies[SESSION_COOKIE]
    with session_scope(database_url) as db:
        stored = db.connection().execute(text("SELECT * FROM web_login")).all()
    assert token not in repr(stored)  # only its digest
    assert browser.get("/dashboard/sessions/a00000000003").status_code == 200
    me = browser.get("/dashboard/api/me").json()
    assert (me["tenant"], me["role"]) == ("team-a", "operator")
    assert browser.get("/v1/sessions/a00000000003").status_code == 200

    cancel = "/v1/sessions/a00000000003/cancel"
    csrf = {CSRF_HEADER: browser.cookies[CSRF_COOKIE]}
    # A cross-site form post: the browser would attach the cookie (were it not SameSite) but
    # neither the CSRF header nor our origin.
    form = browser.post(cancel, data={"x": "1"}, headers={"Origin": "http://evil.example"})
    assert form.status_code == 403
    evil = {"Origin": "http://evil.example", **csrf}
    assert browser.post(cancel, headers=evil).status_code == 403
    assert browser.post(cancel, headers={"Origin": BASE}).status_code == 403  # no token
    assert browser.post(cancel, headers={"Origin": BASE, CSRF_HEADER: "x"}).status_code == 403
    assert browser.post(cancel, headers=csrf).status_code == 403  # no Origin nor Referer
    # From our own page, with the token: through to the handler (Temporal down: 503).
    assert browser.post(cancel, headers={"Origin": BASE, **csrf}).status_code == 503
    referer = {"Referer": f"{BASE}/dashboard/", **csrf}
    assert browser.post(cancel, headers=referer).status_code == 503
    actions = [e["action"] for e in api_client.get("/v1/audit").json()["items"]]
    assert "session.cancel" not in actions  # nothing refused was done

    out = browser.post("/dashboard/signout", headers={"Origin": BASE, **csrf})
    assert out.status_code in (200, 303)
    browser.cookies.set(SESSION_COOKIE, token)
    assert browser.get("/v1/sessions").status_code == 401  # the sign-in is gone


def test_revoking_a_key_ends_its_sign_ins(api_client: TestClient, database_url: str) -> None:
    key = api_client.post("/v1/keys", json={"role": "viewer"}).json()
    browser = _sign_in(api_client, key["secret"])
    assert browser.get("/dashboard/api/sessions").status_code == 200
    api_client.delete(f"/v1/keys/{key['id']}")
    assert browser.get("/dashboard/api/sessions").status_code == 401
    assert browser.get("/dashboard/", follow_redirects=False).status_code == 303


def test_openapi_documents_401_and_403(api_client: TestClient) -> None:
    doc = api_client.get("/v1/openapi.json").json()
    assert {"ApiKey", "DashboardSignIn"} <= set(doc["components"]["securitySchemes"])
    for path, ops in doc["paths"].items():
        if path == "/v1/health" or path.startswith("/v1/runner/"):
            continue
        for method, op in ops.items():
            if path == "/metrics":  # the scrape token, no roles: refused is 401, never 403
                assert "401" in op["responses"] and op.get("security"), (method, path)
                continue
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            if "{session_id}" in path or "{key_id}" in path:
                assert "404" in op["responses"], (method, path)
            assert op.get("security"), (method, path)


def test_admin_without_csrf_is_for_side_effect_free_posts(
    api_client: TestClient, database_url: str
) -> None:
    """What the codec routes of the Temporal Web UI use: a cookie POST from the UI's origin
    passes without a CSRF token, for admins only; a viewer is refused."""
    app = FastAPI()
    app.state.settings = api_client.app.state.settings  # type: ignore[attr-defined]
    app.state.db_gate = asyncio.Semaphore(4)  # what the API's lifespan makes (api/deps.py)

    @app.post("/decode")
    def decode(principal: AdminWithoutCsrfDep) -> dict[str, str]:
        return {"tenant": principal.tenant}

    ui = {"Origin": "http://127.0.0.1:8233"}
    admin_browser = _sign_in(api_client, mint_key(database_url))
    viewer_browser = _sign_in(api_client, mint_key(database_url, "team-a", Role.viewer))
    with TestClient(app) as codec:
        codec.cookies.set(SESSION_COOKIE, admin_browser.cookies[SESSION_COOKIE])
        assert codec.post("/decode", headers=ui).json() == {"tenant": "team-a"}
        codec.cookies.set(SESSION_COOKIE, viewer_browser.cookies[SESSION_COOKIE])
        assert codec.post("/decode", headers=ui).status_code == 403
        codec.cookies.clear()
        assert codec.post("/decode", headers=ui).status_code == 401
    # The ordinary dependency refuses the same cross-origin cookie POST.
    assert admin_browser.post("/v1/keys", json={}, headers=ui).status_code == 403
