"""The metrics' arithmetic on real parts: a known batch through the ingest's commit moves the
calls counter and the ingest-lag histogram by exactly its new intervals (a redelivery moves
nothing); the API's /metrics reads sessions and active runners from the database and takes only
the metrics token; an alert's try is counted by outcome."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from activities.alert_channels import Alert, send_webhook
from activities.ingest_hub import IngestHub, _Batch
from api.main import create_app
from sipflow import store
from sipflow.db import session_scope
from sipflow.settings import Settings
from tests.api_fixtures import VALID_SPEC, dead_address, make_settings, mint_key, seed_session
from tests.api_fixtures import stats as interval
from tests.runner_fixtures import free_port

TOKEN = "sfm_test-token-of-the-scraper"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot() -> dict[str, float]:
    lag = "sipflow_ingest_lag_seconds"
    return {
        "ok": sample("sipflow_calls_total", outcome="successful"),
        "failed": sample("sipflow_calls_total", outcome="failed"),
        "count": sample(f"{lag}_count"),
        "sum": sample(f"{lag}_sum"),
        **{f"le{b}": sample(f"{lag}_bucket", le=b) for b in ("2.0", "5.0", "30.0", "300.0")},
    }


def test_a_known_batch_moves_the_counters_by_its_new_intervals(
    database_url: str, tmp_path: Path
) -> None:
    sid = "m0m0m0m0m0m0"
    with session_scope(database_url) as db:
        store.create_session(db, sid, "team-a", "metrics", VALID_SPEC, None)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    hub = IngestHub(settings, cast(Any, None))  # _commit needs no Temporal client
    now = time.time()
    batch = _Batch(
        stats=[
            interval(sid, "caller-0", "caller", 1, now - 3, created=6, ok=5, failed=1),
            interval(sid, "caller-1", "caller", 1, now - 20, created=7, ok=7),
            interval(sid, "callee-0", "callee", 1, now - 100, ok=9),  # callees' calls: not counted
            interval(sid, "caller-0", "caller", 1, now - 3, created=6, ok=5, failed=1),  # twice
        ]
    )
    before = snapshot()
    hub._commit(batch)
    after = snapshot()
    delta = {k: after[k] - before[k] for k in before}
    assert delta["ok"] == 12 and delta["failed"] == 1, delta
    assert delta["count"] == 3, delta
    assert 123 <= delta["sum"] < 123 + 3 * 5, delta  # the commit follows within seconds
    # Cumulative buckets: lags of ~3 s, ~20 s and ~100 s.
    assert (delta["le2.0"], delta["le5.0"], delta["le30.0"], delta["le300.0"]) == (0, 1, 2, 3)
    assert hub.stored_total == 3

    hub._commit(batch)  # the broker delivers the same messages again: stored and counted once
    assert snapshot() == after


@pytest.fixture
def metrics_client(database_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url, dead_address())
    settings.metrics_token = SecretStr(TOKEN)
    with TestClient(create_app(settings)) as client:
        yield client


def gauges(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("sipflow_sessions{", "sipflow_runners_active{"))
    }


def test_api_metrics_read_the_database_and_take_only_the_token(
    metrics_client: TestClient, database_url: str
) -> None:
    seed_session(database_url, "s1s1s1s1s1s1")  # team-a, running: 2 callers running, 1 callee
    seed_session(database_url, "s2s2s2s2s2s2")
    with session_scope(database_url) as db:  # ended with its runners' rows still "running"
        store.finish_session(db, "s2s2s2s2s2s2", "completed", "fail", {}, [])
    r = metrics_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    g = gauges(r.text)
    assert g['sipflow_sessions{status="running",tenant="team-a",verdict="none"}'] == 1
    assert g['sipflow_sessions{status="completed",tenant="team-a",verdict="fail"}'] == 1
    # The completed session's runners are not active, whatever their last state.
    assert g['sipflow_runners_active{host="local",role="caller",tenant="team-a"}'] == 2
    assert g['sipflow_runners_active{host="local",role="callee",tenant="team-a"}'] == 1
    # An admin API key does not open it (its series span all tenants), nor a wrong token.
    for auth in (f"Bearer {mint_key(database_url)}", "Bearer sfm_wrong", None):
        headers = {"Authorization": auth} if auth else {}
        r = metrics_client.get("/metrics", headers=headers)
        assert r.status_code == 401 and "www-authenticate" in r.headers, r.text


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def test_alert_tries_are_counted_by_outcome() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alert = Alert(kind="failed", schedule_id="s", schedule_name="n", tenant="t", session_id="x",
                  state="fail", previous=None, report_url="u", temporal_url="u")  # fmt: skip
    sent, failed = (sample("sipflow_alerts_sent_total", channel="webhook", outcome=o)
                    for o in ("sent", "failed"))  # fmt: skip
    try:
        send_webhook({"url": f"http://127.0.0.1:{server.server_port}/hook"}, alert, 5)
        with pytest.raises(httpx.TransportError):  # nothing listens there
            send_webhook({"url": f"http://127.0.0.1:{free_port()}/hook"}, alert, 5)
    finally:
        server.shutdown()
    assert sample("sipflow_alerts_sent_total", channel="webhook", outcome="sent") == sent + 1
    assert sample("sipflow_alerts_sent_total", channel="webhook", outcome="failed") == failed + 1
