"""The time a capacity search needs to find a SUT's limit.

    .venv/bin/python -m bench.capacity_time [--limit 500] [--resolution 10]

Starts Kamailio limited to `limit` new INVITEs a second (tests/sut/kamailio-ratelimited.cfg with
its pipe set to the limit) on loopback, runs a capacity search from limit/8 doubling, and prints
each step, the answer and the wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import embedded_stack
from tests.runner_fixtures import free_port
from tests.sut.kamailio import kamailio

CONFIG = Path(__file__).resolve().parent.parent / "tests" / "sut" / "kamailio-ratelimited.cfg"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--resolution", type=float, default=10)
    ap.add_argument("--window", type=float, default=5)
    a = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sipflow-capacity-") as tmp:
        cfg = Path(tmp) / "ratelimited.cfg"
        cfg.write_text(CONFIG.read_text().replace("1:TAILDROP:60", f"1:TAILDROP:{a.limit}"))
        body = {
            "name": f"limit {a.limit}",
            "session": {
                "target": {
                    "host": "127.0.0.1",
                    "port": port,
                    "domain": "127.0.0.1",
                    "registrar": True,
                },
                "roles": {
                    "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
                    "callers": {"agents": 2, "accounts": [{"user": "alice"}]},
                },
                "thresholds": ["total_calls >= 1"],
            },
            "criteria": ["success_rate >= 99"],
            "start": a.limit / 8,
            "ceiling": a.limit * 4,
            "resolution_pct": a.resolution,
            "warmup": 2,
            "window": a.window,
            "settle": 1,
        }
        with kamailio(port, Path(tmp) / "kamailio", config=cfg), embedded_stack() as (_s, http):
            started = time.monotonic()
            search = http.post("/v1/capacity", json=body).json()
            while (d := http.get(f"/v1/capacity/{search['id']}").json())["status"] in (
                "pending",
                "running",
            ):
                time.sleep(1)
            took = time.monotonic() - started
    for s in d["result"]["steps"]:
        m = s["measured"]
        print(f"  step {s['index'] + 1}: {s['rate']:g}/s {'held' if s['held'] else 'broke'} "
              f"(success {m.get('success_rate') or 0:.2f} %)")  # fmt: skip
    print(f"limit {a.limit}/s: highest held {d['highest_held']}, broke at {d['lowest_broken']}, "
          f"stop {d['stop']}; {len(d['result']['steps'])} steps in {took:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
