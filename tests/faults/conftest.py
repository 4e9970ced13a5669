"""The fault suite's table: each fault test adds a row (verdict, stored/made, leftovers), printed
at the end of the run."""

from __future__ import annotations

from typing import Any

import pytest

ROWS: list[dict[str, Any]] = []


@pytest.fixture
def fault_table() -> list[dict[str, Any]]:
    return ROWS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    tr = terminalreporter
    tr.section("fault suite")
    head = f"{'fault':<34} {'verdict':<9} {'stored/made calls':<18} {'intervals':<18} leftovers"
    tr.write_line(head)
    for r in ROWS:
        tr.write_line(
            f"{r['fault']:<34} {r['verdict']!s:<9} {r['calls']:<18} {r['intervals']:<18} "
            f"{r['leftovers']}"
        )
