"""MQTT publish -> stored lag of the worker's shared ingest (activities/ingest_hub.py).

Starts a mosquitto configured as the embedded stack's (persistence saved every
SIPFLOW_BROKER_AUTOSAVE_S, or --autosave-s; max_inflight_messages 100; anonymous here, so that
the simulated runners need no logins), a fresh SQLite database (or --database-url), and one
IngestHub in this process. Publisher processes simulate `--runners` runners sending one stats
interval per second each (QoS 1, as agents do), spread over the second, for `--seconds`. The
lag of a message is the time its batch was committed minus the time in the message (set when
it was published). Prints the p50/p95/p99/max lag, messages published, stored, and lost
(published but never stored).

    .venv/bin/python -m bench.ingest_lag [--runners 1000] [--seconds 30] [--autosave-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from temporalio.client import Client

from activities.ingest_hub import IngestHub, _Batch
from entrypoints.stack import free_port, mosquitto_binary, persistence_lines, wait_for_port
from sipflow import store
from sipflow.db import migrate, session_scope
from sipflow.messages import Counters, StatsMessage, runner_topic
from sipflow.settings import Settings

RUNNERS_PER_SESSION = 100


def sessions_of(runners: int) -> list[str]:
    return [
        f"lag{i:04d}" for i in range((runners + RUNNERS_PER_SESSION - 1) // RUNNERS_PER_SESSION)
    ]


def publisher(port: int, runner_ids: list[tuple[str, str]], seconds: int, out: str) -> None:
    """One process: these runners, one interval each per second, spread over the second."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"lagpub-{os.getpid()}")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    zero = Counters()
    infos = []
    start = time.time() + 1
    n = len(runner_ids)
    for second in range(seconds):
        for i, (sid, rid) in enumerate(runner_ids):
            due = start + second + i / n
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            msg = StatsMessage(
                session_id=sid,
                runner_id=rid,
                role="caller",
                seq=second + 1,
                time=time.time(),
                periodic=zero,
                cumulative=zero,
                histogram=[],
            )
            payload = msg.model_dump_json(by_alias=True)
            infos.append(client.publish(runner_topic(sid, rid, "stats"), payload, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=60)
    Path(out).write_text(str(sum(1 for i in infos if i.is_published())))
    client.disconnect()
    client.loop_stop()


class TimedHub(IngestHub):
    """Records, for every stored stats message, commit time - publish time."""

    lags: list[float]

    def _commit(self, batch: _Batch) -> None:
        super()._commit(batch)
        now = time.time()
        self.lags.extend(now - m.time for m in batch.stats)


async def run(
    runners: int, seconds: int, processes: int, database_url: str | None, autosave_s: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="sipflow-lag-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            + (persistence_lines(Path(tmp), autosave_s) if autosave_s >= 0 else "")
            + "max_queued_messages 1000000\nmax_inflight_messages 100\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        broker = subprocess.Popen(
            [mosquitto_binary(), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, 20, broker)
            settings = Settings(
                data_dir=Path(tmp), database_url=database_url, mqtt_port=port, control_keepalive_s=0
            )
            url = settings.resolved_database_url
            migrate(url)
            sids = sessions_of(runners)
            with session_scope(url) as db:
                for sid in sids:
                    store.create_session(db, sid, "bench", sid, {}, None)
            # Signals are sent for state/done messages only; stats need no Temporal.
            hub = TimedHub(settings, Client.__new__(Client))
            hub.lags = []
            await hub.start()
            await asyncio.wait_for(hub.subscribed.wait(), 10)
            ids = [(sids[i // RUNNERS_PER_SESSION], f"caller-{i}") for i in range(runners)]
            chunks = [ids[p::processes] for p in range(processes)]
            outs = [str(Path(tmp) / f"pub{p}") for p in range(processes)]
            ctx = multiprocessing.get_context("spawn")
            procs = [
                ctx.Process(target=publisher, args=(port, chunk, seconds, out))
                for chunk, out in zip(chunks, outs, strict=True)
            ]
            started = time.monotonic()
            for p in procs:
                p.start()
            expected = runners * seconds
            last_report = 0.0
            while len(hub.lags) < expected and time.monotonic() - started < seconds + 120:
                await asyncio.sleep(0.5)
                if time.monotonic() - last_report >= 5:
                    last_report = time.monotonic()
                    print(f"  {last_report - started:5.0f} s: stored {len(hub.lags)}", flush=True)
            for p in procs:
                p.join(timeout=60)
            await asyncio.sleep(1)
            await hub.stop()
            published = sum(int(Path(o).read_text()) for o in outs if Path(o).exists())
            with session_scope(url) as db:
                stored = sum(sum(store.stored_seqs(db, sid).values()) for sid in sids)
        finally:
            broker.terminate()
            broker.wait(10)
    lags = sorted(hub.lags)
    q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
    print(
        f"runners {runners} x 1 interval/s for {seconds} s, {processes} publisher processes, "
        f"broker autosave: {describe(autosave_s)}, database: {url.split(':')[0]}"
    )
    print(f"published (acknowledged by the broker) {published}, expected {expected}")
    print(f"stored {stored}, lost {expected - stored}")
    print(
        f"lag publish->stored: p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
        f"p99 {q[98] * 1000:.0f} ms, max {lags[-1] * 1000 if lags else 0:.0f} ms"
    )


def describe(autosave_s: int) -> str:
    if autosave_s < 0:
        return "none (persistence without autosave)"
    return "after every change" if autosave_s == 0 else f"every {autosave_s} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runners", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--database-url", default=None)
    ap.add_argument(
        "--autosave-s",
        type=int,
        default=Settings().broker_autosave_s,
        help="the broker's save interval as SIPFLOW_BROKER_AUTOSAVE_S (0: after every change; "
        "-1: no persistence at all)",
    )
    a = ap.parse_args()
    asyncio.run(run(a.runners, a.seconds, a.processes, a.database_url, a.autosave_s))


if __name__ == "__main__":
    main()
