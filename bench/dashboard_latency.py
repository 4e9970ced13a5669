"""Live latency of the dashboard: from a stats message published on MQTT to the browser showing it.

Starts mosquitto and the API (as `sipflow up` does, without Temporal or a worker), stores a
running session, opens its report page in headless Chromium (Debian's package, driven by
Playwright), then publishes stats messages as runner agents do (one per second per runner by
default) and reads, for each message, when the page redrew its charts with it (the animation frame
after the update). Prints p50/p95/p99/max of publish -> shown, and of publish -> API (the bridge).

    .venv/bin/python -m bench.dashboard_latency [--runners 4] [--seconds 20] [--interval 1.0]

Exit code 1 when p95 is 1 s or more.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from backends import broker_auth
from backends.runner_tokens import token_key
from entrypoints.stack import Stack, StackConfig
from sipflow import histogram, store
from sipflow.db import migrate, session_scope
from sipflow.messages import Counters, StatsMessage, runner_topic

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SPEC: dict[str, Any] = {
    "name": "dashboard latency bench",
    "roles": {
        "callees": {"agents": 1, "scenario": "answer"},
        "callers": {"agents": 1, "scenario": "call", "rate": 50, "duration_s": 60},
    },
}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} no samples"
    return (
        f"{name:<28} n={len(values):<5} p50={pct(values, 50):7.1f}  p95={pct(values, 95):7.1f}  "
        f"p99={pct(values, 99):7.1f}  max={max(values):7.1f}  mean={statistics.fmean(values):7.1f}"
    )


def run(runners: int, seconds: int, interval: float, keep: bool) -> int:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="sipflow-bench-"))
    # Temporal is not started: its address points where nothing listens (the page copes).
    config = StackConfig.on_free_ports(tmp, with_worker=False)
    stack = Stack(config)
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp / 'sipflow.db'}"
    stack.config.database_url = url
    published: dict[tuple[str, int], float] = {}
    try:
        stack.start_mosquitto()
        migrate(url)
        sid = uuid.uuid4().hex[:12]
        ids = [f"caller-{i}" for i in range(runners - runners // 2)] + [
            f"callee-{i}" for i in range(runners // 2)
        ]
        with session_scope(url) as db:
            store.create_session(db, sid, "default", SPEC["name"], SPEC, None)
            store.set_status(db, sid, "running")
            for rid in ids:
                store.upsert_runner(db, sid, rid, rid.split("-")[0], "127.0.0.1:5060")
        key = stack.ensure_admin_key()  # tenant "default", the session's
        stack.start_api()

        mq = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        broker_key = token_key(stack.settings)
        with broker_auth.DynsecAdmin("127.0.0.1", stack.config.mqtt_port, broker_key, 10) as admin:
            mq.username_pw_set(**broker_auth.add_stand_in(admin, broker_key, "bench-publisher"))
        mq.connect("127.0.0.1", stack.config.mqtt_port)
        mq.loop_start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{stack.api_url}/dashboard/signin")
            page.fill("input[name=key]", key)
            page.click("button[type=submit]")
            page.wait_for_url(f"{stack.api_url}/dashboard/")
            page.goto(f"{stack.api_url}/dashboard/sessions/{sid}")
            page.wait_for_selector("#live[data-state=live]", timeout=20_000)
            print(f"report page open: {stack.api_url}/dashboard/sessions/{sid}")
            print(f"publishing {seconds} intervals of {runners} runners, every {interval}s")
            cum = {rid: Counters() for rid in ids}
            for seq in range(1, seconds + 1):
                tick = time.monotonic()
                for rid in ids:
                    role = rid.split("-")[0]
                    c = cum[rid]
                    c.calls_created += 50 if role == "caller" else 0
                    c.successful_calls += 50
                    msg = StatsMessage(
                        session_id=sid,
                        runner_id=rid,
                        role=role,  # type: ignore[arg-type]
                        seq=seq,
                        time=time.time(),
                        current_calls=25,
                        call_rate=50.0 if role == "caller" else 0.0,
                        periodic=Counters(
                            calls_created=50 if role == "caller" else 0, successful_calls=50
                        ),
                        cumulative=c.model_copy(),
                        histogram=histogram.from_samples([5.0] * 40 + [40.0] * 10),
                    )
                    payload = msg.model_dump_json(by_alias=True)
                    published[(rid, seq)] = time.time()
                    mq.publish(runner_topic(sid, rid, "stats"), payload, qos=1)
                time.sleep(max(0.0, interval - (time.monotonic() - tick)))
            deadline = time.monotonic() + 10
            want = len(published)
            renders: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                renders = page.evaluate("window.sipflowReport.renders")
                if len(renders) >= want:
                    break
                time.sleep(0.2)
            points = page.evaluate("Chart.getChart('chart-call-rate').data.datasets[0].data.length")
            browser.close()
        mq.loop_stop()
        mq.disconnect()
    finally:
        stack.stop()
        if not keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    shown: list[float] = []
    bridge: list[float] = []
    for r in renders:
        sent = published.get((r["runner_id"], r["seq"]))
        if sent is None:
            continue
        shown.append((r["shown_at"] / 1000.0 - sent) * 1000.0)
        if r.get("received_at"):
            bridge.append((r["received_at"] - sent) * 1000.0)
    print(f"messages published {len(published)}, shown {len(shown)}, chart points {points}")
    print("latency in ms:")
    print(line("publish -> API (MQTT)", bridge))
    print(line("publish -> shown (browser)", shown))
    missing = len(published) - len(shown)
    ok = bool(shown) and missing == 0 and pct(shown, 95) < 1000.0
    print(f"p95 publish -> shown: {pct(shown, 95) if shown else float('nan'):.1f} ms "
          f"({'OK' if ok else 'NOT OK'}: must be < 1000 ms, every message shown)")  # fmt: skip
    return 0 if ok else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runners", type=int, default=4, help="runners publishing (half callers)")
    ap.add_argument("--seconds", type=int, default=20, help="intervals each runner publishes")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between intervals")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (logs)")
    a = ap.parse_args()
    sys.exit(run(max(1, a.runners), a.seconds, a.interval, a.keep))


if __name__ == "__main__":
    main()
