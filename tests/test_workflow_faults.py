"""Faults of the workflow itself, injected into a real stack's worker (TEST_SIPFLOW_FAULT,
entrypoints/fault_injection.py): a cancel while an activity is in flight ends `cancelled`, not
`error`. (A bug ending the session with verdict `error`: tests/faults/test_fault_suite.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningStack, start_stack
from tests.test_e2e_session import direct_spec, no_leftovers


@pytest.fixture(scope="module")
def stalling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # `go` stays in flight for 15 s: the cancel arrives while the activity runs.
    env = {"TEST_SIPFLOW_FAULT": "stall:publish_control:15"}
    yield from start_stack(tmp_path_factory.mktemp("stalling"), extra_env=env)


def agents_started(rs: RunningStack, sid: str) -> list[Path]:
    return sorted((rs.runs_dir / sid).glob("*/agent.pid"))


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
