"""How closely the achieved rate follows a load profile's ramp, per stage.

    .venv/bin/python -m bench.ramp_follow [--peak 1000] [--over 20] [--hold 10] [--agents 2]

Runs one session (callers calling callees directly, on the embedded stack) with a ramp from 10%
of the peak to the peak over `over` seconds, then a hold; prints, per stage after settling (2 s
into each), the planned and achieved calls and their error, at the lag (0-2 s) that fits best.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import embedded_stack, wait_final


def spec(peak: float, over: float, hold: float, agents: int) -> dict[str, Any]:
    return {
        "name": f"ramp to {peak:g}",
        "roles": {
            "callees": {"agents": agents, "scenario": "answer"},
            "callers": {
                "agents": agents,
                "scenario": "call",
                "profile": {
                    "shape": "ramp",
                    "start": peak / 10,
                    "to": peak,
                    "over": over,
                    "hold": hold,
                },
            },
        },
        "thresholds": ["total_calls >= 1"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peak", type=float, default=1000)
    ap.add_argument("--over", type=float, default=20)
    ap.add_argument("--hold", type=float, default=10)
    ap.add_argument("--agents", type=int, default=2)
    a = ap.parse_args()
    with embedded_stack() as (_stack, http):
        sid = http.post("/v1/sessions", json=spec(a.peak, a.over, a.hold, a.agents)).json()["id"]
        plan = http.get(f"/v1/sessions/{sid}").json()["planned_rate"]
        body = wait_final(http, sid, timeout=a.over + a.hold + 300)
        merged = http.get(f"/v1/sessions/{sid}/metrics").json()["merged"]["caller"]
    series = [p["calls_created"] for p in merged]
    created = series[next(i for i, n in enumerate(series) if n > 0) :]
    total = int(a.over + a.hold)
    want = [next(p["rate"] for p in reversed(plan) if p["at_s"] <= t) for t in range(total)]
    stages = {
        "ramp": range(2, int(a.over)),
        "hold": range(int(a.over) + 2, total - 1),
    }

    def off(lag: int) -> float:
        return sum(abs(created[t + lag] - want[t]) for t in range(total) if t + lag < len(created))

    lag = min((0, 1, 2), key=off)
    m = body["summary"]["measured"]
    print(f"peak {a.peak:g}/s over {a.over:g} s + hold {a.hold:g} s, {a.agents} caller agents")
    print(f"verdict {body['verdict']}; successful {m['successful_calls']:.0f}, failed "
          f"{m['failed_calls']:.0f}; best-fitting lag {lag} s")  # fmt: skip
    for name, seconds in stages.items():
        got = sum(created[t + lag] for t in seconds if t + lag < len(created))
        planned = sum(want[t] for t in seconds)
        print(f"  {name}: planned {planned:.0f} calls, achieved {got}, error "
              f"{100 * (got - planned) / planned:+.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
