"""sipflow at R calls/s for D seconds against bare SIPp (built-in uac/uas) at the same rate, in
the same run. Achieved rate = calls created / elapsed time, both read from SIPp's own stat file.

    .venv/bin/python -m bench.rate_vs_bare_sipp [--rate 1000 --seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from bench.common import embedded_stack, stat_totals, wait_final

BUFF = "4194304"


def bare_sipp(rate: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bare-sipp-") as tmp:
        work = Path(tmp)
        uas = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", "127.0.9.1", "-p", "5060", "-nostdin", "-buff_size", BUFF],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            stat = work / "uac-stat.csv"
            subprocess.run(
                ["sipp", "127.0.9.1:5060", "-sn", "uac", "-i", "127.0.9.2", "-p", "5060",
                 "-nostdin", "-buff_size", BUFF, "-r", str(rate), "-m", str(calls),
                 "-trace_stat", "-stf", str(stat), "-fd", "1", "-recv_timeout", "32000"],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                check=False,
            )  # fmt: skip
            return stat_totals(stat)
        finally:
            uas.kill()
            uas.wait()


def sipflow_session(rate: int, calls: int) -> tuple[dict[str, float], dict[str, object]]:
    spec = {
        "name": "bench-rate",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": rate, "max_calls": calls}},
        "thresholds": ["failed_calls == 0"],
    }
    with embedded_stack() as (stack, http):
        r = http.post("/v1/sessions", json=spec)
        r.raise_for_status()
        sid = r.json()["id"]
        body = wait_final(http, sid, timeout=900)
        (stat,) = (stack.data_dir / "runs" / sid / "caller-0").rglob("main-stat.csv")
        return stat_totals(stat), body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    calls = args.rate * args.seconds
    bare = bare_sipp(args.rate, calls)
    flow, body = sipflow_session(args.rate, calls)
    measured = body["summary"]["measured"]  # type: ignore[index]
    rate_bare = bare["created"] / bare["elapsed_s"]
    rate_flow = flow["created"] / flow["elapsed_s"]
    print(f"target: {args.rate} calls/s for {args.seconds} s ({calls} calls)")
    print(
        f"bare SIPp : created {bare['created']:.0f}  ok {bare['successful']:.0f}  "
        f"failed {bare['failed']:.0f}  achieved {rate_bare:.1f} calls/s"
    )
    print(
        f"sipflow   : created {flow['created']:.0f}  ok {flow['successful']:.0f}  "
        f"failed {flow['failed']:.0f}  achieved {rate_flow:.1f} calls/s  "
        f"verdict {body['verdict']}  stored successful {measured['successful_calls']:.0f}"
    )
    print(f"achieved-rate ratio sipflow/bare: {rate_flow / rate_bare:.3f}")


if __name__ == "__main__":
    main()
