"""Shared by the bench scripts: an embedded stack on free ports and a session driver."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from entrypoints.stack import Stack, StackConfig

FINAL = {"completed", "cancelled", "error"}
UNLIMITED_QUOTAS = {
    f"SIPFLOW_QUOTA_{name}": "0"
    for name in ("AGENTS", "CALLS_PER_S", "CALLS_PER_SESSION", "DURATION_S", "CONCURRENT_SESSIONS")
}


@contextmanager
def embedded_stack(**env: str) -> Iterator[tuple[Stack, httpx.Client]]:
    """A stack on free ports; `env`: SIPFLOW_* settings of its worker and API. Benchmarks
    measure capacity: no quota holds them (unless `env` sets one)."""
    env = {**UNLIMITED_QUOTAS, **env}
    with tempfile.TemporaryDirectory(prefix="sipflow-bench-") as tmp:
        stack = Stack(StackConfig.on_free_ports(Path(tmp), extra_env=env))
        with (
            stack,
            httpx.Client(
                base_url=stack.api_url,
                timeout=30,
                headers={"Authorization": f"Bearer {stack.api_key}"},  # the stack's local admin
            ) as http,
        ):
            deadline = time.monotonic() + 30
            while http.get("/v1/health").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("API not healthy")
                time.sleep(0.2)
            yield stack, http


def wait_final(http: httpx.Client, sid: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/v1/sessions/{sid}").json()
        if body.get("status") in FINAL:
            return body
        time.sleep(0.25)
    raise TimeoutError(sid)


def epoch(field: str) -> float:
    """SIPp's time fields are 'date<TAB>time<TAB>epoch'."""
    return float(field.split("\t")[-1])


def stat_totals(stat_file: Path) -> dict[str, float]:
    """Created, successful and failed calls and elapsed time from SIPp's own last stat row."""
    lines = [ln for ln in stat_file.read_text().splitlines() if ln.strip()]
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    return {
        "created": float(row["TotalCallCreated"]),
        "successful": float(row["SuccessfulCall(C)"]),
        "failed": float(row["FailedCall(C)"]),
        "elapsed_s": epoch(row["CurrentTime"]) - epoch(row["StartTime"]),
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
