"""What runner-host security costs (docs/runner-hosts.md): the placement with slot reservations
(a database transaction: lock the pool's hosts, read free slots and reservations, insert the
reservations) against the spreading logic alone, on SQLite or PostgreSQL, and the payload codec
with a host's derived key against the stack key.

    .venv/bin/python -m bench.host_security [--database-url URL] [--sessions 200]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import ActivitySerializationContext

from activities.pools import PlaceOnPool, PoolActivities
from sipflow import runner_hosts, store
from sipflow.crypto import parse_keys
from sipflow.db import migrate, session_scope
from sipflow.payload_codec import EncryptionCodec
from sipflow.pool_placement import HostSlot, spread
from sipflow.runner_hosts import Heartbeat
from sipflow.settings import Settings


def placements(url: str, sessions: int, agents: int, hosts: int) -> tuple[float, float]:
    """(median s of one reserving placement, median s of `spread` alone) of `agents` agents
    over `hosts` hosts with room for every session."""
    migrate(url)
    settings = Settings(database_url=url, runner_host_stale_s=3600)  # type: ignore[call-arg]
    per_host = sessions * agents // hosts + agents
    with session_scope(url) as db:
        for i in range(hosts):
            row, _ = runner_hosts.add_host(db, "default", "bench")
            hb = Heartbeat(host_id=f"bh{i}", cores=2, max_agents=per_host, running_agents=0)
            runner_hosts.record_heartbeat(db, row, hb, "sipflow")
        spec = {"name": "b", "roles": {"callers": {"agents": agents, "rate": 1, "duration_s": 60}}}
        for n in range(sessions):
            store.create_session(db, f"bench{n}", "default", "b", spec, None)
    pools = PoolActivities(settings)
    ids = [f"caller-{i}" for i in range(agents)]
    timed = []
    for n in range(sessions):
        req = PlaceOnPool(session_id=f"bench{n}", tenant="default", pool="bench", runner_ids=ids)
        t0 = time.perf_counter()
        pools.place_on_pool(req)
        timed.append(time.perf_counter() - t0)
    slots = [HostSlot(host_id=f"h{i}", task_queue=f"q{i}", free=per_host) for i in range(hosts)]
    alone = []
    for _ in range(sessions):
        t0 = time.perf_counter()
        spread("bench", ids, slots)
        alone.append(time.perf_counter() - t0)
    return statistics.median(timed), statistics.median(alone)


def codec_times(size: int, repeat: int) -> dict[str, float]:
    """Median µs to encode+decode one payload of `size` bytes: stack key vs a host's key."""
    ring = parse_keys("k1:" + base64.b64encode(secrets.token_bytes(32)).decode())
    stack = EncryptionCodec(ring, stack_task_queue="sipflow")
    ctx = ActivitySerializationContext(
        namespace="default", activity_id="1", activity_type="start_runners",
        activity_task_queue="sipflow-host-bench", workflow_id="w", workflow_type="t",
        is_local=False,
    )  # fmt: skip
    payload = Payload(metadata={"encoding": b"json/plain"}, data=secrets.token_bytes(size))
    out = {}
    for name, codec in (("stack key", stack), ("host key", stack.with_context(ctx))):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            codec.decode_one(codec.encode_one(payload))
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--hosts", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        reserving, alone = placements(url, args.sessions, args.agents, args.hosts)
    print(
        f"placement of {args.agents} agents over {args.hosts} hosts, median of {args.sessions} "
        f"sessions ({url.split(':')[0]}): with reservations {reserving * 1e3:.2f} ms, "
        f"spread alone {alone * 1e3:.3f} ms"
    )
    for size in (1_000, 20_000):
        times = codec_times(size, 2000)
        print(
            f"codec encode+decode of {size} B: "
            + ", ".join(f"{k} {v:.1f} µs" for k, v in times.items())
        )


if __name__ == "__main__":
    main()
