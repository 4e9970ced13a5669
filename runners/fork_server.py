"""A fork server for runner agents: a process that imported the agent once and forks a ready
agent per request, so an agent starts in milliseconds instead of a Python start-up and its
imports (~300 ms here, mostly pydantic), which sat twice on a session's start path.

    python -m runners.fork_server      # requests on stdin, one JSON line each; pids on stdout

A request `{"config": FILE, "cwd": DIR, "log": FILE, "netns": NAME|null}` forks a child that
starts a session of its own (as `start_new_session`), enters network namespace NAME (setns on
/run/netns/NAME, as `ip netns exec` does), writes stdout/stderr to FILE, and runs
`runners.agent --config FILE`; the answer is `{"pid": N}` or `{"error": "..."}`. The server
exits at the end of its input (its parent, the worker, is gone); agents it forked keep running,
detached, as agents started any other way do. Its children are reaped by the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import traceback
from typing import Any

from runners import agent

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


def _enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _child(req: dict[str, Any]) -> None:
    """In the forked child: become the agent. Never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the agent waits for its SIPp
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log_fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        if req.get("netns"):
            _enter_netns(req["netns"])
        os.chdir(req["cwd"])
        code = agent.main(["--config", req["config"]])
    except BaseException:  # report in the agent's log, never return into the server's loop
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve() -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of the stack is the worker's to handle
    out = sys.stdout
    print(json.dumps({"ready": os.getpid()}), file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            pid = os.fork()
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), file=out, flush=True)
            continue
        if pid == 0:
            _child(req)
        print(json.dumps({"pid": pid}), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
