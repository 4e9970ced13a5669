"""Fixtures and helpers of the API and CLI tests (real databases, a real Temporal dev server).

Import the fixtures into a test module by their function names (pytest registers them under
their `name`), e.g. `from tests.api_fixtures import api_client_fixture  # noqa: F401`.
The `database_url` fixture (SQLite and PostgreSQL, migrated) comes from tests/conftest.py.

Authentication is always on: `api_client` is signed in as an admin of tenant "team-a" (the
tenant of VALID_SPEC); `mint_key(url, tenant, role)` makes any other key and
`client_as(api_client, key)` a client of the same app with it. A served API (ApiServer) has an
admin key of "team-a" in `.api_key` (`.headers` to send it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.main import create_app
from entrypoints.stack import Stack, StackConfig, free_port, wait_for_port
from sipflow import account_store, histogram, store
from sipflow.accounts import Role
from sipflow.db import migrate, session_scope
from sipflow.messages import Counters, DoneMessage, StatsMessage
from sipflow.settings import Settings

UI_URL = "http://temporal-ui.test"

VALID_SPEC: dict[str, Any] = {
    "name": "api-test",
    "tenant": "team-a",
    "roles": {
        "callees": {"agents": 1, "scenario": "answer"},
        "callers": {"agents": 2, "scenario": "call", "rate": 10, "max_calls": 20},
    },
    "thresholds": ["success_rate >= 90", "response_time_p95_ms <= 100"],
}


def dead_address() -> str:
    """A local address where nothing listens: Temporal 'down'."""
    return f"127.0.0.1:{free_port()}"


def make_settings(database_url: str, temporal_address: str) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_ui_url=UI_URL,
        task_queue="sipflow-api-tests",
    )


TENANT = "team-a"


def mint_key(
    url: str, tenant: str = TENANT, role: Role | str = Role.admin, name: str = "test key"
) -> str:
    """A new API key of this tenant and role in the database at `url`; its secret."""
    with session_scope(url) as db:
        _, secret = account_store.create_key(db, tenant, Role(role), name)
    return secret


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client_as(client: TestClient, key: str | None) -> TestClient:
    """A client of the same (started) app that sends `key` (None: no credential at all)."""
    return TestClient(client.app, headers=bearer(key) if key else {})


@pytest.fixture(name="api_client")
def api_client_fixture(database_url: str) -> Iterator[TestClient]:
    """The API on a real database (SQLite, then PostgreSQL) with Temporal unreachable,
    authenticated as an admin of tenant "team-a"."""
    app = create_app(make_settings(database_url, dead_address()))
    with TestClient(app, headers=bearer(mint_key(database_url))) as client:
        yield client


# A tenant policy (as the settings' default, so every tenant a test makes up gets it) that keeps
# any session tiny and on loopback: for tests that throw generated input at the API.
TINY_POLICY: dict[str, Any] = {
    "policy_allowed_networks": ["127.0.0.0/8", "::1/128"],
    "policy_allowed_hosts": ["localhost"],
    "quota_agents": 2,
    "quota_calls_per_s": 5,
    "quota_calls_per_session": 10,
    "quota_duration_s": 5,
    "quota_concurrent_sessions": 2,
}


@pytest.fixture(name="tiny_api_client")
def tiny_api_client_fixture(database_url: str, temporal_stack: Stack) -> Iterator[TestClient]:
    """The API on a real database and a real Temporal server (no worker: sessions stay
    pending), every tenant under TINY_POLICY; authenticated as an admin of tenant "team-a"."""
    settings = make_settings(database_url, temporal_stack.temporal_address)
    app = create_app(settings.model_copy(update=TINY_POLICY))
    with TestClient(app, headers=bearer(mint_key(database_url))) as client:
        yield client


@pytest.fixture(name="temporal_stack", scope="session")
def temporal_stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real Temporal dev server (and mosquitto); no API, no worker."""
    config = StackConfig.on_free_ports(
        tmp_path_factory.mktemp("temporal"), with_api=False, with_worker=False
    )
    with Stack(config) as stack:
        yield stack


