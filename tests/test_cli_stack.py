"""`sipflow up` and `sipflow run --embedded` as a person runs them: real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from entrypoints.stack import free_port

SIPFLOW = [sys.executable, "-m", "entrypoints.cli"]


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_prints_urls_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "mqtt", "api", "metrics")}
    proc = subprocess.Popen(
        [*SIPFLOW, "up", "--data-dir", str(tmp_path / "stack"),
         "--temporal-port", str(ports["temporal"]), "--temporal-ui-port", str(ports["ui"]),
         "--mqtt-port", str(ports["mqtt"]), "--api-port", str(ports["api"]),
         "--worker-metrics-port", str(ports["metrics"])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out = ""
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while "Ctrl-C stops everything" not in out:
            assert time.monotonic() < deadline and proc.poll() is None, out
            out += proc.stdout.readline()
        for shown in (f":{ports['api']}/dashboard/", f":{ports['api']}/docs", f":{ports['ui']}"):
            assert shown in out, out
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/v1/health").json()["ok"] is True
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/").status_code == 200
        # Auth is on: nothing without a key; `up` made the local admin's and says where it is.
        key_file = tmp_path / "stack" / "admin.key"
        assert f"Sign in to the dashboard with the admin key in {key_file}" in " ".join(out.split())
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/v1/sessions").status_code == 401
        env = {**os.environ, "SIPFLOW_DATA_DIR": str(tmp_path / "stack")}
        env.pop("SIPFLOW_API_KEY", None)
        api = f"http://127.0.0.1:{ports['api']}"
        listed = subprocess.run(
            [*SIPFLOW, "sessions", "list", "--api", api, "--json"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["total"] == 0
        # Prometheus' targets: printed, recorded for `sipflow status`, serving.
        worker_metrics = f"http://127.0.0.1:{ports['metrics']}/metrics"
        assert worker_metrics in out and f"{api}/metrics" in out, out
        status = subprocess.run(
            [*SIPFLOW, "status", "--json"], capture_output=True, text=True, env=env
        )
        assert json.loads(status.stdout)["metrics"]["worker"] == worker_metrics, status.stdout
        deadline = time.monotonic() + 30
        while True:  # the worker starts its metrics server after migrating the database
            try:
                text = httpx.get(worker_metrics).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the worker serves no metrics"
                time.sleep(0.3)
        assert "sipflow_calls_total" in text and "temporal_" in text, text[:500]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0
    assert not any(listening(p) for p in ports.values()), "a process of the stack is still there"


def test_run_embedded_gives_the_verdict_as_exit_code(tmp_path: Path) -> None:
    spec = {
        "name": "cli-embedded",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": 20, "max_calls": 20}},
        "thresholds": ["successful_calls == 20"],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    ok = subprocess.run([*SIPFLOW, "run", "--embedded", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout
    spec["thresholds"] = ["successful_calls == 21"]
    path.write_text(yaml.safe_dump(spec))
    bad = subprocess.run([*SIPFLOW, "run", "--embedded", str(path)], capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout
