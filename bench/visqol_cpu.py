"""ViSQOL (media mos: visqol) offline: CPU per clip and the score of the built-in audio rebuilt
from G.711 packets, clean and with lost frames (concealed as runners/media_pesq.py does), beside
PESQ. Prints one line per case.

    PYTHONPATH=. python bench/visqol_cpu.py [--seconds 4 10] [--loss 0 2 5 10]
"""

from __future__ import annotations

import argparse
import random
import time

from runners import media_pesq, media_visqol
from runners.media_audio import encode, speech_like


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, nargs="+", default=[4, 10])
    ap.add_argument("--loss", type=float, nargs="+", default=[0, 2, 5, 10])
    args = ap.parse_args()
    if not media_visqol.available():
        raise SystemExit("visqol-python[lattice] is not installed")
    ref = speech_like()
    data = encode(ref, "PCMU")
    t = time.process_time()
    media_visqol._api()  # the model load, once per runner process
    print(f"model load: {time.process_time() - t:.2f} s CPU")
    for seconds in args.seconds:
        n = seconds * 50
        packets = {k: data[(k * 160) % len(data) :][:160] for k in range(n)}
        for loss in args.loss:
            rnd = random.Random(7)
            got = {k: v for k, v in packets.items() if rnd.random() * 100 >= loss}
            t = time.process_time()
            v = media_visqol.score(got, n - 1, ref, "PCMU")
            cpu = time.process_time() - t
            p = media_pesq.score(got, n - 1, ref, "PCMU")
            print(
                f"{seconds:>3} s clip, {loss:>4g} % lost: ViSQOL {v}  PESQ {p}"
                f"  ViSQOL CPU {cpu:.2f} s"
            )


if __name__ == "__main__":
    main()
