"""Delay and jitter of a session's traffic by its NFQUEUE delayer (the kernel has no netem):
real kernel queues, SIPp, broker, Temporal. Response times are read from SIPp's own per-call
RTT file, not from the stored (bucketed) histogram."""

from __future__ import annotations

import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from backends import delay_queue
from backends.base import PermanentBackendError
from backends.local import LocalBackend
from backends.netns import namespace, namespaces
from backends.sweeper import sweep
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack


def spec(network: dict[str, Any] | None = None, callers_network: dict[str, Any] | None = None,
         **callers: Any) -> dict[str, Any]:  # fmt: skip
    c = {"agents": 1, "scenario": "call", "rate": 20, "max_calls": 60, **callers}
    if callers_network:
        c["network"] = callers_network
    return {
        "name": "delayed" if network or callers_network else "clean",
        "roles": {"callees": {"agents": 1, "scenario": "answer"}, "callers": c},
        "network": network or {},
        "thresholds": ["failed_calls == 0"],
    }


def response_times_ms(rs: RunningStack, sid: str) -> list[float]:
    """INVITE -> 200 OK of every call (rtd 1), from the caller's SIPp -trace_rtt file."""
    (rtt,) = (rs.runs_dir / sid / "caller-0").rglob("*_rtt.csv")
    times = []
    for line in rtt.read_text().splitlines()[1:]:
        fields = line.split(";")
        if len(fields) >= 3 and fields[2].strip() == "1":
            times.append(float(fields[1]))
    return times


def iqr(values: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def test_delay_raises_response_time_by_the_delay(sqlite_stack: RunningStack) -> None:
    # Beside each other: an unimpaired session, one whose callers receive 100 ms late (one
    # delayed hop per INVITE -> 200 round trip) and one whose runners all do, with jitter
    # (two delayed hops: the INVITE to the callee, the 200 to the caller).
    ids = {
        "clean": sqlite_stack.submit(spec()),
        "callers": sqlite_stack.submit(spec(callers_network={"delay_ms": 100})),
        "session": sqlite_stack.submit(spec({"delay_ms": 100, "jitter_ms": 20})),
    }
    bodies = {name: sqlite_stack.wait(sid) for name, sid in ids.items()}
    p50 = {}
    for name, body in bodies.items():
        assert body["verdict"] == "pass", (name, body["reasons"])
        times = response_times_ms(sqlite_stack, ids[name])
        assert len(times) == 60, (name, len(times))
        p50[name] = statistics.median(times)
    spread = {n: iqr(response_times_ms(sqlite_stack, ids[n])) for n in ids}
    print(f"\nresponse time p50 (ms): {p50}; interquartile range: {spread}")
    assert 100 - 30 <= p50["callers"] - p50["clean"] <= 100 + 30, p50
    # Jitter keeps packets in order, so each hop takes 100..120 ms: 2 x 100..120, ± 30.
    assert 200 - 30 <= p50["session"] - p50["clean"] <= 2 * 120 + 30, p50
    # Jitter spreads response times (the quartiles: a stall of the loaded machine moves few).
    assert spread["session"] >= spread["callers"] + 8, spread
    for sid in ids.values():
        assert delay_queue.running(sid) == {}, sid
        assert namespace(sid) not in namespaces()


def test_too_fast_for_the_delayer_is_refused_with_the_reason(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    limit = Settings().delayer_max_calls_per_s
    fast = spec({"delay_ms": 50}, rate=limit + 1, max_calls=int(limit) + 1)
    r = sqlite_stack.http.post("/v1/sessions", json=fast)
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "network", "delay_ms"], err
    assert (
        f"at most {limit:g} calls/s" in err["msg"]
        and "SIPFLOW_DELAYER_MAX_CALLS_PER_S" in (err["msg"])
    )
    # Audio counts: 1 s of hold adds 100 RTP packets a call, at a rate under the limit.
    slow_with_audio = spec(
        callers_network={"delay_ms": 50}, rate=limit / 4, max_calls=int(limit), hold_ms=1000
    )
    slow_with_audio["roles"]["callers"]["media"] = {}
    slow_with_audio["roles"]["callees"]["media"] = {}
    r = sqlite_stack.http.post("/v1/sessions", json=slow_with_audio)
    assert r.status_code == 422 and "with its audio" in r.text, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "roles", "callers", "network", "delay_ms"]
    # The worker says the same where no API checked (a schedule, a capacity search): nothing made.
    backend = LocalBackend.from_settings(Settings(data_dir=tmp_path))
    sid = uuid.uuid4().hex[:12]
    with pytest.raises(PermanentBackendError, match="delayer carries at most"):
        backend.provision(sid, ["callee-0", "caller-0"], SessionSpec.model_validate(fast))
    assert namespace(sid) not in namespaces()


