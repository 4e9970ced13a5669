"""Each built-in flow (sipflow/flows.py) run directly, SIPp caller against SIPp callee on
loopback (no proxy, no stack): calls, failed calls and each caller step's mean time, from the same
-trace_counts and rtd pipeline the runners use.

    python -m bench.flow_steps [CALLS] [RATE]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from entrypoints.stack import free_port
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from runners.sipp_stats import parse_rtt_text
from sipflow.flows import FLOWS, default_params
from sipflow.flows import render as render_flow

# Short parameters, so a run takes seconds.
SHORT: dict[str, dict[str, Any]] = {
    "ring_no_answer": {"cancel_after_s": 0.2},
    "early_media": {"early_media_s": 0.1},
    "hold_resume": {"hold_s": 0.1},
    "session_timer": {"session_expires_s": 2},
    "options_keepalive": {"interval_s": 0.1},
}
IP = "127.0.0.1"


def run(name: str, calls: int, rate: float, work: Path) -> str:
    if FLOWS[name].party is not None:  # a transfer: three parties and a registrar proxy
        return f"{name:18s} (three parties through a registrar: python -m bench.transfer_flows)"
    params = default_params(name).model_copy(update=SHORT.get(name, {}))
    caller = work / "caller.xml"
    caller.write_text(render_flow(params, "caller"))
    uas_port = free_port()
    target = f"{IP}:{uas_port}"
    (work / "inj.csv").write_text(f"SEQUENTIAL\nalice;{IP};;bob;{target};{IP}:0;0\n")
    uas = None
    if FLOWS[name].callee is not None:
        callee = work / "callee.xml"
        callee.write_text(render_flow(params, "callee"))
        uas = subprocess.Popen(
            ["sipp", "-sf", str(callee), "-i", IP, "-p", str(uas_port), "-ci", IP,
             "-cp", str(free_port()), "-nostdin"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
    else:  # a flow without a callee side needs a target that answers OPTIONS (a proxy)
        return f"{name:18s} (needs a target answering OPTIONS: skipped)"
    t0 = time.perf_counter()
    uac = subprocess.Popen(
        ["sipp", target, "-sf", str(caller), "-inf", str(work / "inj.csv"), "-i", IP,
         "-p", str(free_port()), "-ci", IP, "-cp", str(free_port()), "-m", str(calls),
         "-r", f"{rate:g}", "-d", "0", "-nostdin", "-trace_counts", "-trace_rtt",
         "-rtt_freq", "1", "-recv_timeout", "10000"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    code = uac.wait(600)
    wall = time.perf_counter() - t0
    if uas is not None:
        uas.send_signal(signal.SIGUSR1)
        try:
            uas.wait(5)
        except subprocess.TimeoutExpired:
            uas.kill()
    counts = parse_counts(Path(counts_file(str(caller), uac.pid)).read_text())
    results = step_results(steps_of(caller.read_text()), counts)
    rtt = parse_rtt_text(next(work.glob(f"caller_{uac.pid}_rtt.csv")).read_text())
    parts = []
    for r in results:
        times = [s.response_ms for s in rtt if s.rtd == r.step]
        mean = sum(times) / len(times) if times else float("nan")
        parts.append(f"{r.step} {r.passed}/{r.failed} {mean:.1f}ms")
    return f"{name:18s} exit {code} {wall:6.2f}s  " + "  ".join(parts)


def main(calls: int = 50, rate: float = 25) -> None:
    print(f"{calls} calls at {rate:g}/s per flow; per step: passed/failed mean-time")
    for name in FLOWS:
        with tempfile.TemporaryDirectory() as d:
            print(run(name, calls, rate, Path(d)), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 50, float(args[1]) if len(args) > 1 else 25)
