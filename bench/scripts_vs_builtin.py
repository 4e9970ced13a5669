"""A call script against the built-in scenario it stands for, side by side in one run: SIPp caller
against SIPp callee on loopback (no proxy, no stack), the same calls at the same rate, runs
alternated. Per pair: successful calls, wall time, the caller SIPp's CPU seconds, and the ratio
script / built-in of calls per second and of CPU per call.

    python -m bench.scripts_vs_builtin [CALLS] [RATE] [ROUNDS]

Pairs: the built-in `call` (hold 1 s) vs `call, expect 200, wait 1s, hangup`; the `hold_resume`
flow vs `call, expect 200, hold, wait 200ms, resume, hangup` (the callees' side for a holding
script, sipflow/held_callee.py, against the flow's callee).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from bench.common import stat_totals
from entrypoints.stack import free_port
from sipflow.call_script import CallScript, compile_script, quiet_ms
from sipflow.flows import default_params
from sipflow.flows import render as render_flow
from sipflow.held_callee import held_callee

IP = "127.0.0.1"
SCENARIOS = Path(__file__).resolve().parent.parent / "runners" / "scenarios"
SCRIPT = TypeAdapter(CallScript)


@dataclass(frozen=True)
class Side:
    caller_xml: str
    callee_xml: str
    hold_ms: int  # SIPp -d: the built-in call's pause


@dataclass(frozen=True)
class Result:
    ok: int
    failed: int
    wall_s: float
    cpu_s: float


def _pairs() -> dict[str, tuple[Side, Side]]:
    answer = (SCENARIOS / "answer.xml").read_text()
    plain = SCRIPT.validate_python(["call", "expect 200", "wait 1s", "hangup"])
    hold = SCRIPT.validate_python(["call", "expect 200", "hold", "wait 200ms", "resume", "hangup"])
    flow = default_params("hold_resume").model_copy(update={"hold_s": 0.2})
    return {
        "call": (
            Side((SCENARIOS / "call.xml").read_text(), answer, 1000),
            Side(compile_script(plain), answer, 0),
        ),
        "hold/resume": (
            Side(render_flow(flow, "caller"), render_flow(flow, "callee"), 0),
            Side(compile_script(hold), held_callee(quiet_ms(hold)), 0),
        ),
    }


def run(side: Side, calls: int, rate: float, work: Path) -> Result:
    caller, callee = work / "caller.xml", work / "callee.xml"
    caller.write_text(side.caller_xml)
    callee.write_text(side.callee_xml)
    uas_port = free_port()
    target = f"{IP}:{uas_port}"
    (work / "inj.csv").write_text(f"SEQUENTIAL\nalice;{IP};;bob;{target};{IP}:0;0\n")
    uas = subprocess.Popen(
        ["sipp", "-sf", str(callee), "-i", IP, "-p", str(uas_port), "-ci", IP,
         "-cp", str(free_port()), "-nostdin"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    t0 = time.perf_counter()
    uac = subprocess.Popen(
        ["sipp", target, "-sf", str(caller), "-inf", str(work / "inj.csv"), "-i", IP,
         "-p", str(free_port()), "-ci", IP, "-cp", str(free_port()), "-m", str(calls),
         "-r", f"{rate:g}", "-d", str(side.hold_ms), "-nostdin", "-trace_stat", "-fd", "1",
         "-recv_timeout", "10000"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, _, usage = os.wait4(uac.pid, 0)  # the caller's own CPU, not the callee's
    uac.returncode = 0
    wall = time.perf_counter() - t0
    uas.send_signal(signal.SIGUSR1)
    try:
        uas.wait(5)
    except subprocess.TimeoutExpired:
        uas.kill()
    totals = stat_totals(work / f"caller_{uac.pid}_.csv")
    return Result(
        int(totals["successful"]), int(totals["failed"]), wall, usage.ru_utime + usage.ru_stime
    )


def main(calls: int = 500, rate: float = 100, rounds: int = 3) -> None:
    print(f"{calls} calls at {rate:g}/s, {rounds} rounds alternated; medians")
    for name, (builtin, script) in _pairs().items():
        got: dict[str, list[Result]] = {"built-in": [], "script": []}
        for _ in range(rounds):
            for label, side in (("built-in", builtin), ("script", script)):
                with tempfile.TemporaryDirectory() as d:
                    got[label].append(run(side, calls, rate, Path(d)))
        med = {k: sorted(v, key=lambda r: r.ok / r.wall_s)[len(v) // 2] for k, v in got.items()}
        cpu = {k: sorted(r.cpu_s / max(r.ok, 1) for r in v)[len(v) // 2] for k, v in got.items()}
        for label, r in med.items():
            print(
                f"{name:12s} {label:8s} ok {r.ok}/{calls} failed {r.failed}  "
                f"{r.ok / r.wall_s:7.2f} ok/s  cpu {cpu[label] * 1000:.3f} ms/call",
                flush=True,
            )
        b, s = med["built-in"], med["script"]
        print(
            f"{name:12s} ratio script/built-in: ok/s {(s.ok / s.wall_s) / (b.ok / b.wall_s):.3f}"
            f"  cpu per call {cpu['script'] / cpu['built-in']:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    a = sys.argv[1:]
    main(
        int(a[0]) if a else 500,
        float(a[1]) if len(a) > 1 else 100,
        int(a[2]) if len(a) > 2 else 3,
    )
