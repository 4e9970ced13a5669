"""What the broker's access control costs a session: creating and deleting its runners' logins
(mosquitto's dynamic-security plugin, backends/broker_auth.py) and a runner's login itself.

Starts the embedded stack's mosquitto alone (as `sipflow up` configures it), then for each
session size creates the runners' logins (one admin connection, one batch of commands, as
start_runners does), connects every runner with its login, and deletes them (as teardown does).
Prints the median and max over the rounds.

    .venv/bin/python -m bench.broker_logins [--runners 1 10 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from backends import broker_auth
from backends.runner_tokens import broker_password, runner_broker_user, token_key
from entrypoints.stack import Stack, StackConfig


def connect_time(port: int, key: bytes, sid: str, rid: str) -> float:
    user = runner_broker_user(sid, rid)
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set(user, broker_password(key, user))
    client.on_connect = lambda *_a: done.set()
    started = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not done.wait(10):
        raise RuntimeError(f"{user} not connected")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def run(sizes: list[int], rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(StackConfig.on_free_ports(Path(tmp), with_api=False, with_worker=False))
        stack.data_dir.mkdir(parents=True, exist_ok=True)
        stack.start_mosquitto()
        try:
            settings = stack.settings
            key, port = token_key(settings), stack.config.mqtt_port
            print(f"{'runners':>8} {'create ms':>10} {'connect ms':>11} {'delete ms':>10}")
            for n in sizes:
                create, connect, delete = [], [], []
                for r in range(rounds):
                    sid, ids = f"bench{n}x{r}", [f"caller-{i}" for i in range(n)]
                    t0 = time.perf_counter()
                    broker_auth.add_runners(settings, sid, ids)
                    create.append(time.perf_counter() - t0)
                    connect += [connect_time(port, key, sid, rid) for rid in ids[:10]]
                    t0 = time.perf_counter()
                    broker_auth.remove_session(settings, sid)
                    delete.append(time.perf_counter() - t0)
                print(
                    f"{n:>8} {_ms(create):>10} {_ms(connect):>11} {_ms(delete):>10}"
                    "   (median / max)"
                )
        finally:
            stack.stop()


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.0f}/{max(xs) * 1000:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runners", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    run(a.runners, a.rounds)


if __name__ == "__main__":
    main()
