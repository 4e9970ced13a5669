"""What the metrics cost: the API's database gauges at scrape time over N stored sessions, and
the ingest's per-interval counting (sipflow.metrics.count_stored).

    .venv/bin/python -m bench.metrics_scrape [--sessions 10000 100000] [--database-url URL]

Without --database-url: a SQLite file in a temp dir (PostgreSQL: an empty database you own).
Prints the scrape's p50/p95 (ms) per table size, and the counting cost per interval (µs).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import insert

from bench.common import percentile
from sipflow.db import get_engine, migrate
from sipflow.messages import Counters, StatsMessage
from sipflow.metrics import count_stored
from sipflow.metrics_db import DatabaseCollector
from sipflow.models import RunnerRow, SessionRow, utcnow

STATUSES = [("completed", "pass")] * 8 + [("completed", "fail"), ("cancelled", "fail")]
TENANTS = [f"tenant-{i}" for i in range(10)]
SCRAPES = 20


def fill(url: str, total: int, have: int) -> None:
    """Sessions up to `total` (1 in 1,000 running with 4 active runners)."""
    engine = get_engine(url)
    with engine.begin() as conn:
        for start in range(have, total, 5000):
            sessions: list[dict[str, Any]] = []
            runners: list[dict[str, Any]] = []
            for i in range(start, min(total, start + 5000)):
                sid = uuid.uuid4().hex[:12]
                status, verdict = ("running", None) if i % 1000 == 0 else STATUSES[i % 10]
                sessions.append(
                    {"id": sid, "tenant": TENANTS[i % 10], "name": "bench", "status": status,
                     "verdict": verdict, "spec": {}, "created_at": utcnow()}
                )  # fmt: skip
                if status == "running":
                    runners += [
                        {"session_id": sid, "runner_id": f"caller-{n}", "role": "caller",
                         "state": "running"}
                        for n in range(4)
                    ]  # fmt: skip
            conn.execute(insert(SessionRow), sessions)
            if runners:
                conn.execute(insert(RunnerRow), runners)


def scrape_ms(url: str) -> list[float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(url))
    out = []
    for _ in range(SCRAPES):
        t0 = time.perf_counter()
        generate_latest(registry)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def counting_us(n: int = 20000) -> float:
    c = Counters(calls_created=10, successful_calls=9, failed_calls=1)
    msgs = [
        StatsMessage(session_id="s", runner_id="caller-0", role="caller", seq=i + 1,
                     time=time.time(), periodic=c, cumulative=c, histogram=[])
        for i in range(n)
    ]  # fmt: skip
    t0 = time.perf_counter()
    count_stored(msgs)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--database-url")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        have = 0
        for total in sorted(args.sessions):
            fill(url, total, have)
            have = total
            ms = scrape_ms(url)
            print(
                f"API /metrics database gauges, {total} sessions ({url.split(':')[0]}): "
                f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms"
            )
    print(f"ingest counting: {counting_us():.2f} µs per stored interval")


if __name__ == "__main__":
    main()
