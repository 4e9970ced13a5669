"""DTMF (RFC 4733) under load: a SIPp caller/callee pair on loopback running the built-in
call/answer media variants with `dtmf` both ways, each end's RTP receiver detecting the events;
then the join of what each end played (SIPp's log) with what the other end detected.

    .venv/bin/python -m bench.dtmf_pairs [calls] [rate] [digits]

Prints calls, plays per direction, plays detected exactly, mismatches, event streams the
receivers saw, and the decoder's CPU per event packet (fed without a network).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runners.media_audio import reference_file
from runners.media_dtmf import DTMF_PT, play_ms, sent_events
from runners.media_rtp import RtpReceiver
from runners.media_session import media_variant
from runners.scenario_files import built_in_path
from sipflow.runner_config import DtmfConfig, MediaConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decoder_cpu_us(events: int = 20000) -> float:
    rx = RtpReceiver("127.0.0.1", 0)
    packets = []
    for n in range(events):
        ev = struct.pack("!BBH", n % 16, (0x80 if n % 8 == 7 else 0) | 10, 160 * (n % 8))
        data = struct.pack("!BBHII", 0x80, DTMF_PT, n, 1000 * (n // 8), 0x01020305) + ev
        packets.append(data)
    t0 = time.process_time()
    for data in packets:
        rx.handle(data, "10.0.0.1:7000", 1.0)
    cpu = time.process_time() - t0
    rx.sock.close()
    return 1e6 * cpu / events


def main(calls: int = 200, rate: float = 20, digits: str = "1234567890*#") -> None:
    pid = os.getpid()
    ips = {"caller": f"127.203.{pid % 200 + 1}.1", "callee": f"127.203.{pid % 200 + 1}.2"}
    sent_digits = {"caller": digits, "callee": digits[::-1]}
    tone = 60
    hold_ms = play_ms(digits, tone) + int(os.environ.get("DTMF_MARGIN_MS", "600"))
    with tempfile.TemporaryDirectory() as tmp:
        dirs, rx = {}, {}
        for role, builtin in (("caller", "call"), ("callee", "answer")):
            d = dirs[role] = Path(tmp) / role
            d.mkdir()
            media = MediaConfig(dtmf=DtmfConfig(digits=sent_digits[role], duration_ms=tone))
            audio = reference_file(d, "PCMU")
            (d / "s.xml").write_text(
                media_variant(built_in_path(builtin).read_text(), media, audio)
            )
            rx[role] = RtpReceiver(ips[role], media.rtp_port)
            rx[role].start()
        sip_port = free_port()
        common = ["-nostdin", "-trace_logs", "-log_file", "media.log", "-mp", "6000"]
        common += ["-trace_err", "-error_file", "errors.log"]
        common += ["-buff_size", "4194304", "-timeout", f"{int(calls / rate + 60)}s"]
        uas = subprocess.Popen(
            ["sipp", *common, "-sf", "s.xml", "-i", ips["callee"], "-p", str(sip_port),
             "-mi", ips["callee"], "-cp", str(free_port()), "-ci", ips["callee"]],
            cwd=dirs["callee"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        inj = dirs["caller"] / "inj.csv"
        row = f"alice;{ips['callee']};;bob;{ips['callee']}:{sip_port};{ips['caller']}:5070;0"
        inj.write_text("SEQUENTIAL\n" + "\n".join([row] * calls) + "\n")
        t0 = time.monotonic()
        try:
            uac = subprocess.run(
                ["sipp", *common, "-sf", "s.xml", "-inf", str(inj), "-i", ips["caller"],
                 "-p", "5070", "-mi", ips["caller"], "-cp", str(free_port()),
                 "-ci", ips["caller"], "-m", str(calls), "-r", str(rate), "-d", str(hold_ms),
                 f"{ips['callee']}:{sip_port}"],
                cwd=dirs["caller"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=calls / rate + 120, check=False,
            )  # fmt: skip
        finally:
            uas.terminate()
            uas.wait(timeout=10)
            for r in rx.values():
                r.stop()
        took = time.monotonic() - t0
        print(f"{calls} calls at {rate:g}/s, {len(digits)} digits of {tone} ms each way, "
              f"hold {hold_ms} ms (~{rate * hold_ms / 1000:.0f} concurrent): "
              f"SIPp exit {uac.returncode}, {took:.1f} s")  # fmt: skip
        for sender, receiver in (("caller", "callee"), ("callee", "caller")):
            plays = sent_events(dirs[sender] / "media.log")
            got = rx[receiver].dtmf
            src = f"{ips[sender]}:7000"
            exact = sum(
                1 for _, ssrc, d in plays if (src, ssrc) in got and got[src, ssrc].digits == d
            )
            bad = [
                (d, got[src, ssrc].digits, got[src, ssrc].packets, got[src, ssrc].ended)
                if (src, ssrc) in got else (d, None)
                for _, ssrc, d in plays
            ]  # fmt: skip
            bad = [b for b in bad if b[0] != b[1]][:6]
            if bad:
                print(f"  e.g. (sent, detected): {bad}")
                counts: dict[int, int] = {}
                for e in got.values():
                    counts[e.packets] = counts.get(e.packets, 0) + 1
                print(f"  packets per event stream: {dict(sorted(counts.items()))}")
                idx = [i for i, (_, ssrc, d) in enumerate(plays)
                       if (src, ssrc) not in got or got[src, ssrc].digits != d]  # fmt: skip
                print(f"  mismatched plays by index: first {idx[:5]}, last {idx[-3:]}")
            errors = dirs[sender] / "errors.log"
            text = errors.read_text(errors="replace") if errors.exists() else ""
            print(f"  {sender}'s SIPp: {text.count('sendto failed')} media sendto failures")
            streams = rx[receiver].streams.values()
            lost, expected = sum(a.lost for a in streams), sum(a.expected for a in streams)
            print(f"  {receiver}'s receiver: audio loss {100 * lost / max(1, expected):.2f} %")
            print(f"  {sender} -> {receiver}: {len(plays)} plays, {exact} detected exactly, "
                  f"{len(plays) - exact} mismatched, {len(got)} event streams seen")  # fmt: skip
    print(f"decoder CPU per event packet: {decoder_cpu_us():.2f} us")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]) if args else 200,
        float(args[1]) if len(args) > 1 else 20,
        args[2] if len(args) > 2 else "1234567890*#",
    )
