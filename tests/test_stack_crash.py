"""`kill -9` of the whole stack (Temporal, broker, worker, API) in the middle of a session, then
the stack started again on the same data directory: the session's workflow resumes and cleans up
after itself; no namespace, veth, nftables table or runner process of it stays behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from backends.netns import namespace, namespaces
from entrypoints.stack import Stack, StackConfig
from sipflow.models import FINAL_STATUSES
from tests.conftest import RunningStack
from tests.test_netns import leftovers

STACK = ("api", "worker", "mosquitto", "temporal")


def healthy(stack: Stack) -> RunningStack:
    rs = RunningStack(stack)
    deadline = time.monotonic() + 60
    while True:
        try:
            if rs.http.get("/v1/health").status_code == 200:
                return rs
        except Exception:  # not listening yet
            pass
        assert time.monotonic() < deadline, "API not healthy in 60 s"
        time.sleep(0.3)


def test_killed_stack_comes_back_and_leaves_nothing(tmp_path: Path) -> None:
    stack = Stack(StackConfig.on_free_ports(tmp_path))
    stack.start()
    try:
        rs = healthy(stack)
        sid = rs.submit(
            {
                "name": "stack-crash",
                "roles": {
                    "callees": {"agents": 1},
                    "callers": {"rate": 10, "duration_s": 15, "max_calls": 150},
                },
                "thresholds": ["total_calls >= 1"],
            }
        )
        rs.wait_phase(sid, "running callers", timeout=60)
        assert namespace(sid) in namespaces()
        for name in STACK:
            stack.kill_process(name)  # SIGKILL, as a crash or an OOM kill would
        time.sleep(2)
        stack.start()  # same data directory and ports: Temporal's history, broker, database
        rs = healthy(stack)
        body = rs.wait(sid, timeout=240)
        assert body["status"] in FINAL_STATUSES, body
        assert leftovers(sid) == []
        ps = subprocess.run(["pgrep", "-f", f"runs/{sid}/"], capture_output=True, text=True)
        assert ps.stdout.strip() == "", f"processes of {sid} left: {ps.stdout}"
    finally:
        stack.stop()
