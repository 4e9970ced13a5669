"""Time from `POST /v1/sessions` to the first INVITE on the wire, over N sessions (root: it
sniffs the loopback device).

    .venv/bin/python -m bench.start_latency [--sessions 12]
"""

from __future__ import annotations

import argparse
import time

from bench.common import embedded_stack, percentile, wait_final
from bench.sniff import InviteSniffer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=12)
    args = ap.parse_args()
    spec = {
        "name": "bench-start-latency",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": 50, "max_calls": 5}},
        "thresholds": ["failed_calls == 0"],
    }
    latencies: list[float] = []
    with embedded_stack() as (_stack, http), InviteSniffer() as sniffer:
        for _ in range(args.sessions):
            sniffer.first_seen.clear()
            t0 = time.time()
            r = http.post("/v1/sessions", json=spec)
            r.raise_for_status()
            body = wait_final(http, r.json()["id"])
            callers = [x["address"] for x in body["runners"] if x["role"] == "caller"]
            first = min(sniffer.first_seen[a] for a in callers if a in sniffer.first_seen)
            latencies.append((first - t0) * 1000)
            assert body["verdict"] == "pass", body.get("reasons")
    print(f"sessions: {len(latencies)}")
    print(
        f"POST -> first INVITE ms: p50 {percentile(latencies, 50):.0f}  "
        f"p95 {percentile(latencies, 95):.0f}  min {min(latencies):.0f}  max {max(latencies):.0f}"
    )


if __name__ == "__main__":
    main()
