"""Time from `POST /v1/sessions` to the first INVITE on the wire, over N sessions per local
network mode, the modes side by side in one run (root: it sniffs the loopback devices of the
host and of the session namespaces).

    .venv/bin/python -m bench.start_latency [--sessions 20] [--modes netns,loopback]
"""

from __future__ import annotations

import argparse
import time

from bench.common import embedded_stack, percentile, wait_final
from bench.sniff import InviteSniffer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--modes", default="netns,loopback", help="SIPFLOW_LOCAL_NETWORK values")
    args = ap.parse_args()
    for mode in args.modes.split(","):
        measure(mode, args.sessions)


def measure(mode: str, sessions: int) -> None:
    spec = {
        "name": "bench-start-latency",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": 50, "max_calls": 5}},
        "thresholds": ["failed_calls == 0"],
    }
    latencies: list[float] = []
    stack = embedded_stack(SIPFLOW_LOCAL_NETWORK=mode)
    with stack as (_stack, http), InviteSniffer() as sniffer:
        for _ in range(sessions):
            sniffer.first_seen.clear()
            t0 = time.time()
            r = http.post("/v1/sessions", json=spec)
            r.raise_for_status()
            body = wait_final(http, r.json()["id"])
            callers = [x["address"] for x in body["runners"] if x["role"] == "caller"]
            first = min(sniffer.first_seen[a] for a in callers if a in sniffer.first_seen)
            latencies.append((first - t0) * 1000)
            assert body["verdict"] == "pass", body.get("reasons")
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(
        f"{mode:8} sessions {len(latencies)}  POST -> first INVITE ms: p50 {p50:.0f}  "
        f"p95 {p95:.0f}  min {min(latencies):.0f}  max {max(latencies):.0f}"
    )


if __name__ == "__main__":
    main()
