"""Start and stop a session's SIP capture (backends/sip_capture.py) for the local backend.

It runs detached from the worker (like the agents), inside the session's network namespace or,
for loopback sessions, on the host with the session's /24 as filter. Its ring of pcap files is
`runs_dir/<session>/capture/`; teardown stops it (SIGTERM, then SIGKILL) before the namespace
goes (a process inside a namespace keeps it alive). The files stay for the evidence activity
(activities/evidence.py), which keeps what it needs and removes the ring.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from backends.agent_processes import command_lines, terminate

log = logging.getLogger(__name__)
MODULE = "backends.sip_capture"
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
CAPTURE_DIR = "capture"


def folder(runs_dir: Path, session_id: str) -> Path:
    return runs_dir / session_id / CAPTURE_DIR


def running(session_id: str) -> list[int]:
    """Pids of this session's capture process(es)."""
    needle = f"\0--session\0{session_id}\0".encode()
    module = f"\0{MODULE}\0".encode()
    return [pid for pid, cmd in command_lines() if needle in cmd + b"\0" and module in cmd]


def start(
    runs_dir: Path,
    session_id: str,
    netns: str | None,
    prefix: str | None,
    max_bytes: int,
    max_files: int,
    deadline_s: float,
) -> None:
    """Idempotent: the session's capture is started (not waited for: `wait_ready` before the
    first runner starts, so its Python start-up overlaps the rest of the session's set-up)."""
    if running(session_id):
        return
    out = folder(runs_dir, session_id)
    out.mkdir(parents=True, exist_ok=True)
    ready = out / "capture.ready"
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", MODULE, "--dir", str(out), "--max-bytes", str(max_bytes),
            "--max-files", str(max_files), "--deadline-s", f"{deadline_s:.0f}",
            "--ready", str(ready)]  # fmt: skip
    if prefix is not None:
        argv += ["--prefix", prefix]
    argv += ["--session", session_id]  # last: what running() looks for
    prefix_cmd = ["ip", "netns", "exec", netns] if netns else []
    with open(out / "capture.log", "ab") as log_out:
        proc = subprocess.Popen(
            [*prefix_cmd, *argv],
            stdin=subprocess.DEVNULL, stdout=log_out, stderr=log_out,
            start_new_session=True, env={**os.environ},
        )  # fmt: skip
    # Reaped here when it ends, whoever stops it (no zombie under a long-lived worker).
    threading.Thread(target=proc.wait, name=f"capture-{session_id}", daemon=True).start()


def wait_ready(runs_dir: Path, session_id: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the session's capture listens (its ready file). A session without a capture
    returns at once; a capture that died or is late raises RuntimeError with what it said."""
    out = folder(runs_dir, session_id)
    ready = out / "capture.ready"
    if not (out / "capture.log").exists():
        return
    deadline = time.monotonic() + timeout_s
    next_look = time.monotonic() + 0.25
    while not ready.exists():
        gone = time.monotonic() > next_look and not running(session_id)
        if gone or time.monotonic() > deadline:
            if ready.exists():
                return
            said = (out / "capture.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError("the SIP capture did not start: " + " | ".join(said))
        if time.monotonic() > next_look:
            next_look = time.monotonic() + 0.25
        time.sleep(0.01)


def stop(runs_dir: Path, session_id: str) -> list[str]:
    """Ends the session's capture: SIGTERM (it flushes and says what it kept), then SIGKILL.
    Only sessions whose folder has a capture folder are looked for (no scan otherwise)."""
    if not folder(runs_dir, session_id).exists():
        return []
    pids = terminate(lambda: running(session_id), STOP_GRACE_S)
    return [f"capture {pid}" for pid in pids]
