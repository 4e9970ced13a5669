"""Runner agents as detached processes of this machine: one per runner, in its own process group.

Agents are detached from the worker (new session), so a crashed worker does not take running
traffic with it; their pid files (runs_dir/<session>/<runner>/agent.pid) let a restarted worker
find, stop and clean them up. Used by the local backend; a runner host would use it too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO

from sipflow.runner_config import RunnerConfig

log = logging.getLogger(__name__)

# What a runner's work directory holds that names a password (runner.json, SIPp's -inf files).
SECRET_FILES = ("runner.json", "*injection*.csv")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def command_lines() -> Iterator[tuple[int, bytes]]:
    """(pid, raw NUL-separated command line) of every process still there when read."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            yield int(proc.name), (proc / "cmdline").read_bytes()
        except OSError:
            continue


def terminate(running: Callable[[], Collection[int]], grace_s: float) -> list[int]:
    """SIGTERM every process `running()` finds, SIGKILL those still found after grace_s (a
    session's helper processes: capture, delayer). The pids signalled first."""
    pids = list(running())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline and running():
        time.sleep(0.02)
    for pid in running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def processes_using(work_dir: Path) -> list[int]:
    """Pids whose command line names a file under work_dir."""
    needle = (str(work_dir) + "/").encode()
    return [pid for pid, cmdline in command_lines() if needle in cmdline and pid != os.getpid()]


class ForkServer:
    """The client of `runners.fork_server`: one per process that starts agents, started at the
    first request; it forks each agent ready-imported. None of its failures is the session's:
    `start` returns None and the caller starts the agent the slow way."""

    START_TIMEOUT_S = 30.0

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the server in the background, so the first session does not wait for it."""

        def run() -> None:
            with self._lock:
                try:
                    self._server()
                except (OSError, RuntimeError, ValueError) as e:
                    log.warning("fork server did not start: %s", e)

        threading.Thread(target=run, name="fork-server-warm", daemon=True).start()

    def _server(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        proc = subprocess.Popen(
            [sys.executable, "-m", "runners.fork_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the stack's Ctrl-C is not its to take
        )
        assert proc.stdout is not None
        self._read(proc.stdout, "ready")
        self._proc = proc
        return proc

    def _read(self, stdout: IO[str], key: str) -> int:
        line = stdout.readline()  # the server answers at once (fork) or is gone (EOF)
        answer = json.loads(line) if line.strip() else {}
        if key not in answer:
            raise RuntimeError(answer.get("error") or "the fork server exited")
        return int(answer[key])

    def start(self, config: Path, cwd: Path, log_file: Path, netns: str | None) -> int | None:
        request = {"config": str(config), "cwd": str(cwd), "log": str(log_file), "netns": netns}
        with self._lock:
            try:
                proc = self._server()
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                return self._read(proc.stdout, "pid")
            except (OSError, RuntimeError, ValueError) as e:
                log.warning("fork server failed (%s): starting the agent as a new process", e)
                if self._proc is not None:
                    self._proc.kill()
                    self._proc = None
                return None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                if self._proc.stdin is not None:
                    self._proc.stdin.close()  # end of input: it exits
                self._proc.wait(timeout=5)
                self._proc = None


class AgentProcesses:
    def __init__(self, runs_dir: Path, fork_server: bool = True) -> None:
        self.runs_dir = runs_dir
        self.fork_server = ForkServer() if fork_server else None

    def start(self, cfg: RunnerConfig, netns: str | None = None) -> int:
        """Start the agent for `cfg` unless it already runs (in network namespace `netns`, if
        given); returns its pid."""
        work = cfg.work_dir
        work.mkdir(parents=True, exist_ok=True)
        pid_file = work / "agent.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if _alive(pid):
                return pid
            if (work / "agent.started").exists():
                return pid  # it ran and finished; never start traffic twice
        config_file = work / "runner.json"
        # The config holds account passwords: readable by the owner only.
        fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cfg.model_dump_json())
        forked = None
        if self.fork_server is not None:
            forked = self.fork_server.start(config_file, work, work / "agent.log", netns)
        if forked is not None:
            pid_file.write_text(str(forked))
            (work / "agent.started").touch()
            return forked
        with open(work / "agent.log", "ab") as logf:
            # `ip netns exec` enters the namespace and execs the agent: the pid stays the same.
            prefix = ["ip", "netns", "exec", netns] if netns else []
            proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "runners.agent", "--config", str(config_file)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work,
                start_new_session=True,
            )
        pid_file.write_text(str(proc.pid))
        (work / "agent.started").touch()
        return proc.pid

    def _pids(self, session_id: str) -> dict[str, int]:
        pids = {}
        for pid_file in (self.runs_dir / session_id).glob("*/agent.pid"):
            pids[pid_file.parent.name] = int(pid_file.read_text())
        return pids

    def running(self, session_id: str) -> list[str]:
        return [rid for rid, pid in self._pids(session_id).items() if _alive(pid)]

    def sessions_running(self) -> set[str]:
        """Sessions that have a live agent."""
        return {
            pid_file.parent.parent.name
            for pid_file in self.runs_dir.glob("*/*/agent.pid")
            if pid_file.read_text().strip().isdigit() and _alive(int(pid_file.read_text()))
        }

    def stop(
        self, session_id: str, runner_ids: list[str] | None = None, grace_s: float = 20
    ) -> None:
        """SIGTERM the agents (they stop SIPp and report `done`), SIGKILL their groups after grace.

        Idempotent: agents already gone are skipped.
        """
        pids = {
            r: p for r, p in self._pids(session_id).items() if runner_ids is None or r in runner_ids
        }
        for pid in pids.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
            self._reap(pids.values())
            time.sleep(0.1)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        # SIPp runs in a session of its own; if its agent died it is orphaned, so find it by
        # the runner's work directory on its command line.
        for rid in pids:
            for orphan in processes_using(self.runs_dir / session_id / rid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(orphan, signal.SIGKILL)
        self._reap(pids.values())

    def recover_intervals(
        self, session_id: str, runner_ids: list[str], netns: str | None = None
    ) -> dict[str, int]:
        """For stopped runners whose agent died: publish what their SIPp wrote to its statistics
        file (runners/recover.py, in the runner's namespace, with its broker login); runner ->
        rows published. Before remove_secrets (it needs runner.json)."""
        published: dict[str, int] = {}
        for rid in runner_ids:
            work = self.runs_dir / session_id / rid
            config = work / "runner.json"
            if not config.exists() or not (work / "main-stat.csv").exists():
                continue
            prefix = ["ip", "netns", "exec", netns] if netns else []
            argv = [*prefix, sys.executable, "-m", "runners.recover", "--config", str(config)]
            with open(work / "recover.log", "ab") as logf:
                done = subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=logf, cwd=work, timeout=60, check=False
                )
            try:
                published[rid] = int(json.loads(done.stdout)["published"])
            except (ValueError, KeyError, TypeError):
                log.warning("recovering %s/%s failed (exit %s)", session_id, rid, done.returncode)
        return published

    def remove_secrets(self, session_id: str) -> list[Path]:
        """Remove the session's files that hold passwords (each runner's config and SIPp
        injection files), so its kept runs folder holds no secret. Call once its agents are
        stopped; idempotent. Returns what was removed."""
        removed = []
        for pattern in SECRET_FILES:
            for path in (self.runs_dir / session_id).glob(f"*/{pattern}"):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    @staticmethod
    def _reap(pids: object) -> None:
        for pid in pids:  # type: ignore[attr-defined]
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
