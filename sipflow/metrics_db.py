"""Series read from the database when Prometheus scrapes (the API's /metrics): sessions by
tenant, status and verdict, and runners not yet ended by host. Two GROUP BY queries over
indexed columns; nothing is kept between scrapes, so every API process answers the same."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, col, select

from sipflow.db import get_engine
from sipflow.models import RunnerRow, SessionRow

# Runner states after which a runner holds nothing (sipflow.messages.RunnerStateName).
ENDED_RUNNER_STATES = ("done", "failed", "lost")
ENDED_SESSION_STATUSES = ("completed", "cancelled", "error")
# The runners of the local backend run on the worker's machine. Runner hosts in pools (issue
# 15) give their own host id here.
LOCAL_HOST = "local"


def session_counts(db: Session) -> list[tuple[str, str, str, int]]:
    """(tenant, status, verdict or "none", sessions)."""
    rows = db.exec(
        select(SessionRow.tenant, SessionRow.status, SessionRow.verdict, func.count()).group_by(
            col(SessionRow.tenant), col(SessionRow.status), col(SessionRow.verdict)
        )
    ).all()
    return [(t, s, v or "none", n) for t, s, v, n in rows]


def active_runner_counts(db: Session) -> list[tuple[str, str, str, int]]:
    """(host, tenant, role, runners) of runners not ended, of sessions not ended."""
    rows = db.exec(
        select(SessionRow.tenant, RunnerRow.role, func.count())
        .join(SessionRow, col(SessionRow.id) == col(RunnerRow.session_id))
        .where(col(RunnerRow.state).not_in(ENDED_RUNNER_STATES))
        .where(col(SessionRow.status).not_in(ENDED_SESSION_STATUSES))
        .group_by(SessionRow.tenant, RunnerRow.role)
    ).all()
    return [(LOCAL_HOST, t, r, n) for t, r, n in rows]


class DatabaseCollector(Collector):
    """A prometheus-client collector over the database at `url` (a small engine of its own:
    a scrape never waits behind the routes' connections)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def collect(self) -> Iterator[Metric]:
        engine = get_engine(self.url, pool_size=1, max_overflow=1, pool_timeout=10)
        with Session(engine) as db:
            sessions, runners = session_counts(db), active_runner_counts(db)
        g = GaugeMetricFamily(
            "sipflow_sessions",
            "Sessions in the database by tenant, status and verdict (none: not judged yet)",
            labels=["tenant", "status", "verdict"],
        )
        for tenant, status, verdict, n in sessions:
            g.add_metric([tenant, status, verdict], n)
        yield g
        r = GaugeMetricFamily(
            "sipflow_runners_active",
            "Runners started and not yet ended (of sessions not ended), by host, tenant, role",
            labels=["host", "tenant", "role"],
        )
        # Always a series per host: "no runners" reads 0, not "no data".
        if not runners:
            r.add_metric([LOCAL_HOST, "", ""], 0)
        for host, tenant, role, n in runners:
            r.add_metric([host, tenant, role], n)
        yield r
