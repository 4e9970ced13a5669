"""The backend seam: backends found by name, placements carried by the workflow, and activity
inputs of the previous release (sessions running across an upgrade) still understood."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import legacy
from activities.network import ProvisionNetwork
from activities.runners import StartRunners, StopRunners
from backends.base import RunnerBackend
from backends.registry import Backends, UnknownBackend, backend_class, names
from sipflow import store
from sipflow.db import migrate, session_scope
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import Backend, SessionSpec

SPEC: dict[str, Any] = {
    "name": "seam",
    "roles": {
        "callees": {"agents": 2, "scenario": "answer"},
        "callers": {"agents": 1, "scenario": "call", "max_calls": 10},
    },
}


def test_every_backend_a_spec_may_name_is_registered_and_implements_the_interface() -> None:
    assert set(names()) == set(get_args(Backend))
    for name in names():
        cls = backend_class(name)
        assert issubclass(cls, RunnerBackend) and cls.name == name
    with pytest.raises(UnknownBackend, match="unknown backend 'nomad'"):
        backend_class("nomad")


def test_backend_is_resolved_from_the_spec_else_the_default(tmp_path: Path) -> None:
    backends = Backends(Settings(data_dir=tmp_path, default_backend="docker"))
    assert backends.resolve(None) == "docker"
    assert backends.resolve("local") == "local"
    local = backends.get("local")
    assert backends.get("local") is local  # made once per worker


def decode(value: Any, type_hint: Any) -> Any:
    """Through the data converter the worker uses, as Temporal hands an activity its input."""
    conv = pydantic_data_converter.payload_converter
    return conv.from_payloads(conv.to_payloads([value]), [type_hint])[0]


def test_inputs_of_the_previous_release_decode(tmp_path: Path) -> None:
    # teardown_network(session_id) and the provision result then: a SessionNetwork.
    assert decode("abc123", Placement | str) == "abc123"
    old_network = {"session_id": "abc123", "subnet": "127.201.7", "backend": "local", "name": None}
    placement = decode(old_network, Placement | str)
    assert placement == Placement(session_id="abc123", subnet="127.201.7")

    # start_runners({spec, network, role}): callers learn where the callees are.
    start = decode({"spec": SPEC, "network": old_network, "role": "caller"}, StartRunners)
    assert start.placement == placement and start.peers is None
    spec = SessionSpec.model_validate(SPEC)
    assert legacy.peers(start.placement, spec) == {
        "callee-0": "127.201.7.10",
        "callee-1": "127.201.7.11",
    }
    docker = placement.model_copy(update={"backend": "docker"})
    assert legacy.peers(docker, spec) == {"callee-0": "callee-0", "callee-1": "callee-1"}

    # provision_network({session_id, callees, callers}) and stop_runners({session_id}).
    prov = decode({"session_id": "abc123", "callees": 2, "callers": 1}, ProvisionNetwork)
    assert prov.runner_ids == [] and legacy.runner_ids(prov.callees, prov.callers) == [
        "callee-0",
        "callee-1",
        "caller-0",
    ]
    assert decode({"session_id": "abc123"}, StopRunners).placements is None
    # ... whereas today's workflow sends [] when nothing was placed: nothing to stop.
    assert decode({"session_id": "abc123", "placements": []}, StopRunners).placements == []


def test_previous_release_backend_comes_from_the_stored_spec(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_backend="local")
    migrate(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as db:
        store.create_session(db, "d1", "default", "n", {**SPEC, "backend": "docker"}, None)
        store.create_session(db, "l1", "default", "n", SPEC, None)
    assert legacy.placement(settings, "d1") == Placement(session_id="d1", backend="docker")
    assert legacy.placement(settings, "l1").backend == "local"
    assert legacy.placement(settings, "gone").backend == "local"  # no row: the default
