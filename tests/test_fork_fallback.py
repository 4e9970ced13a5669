"""The fork server's fallback (backends/agent_processes.py ForkServer): when the server does not
answer (here: stopped, then killed while a request waits on it), the agent starts as a process of
its own and the session passes; sessions already running on forked agents are not touched."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import RunningStack


def spec(**callers: Any) -> dict[str, Any]:
    return {
        "name": "fork-fallback",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 10, **callers},
        },
        "thresholds": ["success_rate >= 100", "failed_calls == 0"],
    }


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path} in {timeout} s"
        time.sleep(0.02)


def test_session_passes_when_the_fork_server_fails(sqlite_stack: RunningStack) -> None:
    first = sqlite_stack.submit(spec(max_calls=None, duration_s=8))
    sqlite_stack.wait_phase(first, "running callers")
    agent = int((sqlite_stack.runs_dir / first / "callee-0" / "agent.pid").read_text())
    assert b"runners.fork_server" in cmdline(agent)  # forked, as by default
    server = parent(agent)
    assert b"runners.fork_server" in cmdline(server), cmdline(server)
    # Stopped: the next request waits on it; killed then: the worker reads end-of-file.
    os.kill(server, signal.SIGSTOP)
    second = sqlite_stack.submit(spec(max_calls=None, duration_s=4))
    try:
        wait_for(sqlite_stack.runs_dir / second / "callee-0" / "runner.json")
        time.sleep(0.3)  # the request is written right after the config
    finally:
        os.kill(server, signal.SIGKILL)
    pid_file = sqlite_stack.runs_dir / second / "callee-0" / "agent.pid"
    wait_for(pid_file, timeout=30)
    fallback = int(pid_file.read_text())
    started = cmdline(fallback)
    if b"runners.fork_server" in started:
        # The request went to a new fork server the worker started after the kill (a race of
        # the 0.3 s above): never the dead one.
        assert parent(fallback) != server, (fallback, server)
    else:
        assert b"runners.agent" in started, started
    for sid in (first, second):
        body = sqlite_stack.wait(sid)
        assert (body["status"], body["verdict"]) == ("completed", "pass"), (sid, body["reasons"])
        assert body["summary"]["measured"]["successful_calls"] > 0, body["summary"]
