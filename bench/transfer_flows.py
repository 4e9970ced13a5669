"""The transfer flows (sipflow/transfer_flows.py) with bare SIPp through Kamailio
(tests/sut/kamailio-flows.cfg): transferee and target register, then the transferor runs CALLS
transfers at RATE; per party and step: passed/failed and the step's mean time (its rtd), from the
same -trace_counts and rtd pipeline the runners use. No stack: the SIP side alone.

    python -m bench.transfer_flows [CALLS] [RATE]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entrypoints.stack import free_port
from runners.scenario_steps import counts_file, parse_counts, step_results, steps_of
from runners.sipp_stats import parse_rtt_text
from sipflow.flows import FLOWS, default_params, render
from tests.sut.kamailio import kamailio

CFG = Path(__file__).resolve().parent.parent / "tests" / "sut" / "kamailio-flows.cfg"
REGISTER = Path(__file__).resolve().parent.parent / "runners" / "scenarios" / "register.xml"
IP = "127.0.0.1"


def _sipp(argv: list[str], work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sipp", *argv, "-nostdin", "-ci", IP, "-cp", str(free_port())],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _register(sut: str, user: str, port: int, work: Path) -> None:
    inj = work / f"reg-{user}.csv"
    auth = f"[authentication username={user} password=secret]"
    inj.write_text(f"SEQUENTIAL\n{user};{IP};{auth};;{IP};{IP}:{port};1\n")
    argv = [sut, "-sf", str(REGISTER), "-inf", str(inj), "-key", "expires", "300", "-m", "1"]
    proc = _sipp([*argv, "-i", IP, "-p", str(port), "-timeout", "10"], work)
    if proc.wait(20) != 0:
        raise RuntimeError(f"{user} did not register at {sut}")


def _steps(xml: Path, pid: int) -> str:
    counts = parse_counts(Path(counts_file(str(xml), pid)).read_text())
    found = list(xml.parent.glob(f"{xml.stem}_{pid}_rtt.csv"))
    rtt = parse_rtt_text(found[0].read_text()) if found else []
    parts = []
    for r in step_results(steps_of(xml.read_text()), counts):
        times = [s.response_ms for s in rtt if s.rtd == r.step]
        mean = f"{sum(times) / len(times):.1f}ms" if times else "-"
        parts.append(f"{r.step} {r.passed}/{r.failed} {mean}")
    return "  ".join(parts)


def run(name: str, calls: int, rate: float, work: Path) -> list[str]:
    params = default_params(name).model_copy(update={"transfer_to": "carol", "talk_s": 0.1})
    with kamailio(free_port(), work / "kamailio", config=CFG) as sut:
        ports = {"bob": free_port(), "carol": free_port()}
        for user, port in ports.items():
            _register(sut, user, port, work)
        sides = {"bob": render(params, "callee"), "carol": render(params, "party")}
        uas = {}
        for user, xml in sides.items():
            path = work / f"{user}.xml"
            path.write_text(xml)
            contact = f"{IP}:{ports[user]}"
            (work / f"{user}.csv").write_text(f"SEQUENTIAL\n{user};{IP};;;{IP};{contact};0\n")
            argv = ["-sf", str(path), "-inf", str(work / f"{user}.csv"), "-i", IP]
            uas[user] = (path, _sipp([*argv, "-p", str(ports[user]), "-trace_counts",
                                      "-trace_rtt", "-rtt_freq", "1"], work))  # fmt: skip
        alice = work / "alice.xml"
        alice.write_text(render(params, "caller"))
        alice_port = free_port()  # field5: the transferor's Contact (NOTIFYs come there)
        (work / "alice.csv").write_text(f"SEQUENTIAL\nalice;{IP};;bob;{IP};{IP}:{alice_port};0\n")
        t0 = time.perf_counter()
        uac = _sipp(
            [sut, "-sf", str(alice), "-inf", str(work / "alice.csv"), "-i", IP,
             "-p", str(alice_port), "-m", str(calls), "-r", f"{rate:g}", "-d", "0",
             "-trace_counts", "-trace_rtt", "-rtt_freq", "1", "-recv_timeout", "15000"],
            work,
        )  # fmt: skip
        code = uac.wait(600)
        wall = time.perf_counter() - t0
        time.sleep(0.5)  # the last BYE between bob and carol
        for _, proc in uas.values():
            proc.send_signal(signal.SIGUSR1)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        lines = [f"{name}: {calls} calls at {rate:g}/s, exit {code}, {wall:.2f} s"]
        lines.append(f"  transferor  {_steps(alice, uac.pid)}")
        for user, (path, proc) in uas.items():
            role = "transferee" if user == "bob" else "target    "
            lines.append(f"  {role}  {_steps(path, proc.pid)}")
        return lines


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    for name, flow in FLOWS.items():
        if flow.party is None:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for line in run(name, calls, rate, Path(tmp)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
