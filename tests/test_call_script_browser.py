"""The new-session page compiles a spec's call script and shows the SIPp XML (with a download
link), hold and resume steps too; a wrong step is marked at its line."""

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

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "call-script.yaml"
HOLD_EXAMPLE = EXAMPLE.with_name("call-script-hold.yaml")


def test_new_session_page_shows_the_compiled_script(sqlite_stack: RunningStack, page: Any) -> None:
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/new")
    page.wait_for_function("document.querySelector('#spec').value.includes('callers')")
    spec = EXAMPLE.read_text()
    page.fill("#spec", spec)
    page.click("#compile")
    page.wait_for_selector("#script-panel:not([hidden])")
    xml = page.inner_text("#script-xml")
    assert "<!-- sipflow-step: s1_call -->" in xml and "s6_hangup" in xml
    assert page.get_attribute("#script-download", "href", timeout=5000).startswith("blob:")
    screenshot(page, "dashboard-new-script.png")

    # The hold example's steps compile and show (hold / resume re-INVITEs).
    page.fill("#spec", HOLD_EXAMPLE.read_text())
    page.click("#compile")
    page.wait_for_function(
        "document.querySelector('#script-xml').textContent.includes('s7_resume')"
    )
    xml = page.inner_text("#script-xml")
    assert "<!-- sipflow-step: s5_hold -->" in xml and xml.count("a=sendonly") == 2

    page.fill("#spec", spec.replace("- wait 500ms", "- resume"))
    page.click("#compile")
    err = page.locator(".editor .field-error[data-path='roles.callers.script[3]']")
    err.wait_for()
    assert "'resume' only while the call is on hold" in err.inner_text()
    hold_line = next(i for i, line in enumerate(spec.splitlines(), 1) if "wait 500ms" in line)
    assert err.get_attribute("data-line") == str(hold_line)
    page.wait_for_function(
        "document.querySelector('#result').textContent.includes('does not compile')"
    )
    assert page.get_attribute("#script-panel", "hidden") is not None
