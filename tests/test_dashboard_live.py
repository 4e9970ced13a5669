"""The dashboard in a real browser on synthetic runner messages: MQTT -> API -> SSE -> chart.

No workflow runs here (the real sessions are in test_dashboard_browser.py): a session row is
stored as the API would, and its runners' stats are published on the real broker.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from sipflow import store
from sipflow.db import session_scope
from sipflow.messages import Counters
from tests.api_fixtures import VALID_SPEC, ApiServer, finish, seed_session, stats
from tests.dashboard_fixtures import (  # noqa: F401
    DashStack,
    Publisher,
    browser_fixture,
    dash_stack_fixture,
    page_fixture,
    screenshot,
    sign_in,
)

POINTS_JS = "id => (Chart.getChart(id)?.data.datasets[0]?.data.length ?? 0)"


def _running_session(url: str) -> str:
    sid = uuid.uuid4().hex[:12]
    with session_scope(url) as db:
        store.create_session(db, sid, "team-a", "live-synthetic", VALID_SPEC, None)
        store.set_status(db, sid, "running")
        store.upsert_runner(db, sid, "caller-0", "caller", "127.201.1.2:5060")
        store.upsert_runner(db, sid, "callee-0", "callee", "127.201.1.1:5060")
    return sid


def test_live_points_reach_the_chart(dash_stack: DashStack, page: Any) -> None:
    sid = _running_session(dash_stack.database_url)
    pub = Publisher(dash_stack.mqtt_port, dash_stack.key)
    try:
        t0 = time.time() - 10
        # Two seconds stored before the page opens (as the worker does): the snapshot has them.
        with session_scope(dash_stack.database_url) as db:
            for seq in (1, 2):
                iv = stats(sid, "caller-0", "caller", seq, t0 + seq, created=10, ok=10,
                           samples_ms=(20, 30, 40))  # fmt: skip
                store.store_interval(db, iv)
        pub.cum[f"{sid}/caller-0"] = Counters(calls_created=20, successful_calls=20)
        sign_in(page, dash_stack.url, dash_stack.api_key)
        page.goto(f"{dash_stack.url}/dashboard/sessions/{sid}")
        page.wait_for_selector("#live[data-state=live]")
        page.wait_for_function(f"({POINTS_JS})('chart-call-rate') >= 2")
        for seq in range(3, 7):
            pub.stats(sid, "caller-0", "caller", seq, t=t0 + seq, failed=2, ok=8)
            pub.stats(sid, "callee-0", "callee", seq, t=t0 + seq + 0.1, created=0, ok=8)
            page.wait_for_function(f"({POINTS_JS})('chart-call-rate') >= {seq}")
        pub.state(sid, "caller-0", "running")
        page.wait_for_selector("tr[data-runner=caller-0] >> text=running")
        # The failed calls of the callers are drawn; the response-time percentiles too.
        failed = page.evaluate(
            "Chart.getChart('chart-calls').data.datasets"
            ".find(d => d.label === 'callers failed').data.map(p => p.y)"
        )
        assert failed[-4:] == [2, 2, 2, 2]
        p95 = page.evaluate(
            "Chart.getChart('chart-response').data.datasets"
            ".find(d => d.label === 'p95').data.map(p => p.y)"
        )
        assert p95[-1] == 40
        renders = page.evaluate("window.sipflowReport.renders.length")
        assert renders >= 8  # one per live message
        # A duplicate (same runner and seq) is counted once.
        pub.stats(sid, "caller-0", "caller", 6, t=t0 + 6, failed=2, ok=8)
        time.sleep(0.5)
        assert page.evaluate(f"({POINTS_JS})('chart-call-rate')") == 6
        runner_cells = page.inner_text("tr[data-runner=caller-0]")
        assert "60" in runner_cells  # cumulative calls created
    finally:
        pub.close()


def test_finished_session_report_and_exports(dash_stack: DashStack, page: Any) -> None:
    sid = uuid.uuid4().hex[:12]
    url = dash_stack.database_url
    seed_session(url, sid)
    finish(url, sid, "fail", measured={"success_rate": 93.3})
    sign_in(page, dash_stack.url, dash_stack.api_key)
    page.goto(f"{dash_stack.url}/dashboard/sessions/{sid}")
    page.wait_for_selector("#verdict[data-verdict=fail]")
    page.wait_for_function(f"({POINTS_JS})('chart-call-rate') >= 3")
    rows = page.locator("#thresholds tbody tr")
    assert rows.count() == 2
    assert (
        page.locator("#thresholds tbody tr[data-passed=false]")
        .inner_text()
        .startswith("response_time_p95_ms <= 100")
    )
    assert "unexpected_message" in page.inner_text("#reasons")
    assert page.locator("#controls").is_hidden()
    junit = page.get_attribute("#export-junit", "href")
    assert junit == f"/v1/sessions/{sid}/junit.xml"
    screenshot(page, "dashboard-report-finished.png")


def test_sessions_list_and_compare(dash_stack: DashStack, page: Any) -> None:
    url = dash_stack.database_url
    a, b = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    seed_session(url, a)
    finish(url, a, "pass", measured={"success_rate": 99.0})
    seed_session(url, b)
    finish(url, b, "fail", measured={"success_rate": 90.0})
    sign_in(page, dash_stack.url, dash_stack.api_key)
    page.goto(f"{dash_stack.url}/dashboard/?status=completed")
    page.locator(f"tr[data-id='{a}']").wait_for()
    assert page.locator(f"tr[data-id='{b}'] .verdict [data-value=fail]").count() == 1
    assert "90 %" in page.inner_text(f"tr[data-id='{b}']")
    screenshot(page, "dashboard-sessions-seeded.png")
    page.check(f"tr[data-id='{a}'] input[type=checkbox]")
    page.check(f"tr[data-id='{b}'] input[type=checkbox]")
    page.click("#compare")
    page.wait_for_selector(f"body[data-compared='{a},{b}']")
    # The verdicts differ; the overlaid charts have one dataset per session.
    assert page.locator("tr[data-metric=verdict] .diff-changed").count() == 1
    assert page.evaluate("Chart.getChart('cmp-rate').data.datasets.length") == 2
    screenshot(page, "dashboard-compare.png")


def test_open_live_streams_hold_no_database_connection(dash_stack: DashStack) -> None:
    """A live stream checks its credential on a connection of its own and gives it back: with a
    one-connection API, three open streams still leave the API answering (a stream that kept
    the request's connection would make these lists wait, then 503)."""
    sid = _running_session(dash_stack.database_url)
    base = dash_stack.api.settings
    settings = base.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0, "api_db_wait_s": 2})
    with ApiServer(settings) as api, httpx.Client(base_url=api.url, headers=api.headers) as http:
        live = f"/dashboard/api/sessions/{sid}/live"
        streams = [http.stream("GET", live, timeout=30) for _ in range(3)]
        try:
            for s in streams:
                assert s.__enter__().status_code == 200
            for _ in range(3):
                assert http.get("/v1/sessions", timeout=10).status_code == 200
        finally:
            for s in streams:
                s.__exit__(None, None, None)
