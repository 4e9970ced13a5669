"""The flows in the dashboard: the new-session page lists the built-in flows with their
parameters and writes a spec that runs one; a flow session's report shows its Steps table and
the flow's ladder (a real session: callers and callees run the busy flow directly)."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningStack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    screenshot,
    sign_in,
)


def test_flow_picker_and_steps_table(sqlite_stack: RunningStack, page: Any) -> None:
    api = sqlite_stack.stack.api_url
    spec = {
        "name": "flow-busy-direct",
        "roles": {
            "callees": {"agents": 1},
            "callers": {"rate": 10, "max_calls": 4, "flow": {"name": "busy"}},
        },
        "thresholds": [
            "success_rate >= 100",
            "step_failed_busy == 0",
            "step_passed_busy == 4",
            "code_486 == 4",
            "code_200 == 0",
        ],
    }
    sid = sqlite_stack.submit(spec)
    sign_in(page, api, str(sqlite_stack.stack.api_key))

    page.goto(f"{api}/dashboard/new")
    page.wait_for_selector("#flow-name option[value=hold_resume]", state="attached")
    page.click("#flows summary")
    page.select_option("#flow-name", "hold_resume")
    page.wait_for_selector("#flow-params tr[data-param=hold_s]")
    assert "invite → hold → resume → hangup" in page.inner_text("#flow-about")
    page.click("#flow-use")
    value = page.input_value("#spec")
    assert "name: hold_resume" in value and "hold_s: 1" in value
    page.click("#check")
    page.wait_for_function("document.querySelector('#result').textContent.length > 0")
    assert page.locator(".editor .field-error").count() == 0, page.inner_text("#errors")
    screenshot(page, "dashboard-new-flows.png")

    body = sqlite_stack.wait(sid, 120)
    assert body["verdict"] == "pass", body["reasons"]
    # The busy flow's 486 is its success: its calls are kept as "expected" examples.
    kept = sqlite_stack.http.get(f"/v1/sessions/{sid}/evidence").json()["calls"]
    assert [(c["outcome"], c["final_code"]) for c in kept] == [("expected", 486)] * 3, kept
    page.goto(f"{api}/dashboard/sessions/{sid}")
    row = page.locator("#steps-table tr[data-step=busy][data-role=caller]")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[:4] == ["caller", "busy", "4", "0"], cells
    # The ladder is a call this session made, captured (issue 13 item 6), not the catalogue's.
    page.wait_for_selector("#steps-ladder[data-captured]")
    ladder = page.locator("#steps-ladder li").all_inner_texts()
    assert ladder[0].startswith("caller-0 → callee-0: INVITE sip:"), ladder
    assert "callee-0 → caller-0: SIP/2.0 486 Busy Here" in ladder, ladder
    assert "486" in page.inner_text("#steps-flow")
    assert page.get_attribute("#steps-ladder", "data-captured") in page.inner_text("#steps-flow")
    # The evidence section draws that call as a ladder diagram, with its pcap to download.
    page.wait_for_selector("#evidence-ladder svg g.ladder-msg")
    lines = page.eval_on_selector_all(
        "#evidence-ladder g.ladder-msg", "gs => gs.map(g => g.dataset.firstLine)"
    )
    assert lines[0].startswith("INVITE ") and "SIP/2.0 486 Busy Here" in lines, lines
    assert "/pcap" in (page.get_attribute("#evidence-pcap", "href") or "")
    page.click("#evidence-ladder g.ladder-msg >> nth=0")
    assert "Call-ID:" in page.inner_text("#evidence-message")
    screenshot(page, "dashboard-report-steps.png")


def test_flow_picker_writes_a_transfer_spec_with_its_party(
    sqlite_stack: RunningStack, page: Any
) -> None:
    """A flow with a named party (blind_transfer): the picker writes `roles.parties` with the
    party its `transfer_to` names, and the spec checks clean."""
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new")
    page.wait_for_selector("#flow-name option[value=blind_transfer]", state="attached")
    page.click("#flows summary")
    page.select_option("#flow-name", "blind_transfer")
    page.wait_for_selector("#flow-params tr[data-param=transfer_to]")
    about = page.inner_text("#flow-about")
    assert "invite → transfer → notify → hangup" in about
    assert "target_answer → target_hangup" in about
    page.click("#flow-use")
    value = page.input_value("#spec")
    assert "transfer_to: target" in value and "parties:\n    target:" in value, value
    page.click("#check")
    page.wait_for_function("document.querySelector('#result').textContent.length > 0")
    assert page.locator(".editor .field-error").count() == 0, page.inner_text("#errors")
