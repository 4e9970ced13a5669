"""Recover what a killed agent never published: `python -m runners.recover --config runner.json`.

SIPp writes its statistics file on its own, also after its agent died (kill -9). Run on the
machine that holds the runner's work directory once the runner is stopped, this reads that file
(and the rtt file) through the agent's own StatsStream, so every row becomes the very message
the agent would have sent (same seq), and publishes them all with QoS 1 under the runner's
broker login. The ingest stores each (session, runner, seq) once: rows the agent did send are
no-ops. It publishes no state: the runner stays `lost`. Prints {"published": N} (JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from runners.stats_stream import StatsStream
from sipflow.messages import StatsMessage, runner_client_id, runner_topic
from sipflow.runner_config import RunnerConfig

MAIN_STAT = "main-stat.csv"  # the main run's statistics file (runners/agent.py)


def rtt_path(work: Path) -> Path:
    """The main run's -trace_rtt file (SIPp names it <scenario>_<pid>_rtt.csv; registration
    runs write theirs under register*)."""
    found = sorted(
        (p for p in work.glob("*_rtt.csv") if not p.name.startswith("register")),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else work / "no_rtt.csv"


def messages(cfg: RunnerConfig) -> list[StatsMessage]:
    stat = cfg.work_dir / MAIN_STAT
    if not stat.exists():
        return []
    stream = StatsStream(cfg.session_id, cfg.runner_id, cfg.role)
    stream.attach(stat, rtt_path(cfg.work_dir))
    return stream.poll(final=True)


def publish(cfg: RunnerConfig, msgs: list[StatsMessage], timeout: float) -> int:
    """Publishes with QoS 1; returns how many the broker acknowledged."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=runner_client_id(cfg.session_id, cfg.runner_id)
    )
    if cfg.mqtt_username is not None:
        client.username_pw_set(cfg.mqtt_username, cfg.mqtt_password)
    client.max_inflight_messages_set(100)
    client.connect(cfg.mqtt_host, cfg.mqtt_port, keepalive=15)
    client.loop_start()
    try:
        topic = runner_topic(cfg.session_id, cfg.runner_id, "stats")
        infos = [
            client.publish(topic, m.model_dump_json(by_alias=True).encode(), qos=1) for m in msgs
        ]
        for info in infos:
            info.wait_for_publish(timeout=timeout)
        return sum(1 for info in infos if info.is_published())
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.recover", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the runner's RunnerConfig")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for acks")
    args = parser.parse_args(argv)
    cfg = RunnerConfig.model_validate_json(args.config.read_text())
    msgs = messages(cfg)
    acked = publish(cfg, msgs, args.timeout) if msgs else 0
    print(json.dumps({"published": acked, "rows": len(msgs)}))
    return 0 if acked == len(msgs) else 1


if __name__ == "__main__":
    sys.exit(main())
