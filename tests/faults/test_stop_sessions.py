"""SIGTERM to `sipflow up --keep-sessions` while a session runs leaves it, and the next
`sipflow up` on the same data directory resumes it to a normal end. (Without --keep-sessions
the sessions are cancelled with their clean-up: tests/faults/test_fault_suite.py.)"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from tests.faults.up_process import UpProcess
from tests.sipp_files import stored_vs_sipp
from tests.test_e2e_session import no_leftovers


def spec(name: str, duration_s: int, calls: int) -> dict[str, object]:
    return {
        "name": name,
        "roles": {
            "callees": {"agents": 1},
            "callers": {"rate": 10, "duration_s": duration_s, "max_calls": calls},
        },
        "thresholds": ["failed_calls == 0"],
    }


def stored_status(data: Path, sid: str) -> tuple[str, str | None]:
    with sqlite3.connect(data / "sipflow.db") as db:
        row = db.execute("SELECT status, verdict FROM session WHERE id = ?", (sid,)).fetchone()
    return row[0], row[1]


def test_keep_sessions_leaves_them_to_resume_at_the_next_start(tmp_path: Path) -> None:
    up = UpProcess(tmp_path / "stack", tmp_path / "up.log", "--keep-sessions")
    rs = up.start()
    try:
        sid = rs.submit(spec("kept", 12, 120))
        rs.wait_phase(sid, "running callers", timeout=60)
    finally:
        code = up.stop(signal.SIGTERM)
    assert code == 0, up.text()
    assert "1 session(s) running: kept" in up.text(), up.text()
    rs = up.start()
    try:
        body = rs.wait(sid, timeout=120)
        assert (body["status"], body["verdict"]) == ("completed", "pass"), body.get("reasons")
        assert body["summary"]["measured"]["successful_calls"] == 120
        stored_vs_sipp(rs, sid, body)
        no_leftovers(rs, sid)
    finally:
        assert up.stop(signal.SIGINT) == 0
