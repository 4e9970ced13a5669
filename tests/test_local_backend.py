"""The local backend's network and sweep: per-session loopback addresses, created, shared by
nobody, deleted (real `ip` on lo; root)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.local import LocalBackend
from backends.loopback import LoopbackNetworks, loopback_aliases
from backends.sweeper import sweep
from entrypoints.cli import app
from sipflow.placement import Placement
from sipflow.plan import split
from sipflow.settings import Settings, get_settings


def test_provision_is_idempotent_and_isolated(tmp_path: Path) -> None:
    nets = LoopbackNetworks(tmp_path / "a")
    other = LoopbackNetworks(tmp_path / "b")  # another stack on the same machine
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


def test_placement_addresses_and_sweep_of_a_dead_session(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(Settings(data_dir=tmp_path))
    dead, alive = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    ids = ["callee-0", "callee-1", "caller-0"]
    try:
        placement = backend.provision(dead, ids)
        assert backend.provision(dead, ids) == placement  # a retried activity gets the same
        assert (placement.backend, placement.runner_ids) == ("local", ids)
        subnet = placement.subnet
        assert sorted(loopback_aliases()[f"lo:{dead}"]) == sorted(
            [f"{subnet}.10", f"{subnet}.11", f"{subnet}.100"]
        )
        backend.provision(alive, ["caller-0"])
        assert {dead, alive} <= backend.sessions_present()

        # Only `dead` counts as over: the sweeper removes its addresses and keeps the other's.
        removed = sweep(backend, still_running=lambda sid: sid != dead)
        assert sorted(removed[dead]) == sorted([f"{subnet}.10", f"{subnet}.11", f"{subnet}.100"])
        assert alive not in removed
        assert f"lo:{dead}" not in loopback_aliases() and f"lo:{alive}" in loopback_aliases()
        assert dead not in backend.sessions_present()
        bare = Placement(session_id=dead, backend="local")
        assert backend.teardown(bare) == [] and backend.running(bare) == []
    finally:
        for sid in (dead, alive):
            backend.teardown(Placement(session_id=sid, backend="local"))


def test_calls_are_split_over_agents() -> None:
    assert [split(10, 3, i) for i in range(3)] == [4, 3, 3]
    assert sum(split(1001, 7, i) for i in range(7)) == 1001


def test_sipflow_sweep_removes_what_a_dead_session_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIPFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    backend = LocalBackend.from_settings(get_settings())
    sid = uuid.uuid4().hex[:12]  # no row in this stack's database: nobody runs it
    try:
        subnet = backend.provision(sid, ["callee-0"]).subnet
        runner = CliRunner()
        result = runner.invoke(app, ["sweep", "--backend", "local"])
        assert result.exit_code == 0, result.output
        assert f"local {sid}: removed {subnet}.10" in result.stdout
        assert f"lo:{sid}" not in loopback_aliases()
        assert "nothing to sweep" in runner.invoke(app, ["sweep", "--backend", "local"]).stdout
        wrong = runner.invoke(app, ["sweep", "--backend", "fargate"])
        assert wrong.exit_code == 3 and "unknown backend(s): fargate" in wrong.stderr
    finally:
        backend.teardown(Placement(session_id=sid, backend="local"))
        get_settings.cache_clear()
