"""/metrics over HTTP for processes without the API: the worker and (issue 15) runner hosts.

    server = start_metrics_server(port, registry, host)      # prometheus-client's series
    runtime = temporal_runtime_with_metrics(registry)         # + the Temporal SDK's, same port

The Temporal SDK exports its metrics through its Rust core's own Prometheus endpoint; that one
listens on a loopback port of its own and its series are read from there at each scrape and
served with sipflow's, so one process is one scrape target.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics_server(
    port: int, registry: CollectorRegistry = REGISTRY, host: str = "127.0.0.1"
) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics from a daemon thread (port 0: any free)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread, host, int(server.server_address[1]))


class TemporalMetrics(Collector):
    """The Temporal SDK runtime's series, read from its endpoint at each scrape."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url, self.timeout_s = url, timeout_s

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as resp:
                text = resp.read().decode()
        except OSError:
            return  # not listening yet (the runtime binds when the first client connects)
        yield from text_string_to_metric_families(text)


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_runtime_with_metrics(registry: CollectorRegistry = REGISTRY) -> Runtime:
    """A Temporal runtime whose SDK metrics (temporal_*, durations in seconds) are also served
    by `registry`. Pass it to Client.connect(runtime=...)."""
    bind = f"127.0.0.1:{_free_loopback_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind, durations_as_seconds=True),
        )
    )
    registry.register(TemporalMetrics(f"http://{bind}/metrics"))
    return runtime
