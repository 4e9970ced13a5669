"""Save a finished session's workflow history for the Replayer test.

    .venv/bin/python -m tests.save_history <temporal address> <session id> <name>

Re-save the histories when the workflow changes on purpose (and version the change with
workflow.patched() when running sessions must survive it).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from temporalio.client import Client

HISTORIES = Path(__file__).parent / "data" / "histories"


async def save(address: str, session_id: str, name: str) -> Path:
    client = await Client.connect(address)
    history = await client.get_workflow_handle(f"session-{session_id}").fetch_history()
    out = HISTORIES / f"{name}.json"
    out.write_text(history.to_json())
    return out


if __name__ == "__main__":
    print(asyncio.run(save(sys.argv[1], sys.argv[2], sys.argv[3])))
