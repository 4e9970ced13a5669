"""The tenant's admin surfaces: /v1/policy (read by anyone of the tenant, changed by admins and
enforced at once), `sipflow audit list`, and the dashboard's admin page in a real browser."""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from entrypoints.cli import app
from sipflow.accounts import Role
from tests.api_fixtures import VALID_SPEC, api_client_fixture, client_as, mint_key  # noqa: F401
from tests.dashboard_fixtures import (  # noqa: F401
    DashStack,
    browser_fixture,
    dash_stack_fixture,
    page_fixture,
    screenshot,
)


def _spec_to(host: str) -> dict[str, Any]:
    spec = copy.deepcopy(VALID_SPEC)
    spec["target"] = {"host": host, "port": 5090}
    spec["roles"]["callees"]["accounts"] = [{"user": "bob", "password": "secret"}]
    return spec


def test_policy_read_by_any_role_changed_by_admins_and_enforced(
    api_client: TestClient, database_url: str
) -> None:
    viewer = client_as(api_client, mint_key(database_url, "team-a", Role.viewer))
    shown = viewer.get("/v1/policy").json()
    assert shown["tenant"] == "team-a" and shown["source"] == "settings"
    assert "127.0.0.0/8" in shown["allowed_networks"]
    assert viewer.put("/v1/policy", json={"allowed_networks": []}).status_code == 403

    bad = api_client.put("/v1/policy", json={"allowed_networks": ["10.0.0.0/33"]})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:3] == ["body", "allowed_networks", 0]

    policy = {"allowed_networks": ["10.20.0.0/16"], "quotas": {"agents": 8}}
    put = api_client.put("/v1/policy", json=policy)
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "tenant" and put.json()["quotas"]["agents"] == 8
    assert viewer.get("/v1/policy").json()["allowed_networks"] == ["10.20.0.0/16"]
    other = client_as(api_client, mint_key(database_url, "team-b", Role.admin))
    assert other.get("/v1/policy").json()["source"] == "settings"  # team-a's is its own

    # The stored policy is what session creation checks: loopback is no longer allowed.
    refused = api_client.post("/v1/sessions", json=_spec_to("127.0.0.1"))
    assert refused.status_code == 422, refused.text
    item = refused.json()["detail"][0]
    assert item["loc"] == ["body", "target", "host"] and item["type"] == "target_not_allowed"

    assert api_client.delete("/v1/policy").json() == {"reset": True}
    assert api_client.delete("/v1/policy").json() == {"reset": False}
    assert viewer.get("/v1/policy").json()["source"] == "settings"
    actions = [e["action"] for e in api_client.get("/v1/audit").json()["items"]]
    assert actions[:2] == ["policy.reset", "policy.set"]  # the second reset changed nothing


def test_cli_audit_list(api_client: TestClient, database_url: str, monkeypatch: Any) -> None:
    created = api_client.post("/v1/keys", json={"role": "viewer", "name": "ci"}).json()
    api_client.delete(f"/v1/keys/{created['id']}")
    monkeypatch.setenv("SIPFLOW_DATABASE_URL", database_url)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "list", "--tenant", "team-a", "--json"])
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert [(e["action"], e["object_id"]) for e in events[:2]] == [
        ("key.revoke", created["id"]),
        ("key.create", created["id"]),
    ]
    only = runner.invoke(app, ["audit", "list", "--tenant", "team-a", "--action", "key.create"])
    assert only.exit_code == 0 and "key.create" in only.stdout and "key.revoke" not in only.stdout
    assert "0 of 0 events" in runner.invoke(app, ["audit", "list", "--tenant", "nobody"]).stdout


def test_admin_page_keys_policy_audit(dash_stack: DashStack, page: Any) -> None:
    admin = mint_key(dash_stack.database_url, "team-a", Role.admin)
    page.goto(f"{dash_stack.url}/dashboard/admin")
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin?next=*")
    page.fill("input[name=key]", admin)
    page.click("button[type=submit]")
    page.wait_for_url(f"{dash_stack.url}/dashboard/admin")
    page.wait_for_selector("body[data-loaded]")

    page.fill("#new-key input[name=name]", "nightly CI")
    page.select_option("#new-key select[name=role]", "viewer")
    page.click("#new-key button[type=submit]")
    secret = page.inner_text("#new-secret")
    assert secret.startswith("sfk_")
    row = page.wait_for_selector("#keys tr:has-text('nightly CI')")
    key_id = row.get_attribute("data-id")
    page.once("dialog", lambda d: d.accept())
    page.click(f"button[data-revoke='{key_id}']")
    page.wait_for_selector(f"#keys tr[data-id='{key_id}'] .badge[data-value=revoked]")

    page.fill("#policy", json.dumps({"allowed_networks": ["10.0.0.0/33"]}))
    page.click("#save-policy")
    page.wait_for_selector("#policy-msg >> text=allowed_networks.0")  # the field that is wrong
    page.fill("#policy", json.dumps({"allowed_networks": ["10.30.0.0/16"]}))
    page.click("#save-policy")
    page.wait_for_selector("#policy-source >> text=the tenant's own")
    page.wait_for_selector("#audit tr:has-text('policy.set')")
    page.wait_for_selector(f"#audit tr:has-text('key.revoke'):has-text('{key_id}')")
    # Storage and retention of the machine: disk free, a dry run from the page.
    page.wait_for_selector("#ret-free >> text=%")
    assert "sessions" in page.inner_text("#ret-runs")
    page.click("#retention-dry")
    page.wait_for_selector("#retention-msg >> text=Would purge")
    screenshot(page, "dashboard-admin.png")

    # A viewer reaches the page but none of its data.
    page.click("#signout")
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin")
    page.goto(f"{dash_stack.url}/dashboard/admin")
    page.fill("input[name=key]", mint_key(dash_stack.database_url, "team-a", Role.viewer))
    page.click("button[type=submit]")
    page.wait_for_url(f"{dash_stack.url}/dashboard/admin")
    page.wait_for_selector("#error >> text=for the tenant's admins")
    assert page.locator("#keys tbody tr").count() == 0
