"""sipflow's own Prometheus series that processes count as things happen (prometheus-client's
default registry, so a process's /metrics also carries its process_* and python_* series).
The series computed from the database at scrape time live in sipflow/metrics_db.py; the list
of all series with their labels is docs/metrics.md."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import Counter, Histogram, disable_created_metrics

from sipflow.messages import StatsMessage

# No `<name>_created` samples: `sipflow_calls_created` would read as SIPp's "calls created".
disable_created_metrics()

# Calls that ended in an interval stored by the ingest (callers' periodic counts; each interval
# counted once: a redelivered message stores nothing and counts nothing).
CALLS = Counter(
    "sipflow_calls",
    "Calls ended, from the callers' intervals the ingest stored",
    ["outcome"],  # successful | failed
)
# From the end of an interval (its `time`, on the runner's clock) to its commit by the ingest:
# the runner's publish, the broker, the worker's queue and the transaction.
INGEST_LAG = Histogram(
    "sipflow_ingest_lag_seconds",
    "Seconds from an interval's timestamp to its commit in the database",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
INTERVALS = Counter("sipflow_ingest_intervals", "Intervals stored by the ingest", ["role"])
ALERTS = Counter(
    "sipflow_alerts_sent",
    "Alert deliveries tried, by channel kind and outcome (each retry is a try)",
    ["channel", "outcome"],  # webhook | email; sent | failed
)
# Activity tasks on this worker, by activity type (activities/metrics_interceptor.py). Some
# run for a session's whole span (ingest_metrics): hence the long buckets.
ACTIVITY_SECONDS = Histogram(
    "sipflow_activity_duration_seconds",
    "Seconds an activity attempt ran on this worker",
    ["activity", "outcome"],  # outcome: ok | error | cancelled
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)

# Series exist (at 0) from the start: a dashboard panel shows 0, not "no data".
for _outcome in ("successful", "failed"):
    CALLS.labels(_outcome)
for _channel in ("webhook", "email"):
    for _outcome in ("sent", "failed"):
        ALERTS.labels(_channel, _outcome)


def count_stored(stored: Iterable[StatsMessage], now: float | None = None) -> None:
    """The ingest committed these intervals (new rows only) at `now` (epoch seconds)."""
    at = time.time() if now is None else now
    for m in stored:
        INTERVALS.labels(m.role).inc()
        INGEST_LAG.observe(max(0.0, at - m.time))
        if m.role == "caller":
            CALLS.labels("successful").inc(m.periodic.successful_calls)
            CALLS.labels("failed").inc(m.periodic.failed_calls)
