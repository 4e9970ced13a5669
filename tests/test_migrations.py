"""Migrations run safely when the API and the worker start at the same moment."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect

from sipflow.db import get_engine


def test_concurrent_migrations_on_a_fresh_database(database_url: str, tmp_path: object) -> None:
    # database_url is already migrated once; use a brand-new one for SQLite and PostgreSQL alike.
    fresh = database_url.replace("sipflow.db", "fresh.db")
    if fresh.startswith("postgresql"):
        import uuid

        import psycopg

        from tests.conftest import PG_ADMIN_URL, _drop, _pg_url

        name = f"sipflow_m_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        fresh = _pg_url(name)
    code = "import sys; from sipflow.db import migrate; migrate(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh]) for _ in range(6)]
    try:
        assert [p.wait(60) for p in procs] == [0] * 6
        tables = set(inspect(get_engine(fresh)).get_table_names())
        assert {"session", "runner", "metric_interval", "alembic_version"} <= tables
    finally:
        if fresh.startswith("postgresql"):
            get_engine(fresh).dispose()
            _drop(name)
