"""A real Prometheus (Debian's `prometheus`) scrapes the embedded stack's API and worker with
the shipped deploy/prometheus/prometheus.yml (targets and token file pointed at the test's
stack); a short real session moves the counters; the stored-calls counter read back through
Prometheus' HTTP API moved by the session's calls, and every PromQL expression of
deploy/grafana/sipflow-dashboard.json returns a series."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sipflow.metrics_token import token_file
from tests.conftest import RunningStack
from tests.runner_fixtures import free_port
from tests.test_e2e_session import direct_spec

ROOT = Path(__file__).resolve().parent.parent
SCRAPE = "1s"
# Grafana's variables, as the dashboard's defaults resolve them.
VARIABLES = {"$tenant": ".*", "$__rate_interval": "1m"}

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus")


def prometheus_config(stack: RunningStack, tmp: Path) -> Path:
    """deploy/prometheus/prometheus.yml, aimed at this stack, scraping every second."""
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    urls = stack.stack.metrics_urls
    api = jobs["sipflow-api"]
    api["static_configs"] = [{"targets": [urls["api"].split("/")[2]]}]
    api["authorization"]["credentials_file"] = str(token_file(stack.stack.settings))
    jobs["sipflow-worker"]["static_configs"] = [{"targets": [urls["worker"].split("/")[2]]}]
    hosts = tmp / "runner-hosts.json"
    hosts.write_text("[]")  # no runner hosts yet
    jobs["sipflow-runner-hosts"]["file_sd_configs"] = [{"files": [str(hosts)]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(sqlite_stack: RunningStack, tmp_path: Path) -> Iterator[httpx.Client]:
    # The API makes its metrics token on first use; Prometheus reads it from the file.
    r = sqlite_stack.http.get("/metrics")
    assert r.status_code == 401, "an API key must not open /metrics"
    config = prometheus_config(sqlite_stack, tmp_path)
    check = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        wait_until(lambda: _ready(client), 30, "Prometheus ready")
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what} in {timeout}s"
        time.sleep(0.5)


def query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/query", params={"query": promql})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (promql, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(client: httpx.Client, promql: str) -> float | None:
    result = query(client, promql)
    return float(result[0]["value"][1]) if result else None


def worker_sample(stack: RunningStack, line_start: str) -> float:
    """A sample read straight from the worker's /metrics."""
    text = httpx.get(stack.stack.metrics_urls["worker"], timeout=10).text
    (line,) = [ln for ln in text.splitlines() if ln.startswith(line_start + " ")]
    return float(line.rsplit(" ", 1)[1])


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads((ROOT / "deploy/grafana/sipflow-dashboard.json").read_text())
    found = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unresolved variable in {expr}"
            found.append((panel["title"], expr))
    return found


def test_prometheus_scrapes_sipflow_and_every_panel_has_data(
    sqlite_stack: RunningStack, prometheus: httpx.Client
) -> None:
    calls = 'sipflow_calls_total{outcome="successful"}'
    before = worker_sample(sqlite_stack, calls)
    body = sqlite_stack.run(direct_spec(max_calls=30, rate=30))
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    stored = body["summary"]["measured"]["successful_calls"]
    assert stored == 30

    # Both targets are up (the API's with the token from credentials_file) ...
    wait_until(lambda: scalar(prometheus, 'up{job="sipflow-api"}') == 1, 30, "API scraped")
    wait_until(lambda: scalar(prometheus, 'up{job="sipflow-worker"}') == 1, 30, "worker scraped")
    # ... and the counter read back through Prometheus moved by the session's calls.
    promql = 'sum(sipflow_calls_total{outcome="successful", job="sipflow-worker"})'
    wait_until(lambda: scalar(prometheus, promql) == before + stored, 30, f"{promql} moved")
    verdicts = 'sipflow_sessions{tenant="default", status="completed", verdict="pass"}'
    assert (scalar(prometheus, verdicts) or 0) >= 1
    time.sleep(2.5)  # a few more scrapes: rate() needs two samples after the change

    panels = dashboard_expressions()
    assert len(panels) >= 8, panels  # the walk saw the dashboard's panels
    empty = [(title, expr) for title, expr in panels if not query(prometheus, expr)]
    assert not empty, f"panels whose query returns no series: {empty}"
