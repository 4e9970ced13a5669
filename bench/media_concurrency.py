"""Concurrent media calls one runner pair carries and analyses: direct calls (caller -> callee,
local backend, no impairment), G.711 both ways, E-model on every call; for each level of
concurrency, the RTP loss the receivers measured (what SIPp's sending and the receivers' sockets
dropped on this host: the network adds none) and the calls without full audio.

    .venv/bin/python -m bench.media_concurrency [concurrent ...]     # default: 25 50 100 200
"""

from __future__ import annotations

import sys
import time

from bench.common import embedded_stack, wait_final

HOLD_MS = 4000


def spec(concurrent: int) -> dict[str, object]:
    rate = concurrent / (HOLD_MS / 1000)
    return {
        "name": f"media-{concurrent}",
        "roles": {
            "callees": {"agents": 1, "media": {"codec": "PCMU"}},
            "callers": {
                "agents": 1,
                "rate": rate,
                "max_calls": concurrent * 2,
                "hold_ms": HOLD_MS,
                "media": {"codec": "PCMU"},
            },
        },
        "thresholds": ["success_rate >= 0"],
    }


def main(levels: list[int]) -> None:
    with embedded_stack() as (_stack, http):
        print(
            "concurrent  calls  media_calls  rtp_loss_%  jitter_p95_ms  mos_p5  one_way  no_audio"
        )
        for n in levels:
            t0 = time.monotonic()
            r = http.post("/v1/sessions", json=spec(n))
            r.raise_for_status()
            body = wait_final(http, r.json()["id"], timeout=120 + n)
            m = body["measured"]
            print(
                f"{n:>10}  {m['successful_calls']:>5.0f}  {m.get('media_calls') or 0:>11.0f}"
                f"  {m.get('rtp_loss_pct') or 0:>10.3f}  {m.get('jitter_p95_ms') or 0:>13.2f}"
                f"  {m.get('mos_p5') or 0:>6.2f}  {m.get('one_way_audio_calls') or 0:>7.0f}"
                f"  {m.get('no_audio_calls') or 0:>8.0f}   ({time.monotonic() - t0:.0f} s)"
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [25, 50, 100, 200])
