"""`sipflow up` supervises its stack: `kill -9` of the worker while a session runs through it
→ the worker is started again, the session passes with every interval stored (equal to SIPp's
own statistics) and nothing of it is left; `sipflow status` shows the restart. A killed broker
and a killed Temporal are started again too; only SIGINT stops the stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from entrypoints.stack import Stack, StackConfig
from tests.conftest import RunningStack
from tests.runner_fixtures import wait_for
from tests.sipp_files import stored_vs_sipp
from tests.test_cli_stack import SIPFLOW, listening
from tests.test_e2e_session import no_leftovers


def status(data_dir: Path) -> dict[str, Any]:
    r = subprocess.run(
        [*SIPFLOW, "status", "--data-dir", str(data_dir), "--json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def restarted(data_dir: Path, name: str, times: int) -> bool:
    p = status(data_dir)["processes"][name]
    return bool(p["restarts"] == times and p["running"])


def test_up_restarts_a_killed_worker_and_the_session_passes(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    config = StackConfig.on_free_ports(data)
    ports = [config.temporal_port, config.temporal_ui_port, config.mqtt_port, config.api_port]
    log = tmp_path / "up.log"
    env = {**os.environ, "SIPFLOW_RESTART_BACKOFF_S": "0.5"}
    up = subprocess.Popen(
        [*SIPFLOW, "up", "--data-dir", str(data),
         "--temporal-port", str(ports[0]), "--temporal-ui-port", str(ports[1]),
         "--mqtt-port", str(ports[2]), "--api-port", str(ports[3])],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text(), 90, "sipflow up")
        stack = Stack(config)
        stack.api_key = (data / "admin.key").read_text().strip()
        rs = RunningStack(stack)
        sid = rs.submit(
            {
                "name": "supervised",
                "roles": {"callees": {"agents": 1}, "callers": {"rate": 10, "max_calls": 200}},
                "thresholds": ["successful_calls == 200", "failed_calls == 0"],
            }
        )
        rs.wait_phase(sid, "running callers", timeout=60)
        time.sleep(3)
        assert status(data)["sessions"] == {"queued": 0, "running": 1, "stopping": 0}
        worker = status(data)["processes"]["worker"]["pid"]
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: restarted(data, "worker", 1), 30, "worker started again", step=0.5)
        assert status(data)["processes"]["worker"]["pid"] != worker
        assert status(data)["processes"]["worker"]["last_exit"] == -signal.SIGKILL

        body = rs.wait(sid, timeout=120)
        assert (body["status"], body["verdict"]) == ("completed", "pass"), body
        assert body["summary"]["measured"]["successful_calls"] == 200
        assert status(data)["sessions"]["running"] == 0
        stored_vs_sipp(rs, sid, body)
        no_leftovers(rs, sid)

        broker = status(data)["processes"]["mosquitto"]["pid"]
        os.kill(broker, signal.SIGKILL)
        wait_for(lambda: restarted(data, "mosquitto", 1), 30, "broker started again", step=0.5)
        assert listening(config.mqtt_port)
        temporal = status(data)["processes"]["temporal"]["pid"]
        os.kill(temporal, signal.SIGKILL)
        wait_for(lambda: restarted(data, "temporal", 1), 60, "Temporal started again", step=0.5)
        assert listening(config.temporal_port)
        assert up.poll() is None, log.read_text()  # still up: nothing but a signal stops it
        text = " ".join(log.read_text().split())
        assert "worker exited (killed by signal 9)" in text, text
        assert "mosquitto started again" in text, text
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
    assert code == 0, log.read_text()
    assert not any(listening(p) for p in ports), "a process of the stack is still there"
    assert status_after_stop(data) is False


def status_after_stop(data_dir: Path) -> bool:
    r = subprocess.run(
        [*SIPFLOW, "status", "--data-dir", str(data_dir), "--json"], capture_output=True, text=True
    )
    return bool(json.loads(r.stdout)["up"])
