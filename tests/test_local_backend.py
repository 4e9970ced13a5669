"""The local backend's network and sweep: per-session loopback addresses, created, shared by
nobody, deleted (real `ip` on lo; root)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.local import LocalBackend
from backends.loopback import LoopbackNetworks, loopback_aliases
from backends.netns import namespace, namespaces
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


def addresses_of(sid: str, mode: str) -> list[str]:
    """The session's runner addresses, where the mode puts them."""
    if mode == "loopback":
        return sorted(loopback_aliases().get(f"lo:{sid}", []))
    if namespace(sid) not in namespaces():
        return []
    out = subprocess.run(
        ["ip", "-n", namespace(sid), "-j", "-4", "addr", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
    ).stdout
    return sorted(a["local"] for link in json.loads(out or "[]") for a in link["addr_info"])


@pytest.mark.parametrize("mode", ["netns", "loopback"])
def test_placement_addresses_and_sweep_of_a_dead_session(tmp_path: Path, mode: str) -> None:
    backend = LocalBackend.from_settings(Settings(data_dir=tmp_path, local_network=mode))
    dead, alive = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    ids = ["callee-0", "callee-1", "caller-0"]
    try:
        placement = backend.provision(dead, ids)
        assert backend.provision(dead, ids) == placement  # a retried activity gets the same
        assert (placement.backend, placement.runner_ids) == ("local", ids)
        # The placement says which network the session got: its namespace, or none.
        assert placement.name == (namespace(dead) if mode == "netns" else None)
        subnet = placement.subnet
        mine = sorted([f"{subnet}.10", f"{subnet}.11", f"{subnet}.100"])
        assert addresses_of(dead, mode) == mine
        backend.provision(alive, ["caller-0"])
        assert {dead, alive} <= backend.sessions_present()

        # Only `dead` counts as over: the sweeper removes its network and keeps the other's.
        removed = sweep(backend, still_running=lambda sid: sid != dead)
        assert alive not in removed
        if mode == "loopback":
            assert sorted(removed[dead]) == mine
        else:
            assert sorted(removed[dead]) == [
                f"netns {namespace(dead)}",
                f"nft table {namespace(dead)}",
                f"veth sfh{dead}",
            ]
        assert addresses_of(dead, mode) == [] and addresses_of(alive, mode) != []
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
        backend.provision(sid, ["callee-0"])
        assert namespace(sid) in namespaces()
        runner = CliRunner()
        result = runner.invoke(app, ["sweep", "--backend", "local"])
        assert result.exit_code == 0, result.output
        ns = namespace(sid)
        assert f"local {sid}: removed nft table {ns}, veth sfh{sid}, netns {ns}" in result.stdout
        assert namespace(sid) not in namespaces()
        assert "nothing to sweep" in runner.invoke(app, ["sweep", "--backend", "local"]).stdout
        wrong = runner.invoke(app, ["sweep", "--backend", "nomad"])
        assert wrong.exit_code == 3 and "unknown backend(s): nomad" in wrong.stderr
    finally:
        backend.teardown(Placement(session_id=sid, backend="local"))
        get_settings.cache_clear()
