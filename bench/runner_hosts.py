"""Runner hosts: aggregate calls/s through sipflow with the callers on 1 vs 2 runner hosts of
this machine (the same cores: the ratio shows overhead, not speed-up), and the placement time
of a 100-agent session over 10 simulated hosts (the spreading logic alone).

    .venv/bin/python -m bench.runner_hosts [--rate 400] [--duration 20] [--agents 2]

Needs root (the simulated machines are network namespaces, tests/host_fixtures.py). The
callee runs on the worker's own backend, the callers on the pool, all through Kamailio on the
simulated network's gateway (this machine does not forward between namespaces: ip_forward 0).
"""

from __future__ import annotations

import argparse
import base64
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import embedded_stack, wait_final
from sipflow.pool_placement import HostSlot, spread
from tests.host_fixtures import RunnerHostProcess, machines, wait_until
from tests.runner_fixtures import free_port
from tests.sut.kamailio import kamailio


def placement_time(agents: int = 100, hosts: int = 10, repeat: int = 200) -> float:
    """Median seconds of one `spread` of `agents` over `hosts` hosts of uneven free slots."""
    slots = [HostSlot(host_id=f"h{i}", task_queue=f"q-{i}", free=8 + i) for i in range(hosts)]
    ids = [f"caller-{i}" for i in range(agents)]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        spread("bench", ids, slots)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_session(
    http: Any, sut: tuple[str, int], pool: str, rate: float, duration: float, agents: int
) -> dict[str, Any]:
    host, port = sut
    spec = {
        "name": f"hosts-{pool}",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {
                "agents": agents,
                "rate": rate,
                "duration_s": duration,
                "pool": pool,
                "accounts": [{"user": "alice"}],
            },
        },
        "thresholds": [],
    }
    r = http.post("/v1/sessions", json=spec)
    r.raise_for_status()
    return wait_final(http, r.json()["id"], timeout=duration * 4 + 300)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--agents", type=int, default=2)
    a = ap.parse_args()
    print(f"placement of 100 agents over 10 hosts: {placement_time() * 1e6:.0f} µs (median)")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    shared = {
        "SIPFLOW_RUNNER_TOKEN_SECRET": secrets.token_urlsafe(32),
        "SIPFLOW_ENCRYPTION_KEYS": f"k1:{key}",
    }
    with embedded_stack(**shared) as (stack, http), tempfile.TemporaryDirectory() as tmp:
        c = stack.config
        with (
            machines(2, [c.temporal_port, c.mqtt_port, c.api_port]) as net,
            kamailio(kport := free_port(), Path(tmp) / "kamailio", ip=net.gateway),
        ):
            procs = []
            for mach in net.machines:
                secret = http.post("/v1/hosts", json={"pool": "bench"}).json()["secret"]
                env = {
                    **shared,
                    "SIPFLOW_TEMPORAL_ADDRESS": f"{net.gateway}:{c.temporal_port}",
                    "SIPFLOW_MQTT_HOST": net.gateway,
                    "SIPFLOW_MQTT_PORT": str(c.mqtt_port),
                    "SIPFLOW_API_URL": f"http://{net.gateway}:{c.api_port}",
                    "SIPFLOW_API_KEY": secret,
                    "SIPFLOW_RUNNER_HOST_ID": mach.name,
                    "SIPFLOW_RUNNER_HOST_HEARTBEAT_S": "2",
                    "SIPFLOW_NETNS_POOL": mach.session_pool,
                }
                procs.append(RunnerHostProcess(mach, Path(tmp) / mach.name, "bench", env))
            try:
                results: dict[int, dict[str, Any]] = {}
                for n, proc in enumerate(procs, start=1):  # host A alone, then A and B
                    proc.start()
                    wait_until(lambda n=n: live(http) >= n, 90, f"{n} hosts live")
                    results[n] = run_session(
                        http, (net.gateway, kport), "bench", a.rate, a.duration, a.agents
                    )
            finally:
                for p in procs:
                    p.stop()
    print(f"offered {a.rate:g} calls/s for {a.duration:g} s, {a.agents} caller agents")
    for n, body in results.items():
        m = body["summary"]["measured"]
        ok = m["successful_calls"] or 0
        print(
            f"{n} host(s): {ok} calls ok, {m['failed_calls']} failed, "
            f"{ok / a.duration:.1f} calls/s, verdict {body['verdict']}"
        )
        if not ok:
            print("  reasons:", body["reasons"], "runners:", body["runners"])
    ok1 = results[1]["summary"]["measured"]["successful_calls"] or 0
    ok2 = results[2]["summary"]["measured"]["successful_calls"] or 0
    print(f"ratio 2 hosts / 1 host: {ok2 / max(ok1, 1):.3f}")


def live(http: Any) -> int:
    r = http.get("/v1/pools/bench/hosts")
    return sum(h["state"] == "live" for h in r.json()["items"]) if r.status_code == 200 else 0


if __name__ == "__main__":
    main()
