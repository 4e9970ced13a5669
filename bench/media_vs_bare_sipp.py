"""Media on: sipflow's calls/s against bare SIPp running the same media scenario at the same rate,
in one run, and the media cost per call.

1. A sipflow session with media (direct calls caller -> callee, G.711 both ways, each runner's
   RTP receiver analysing every stream: loss, jitter, E-model; `--mos pesq` adds PESQ).
2. The same session with `analyse: false` (SIPp streams, nobody analyses).
3. Bare SIPp: the very scenario files, injection file and reference audio session 1's runners
   ran, with the same SIPp command lines, in a namespace of the same layout (callee .10, caller
   .100), no agent, no MQTT, no RTP receiver.
Achieved rate = successful calls / elapsed, from SIPp's own stat files. CPU: the agents' (with
their SIPp children, read from /proc while they run) and bare SIPp's (rusage of children).
Media cost per call = (agents' CPU with analysis - without) / calls.

    .venv/bin/python -m bench.media_vs_bare_sipp [--rate 20 --seconds 10 --hold-ms 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import embedded_stack, stat_totals, wait_final
from bench.rate_vs_bare_sipp import bare_layout

TICK = os.sysconf("SC_CLK_TCK")


def spec(rate: float, calls: int, hold_ms: int, analyse: bool, mos: str) -> dict[str, Any]:
    media = {"codec": "PCMU", "analyse": analyse, "mos": mos}
    return {
        "name": f"bench-media-{'on' if analyse else 'off'}",
        "roles": {
            "callees": {"agents": 1, "media": dict(media)},
            "callers": {
                "agents": 1,
                "rate": rate,
                "max_calls": calls,
                "hold_ms": hold_ms,
                "media": dict(media),
            },
        },
        "thresholds": ["success_rate >= 0"],
    }


class AgentCpu(threading.Thread):
    """Polls the CPU of the session's agents and their children (SIPp) while they run."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.done = run_dir, threading.Event()
        self.cpu_s: dict[str, float] = {}
        self.injections: dict[str, bytes] = {}  # the agent removes it when SIPp is done
        self.seen: dict[tuple[str, int], float] = {}

    def run(self) -> None:
        while not self.done.is_set():
            for inj in self.run_dir.glob("*/main-injection.csv"):
                if inj.parent.name not in self.injections:
                    with contextlib.suppress(OSError):
                        self.injections[inj.parent.name] = inj.read_bytes()
            for pid_file in self.run_dir.glob("*/agent.pid"):
                try:
                    pid = int(pid_file.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    continue
                # The agent's own CPU and its children's (SIPp), each read while it lives: a
                # child's CPU reaches the agent's cutime only when reaped, maybe after our
                # last look.
                for proc in [pid, *_children(pid)]:
                    ticks = _ticks(proc)
                    if ticks is not None:
                        self.seen[(pid_file.parent.name, proc)] = ticks / TICK
                by_runner: dict[str, float] = {}
                for (runner, _proc), cpu in self.seen.items():
                    by_runner[runner] = by_runner.get(runner, 0.0) + cpu
                self.cpu_s = by_runner
            time.sleep(0.2)


def _ticks(pid: int) -> int | None:
    """utime + stime of a process (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def run_session(stack: Any, http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post("/v1/sessions", json=body)
    r.raise_for_status()
    sid = r.json()["id"]
    cpu = AgentCpu(stack.data_dir / "runs" / sid)
    cpu.start()
    final = wait_final(http, sid, timeout=900)
    cpu.done.set()
    cpu.join()
    (stat,) = (stack.data_dir / "runs" / sid / "caller-0").glob("main-stat.csv")
    return {
        "sid": sid,
        "body": final,
        "totals": stat_totals(stat),
        "cpu": dict(cpu.cpu_s),
        "injections": cpu.injections,
    }


def sipp_line(agent_log: Path, scenario: str) -> list[str]:
    """The argv the agent started SIPp with for its main scenario."""
    for line in agent_log.read_text().splitlines():
        if "starting sipp" in line and f"/{scenario} " in line:
            return shlex.split(line.split("starting ", 1)[1])
    raise RuntimeError(f"no SIPp command for {scenario} in {agent_log}")


def bare_rerun(run_dir: Path, injections: dict[str, bytes], mode: str) -> dict[str, Any]:
    """Session run_dir's SIPp commands again, bare, in a fresh namespace of the same layout."""
    with tempfile.TemporaryDirectory(prefix="bare-media-") as tmp, bare_layout(mode) as layout:
        run_in, uas_ip, _uac_ip = layout
        new_prefix = uas_ip.rsplit(".", 1)[0] + "."
        work = Path(tmp)
        argvs = {}
        for runner, scenario in (("callee-0", "answer.xml"), ("caller-0", "call.xml")):
            src = run_dir / runner
            dst = work / runner
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("spool", "*.csv", "*.log"))
            if runner in injections:
                (dst / "main-injection.csv").write_bytes(injections[runner])
            argv = sipp_line(src / "agent.log", scenario)
            old_prefix = re.search(r"-i (\d+\.\d+\.\d+\.)", " ".join(argv))
            assert old_prefix is not None
            text = " ".join(shlex.quote(a) for a in argv)
            text = text.replace(str(src), str(dst)).replace(old_prefix.group(1), new_prefix)
            argvs[runner] = shlex.split(text)
            xml = dst / scenario
            xml.write_text(xml.read_text().replace(str(src), str(dst)))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        uas = subprocess.Popen(
            [*run_in, *argvs["callee-0"]], cwd=work / "callee-0",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            res = subprocess.run(
                [*run_in, *argvs["caller-0"]], cwd=work / "caller-0",
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900, check=False,
            )  # fmt: skip
        finally:
            uas.terminate()
            try:
                uas.wait(10)
            except subprocess.TimeoutExpired:
                uas.kill()
                uas.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        stats = list((work / "caller-0").glob("main-stat.csv"))
        if not stats:
            raise RuntimeError(f"bare SIPp: {argvs['caller-0']}: {res.stderr.decode()[-2000:]}")
        return {"totals": stat_totals(stats[0]), "cpu_s": cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--hold-ms", type=int, default=2000)
    ap.add_argument("--mos", default="emodel", choices=["emodel", "pesq"])
    ap.add_argument("--local-network", default="netns", choices=["netns", "loopback"])
    args = ap.parse_args()
    calls = int(args.rate * args.seconds)
    with embedded_stack(SIPFLOW_LOCAL_NETWORK=args.local_network) as (stack, http):
        on = run_session(stack, http, spec(args.rate, calls, args.hold_ms, True, args.mos))
        off = run_session(stack, http, spec(args.rate, calls, args.hold_ms, False, args.mos))
        bare = bare_rerun(stack.data_dir / "runs" / on["sid"], on["injections"], args.local_network)
    print(
        f"target: {args.rate:g} calls/s, {calls} calls, hold {args.hold_ms} ms, G.711 both ways, "
        f"mos {args.mos}, {args.local_network}; load {os.getloadavg()[0]:.1f}"
    )
    rates = {}
    for name, t in (
        ("sipflow, media analysed", on["totals"]),
        ("sipflow, analyse: false", off["totals"]),
        ("bare SIPp, same scenario", bare["totals"]),
    ):
        rates[name] = t["successful"] / t["elapsed_s"]
        print(
            f"{name:26s} ok {t['successful']:.0f}/{t['created']:.0f}  failed {t['failed']:.0f}  "
            f"{rates[name]:.2f} successful calls/s"
        )
    m = on["body"]["summary"]["measured"]
    print(
        f"media measured: media_calls {m.get('media_calls')}  rtp_loss_pct "
        f"{m.get('rtp_loss_pct')}  mos_p5 {m.get('mos_p5')}  pesq_median {m.get('pesq_median')}"
    )
    ratio = rates["sipflow, media analysed"] / rates["bare SIPp, same scenario"]
    print(f"successful-calls/s ratio sipflow (media analysed) / bare SIPp: {ratio:.3f}")
    cpu_on, cpu_off = sum(on["cpu"].values()), sum(off["cpu"].values())
    print(
        f"CPU: agents+SIPp with analysis {cpu_on:.2f} s, without {cpu_off:.2f} s, "
        f"bare SIPp {bare['cpu_s']:.2f} s"
    )
    print(
        f"media analysis cost per call (both directions): "
        f"{1000 * (cpu_on - cpu_off) / calls:.2f} ms CPU; "
        f"sipflow's whole per-call overhead over bare SIPp: "
        f"{1000 * (cpu_on - bare['cpu_s']) / calls:.2f} ms CPU"
    )


if __name__ == "__main__":
    main()
