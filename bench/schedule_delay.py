"""Scheduled runs: delay from a schedule's due time to the first INVITE on the wire (p50/p95
over N runs of one interval schedule), and M schedules on one embedded stack: creation time and
the stack's memory before/after (root: it sniffs the session namespaces' loopbacks).

    .venv/bin/python -m bench.schedule_delay [--runs 20] [--every 8] [--schedules 200]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import embedded_stack, percentile
from bench.sniff import InviteSniffer
from entrypoints.stack import Stack

SESSION: dict[str, Any] = {
    "name": "bench-scheduled",
    "roles": {"callees": {"agents": 1}, "callers": {"rate": 50, "max_calls": 5}},
    "thresholds": ["failed_calls == 0"],
}


class AllInvites(InviteSniffer):
    """Every INVITE's time per source address: runs reuse addresses, each takes its own."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, list[float]] = {}

    def _record(self, frame: bytes, now: float) -> None:
        before = dict(self.first_seen)
        self.first_seen.clear()
        super()._record(frame, now)
        for address, t in self.first_seen.items():
            self.seen.setdefault(address, []).append(t)
        self.first_seen = before


def schedule(every_s: float, name: str = "bench") -> dict[str, Any]:
    return {"name": name, "session": SESSION, "schedule": {"every_s": [every_s]}}


def rss_mb(stack: Stack) -> float:
    """Resident memory of the stack's processes (Temporal, mosquitto, API, worker)."""
    total = 0
    for proc in stack.procs.values():
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def judged(http: httpx.Client, sched: str) -> list[dict[str, Any]]:
    return [r for r in http.get(f"/v1/schedules/{sched}/runs").json() if r["state"]]


def delays(http: httpx.Client, runs: int, every_s: float) -> None:
    sched = http.post("/v1/schedules", json=schedule(every_s)).json()["id"]
    seen: dict[str, float] = {}
    out: list[float] = []
    sniffer = AllInvites()
    with sniffer:
        while len(out) < runs:
            for run in judged(http, sched):
                sid = run["session_id"]
                if sid in seen:
                    continue
                body = http.get(f"/v1/sessions/{sid}").json()
                callers = [x["address"] for x in body["runners"] if x["role"] == "caller"]
                due = datetime.fromisoformat(run["scheduled_at"]).timestamp()
                first = min(t for a in callers for t in sniffer.seen.get(a, []) if t >= due)
                seen[sid] = first - due
                out.append((first - due) * 1000)
            time.sleep(0.2)
    http.delete(f"/v1/schedules/{sched}")
    print(
        f"due time -> first INVITE ms over {len(out)} runs: p50 {percentile(out, 50):.0f}  "
        f"p95 {percentile(out, 95):.0f}  min {min(out):.0f}  max {max(out):.0f}"
    )


def many(stack: Stack, http: httpx.Client, n: int) -> None:
    before = rss_mb(stack)
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        r = http.post("/v1/schedules", json=schedule(86400, f"bench-{i}"))
        r.raise_for_status()
        ids.append(r.json()["id"])
    took = time.monotonic() - t0
    time.sleep(5)  # let the schedules settle in Temporal
    after = rss_mb(stack)
    print(
        f"{n} schedules: created in {took:.1f} s ({took / n * 1000:.0f} ms each); stack RSS "
        f"{before:.0f} MB -> {after:.0f} MB"
    )
    for sid in ids:
        http.delete(f"/v1/schedules/{sid}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--every", type=float, default=8)
    ap.add_argument("--schedules", type=int, default=200)
    args = ap.parse_args()
    with embedded_stack(SIPFLOW_SCHEDULE_MIN_INTERVAL_S="1") as (stack, http):
        if args.runs:
            delays(http, args.runs, args.every)
        if args.schedules:
            many(stack, http, args.schedules)


if __name__ == "__main__":
    main()
