"""Per-session loopback addresses: created, shared by nobody, deleted (real `ip` on lo; root)."""

from __future__ import annotations

import uuid
from pathlib import Path

from runners.local_network import LocalNetworks, loopback_aliases
from sipflow.plan import split


def test_provision_is_idempotent_and_isolated(tmp_path: Path) -> None:
    nets = LocalNetworks(tmp_path / "a")
    other = LocalNetworks(tmp_path / "b")  # another stack on the same machine
    s1, s2 = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    try:
        sub1 = nets.provision(s1, [10, 100])
        assert nets.provision(s1, [10, 100]) == sub1
        assert sorted(loopback_aliases()[f"lo:{s1}"]) == [f"{sub1}.10", f"{sub1}.100"]
        sub2 = other.provision(s2, [10])
        assert sub2 != sub1, "two sessions must never share addresses"
    finally:
        removed = nets.teardown(s1)
        other.teardown(s2)
    assert sorted(removed) == [f"{sub1}.10", f"{sub1}.100"]
    assert f"lo:{s1}" not in loopback_aliases() and f"lo:{s2}" not in loopback_aliases()
    assert nets.teardown(s1) == []  # a retry after a crash finds nothing and succeeds


def test_calls_are_split_over_agents() -> None:
    assert [split(10, 3, i) for i in range(3)] == [4, 3, 3]
    assert sum(split(1001, 7, i) for i in range(7)) == 1001
