"""A private PostgreSQL server for a test (deploy/private-pg.sh), never the shared one: it can
be stopped and started again without touching anybody else's database."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from entrypoints.stack import free_port

SCRIPT = Path(__file__).parents[2] / "deploy" / "private-pg.sh"


class PrivatePostgres:
    def __init__(self) -> None:
        # Its own directory in /tmp: as root the server runs as user postgres, which must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="sipflow-pg-"))
        self.root.chmod(0o755)
        self.dir = self.root / "pg"
        self.port = free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "start", str(self.dir), str(self.port)], check=True)

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.dir)], check=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
