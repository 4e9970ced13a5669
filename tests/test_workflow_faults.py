"""Faults of the workflow itself, injected into a real stack's worker (TEST_SIPFLOW_FAULT,
entrypoints/fault_injection.py): a bug ends the session with verdict `error` after clean-up
instead of retrying its workflow task forever; a cancel while an activity is in flight ends
`cancelled`, not `error`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningStack, start_stack
from tests.test_e2e_session import direct_spec, no_leftovers


@pytest.fixture(scope="module")
def buggy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # The workflow raises where it would tell the held callers `go`: callees and callers run.
    env = {"TEST_SIPFLOW_FAULT": "bug:publish_control"}
    yield from start_stack(tmp_path_factory.mktemp("buggy"), extra_env=env)


@pytest.fixture(scope="module")
def stalling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # `go` stays in flight for 15 s: the cancel arrives while the activity runs.
    env = {"TEST_SIPFLOW_FAULT": "stall:publish_control:15"}
    yield from start_stack(tmp_path_factory.mktemp("stalling"), extra_env=env)


def agents_started(rs: RunningStack, sid: str) -> list[Path]:
    return sorted((rs.runs_dir / sid).glob("*/agent.pid"))


def test_workflow_bug_ends_the_session_with_error_and_cleans_up(buggy_stack: RunningStack) -> None:
    sid = buggy_stack.submit(direct_spec(rate=10, max_calls=None, duration_s=60))
    body = buggy_stack.wait(sid, timeout=120)
    assert (body["status"], body["verdict"]) == ("error", "error"), body
    assert any(
        "workflow error while running callers" in r and "injected bug before publish_control" in r
        for r in body["reasons"]
    ), body["reasons"]
    assert len(agents_started(buggy_stack, sid)) == 2  # there was something to clean up
    no_leftovers(buggy_stack, sid)


def test_cancel_during_an_activity_ends_cancelled(stalling_stack: RunningStack) -> None:
    sid = stalling_stack.submit(direct_spec(rate=10, max_calls=None, duration_s=60))
    stalling_stack.wait_phase(sid, "running callers", timeout=60)
    time.sleep(2)  # the held callers are up: `go` is in flight, stalled
    r = stalling_stack.http.post(f"/v1/sessions/{sid}/cancel")
    assert r.status_code in (200, 202), r.text
    body = stalling_stack.wait(sid, timeout=90)
    assert body["status"] == "cancelled", body
    assert "cancelled" in body["reasons"]
    assert not any("running callers:" in r for r in body["reasons"]), body["reasons"]
    no_leftovers(stalling_stack, sid)
