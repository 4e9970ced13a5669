"""What the agent's on-disk spool costs per message: write (tmp + rename) and remove, for a
stats message of a realistic size, and replaying a full spool's keys and files.

    python -m bench.agent_spool [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from runners.spool import Spool

PAYLOAD = b"x" * 1600  # a StatsMessage with its histogram is ~1.2-1.8 kB


def main(n: int = 5000) -> None:
    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d) / "spool", n)
        t0 = time.perf_counter()
        for seq in range(n):
            spool.put(f"stats-{seq:09d}", "sipflow/sessions/s/runners/r/stats", PAYLOAD)
        put = time.perf_counter() - t0
        t0 = time.perf_counter()
        reopened = Spool(Path(d) / "spool", n)
        keys = reopened.sorted_keys()
        for k in keys:
            reopened.read(k)
        replay = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in keys:
            reopened.remove(k)
        remove = time.perf_counter() - t0
    print(f"{n} messages of {len(PAYLOAD)} B")
    print(f"put     {put / n * 1e6:8.1f} us/message")
    print(f"remove  {remove / n * 1e6:8.1f} us/message")
    print(f"reopen + read all {replay * 1e3:8.1f} ms ({replay / n * 1e6:.1f} us/message)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
