"""The dashboard's pools page in a real browser: a tenant's pools and hosts with their state,
from hosts that reported (and one that never did), never another tenant's."""

from __future__ import annotations

from typing import Any

from sipflow import runner_hosts
from sipflow.accounts import Role
from sipflow.db import session_scope
from sipflow.runner_hosts import Heartbeat
from tests.api_fixtures import mint_key
from tests.dashboard_fixtures import (  # noqa: F401
    DashStack,
    browser_fixture,
    dash_stack_fixture,
    page_fixture,
)


def test_pools_page_lists_hosts_with_state(dash_stack: DashStack, page: Any) -> None:
    with session_scope(dash_stack.database_url) as db:
        row, _ = runner_hosts.add_host(db, "team-a", "edge")
        beat = Heartbeat(host_id="edge-1", cores=4, max_agents=8, running_agents=3,
                         addresses=["198.18.0.2"])  # fmt: skip
        runner_hosts.record_heartbeat(db, row, beat, "sipflow")
        runner_hosts.add_host(db, "team-a", "edge")  # a credential never used
        runner_hosts.add_host(db, "team-b", "theirs")

    page.goto(f"{dash_stack.url}/dashboard/pools")
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin?next=*")
    page.fill("input[name=key]", mint_key(dash_stack.database_url, "team-a", Role.viewer))
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#pools tbody tr").count() == 1  # team-b's pool is not listed
    pool = page.inner_text("#pools tr[data-pool=edge]")
    assert "3 / 8" in pool and "5" in pool, pool
    assert page.locator("#hosts tbody tr").count() == 2
    live = page.inner_text("#hosts tr[data-host=edge-1]")
    assert "live" in live and "198.18.0.2" in live and "3 / 8" in live, live
    assert page.locator("#hosts tr[data-state=new]").count() == 1
