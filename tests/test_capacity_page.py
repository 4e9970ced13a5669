"""The dashboard's capacity pages in a real browser: the list, and a search's steps, answer and
knee chart, from a stored search."""

from __future__ import annotations

from typing import Any

from sipflow import capacity_store
from sipflow.accounts import Role
from sipflow.capacity import Step, result
from sipflow.db import session_scope
from tests.api_fixtures import mint_key
from tests.dashboard_fixtures import (  # noqa: F401
    DashStack,
    browser_fixture,
    dash_stack_fixture,
    page_fixture,
    screenshot,
)

SPEC = {"criteria": ["success_rate >= 99"], "warmup": 2, "window": 4, "settle": 1}


def test_capacity_pages_show_steps_and_answer(dash_stack: DashStack, page: Any) -> None:
    measured = [(20, 100.0, True), (40, 100.0, True), (80, 74.2, False), (60, 99.6, True)]
    steps = [
        Step(
            index=i,
            rate=r,
            session_id=f"step{i}",
            verdict="pass",
            held=held,
            measured={"success_rate": ok, "response_time_p95_ms": 12.0},
            failed=[] if held else ["success_rate >= 99"],
            achieved_rate=r,
        )
        for i, (r, ok, held) in enumerate(measured)
    ]
    res = result(steps, "max_steps").model_dump(mode="json")
    with session_scope(dash_stack.database_url) as db:
        capacity_store.create(db, "cap0", "team-a", "edge SBC", SPEC)
        capacity_store.update(db, "cap0", "completed", res)
        capacity_store.create(db, "cap1", "team-b", "not ours", SPEC)

    page.goto(f"{dash_stack.url}/dashboard/capacity")
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin?next=*")
    page.fill("input[name=key]", mint_key(dash_stack.database_url, "team-a", Role.viewer))
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#searches tbody tr").count() == 1  # team-b's is not listed
    assert "60 calls/s" in page.inner_text("#searches tr[data-id=cap0]")

    page.click("#searches a")
    page.wait_for_url(f"{dash_stack.url}/dashboard/capacity/cap0")
    page.wait_for_selector("body[data-loaded]")
    assert page.inner_text("#highest") == "60 calls/s"
    assert page.inner_text("#broke") == "80 calls/s"
    assert page.locator("#steps tr[data-held=false]").count() == 1
    assert "success_rate >= 99" in page.inner_text("#steps tr[data-held=false]")
    datasets = page.evaluate("Chart.getChart(document.querySelector('#knee')).data.datasets")
    assert [p["x"] for p in datasets[0]["data"]] == [20, 40, 60, 80]  # in rate order
    assert datasets[2]["label"] == "highest held: 60/s"
    screenshot(page, "dashboard-capacity.png")
    assert page.goto(f"{dash_stack.url}/dashboard/capacity/cap1").status == 404
