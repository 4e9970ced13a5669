"""The NFQUEUE delayer: one process per impaired session, inside its network namespace, that
holds each queued packet for delay ± jitter and then lets it through (the kernel here has no
netem). nftables' `queue` rules on the namespace's input hook hand it the packets the runners
receive (SIP and RTP; not the metrics stream nor SIPp's control socket).

    ip netns exec NS python -m backends.delayer --queue 0:100:20 [--queue 1:50:0] \
        --netns NS --ready FILE

Each `--queue NUM:DELAY_MS:JITTER_MS` is one queue (the session's, or a role's). Only the packet's
metadata crosses to user space (no payload copy): the verdict is a plain accept. Jitter is
uniform in [delay - jitter, delay + jitter] per packet (netem's default), but packets keep their
order (see Held).

It exits on SIGTERM/SIGINT, and by itself once its namespace's name is gone (a sweep that removed
the namespace after the worker that started it died): a process left inside would keep the
namespace alive unseen. Without this process the queued packets are dropped (no `bypass`): a
session is never silently unimpaired.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Packets held at once per queue: 100 ms at 10,000 packets/s is 1,000.
QUEUE_MAXLEN = 65536
SOCKET_BUFFER = 8 * 1024 * 1024
NETNS_CHECK_S = 1.0


@dataclass(frozen=True)
class QueueSpec:
    num: int
    delay_ms: int
    jitter_ms: int

    @classmethod
    def parse(cls, text: str) -> QueueSpec:
        num, delay, jitter = (int(x) for x in text.split(":"))
        if not (0 <= num < 65536 and delay >= 0 and jitter >= 0):
            raise ValueError(f"bad queue {text!r}: NUM:DELAY_MS:JITTER_MS")
        return cls(num, delay, jitter)

    def arg(self) -> str:
        return f"{self.num}:{self.delay_ms}:{self.jitter_ms}"


@dataclass
class Held:
    """Packets waiting for their time, in arrival order. With jitter a packet is never let
    through before the one received ahead of it: reordering a dialog's ACK and BYE makes SIPp's
    scenarios fail calls a real network would carry (so at high packet rates the delay tends to
    delay + jitter, as netem's with a rate)."""

    spec: QueueSpec
    fifo: deque[tuple[float, Any]] = field(default_factory=deque)
    last_due: float = 0.0
    released: int = 0
    late_s: float = 0.0  # the most a packet was held past its time: the delayer falling behind

    def add(self, packet: Any) -> None:
        held_ms: float = self.spec.delay_ms
        if self.spec.jitter_ms:
            held_ms = max(0.0, held_ms + random.uniform(-self.spec.jitter_ms, self.spec.jitter_ms))
        self.last_due = max(time.monotonic() + held_ms / 1000, self.last_due)
        self.fifo.append((self.last_due, packet))

    def next_due(self) -> float | None:
        return self.fifo[0][0] if self.fifo else None

    def release(self, now: float) -> None:
        while self.fifo and self.fifo[0][0] <= now:
            due, packet = self.fifo.popleft()
            packet.accept()
            self.released += 1
            self.late_s = max(self.late_s, now - due)


def netns_gone(name: str | None) -> bool:
    return name is not None and not Path(f"/run/netns/{name}").exists()


def run(specs: list[QueueSpec], netns: str | None, ready: Path | None) -> None:
    from netfilterqueue import COPY_META, NetfilterQueue

    stopping = False

    def stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    queues: list[tuple[Any, Held]] = []
    for spec in specs:
        held = Held(spec)
        q = NetfilterQueue()
        hold: Callable[[Any], None] = held.add
        q.bind(spec.num, hold, max_len=QUEUE_MAXLEN, mode=COPY_META, sock_len=SOCKET_BUFFER)
        queues.append((q, held))
    fds = {q.get_fd(): q for q, _ in queues}
    if ready is not None:  # bound: the rules that feed the queues may be loaded now
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.rename(ready)
    next_check = time.monotonic() + NETNS_CHECK_S
    while not stopping:
        now = time.monotonic()
        dues = [d for _, h in queues if (d := h.next_due()) is not None]
        timeout = min([max(0.0, min(dues) - now)] if dues else [NETNS_CHECK_S])
        try:
            readable, _, _ = select.select(list(fds), [], [], min(timeout, NETNS_CHECK_S))
        except InterruptedError:
            continue
        for fd in readable:
            fds[fd].run(block=False)
        now = time.monotonic()
        for _, held in queues:
            held.release(now)
        if now >= next_check:
            next_check = now + NETNS_CHECK_S
            if netns_gone(netns):
                break
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for q, held in queues:  # what is held goes on at once: the session is over
        late = held.late_s
        held.release(float("inf"))
        q.unbind()
        print(
            f"delayer: queue {held.spec.num}: {held.released} packets, at most "
            f"{late * 1000:.1f} ms late; CPU {usage.ru_utime + usage.ru_stime:.2f} s",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m backends.delayer")
    ap.add_argument("--queue", action="append", type=QueueSpec.parse, required=True)
    ap.add_argument("--netns", help="exit once this namespace's name is gone")
    ap.add_argument("--ready", type=Path, help="written (our pid) once the queues are bound")
    ap.add_argument("--session", help="the session it delays for (seen in ps and by teardown)")
    args = ap.parse_args(argv)
    try:
        run(args.queue, args.netns, args.ready)
    except OSError as exc:
        print(f"delayer: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
