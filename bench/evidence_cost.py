"""The session capture's cost (per-call evidence, sipflow/evidence.py): the same session at R
calls/s for D seconds with the capture off and on (SIPFLOW_EVIDENCE_CAPTURE), in one run, as a
ratio of successful calls/s (read from SIPp's own stat file), plus what the capture did: its
CPU seconds, SIP packets seen and kept, ring files dropped, the most it held on disk.

    .venv/bin/python -m bench.evidence_cost [--rate 2000 --seconds 10 --pairs 1]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from bench.common import embedded_stack, stat_totals, wait_final


def session(rate: int, calls: int, capture: bool) -> dict[str, Any]:
    spec = {
        "name": f"bench-evidence-{'on' if capture else 'off'}",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": rate, "max_calls": calls}},
        "thresholds": ["failed_calls == 0"],
    }
    env = {"SIPFLOW_EVIDENCE_CAPTURE": "true" if capture else "false"}
    with embedded_stack(**env) as (stack, http):
        r = http.post("/v1/sessions", json=spec)
        r.raise_for_status()
        sid = r.json()["id"]
        body = wait_final(http, sid, timeout=900)
        run = stack.data_dir / "runs" / sid
        (stat,) = (run / "caller-0").rglob("main-stat.csv")
        totals = stat_totals(stat)
        index = run / "evidence" / "index.json"
        kept: dict[str, Any] = json.loads(index.read_text()) if index.exists() else {}
        stats: dict[str, Any] = kept.get("capture", {})
        kept_calls: list[dict[str, Any]] = kept.get("calls", [])
        reasons = Counter(c["reason"] or c["outcome"] for c in kept_calls)
        return {
            "totals": totals,
            "verdict": body["verdict"],
            "reasons": body["reasons"],
            "capture": stats,
            "kept": len(kept_calls),
            "kept_by": dict(reasons),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=1)
    args = ap.parse_args()
    calls = args.rate * args.seconds
    print(f"target: {args.rate} calls/s for {args.seconds} s ({calls} calls), {args.pairs} pair(s)")
    ratios = []
    for i in range(args.pairs):
        off = session(args.rate, calls, capture=False)
        on = session(args.rate, calls, capture=True)
        rates = []
        for name, res in (("capture off", off), ("capture on ", on)):
            t = res["totals"]
            rate = t["successful"] / t["elapsed_s"]
            rates.append(rate)
            print(
                f"[{i + 1}] {name}: created {t['created']:.0f}  ok {t['successful']:.0f}  "
                f"failed {t['failed']:.0f}  {rate:.1f} ok calls/s  verdict {res['verdict']}"
                + (f" ({'; '.join(res['reasons'])})" if res["reasons"] else "")
            )
        c = on["capture"]
        print(
            f"[{i + 1}] capture: cpu {c.get('cpu_s')} s, frames seen {c.get('frames_seen')} "
            f"(kernel drops {c.get('kernel_drops')}), SIP "
            f"packets {c.get('sip_packets')}, kept in ring {c.get('packets_kept')}, files "
            f"dropped {c.get('files_dropped')}, held max {c.get('held_bytes_max')} B "
            f"(bound {c.get('max_bytes')}), calls kept as evidence {on['kept']} {on['kept_by']}"
        )
        ratios.append(rates[1] / rates[0])
        print(f"[{i + 1}] ok-calls/s ratio capture on/off: {ratios[-1]:.3f}")
    if len(ratios) > 1:
        print(f"ratios: {', '.join(f'{r:.3f}' for r in ratios)}")


if __name__ == "__main__":
    main()
