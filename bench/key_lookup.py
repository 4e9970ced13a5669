"""What an API key costs per request: the digest, the indexed lookup among N keys (SQLite file
and, with --pg URL, PostgreSQL), and a whole authenticated GET through the app (TestClient)
against the same GET's cost without the key check (the public /v1/health is not comparable, so
the baseline is the lookup subtracted from the request).

    .venv/bin/python -m bench.key_lookup [--keys 10000] [--n 2000] [--pg postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import percentile
from sipflow import account_store
from sipflow.accounts import Role, digest
from sipflow.db import migrate, session_scope


def _us(samples: list[float]) -> str:
    return (
        f"p50 {percentile(samples, 50) * 1e6:8.1f} us  p95 {percentile(samples, 95) * 1e6:8.1f} us"
    )


def lookups(url: str, keys: int, n: int) -> None:
    migrate(url)
    with session_scope(url) as db:
        secrets = [account_store.create_key(db, "bench", Role.viewer)[1] for _ in range(keys)]
    samples: list[float] = []
    with session_scope(url) as db:
        for i in range(n):
            secret = secrets[i % len(secrets)]
            t = time.perf_counter()
            row = account_store.key_by_secret(db, secret)
            samples.append(time.perf_counter() - t)
            assert row is not None
            db.expunge_all()  # a request's own session: nothing cached between lookups
    print(f"{url.split(':')[0]:<22} lookup among {keys} keys: {_us(samples)}")


def request(url: str, n: int) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from sipflow.settings import Settings

    with session_scope(url) as db:
        _, secret = account_store.create_key(db, "bench", Role.viewer)
    app = create_app(Settings(database_url=url, temporal_address="127.0.0.1:1"))
    samples: list[float] = []
    with TestClient(app, headers={"Authorization": f"Bearer {secret}"}) as client:
        for _ in range(n):
            t = time.perf_counter()
            assert client.get("/v1/sessions?limit=1").status_code == 200
            samples.append(time.perf_counter() - t)
    print(f"{'GET /v1/sessions':<22} whole request, authenticated: {_us(samples)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--pg", help="a PostgreSQL database URL to measure too")
    args = ap.parse_args()
    if args.pg and args.pg.rstrip("/").rsplit("/", 1)[-1] in ("", "postgres"):
        ap.error("--pg must name a scratch database (it is migrated and filled with keys)")
    samples = []
    for _ in range(args.n):
        t = time.perf_counter()
        digest("sfk_" + "x" * 43)
        samples.append(time.perf_counter() - t)
    print(f"{'sha256 digest':<22} {_us(samples)}")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'keys.db'}"
        lookups(url, args.keys, args.n)
        request(url, min(args.n, 500))
    if args.pg:
        lookups(args.pg, args.keys, args.n)


if __name__ == "__main__":
    main()
