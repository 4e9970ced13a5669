"""Signing in to the dashboard in a real browser (Chromium): pages ask for a key and come back
to where one was going; the pages' writes carry the CSRF token; a cross-site form post to
/cancel is refused; signing out ends the sign-in."""

from __future__ import annotations

import uuid
from typing import Any

from sipflow import audit, store
from sipflow.accounts import Role
from sipflow.db import session_scope
from tests.api_fixtures import VALID_SPEC, mint_key
from tests.dashboard_fixtures import (  # noqa: F401
    DashStack,
    browser_fixture,
    dash_stack_fixture,
    page_fixture,
    screenshot,
)

EVIL = "http://evil.test/"


def _running(url: str) -> str:
    sid = uuid.uuid4().hex[:12]
    with session_scope(url) as db:
        store.create_session(db, sid, "team-a", "signin", VALID_SPEC, None)
        store.set_status(db, sid, "running")
    return sid


def test_sign_in_write_with_csrf_and_sign_out(dash_stack: DashStack, page: Any) -> None:
    sid = _running(dash_stack.database_url)
    report = f"{dash_stack.url}/dashboard/sessions/{sid}"
    page.goto(report)
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin?next=*")
    page.fill("input[name=key]", "sfk_not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector("#message >> text=Unknown, revoked or expired")
    screenshot(page, "dashboard-signin-refused.png")

    page.fill("input[name=key]", mint_key(dash_stack.database_url, "team-a", Role.operator))
    page.click("button[type=submit]")
    page.wait_for_url(report)  # back where the browser was going
    page.wait_for_selector("#controls:not([hidden])")
    page.wait_for_selector("#whoami[data-tenant=team-a][data-role=operator]")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session_cookie = cookies["sipflow_session"]
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").count("sipflow_session") == 0  # not readable by JS

    # The page's own cancel passes the CSRF check and reaches the handler (Temporal is down).
    page.once("dialog", lambda d: d.accept())
    page.click("#cancel")
    page.wait_for_selector("#control-msg >> text=Not cancelled")
    assert "unreachable" in page.inner_text("#control-msg")

    # Another site's form posting to /cancel: the browser does not send the Strict cookie.
    page.route(EVIL, lambda route: route.fulfill(
        content_type="text/html",
        body=f'<form method="post" action="{dash_stack.url}/v1/sessions/{sid}/cancel">'
        '<input name="x" value="1"></form>',
    ))  # fmt: skip
    page.goto(EVIL)
    with page.expect_navigation() as answer:  # the form's answer, loaded as the page
        page.evaluate("document.forms[0].submit()")
    assert answer.value.url.endswith(f"/{sid}/cancel")
    assert answer.value.status in (401, 403)
    with session_scope(dash_stack.database_url) as db:
        row = store.get_session(db, sid)
        assert row is not None and row.status == "running"
        assert audit.events(db, "team-a", action="session.cancel")[1] == 0

    page.goto(f"{dash_stack.url}/dashboard/")
    page.click("#signout")
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin")
    page.goto(report)
    page.wait_for_url(f"{dash_stack.url}/dashboard/signin?next=*")
