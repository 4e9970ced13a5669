"""Session namespaces made and removed in bulk: N at once (threads, as N sessions' provision
activities would), then all removed; prints the times and checks nothing is left (root).

    .venv/bin/python -m bench.netns_churn [--sessions 100] [--parallel 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from backends.netns import NamespaceNetworks, namespace, namespaces
from bench.common import percentile


def timed(fn: object, *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="netns-churn-") as tmp:
        nets = NamespaceNetworks(Path(tmp))
        sids = [f"churn{uuid.uuid4().hex[:7]}" for _ in range(args.sessions)]
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            t0 = time.perf_counter()
            made = list(pool.map(lambda s: timed(nets.provision, s, [10, 100]), sids))
            t_made = time.perf_counter() - t0
            present = sum(namespace(s) in namespaces() for s in sids)
            t0 = time.perf_counter()
            gone = list(pool.map(lambda s: timed(nets.teardown, s), sids))
            t_gone = time.perf_counter() - t0
        left = [s for s in sids if namespace(s) in namespaces()]
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        left += [s for s in sids if s in tables]
    print(f"{args.sessions} namespaces, {args.parallel} at a time: {present} present at once")
    print(
        f"provision: all in {t_made:.1f} s; each p50 {percentile(made, 50):.0f} ms "
        f"p95 {percentile(made, 95):.0f} ms (includes waiting for the machine-wide lock)"
    )
    print(
        f"teardown:  all in {t_gone:.1f} s; each p50 {percentile(gone, 50):.0f} ms "
        f"p95 {percentile(gone, 95):.0f} ms"
    )
    print(f"left behind: {len(left)}")


if __name__ == "__main__":
    main()