class ApiServer:
    """The API served by uvicorn in a thread of the test process, on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        url = settings.resolved_database_url
        migrate(url)
        self.api_key = mint_key(url)  # an admin of "team-a"
        self.headers = bearer(self.api_key)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        wait_for_port(self.port, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(name="api_server")
def api_server_fixture(temporal_stack: Stack, tmp_path: Path) -> Iterator[ApiServer]:
    """A served API on SQLite, connected to the real Temporal server (no worker)."""
    settings = make_settings(f"sqlite:///{tmp_path / 'api.db'}", temporal_stack.temporal_address)
    with ApiServer(settings) as server:
        yield server


# -- seeding rows as the worker would ------------------------------------------------------------
def stats(
    sid: str,
    runner_id: str,
    role: str,
    seq: int,
    t: float,
    *,
    created: int = 0,
    ok: int = 0,
    failed: int = 0,
    samples_ms: tuple[float, ...] = (),
    causes: dict[str, int] | None = None,
    cum: Counters | None = None,
) -> StatsMessage:
    periodic = Counters(
        calls_created=created,
        successful_calls=ok,
        failed_calls=failed,
        failed_by_cause=causes or {},
    )
    return StatsMessage(
        session_id=sid,
        runner_id=runner_id,
        role=role,  # type: ignore[arg-type]
        seq=seq,
        time=t,
        current_calls=created - ok - failed,
        call_rate=float(created),
        periodic=periodic,
        cumulative=cum or periodic,
        histogram=histogram.from_samples(samples_ms),
    )


def seed_session(
    url: str, sid: str, *, spec: dict[str, Any] | None = None, status: str = "running"
) -> None:
    """A session with two callers and a callee, three seconds of intervals each."""
    spec = spec or VALID_SPEC
    with session_scope(url) as db:
        store.create_session(db, sid, spec["tenant"], spec["name"], spec, None)
        store.set_status(db, sid, status)
        store.upsert_runner(db, sid, "callee-0", "callee", "127.201.1.1:5060")
        for r in ("caller-0", "caller-1"):
            store.upsert_runner(db, sid, r, "caller", f"127.201.1.{2 + int(r[-1])}:5060")
            store.set_runner_state(db, sid, r, "running", None)
        t0 = 1_700_000_000.0
        for seq in (1, 2, 3):
            t = t0 + seq
            # caller-0: 5 created, 5 ok per second, fast; caller-1: 5 created, 4 ok, 1 failed.
            store.store_interval(
                db, stats(sid, "caller-0", "caller", seq, t + 0.2, created=5, ok=5,
                          samples_ms=(10, 10, 12, 15, 20))
            )  # fmt: skip
            store.store_interval(
                db, stats(sid, "caller-1", "caller", seq, t + 0.7, created=5, ok=4, failed=1,
                          samples_ms=(40, 50, 60, 80), causes={"unexpected_message": 1})
            )  # fmt: skip
            store.store_interval(db, stats(sid, "callee-0", "callee", seq, t + 0.5, ok=9))


def finish(url: str, sid: str, verdict: str, *, measured: dict[str, float | None]) -> None:
    """Store the end of a session as the workflow does (summary with threshold results)."""
    thresholds = [
        {"threshold": "success_rate >= 90", "measured": measured["success_rate"], "passed": True},
        {"threshold": "response_time_p95_ms <= 100", "measured": 80.0, "passed": verdict == "pass"},
    ]
    with session_scope(url) as db:
        for r in ("caller-0", "caller-1"):
            store.store_done(
                db,
                DoneMessage(
                    session_id=sid,
                    runner_id=r,
                    role="caller",
                    exit_code=0 if r == "caller-0" else 1,
                    ok=r == "caller-0",
                    last_seq=3,
                    summary=Counters(),
                    failure_reasons={} if r == "caller-0" else {"unexpected_message": 3},
                ),
            )
        reasons = [] if verdict == "pass" else ["response_time_p95_ms <= 100 not met"]
        store.finish_session(
            db,
            sid,
            "completed",
            verdict,
            {"measured": measured, "thresholds": thresholds},
            reasons,
        )


def wait_for_row(url: str, timeout: float = 20) -> str:
    """The id of the first session that appears in the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(url) as db:
            rows, _ = store.list_sessions(db, limit=1)
        if rows:
            return rows[0].id
        time.sleep(0.1)
    raise TimeoutError("no session row appeared")
