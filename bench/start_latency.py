"""Time from `POST /v1/sessions` to the first INVITE on the wire, over N sessions per local
network mode, the modes side by side in one run (root: it sniffs the loopback devices of the
host and of the session namespaces).

    .venv/bin/python -m bench.start_latency [--sessions 20] [--modes netns,loopback]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from bench.common import embedded_stack, percentile, wait_final
from bench.history_breakdown import breakdown
from bench.sniff import InviteSniffer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--modes", default="netns,loopback", help="SIPFLOW_LOCAL_NETWORK values")
    ap.add_argument("--breakdown", action="store_true", help="print where the time goes")
    args = ap.parse_args()
    for mode in args.modes.split(","):
        measure(mode, args.sessions, args.breakdown)


def agent_events(runs: Path) -> list[tuple[float, str]]:
    """When each agent was spawned (its pid file) and what it logged (timestamps in ms)."""
    out = []
    for pid_file in runs.glob("*/agent.pid"):
        rid = pid_file.parent.name
        out.append((pid_file.stat().st_mtime, f"{rid} spawned"))
        log = pid_file.parent / "agent.log"
        for line in log.read_text().splitlines() if log.exists() else []:
            if " state " not in line:
                continue
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((stamp, f"{rid} logged {line.split(' state ', 1)[1][:30]}"))
    return out


def print_breakdown(rows: dict[str, list[float]]) -> None:
    print("  median offset from POST (ms), event (sessions seen):")
    for label, offs in sorted(rows.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"  {statistics.median(offs):7.0f}  {label} ({len(offs)})")


def measure(mode: str, sessions: int, want_breakdown: bool = False) -> None:
    spec = {
        "name": "bench-start-latency",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": 50, "max_calls": 5}},
        "thresholds": ["failed_calls == 0"],
    }
    latencies: list[float] = []
    rows: dict[str, list[float]] = defaultdict(list)
    stack = embedded_stack(SIPFLOW_LOCAL_NETWORK=mode)
    with stack as (stk, http), InviteSniffer() as sniffer:
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
            if want_breakdown:
                sid = body["id"]
                events = breakdown(stk.temporal_address, stk.settings, f"session-{sid}")
                events += agent_events(stk.settings.runs_dir / sid)
                events.append((first, "first INVITE on the wire"))
                seen: set[str] = set()
                for t, label in sorted(events):
                    if label not in seen:
                        seen.add(label)
                        rows[label].append((t - t0) * 1000)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(
        f"{mode:8} sessions {len(latencies)}  POST -> first INVITE ms: p50 {p50:.0f}  "
        f"p95 {p95:.0f}  min {min(latencies):.0f}  max {max(latencies):.0f}"
    )
    if want_breakdown:
        print_breakdown(rows)


if __name__ == "__main__":
    main()
