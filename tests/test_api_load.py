"""The API holds a burst: 500 concurrent `GET /v1/sessions` against the embedded stack (API and
worker as processes, real Temporal, SQLite then PostgreSQL) are all answered, and `/v1/health`
answers while they run. Timings are bench/api_load.py's job; the timeout here is generous."""

from __future__ import annotations

import asyncio

from bench.api_load import burst, seed
from tests.conftest import RunningStack

REQUESTS = 500


def test_500_concurrent_lists_all_answered_and_health_answers_meanwhile(
    stack: RunningStack,
) -> None:
    url = stack.stack.config.database_url or f"sqlite:///{stack.stack.data_dir / 'sipflow.db'}"
    seed(url, 100)
    result = asyncio.run(
        burst(stack.stack.api_url, REQUESTS, stack.stack.api_key or "", timeout_s=180)
    )
    assert result.list_codes == {200: REQUESTS}, result.list_codes
    # Health is asked until the last list reply: all but the last answer came during the load.
    assert len(result.health_ms) >= 2, result.health_ms
    assert set(result.health_codes) == {200}, result.health_codes
