"""The served stack (API as its own process) with auth on: the local admin key of the default
tenant, other tenants' keys from `client_for`, nothing without a key."""

from __future__ import annotations

import httpx

from tests.conftest import RunningStack


def test_the_stack_answers_by_key(sqlite_stack: RunningStack) -> None:
    assert httpx.get(f"{sqlite_stack.stack.api_url}/v1/sessions").status_code == 401
    assert sqlite_stack.http.get("/v1/sessions").status_code == 200
    keys = sqlite_stack.http.get("/v1/keys").json()["items"]
    assert any(k["tenant"] == "default" and k["role"] == "admin" for k in keys)
    with sqlite_stack.client_for("team-z", "viewer") as viewer:
        assert viewer.get("/v1/sessions").json()["total"] == 0
        assert viewer.post("/v1/sessions", json={"roles": {}}).status_code == 403
