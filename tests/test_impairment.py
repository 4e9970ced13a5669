"""Network impairment of one session, in its namespace (root; real kernel, SIPp, broker)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from backends.base import PermanentBackendError
from backends.docker import DockerBackend
from backends.local import LocalBackend
from backends.netns import namespace, namespaces
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sipp_files import stored_vs_sipp

BLAST = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    try:
        s.sendto(b"x" * 1000, (sys.argv[2], int(sys.argv[3])))
    except OSError:  # a full queue: the shaper holds back
        time.sleep(0.001)
"""


def spec(network: dict[str, Any] | None = None, **callers: Any) -> dict[str, Any]:
    c = {"agents": 1, "scenario": "call", "rate": 50, "max_calls": 300, **callers}
    return {
        "name": "impaired" if network else "clean",
        "roles": {"callees": {"agents": 1, "scenario": "answer"}, "callers": c},
        "network": network or {},
        "thresholds": ["total_calls >= 1"],
    }


def received_kbit(backend: LocalBackend, sid: str, subnet: str, seconds: float) -> float:
    """What a runner address gets through to the host in `seconds` of sending flat out."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))  # reached as the host end, DNATed to loopback
    sink.settimeout(0.5)
    argv = ["ip", "netns", "exec", namespace(sid), sys.executable, "-c", BLAST]
    argv += [f"{subnet}.100", f"{subnet}.1", str(sink.getsockname()[1]), str(seconds)]
    blaster = subprocess.Popen(argv)
    got, start = 0, time.monotonic()
    try:  # only what arrives while it sends: a shaper's queue drains afterwards
        while time.monotonic() - start < seconds:
            try:
                got += len(sink.recv(2000))
            except TimeoutError:
                if blaster.poll() is not None:
                    break
    finally:
        blaster.wait(10)
        sink.close()
    return got * 8 / 1000 / seconds


def test_rate_limits_measured_throughput(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(Settings(data_dir=tmp_path))
    shaped, free = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    ids = ["callee-0", "caller-0"]
    limited = SessionSpec.model_validate(spec({"rate_kbit": 256}))
    try:
        shaped_subnet = backend.provision(shaped, ids, limited).subnet
        free_subnet = backend.provision(free, ids, SessionSpec.model_validate(spec())).subnet
        kbit = received_kbit(backend, shaped, shaped_subnet, 2.0)
        unshaped = received_kbit(backend, free, free_subnet, 2.0)
    finally:
        for sid in (shaped, free):
            backend.teardown(Placement(session_id=sid))
    print(f"\nshaped to 256 kbit/s: {kbit:.0f} kbit/s; unshaped: {unshaped:.0f} kbit/s")
    assert 100 < kbit < 256 * 1.25, kbit
    assert unshaped > 10 * kbit, (unshaped, kbit)


def test_loss_causes_retransmissions_only_where_asked(sqlite_stack: RunningStack) -> None:
    lossy = sqlite_stack.submit(spec({"loss_pct": 5}))
    clean = sqlite_stack.submit(spec())
    lossy_body, clean_body = sqlite_stack.wait(lossy), sqlite_stack.wait(clean)
    assert lossy_body["status"] == clean_body["status"] == "completed"
    measured = lossy_body["summary"]["measured"]
    assert measured["retransmissions"] > 0, measured
    assert clean_body["summary"]["measured"]["retransmissions"] == 0, clean_body["summary"]
    assert clean_body["verdict"] == "pass"
    # What the impaired session stored is still exactly what its SIPps counted.
    stored_vs_sipp(sqlite_stack, lossy, lossy_body)
    assert namespace(lossy) not in namespaces() and namespace(clean) not in namespaces()


def test_impairment_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    impaired = SessionSpec.model_validate(spec({"loss_pct": 1}))
    loopback = LocalBackend.from_settings(Settings(data_dir=tmp_path, local_network="loopback"))
    with pytest.raises(PermanentBackendError, match="loopback mode"):
        loopback.provision(uuid.uuid4().hex[:12], ["caller-0"], impaired)
    # The docker backend says so before it touches the engine (none at this address).
    engine = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    with pytest.raises(PermanentBackendError, match="docker backend does not impair"):
        DockerBackend(engine, Settings(data_dir=tmp_path)).provision("s1", ["caller-0"], impaired)
    delayed = SessionSpec.model_validate(spec({"delay_ms": 50, "jitter_ms": 10}))
    with pytest.raises(PermanentBackendError, match=r"delay_ms.*NET_ADMIN"):
        DockerBackend(engine, Settings(data_dir=tmp_path)).provision("s2", ["caller-0"], delayed)


def test_bad_impairment_names_the_field() -> None:
    from pydantic import ValidationError

    for network, field in (
        ({"jitter_ms": 5}, "network"),
        ({"loss_pct": 101}, "network.loss_pct"),
        ({"rate_kbit": 1}, "network.rate_kbit"),
    ):
        with pytest.raises(ValidationError) as info:
            SessionSpec.model_validate(spec(network))
        locs = {".".join(map(str, e["loc"])) for e in info.value.errors()}
        assert any(loc.startswith(field) for loc in locs), (network, locs)
