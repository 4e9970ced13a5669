"""The API under a burst: N concurrent `GET /v1/sessions` against an embedded stack (as
`sipflow up` runs it), with `/v1/health` asked every few tens of milliseconds meanwhile.
Prints p50/p95/max of the list and of health, and how many of each were answered (200).

    .venv/bin/python -m bench.api_load [--requests 500] [--rounds 3] [--sessions 200]
    .venv/bin/python -m bench.api_load --url http://127.0.0.1:8000     # a running stack

`--sessions` stores that many finished sessions first, so the list has rows to read.
Exit code 1 when a request was not answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bench.common import embedded_stack, percentile
from sipflow import store
from sipflow.db import session_scope

HEALTH_EVERY_S = 0.05


@dataclass
class Burst:
    list_ms: list[float] = field(default_factory=list)
    list_codes: dict[int | str, int] = field(default_factory=dict)
    health_ms: list[float] = field(default_factory=list)
    health_codes: dict[int | str, int] = field(default_factory=dict)

    @property
    def all_answered(self) -> bool:
        return set(self.list_codes) == {200} and set(self.health_codes) == {200}


async def _timed(
    client: httpx.AsyncClient, path: str, times: list[float], codes: dict[int | str, int]
) -> None:
    t0 = time.perf_counter()
    try:
        code: int | str = (await client.get(path)).status_code
    except httpx.HTTPError as exc:
        code = type(exc).__name__
    times.append((time.perf_counter() - t0) * 1000)
    codes[code] = codes.get(code, 0) + 1


async def burst(url: str, requests: int, api_key: str, timeout_s: float = 120) -> Burst:
    """`requests` list requests at once; health asked every HEALTH_EVERY_S until they end."""
    out = Burst()
    limits = httpx.Limits(max_connections=requests + 10, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=url, timeout=timeout_s, limits=limits, headers=headers
    ) as client:
        lists = [
            asyncio.create_task(_timed(client, "/v1/sessions", out.list_ms, out.list_codes))
            for _ in range(requests)
        ]
        pending = asyncio.gather(*lists)
        while not pending.done():
            await _timed(client, "/v1/health", out.health_ms, out.health_codes)
            await asyncio.sleep(HEALTH_EVERY_S)
        await pending
    return out


def seed(database_url: str, sessions: int) -> None:
    spec = {"name": "bench", "roles": {"callers": {"max_calls": 1}}}
    with session_scope(database_url) as db:
        for _ in range(sessions):
            sid = uuid.uuid4().hex[:12]
            store.create_session(db, sid, "default", "bench", spec, None)
            store.finish_session(db, sid, "completed", "pass", {"measured": {}}, [])


def report(i: int, b: Burst) -> str:
    def stats(ms: list[float]) -> str:
        if not ms:
            return "none"
        return (
            f"p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms, "
            f"max {max(ms):.0f} ms"
        )

    return (
        f"round {i}: list x{len(b.list_ms)} {b.list_codes}: {stats(b.list_ms)} | "
        f"health x{len(b.health_ms)} {b.health_codes}: {stats(b.health_ms)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--url", help="a running API instead of an embedded stack")
    parser.add_argument("--api-key", help="the running API's key (default: SIPFLOW_API_KEY)")
    args = parser.parse_args()

    def run(url: str, key: str) -> bool:
        ok = True
        for i in range(1, args.rounds + 1):
            b = asyncio.run(burst(url, args.requests, key))
            print(report(i, b), flush=True)
            ok = ok and b.all_answered
        return ok

    if args.url:
        return 0 if run(args.url, args.api_key or os.environ.get("SIPFLOW_API_KEY", "")) else 1
    with embedded_stack() as (stack, _http):
        seed(
            stack.config.database_url or f"sqlite:///{stack.data_dir / 'sipflow.db'}", args.sessions
        )
        return 0 if run(stack.api_url, stack.api_key or "") else 1


if __name__ == "__main__":
    sys.exit(main())
