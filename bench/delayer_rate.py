"""What the NFQUEUE delayer carries: sessions with `network: {delay_ms: D}` (every packet the
runners receive is held D ms: two delayed hops per INVITE -> 200) against the same session
unimpaired, one after the other in one stack, at each rate. Rates and counts are SIPp's own
(stat file); response times its per-call RTT file; the delayer's CPU is sampled from /proc.
SIPFLOW_DELAYER_MAX_CALLS_PER_S is lifted for the run so the rates above it can be measured.

    .venv/bin/python -m bench.delayer_rate [--rates 100,200,500,1000] [--seconds 10] [--delay 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from backends import delay_queue
from bench.common import embedded_stack, percentile, stat_totals, wait_final


def response_times(run_dir: Path) -> list[float]:
    times = []
    for rtt in run_dir.rglob("*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            fields = line.split(";")
            if len(fields) >= 3 and fields[2].strip() == "1":
                times.append(float(fields[1]))
    return times


class CpuSampler:
    """CPU seconds of the session's delayer, read from /proc while it runs."""

    def __init__(self, sid: str) -> None:
        self.sid, self.cpu_s, self._stop = sid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.5):
            for pid in delay_queue.running(self.sid):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.cpu_s = max(self.cpu_s, (int(fields[11]) + int(fields[12])) / tick)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.cpu_s


def session(
    stack_dir: Path, http: httpx.Client, rate: int, seconds: int, delay: int | None
) -> dict[str, Any]:
    calls = rate * seconds
    spec = {
        "name": f"delayer-{rate}-{delay or 0}",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": rate, "max_calls": calls}},
        "network": {"delay_ms": delay} if delay else {},
        "thresholds": ["failed_calls == 0"],
    }
    r = http.post("/v1/sessions", json=spec)
    r.raise_for_status()
    sid = r.json()["id"]
    cpu = CpuSampler(sid)
    body = wait_final(http, sid, timeout=seconds * 20 + 120)
    cpu_s = cpu.stop()
    run_dir = stack_dir / "runs" / sid / "caller-0"
    stats = list(run_dir.rglob("main-stat.csv"))
    totals = stat_totals(stats[0]) if stats else {"successful": 0.0, "failed": 0.0, "elapsed_s": 1}
    times = response_times(run_dir)
    return {
        "verdict": body["verdict"],
        "ok_per_s": totals["successful"] / max(totals["elapsed_s"], 1e-9),
        "failed": totals["failed"],
        "retrans": (body.get("summary") or {}).get("measured", {}).get("retransmissions"),
        "p50": statistics.median(times) if times else float("nan"),
        "p95": percentile(times, 95) if times else float("nan"),
        "cpu_pct": 100 * cpu_s / max(totals["elapsed_s"], 1e-9),
        "reasons": body.get("reasons"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,200,500,1000")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--delay", type=int, default=100)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with embedded_stack(SIPFLOW_DELAYER_MAX_CALLS_PER_S="1000000") as (stack, http):
        print(
            f"{'rate':>6} {'mode':>8} {'ok/s':>8} {'failed':>7} {'retrans':>8} {'p50 ms':>8} "
            f"{'p95 ms':>8} {'shift':>7} {'delayer CPU':>11}  verdict"
        )
        for rate in (int(x) for x in args.rates.split(",")):
            clean = session(stack.data_dir, http, rate, args.seconds, None)
            delayed = session(stack.data_dir, http, rate, args.seconds, args.delay)
            for mode, m in (("clean", clean), (f"+{args.delay}ms", delayed)):
                shift = m["p50"] - clean["p50"] if mode != "clean" else 0.0
                print(
                    f"{rate:>6} {mode:>8} {m['ok_per_s']:>8.1f} {m['failed']:>7.0f} "
                    f"{m['retrans']!s:>8} {m['p50']:>8.1f} {m['p95']:>8.1f} {shift:>7.1f} "
                    f"{m['cpu_pct']:>10.0f}%  {m['verdict']}",
                    flush=True,
                )
            print(f"       (expected shift: {2 * args.delay} ms, two delayed hops)", flush=True)
            time.sleep(1)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
