"""The dashboard in a real browser on real sessions (API -> Temporal -> SIPp runners -> MQTT):
the chart's data grows while a session runs, the verdict shows at the end, an invalid spec is
refused with the error at its field. Screenshots of the list and the report go to artifacts/."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from sipflow import secret_store
from sipflow.crypto import keyring
from sipflow.db import session_scope
from sipflow.session_secrets import secret_name
from sipflow.settings import Settings
from tests.conftest import RunningStack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    screenshot,
    sign_in,
)
from tests.test_e2e_session import direct_spec

POINTS_JS = "() => Chart.getChart('chart-call-rate')?.data.datasets[0]?.data.length ?? 0"


def test_watch_a_session_live_until_its_verdict(sqlite_stack: RunningStack, page: Any) -> None:
    api = sqlite_stack.stack.api_url
    sid = sqlite_stack.submit(direct_spec(rate=20, max_calls=None, duration_s=8))
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/sessions/{sid}")
    page.wait_for_selector("#live[data-state=live]")
    # The chart grows while the session runs, from the MQTT stream (no reload).
    page.wait_for_function(f"({POINTS_JS})() >= 2", timeout=40_000)
    first = page.evaluate(POINTS_JS)
    assert page.evaluate("window.sipflowReport.detail.status") in ("pending", "running")
    page.wait_for_function(f"({POINTS_JS})() >= {first + 2}", timeout=15_000)
    grown = page.evaluate(POINTS_JS)
    assert grown >= first + 2
    assert page.evaluate("window.sipflowReport.renders.length") > 0  # live `point` events drawn
    page.wait_for_selector("tr[data-runner=caller-0]")
    screenshot(page, "dashboard-report-live.png")

    # The verdict shows when the workflow ends, with each threshold as the API judged it.
    page.wait_for_selector("#verdict[data-verdict]:not([data-verdict=''])", timeout=60_000)
    body = sqlite_stack.wait(sid, timeout=10)
    assert page.get_attribute("#verdict", "data-verdict") == body["verdict"]
    page.wait_for_selector("#status [data-value=completed]")
    shown = page.eval_on_selector_all(
        "#thresholds tbody tr", "rows => rows.map(r => r.dataset.passed === 'true')"
    )
    assert shown == [t["passed"] for t in body["thresholds"]]
    assert page.locator("#controls").is_hidden()
    temporal = page.get_attribute("#temporal", "href")
    assert temporal and temporal.endswith(f"/workflows/session-{sid}")
    page.wait_for_selector("#live >> text=finished")
    screenshot(page, "dashboard-report.png")

    # The list shows it with its verdict, calls and success rate.
    page.goto(f"{api}/dashboard/")
    row = page.locator(f"tr[data-id='{sid}']")
    row.wait_for()
    assert row.locator(f".verdict [data-value={body['verdict']}]").count() == 1
    assert f"{body['summary']['measured']['total_calls']:g}" in row.inner_text()
    screenshot(page, "dashboard-sessions.png")


def test_invalid_spec_shows_the_field_error(sqlite_stack: RunningStack, page: Any) -> None:
    api = sqlite_stack.stack.api_url
    before = sqlite_stack.http.get("/v1/sessions").json()["total"]
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new")
    page.wait_for_function("document.querySelector('#spec').value.includes('callers')")
    spec = page.input_value("#spec").replace("rate: 20", "rate: -5")
    page.fill("#spec", spec)
    page.click("#start")
    err = page.locator(".editor .field-error[data-path='roles.callers.rate']")
    err.wait_for()
    assert "greater than 0" in err.inner_text()
    rate_line = next(i for i, line in enumerate(spec.splitlines(), 1) if "rate: -5" in line)
    assert err.get_attribute("data-line") == str(rate_line)
    assert page.locator(f"#gutter .err >> text='{rate_line}'").count() == 1
    assert "Not started" in page.inner_text("#result")
    screenshot(page, "dashboard-new-invalid.png")
    time.sleep(0.3)
    assert sqlite_stack.http.get("/v1/sessions").json()["total"] == before  # nothing started

    # Fixed, it starts and leads to its live report.
    page.fill(
        "#spec", spec.replace("rate: -5", "rate: 20").replace("max_calls: 200", "max_calls: 20")
    )
    page.click("#start")
    page.wait_for_url(f"{api}/dashboard/sessions/*")
    sid = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#verdict[data-verdict]:not([data-verdict=''])", timeout=60_000)
    assert sqlite_stack.wait(sid)["status"] == "completed"


def test_run_again_shows_no_password_and_keeps_it(sqlite_stack: RunningStack, page: Any) -> None:
    api, pw = sqlite_stack.stack.api_url, f"pw{uuid.uuid4().hex}"
    spec = direct_spec(rate=20, max_calls=4)
    spec["roles"]["callers"]["accounts"] = [{"user": "alice", "password": pw}]
    sid = sqlite_stack.submit(spec)
    sqlite_stack.wait(sid)
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new?from={sid}")
    page.wait_for_function("document.querySelector('#spec').value.includes('alice')")
    text = page.input_value("#spec")
    assert pw not in text and '"password": "***"' in text
    page.click("#start")
    page.wait_for_url(re.compile(r".*/dashboard/sessions/(?!" + sid + r")[0-9a-f]+$"))
    again = page.url.rsplit("/", 1)[1]
    assert sqlite_stack.wait(again)["verdict"] == "pass"
    settings = Settings(data_dir=sqlite_stack.stack.data_dir)
    with session_scope(settings.resolved_database_url) as db:
        name = secret_name(again, "callers", 0)
        assert secret_store.get(db, keyring(settings), "default", name) == pw


def test_new_session_page_draws_the_planned_profile_before_it_starts(
    sqlite_stack: RunningStack, page: Any
) -> None:
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new")
    page.wait_for_function("document.querySelector('#spec').value.includes('callers')")
    assert page.locator("#plan").is_hidden()  # a constant rate has no plan to draw
    spec = """name: planned
roles:
  callees: {agents: 1}
  callers:
    agents: 1
    profile: {shape: custom, start: 5, stages: [{hold: 4}, {to: 15, over: 0}, {hold: 3}]}
"""
    page.fill("#spec", spec)
    page.click("#check")
    page.wait_for_function("document.body.dataset.plan !== undefined")
    assert page.get_attribute("body", "data-plan") == "0:5,4:15,4:15,7:15"
    assert page.locator("#plan").is_visible()
    points = page.evaluate("() => Chart.getChart('chart-plan').data.datasets[0].data.length")
    assert points == 4
    screenshot(page, "dashboard-new-plan.png")
