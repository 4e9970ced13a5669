"""A real system under test: callees register at Kamailio with digest auth, callers call them
through it. With a wrong password the session fails and says why (401 on REGISTER)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoints.stack import free_port
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield "127.0.0.1", port


def proxied_spec(host: str, port: int, password: str) -> dict[str, Any]:
    return {
        "name": "through-kamailio",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": password}]},
            "callers": {"rate": 20, "max_calls": 100, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def test_calls_through_kamailio_pass(sqlite_stack: RunningStack, sut: tuple[str, int]) -> None:
    body = sqlite_stack.run(proxied_spec(*sut, password="secret"))
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    measured = body["summary"]["measured"]
    assert measured["successful_calls"] == 100
    assert measured["failed_calls"] == 0
    callee = next(r for r in body["runners"] if r["runner_id"] == "callee-0")
    assert callee["state"] == "done"
    # The callee answered every call (it counts incoming calls as its own successes).
    assert body["summary"]["roles"]["callee"]["successful_calls"] == 100


def test_wrong_password_fails_with_401_reason(
    sqlite_stack: RunningStack, sut: tuple[str, int], tmp_path: Path
) -> None:
    body = sqlite_stack.run(proxied_spec(*sut, password="wrong"))
    assert body["verdict"] == "fail", body
    reasons = " | ".join(body["reasons"])
    assert "REGISTER" in reasons and "401" in reasons, reasons
    # No call was placed: the callers never started.
    assert body["summary"]["measured"]["total_calls"] == 0
    callee = next(r for r in body["runners"] if r["runner_id"] == "callee-0")
    assert callee["state"] == "failed"
    assert any("401" in k for k in (callee.get("failure_reasons") or {})), callee
