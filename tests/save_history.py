"""Save session workflow histories for the Replayer test (tests/test_replay.py).

    .venv/bin/python -m tests.save_history record <release>
        starts an embedded stack, runs a passing, a cancelled and a threshold-failing session
        and saves their histories under tests/data/histories/<release>/
    .venv/bin/python -m tests.save_history <temporal address> <session id> <release>/<name>
        saves one finished session's history

Record the histories of each release before its workflow code changes: the suite replays every
release's histories against today's code, so a change that would break sessions started by an
earlier release fails there (version such changes with workflow.patched()).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from sipflow.crypto import keyring
from sipflow.payload_codec import EncryptionCodec
from sipflow.settings import Settings
from tests.conftest import RunningStack, start_stack
from tests.history_payloads import map_payloads

HISTORIES = Path(__file__).parent / "data" / "histories"
THRESHOLDS = ["success_rate >= 99.5", "failed_calls == 0", "response_time_p95_ms < 300"]


def direct_spec(thresholds: list[str] = THRESHOLDS, **callers: Any) -> dict[str, Any]:
    return {
        "name": "e2e-direct",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", **callers},
        },
        "thresholds": thresholds,
    }


PROFILE = {"shape": "ramp", "start": 10, "to": 30, "over": "3s", "hold": "2s"}
CAPACITY = {
    "name": "recorded",
    "session": {"roles": {"callees": {"agents": 1}, "callers": {"agents": 1}}},
    "criteria": ["success_rate >= 99"],
    "start": 10,
    "ceiling": 20,
    "warmup": 1,
    "window": 2,
    "settle": 0.5,
}


async def save(
    address: str, session_id: str, name: str, settings: Settings, prefix: str = "session"
) -> Path:
    """Saved decoded (clear payloads): the replay test needs no key of the recording stack."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(f"{prefix}-{session_id}").fetch_history()
    codec = EncryptionCodec(keyring(settings))
    for event in history.events:
        map_payloads(event, codec.decode_one)
    out = HISTORIES / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(history.to_json())
    return out


def record(release: str) -> list[Path]:
    with tempfile.TemporaryDirectory(prefix="sipflow-histories-") as tmp:
        stacks = start_stack(Path(tmp))
        rs: RunningStack = next(stacks)
        try:
            passing = rs.submit(direct_spec(rate=20, max_calls=20))
            failing = rs.submit(direct_spec(["response_time_p50_ms < 0"], rate=50, max_calls=10))
            cancelled = rs.submit(direct_spec(rate=10, duration_s=60))
            profiled = rs.submit(direct_spec(profile=PROFILE))
            search = rs.http.post("/v1/capacity", json=CAPACITY)
            assert search.status_code == 201, search.text
            rs.wait_phase(cancelled, "running callers")
            time.sleep(3)  # callers started: cancelled while the workflow waits for them
            assert rs.http.post(f"/v1/sessions/{cancelled}/cancel").status_code == 202
            expected = {
                passing: ("completed", "pass"),
                failing: ("completed", "fail"),
                cancelled: ("cancelled", "fail"),
                profiled: ("completed", "pass"),
            }
            for sid, outcome in expected.items():
                body = rs.wait(sid)
                assert (body["status"], body["verdict"]) == outcome, body
            address = rs.stack.temporal_address
            settings = Settings(data_dir=rs.stack.data_dir)
            names = {passing: "session_pass", failing: "session_fail_threshold"}
            names[cancelled] = "session_cancelled"
            names[profiled] = "session_profile"
            search_id = search.json()["id"]
            deadline = time.monotonic() + 120
            while rs.http.get(f"/v1/capacity/{search_id}").json()["status"] != "completed":
                assert time.monotonic() < deadline, "capacity search did not complete"
                time.sleep(0.5)
            saved = [
                asyncio.run(save(address, sid, f"{release}/{name}", settings))
                for sid, name in names.items()
            ]
            capacity = f"{release}/capacity_search"
            return [*saved, asyncio.run(save(address, search_id, capacity, settings, "capacity"))]
        finally:
            stacks.close()


if __name__ == "__main__":
    if sys.argv[1] == "record":
        for path in record(sys.argv[2]):
            print(path)
    else:
        # SIPFLOW_* settings name the keys (SIPFLOW_ENCRYPTION_KEYS or SIPFLOW_DATA_DIR).
        print(asyncio.run(save(sys.argv[1], sys.argv[2], sys.argv[3], Settings())))