def test_delayer_goes_with_the_namespace_on_teardown_sweep_and_alone(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(Settings(data_dir=tmp_path))
    delayed = SessionSpec.model_validate(spec({"delay_ms": 20}))
    ids = ["callee-0", "caller-0"]
    swept, torn, orphan = (uuid.uuid4().hex[:12] for _ in range(3))
    try:
        for sid in (swept, torn, orphan):
            backend.provision(sid, ids, delayed)
            assert len(delay_queue.running(sid)) == 1, sid
        # Provisioning again (a retried activity, a restarted worker) keeps the one it has.
        (pid,) = delay_queue.running(torn)
        backend.provision(torn, ids, delayed)
        assert list(delay_queue.running(torn)) == [pid]
        assert "delayer" in " ".join(backend.teardown(Placement(session_id=torn)))
        removed = sweep(backend, still_running=lambda sid: sid != swept)
        assert any("delayer" in what for what in removed[swept]), removed
        # A namespace removed behind its back (by hand, an older sweeper): it ends by itself.
        subprocess.run(["ip", "netns", "del", namespace(orphan)], check=True)
        deadline = time.monotonic() + 5
        while delay_queue.running(orphan) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sid in (swept, torn, orphan):
            assert delay_queue.running(sid) == {}, sid
            assert namespace(sid) not in namespaces(), sid
    finally:
        for sid in (swept, torn, orphan):
            backend.teardown(Placement(session_id=sid))


def test_queue_rules_exempt_the_metrics_and_put_roles_first() -> None:
    from sipflow.spec import Impairment

    planned = delay_queue.queues(
        Impairment(delay_ms=100),
        {
            "callee": (Impairment(), ["10.250.7.10"]),
            "caller": (Impairment(delay_ms=5, jitter_ms=2), ["10.250.7.100", "fd57::64"]),
        },
    )
    assert [(n, i.delay_ms) for n, i, _ in planned] == [(2, 5), (0, 100)]
    v4 = delay_queue.rules(planned, 1883, 4).splitlines()
    assert (
        v4.index("-A INPUT -p tcp --sport 1883 -j ACCEPT")
        < v4.index("-A INPUT -d 10.250.7.100/32 -j NFQUEUE --queue-num 2")
        < v4.index("-A INPUT -j NFQUEUE --queue-num 0")
    )
    v6 = delay_queue.rules(planned, 1883, 6)
    assert "-d fd57::64/128 -j NFQUEUE --queue-num 2" in v6 and "10.250" not in v6


def test_cli_validate_names_the_field(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from entrypoints.cli import app

    limit = Settings().delayer_max_calls_per_s
    path = tmp_path / "fast.json"
    path.write_text(json.dumps(spec({"delay_ms": 50}, rate=limit * 2, max_calls=int(limit) * 2)))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "network.delay_ms: the delayer carries at most" in result.stderr
    path.write_text(json.dumps(spec({"delay_ms": 50}, rate=limit)))
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0


def test_cancelled_delayed_session_leaves_no_delayer(sqlite_stack: RunningStack) -> None:
    sid = sqlite_stack.submit(spec({"delay_ms": 50}, max_calls=None, duration_s=30))
    sqlite_stack.wait_phase(sid, "running callers")
    assert len(delay_queue.running(sid)) == 1
    sqlite_stack.http.post(f"/v1/sessions/{sid}/cancel")
    assert sqlite_stack.wait(sid)["status"] == "cancelled"
    assert delay_queue.running(sid) == {}
    assert namespace(sid) not in namespaces()
