"""The new-session page compiles both call scripts of a spec, the callers' and the callees', and
shows each one's SIPp XML (with a download link); a wrong callee step is marked at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import RunningStack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    screenshot,
    sign_in,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "callee-script.yaml"


def test_new_session_page_shows_both_compiled_scripts(
    sqlite_stack: RunningStack, page: Any
) -> None:
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new")
    page.wait_for_function("document.querySelector('#spec').value.includes('callers')")
    spec = EXAMPLE.read_text()
    page.fill("#spec", spec)
    page.click("#compile")
    page.wait_for_selector("#script-panel:not([hidden])")
    assert "<!-- sipflow-step: s6_hangup -->" in page.inner_text("#script-xml")
    callee = page.inner_text("#callee-script-xml")
    assert "<!-- sipflow-step: callee_s1_ring -->" in callee
    assert "callee_s5_expect_hangup" in callee and "SIP/2.0 180 Ringing" in callee
    href = page.get_attribute("#callee-script-download", "href", timeout=5000)
    assert href.startswith("blob:")
    page.wait_for_function("document.querySelector('#result').textContent.includes('11 step')")
    screenshot(page, "dashboard-new-callee-script.png")

    page.fill("#spec", spec.replace("- wait 1s", "- wait forever"))
    page.click("#compile")
    err = page.locator(".editor .field-error[data-path='roles.callees.script[1]']")
    err.wait_for()
    assert "unknown step 'wait forever'" in err.inner_text()
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if "wait 1s" in text)
    assert err.get_attribute("data-line") == str(line)
    page.wait_for_function(
        "document.querySelector('#result').textContent.includes('does not compile')"
    )
    assert page.get_attribute("#script-panel", "hidden") is not None
