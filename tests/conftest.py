"""Shared fixtures: real PostgreSQL and SQLite databases, and the embedded stack (real Temporal
dev server, real mosquitto, the API and the worker as separate processes)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from entrypoints.stack import Stack, StackConfig

PG_ADMIN_URL = os.environ.get(
    "SIPFLOW_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FINAL_STATUSES = {"completed", "cancelled", "error"}


def _pg_url(db: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{db}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (SQLAlchemy URL); dropped afterwards."""
    name = f"sipflow_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL, on a migrated schema."""
    from sipflow.db import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sipflow.db'}"
    else:
        name = f"sipflow_t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = _pg_url(name)
        request.addfinalizer(lambda: _drop(name))
    migrate(url)
    return url


def _drop(name: str) -> None:
    from sipflow.db import get_engine

    get_engine.cache_clear()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RunningStack:
    """A started Stack plus helpers to drive sessions through its API."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        # Signed in with the stack's local admin key (tenant "default"), as the CLI is.
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        self.http = httpx.Client(base_url=stack.api_url, timeout=30, headers=headers)

    def client_for(self, tenant: str, role: str = "admin") -> httpx.Client:
        """A client with a new key of this tenant and role (made in the stack's database)."""
        from sipflow import account_store
        from sipflow.accounts import Role
        from sipflow.db import session_scope

        with session_scope(self.stack.settings.resolved_database_url) as db:
            _, secret = account_store.create_key(db, tenant, Role(role), f"test {role}")
        headers = {"Authorization": f"Bearer {secret}"}
        return httpx.Client(base_url=self.stack.api_url, timeout=30, headers=headers)

    @property
    def runs_dir(self) -> Path:
        return self.stack.data_dir / "runs"

    def submit(self, spec: dict[str, Any]) -> str:
        r = self.http.post("/v1/sessions", json=spec)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def wait(self, session_id: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.http.get(f"/v1/sessions/{session_id}").json()
            if body.get("status") in FINAL_STATUSES:
                return body
            time.sleep(0.5)
        raise TimeoutError(f"session {session_id} did not finish in {timeout}s")

    def wait_phase(self, session_id: str, phase: str, timeout: float = 30) -> None:
        """Until the workflow's progress query reports `phase`."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.http.get(f"/v1/sessions/{session_id}").json()
            if (body.get("progress") or {}).get("phase") == phase:
                return
            assert body.get("status") not in FINAL_STATUSES, f"ended before {phase}: {body}"
            assert time.monotonic() < deadline, f"no phase {phase} in {timeout}s: {body}"
            time.sleep(0.2)

    def run(self, spec: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
        return self.wait(self.submit(spec), timeout)


def start_stack(tmp: Path, **config: Any) -> Iterator[RunningStack]:
    """A Stack on free ports (StackConfig fields as keywords), yielded once the API is healthy."""
    stack = Stack(StackConfig.on_free_ports(tmp, **config))
    stack.start()
    try:
        running = RunningStack(stack)
        # The API migrates on start; wait until it answers.
        deadline = time.monotonic() + 30
        while running.http.get("/v1/health").status_code != 200:
            assert time.monotonic() < deadline, "API not healthy in 30 s"
            time.sleep(0.3)
        yield running
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from start_stack(tmp_path_factory.mktemp("stack-sqlite"))


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Iterator[RunningStack]:
    yield from start_stack(tmp_path_factory.mktemp("stack-pg"), database_url=pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest) -> RunningStack:
    """The embedded stack on SQLite, then on PostgreSQL."""
    name = "sqlite_stack" if request.param == "sqlite" else "pg_stack"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
