"""N small sessions submitted at once on one embedded stack (one worker).

Each session: 1 callee + 1 caller, `--calls` calls at 10/s, local backend, direct. Sessions
beyond the admission limit wait `queued` (SIPFLOW_MAX_RUNNING_SESSIONS / _RUNNERS, default:
derived from the machine's memory). Prints sessions completed, whether all are correct
(completed, pass, successful_calls == calls), the most running at once (sampled from the
database every 0.5 s), and sessions per minute.

    .venv/bin/python -m bench.concurrent_sessions [--sessions 300] [--calls 20]
        [--max-running-sessions 0] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from typing import Any

from sqlmodel import select

from bench.common import FINAL, embedded_stack
from sipflow import admission
from sipflow.db import session_scope
from sipflow.models import SessionRow


def small_spec(i: int, calls: int) -> dict[str, Any]:
    return {
        "name": f"bench-{i}",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 10, "max_calls": calls},
        },
        "thresholds": ["failed_calls == 0"],
    }


def run(sessions: int, calls: int, max_running: int, timeout: float) -> None:
    env = {"SIPFLOW_MAX_RUNNING_SESSIONS": str(max_running)} if max_running else {}
    with embedded_stack(**env) as (stack, http):
        url = stack.settings.resolved_database_url
        peak = {"running": 0, "queued": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                with session_scope(url) as db:
                    c = admission.counts(db)
                peak["running"] = max(peak["running"], c["running"] + c["stopping"])
                peak["queued"] = max(peak["queued"], c["queued"])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        ids = []
        for i in range(sessions):
            r = http.post("/v1/sessions", json=small_spec(i, calls))
            r.raise_for_status()
            ids.append(r.json()["id"])
        submitted = time.monotonic() - started
        print(f"submitted {sessions} sessions in {submitted:.1f} s", flush=True)
        done: dict[str, dict[str, Any]] = {}
        wanted = set(ids)
        last = 0.0
        while len(done) < len(ids) and time.monotonic() - started < timeout:
            with session_scope(url) as db:
                rows = db.exec(select(SessionRow.id, SessionRow.status)).all()
            for sid, status in rows:
                if sid in wanted and status in FINAL and sid not in done:
                    done[sid] = http.get(f"/v1/sessions/{sid}").json()
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                print(
                    f"  {last - started:6.0f} s: {len(done)} finished, peak running "
                    f"{peak['running']}, queued now/peak {peak['queued']}",
                    flush=True,
                )
            time.sleep(2)
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        outcomes = Counter(
            (
                b["status"],
                b["verdict"],
                (b.get("summary") or {}).get("measured", {}).get("successful_calls"),
            )
            for b in done.values()
        )
        correct = outcomes.get(("completed", "pass", calls), 0)
        limit = admission.runner_limit(stack.settings.max_running_runners, 50)
        print(f"sessions submitted: {sessions}, completed: {len(done)} in {elapsed:.0f} s")
        print(f"all correct: {'yes' if correct == sessions else 'no'} ({correct}/{sessions})")
        if correct != sessions:
            print(f"outcomes: {dict(outcomes)}")
            for sid, b in done.items():
                m = (b.get("summary") or {}).get("measured", {})
                if (b["status"], b["verdict"], m.get("successful_calls")) != (
                    "completed",
                    "pass",
                    calls,
                ):
                    runners = http.get(f"/v1/sessions/{sid}/metrics").json().get("runners", [])
                    print(f"  {sid}: reasons {b.get('reasons')}")
                    for r in runners:
                        print(f"    {r.get('runner_id')}: {r.get('state')} {r.get('detail')}")
                        work = stack.data_dir / "runs" / sid / str(r.get("runner_id"))
                        for name in ("agent.log", "main-errors.log"):  # why, from the runner
                            log_file = work / name
                            if log_file.exists():
                                for line in log_file.read_text(errors="replace").splitlines()[-12:]:
                                    print(f"      {name}: {line}")
        print(
            f"max running at once: {peak['running']} sessions (limit: "
            f"{max_running or 'none'} sessions, {limit} runners); max queued: {peak['queued']}"
        )
        print(f"sessions/minute: {len(done) / elapsed * 60:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sessions", type=int, default=300)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--max-running-sessions", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800)
    a = ap.parse_args()
    run(a.sessions, a.calls, a.max_running_sessions, a.timeout)


if __name__ == "__main__":
    main()
