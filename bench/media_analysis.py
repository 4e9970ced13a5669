"""CPU of the per-call RTP analysis inside a runner (runners/media_rtp.py + E-model), without a
network: packets of N concurrent 20 ms G.711 streams fed to the receiver's handler, 1 % lost.

    .venv/bin/python -m bench.media_analysis [calls] [seconds]

Prints CPU per packet, per analysed call direction of 10 s, and the packets/s one core
analyses (so, how many concurrent call directions at 50 packets/s one core keeps up with).
"""

from __future__ import annotations

import random
import struct
import sys
import time

from runners.media_emodel import mos_cqe, r_factor
from runners.media_rtp import RtpReceiver


def main(calls: int = 200, seconds: int = 10) -> None:
    rx = RtpReceiver("127.0.0.1", 0)
    rng = random.Random(7)
    packets = []
    for n in range(seconds * 50):
        for c in range(calls):
            if rng.random() < 0.01:
                continue
            data = struct.pack("!BBHII", 0x80, 0, n, n * 160, 0xCA110000 + c) + b"\xff" * 160
            packets.append((data, f"10.0.0.{c % 250}:6000", 100.0 + n * 0.02))
    t0 = time.process_time()
    for data, src, at in packets:
        rx.handle(data, src, at)
    for s in rx.streams.values():
        mos_cqe(r_factor("PCMU", s.loss_pct, s.jitter_ms))
    cpu = time.process_time() - t0
    rx.sock.close()
    per_packet_us = 1e6 * cpu / len(packets)
    print(f"streams {len(rx.streams)}, packets {len(packets)}, CPU {cpu:.3f} s")
    print(f"CPU per packet: {per_packet_us:.2f} us")
    print(f"CPU per call direction of 10 s (500 packets): {per_packet_us * 500 / 1000:.2f} ms")
    print(f"packets/s per core: {1e6 / per_packet_us:,.0f}")
    print(f"concurrent call directions per core at 50 pps: {1e6 / per_packet_us / 50:,.0f}")
    print("(the receiver's recvfrom is not included: a syscall per packet, a few us more)")
    pesq_cpu()


def pesq_cpu(seconds: int = 10, runs: int = 5) -> None:
    """CPU of one PESQ score of a 10 s direction (5 % of its frames lost), if pesq is installed."""
    from runners import media_pesq
    from runners.media_audio import encode, speech_like

    if not media_pesq.available():
        print("PESQ: the pesq package is not installed (pip install -e '.[media]')")
        return
    ref = speech_like()
    data = encode(ref, "PCMU")
    n = seconds * 50
    packets = {k: data[(k * 160) % len(data) :][:160] for k in range(n) if k % 20 != 7}
    t0 = time.process_time()
    for _ in range(runs):
        value = media_pesq.score(packets, n - 1, ref, "PCMU")
    cpu = (time.process_time() - t0) / runs
    print(f"PESQ of a {seconds} s direction (5 % lost): {value}, CPU {1000 * cpu:.0f} ms")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
