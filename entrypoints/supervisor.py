"""`sipflow up`'s supervision of its stack: a process that exits (worker, API, broker, Temporal)
is started again after a backoff, logged and counted. What it knows is kept in
data_dir/stack-status.json, which `sipflow status` reads."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from entrypoints.stack import Stack
from sipflow.settings import Settings

STATUS_FILE = "stack-status.json"


@dataclass
class Child:
    name: str
    pid: int | None = None
    started_at: float | None = None  # wall clock
    restarts: int = 0
    last_exit: int | None = None  # exit code (negative: killed by that signal)
    last_exit_at: float | None = None
    backoff_s: float = 0.0
    restart_at: float | None = None  # monotonic; set while it waits to be started again


class Supervisor:
    def __init__(self, stack: Stack, settings: Settings, log: Callable[[str], None]) -> None:
        self.stack, self.settings, self.log = stack, settings, log
        cfg = stack.config
        # Started in this order, as Stack.start does; restarted in the same order.
        self.starters: dict[str, Callable[[], None]] = {
            "temporal": stack.start_temporal,
            "mosquitto": stack.start_mosquitto,
        }
        if cfg.with_worker:
            self.starters["worker"] = stack.start_worker
        if cfg.with_api:
            self.starters["api"] = stack.start_api
        self.children = {name: Child(name) for name in self.starters}
        self._started_mono: dict[str, float] = {}
        self.status_file = stack.data_dir / STATUS_FILE

    def started(self) -> None:
        """After Stack.start: every child runs."""
        for name, child in self.children.items():
            self._note_started(name, child)
        self.write()

    def _note_started(self, name: str, child: Child) -> None:
        proc = self.stack.procs.get(name)
        child.pid = proc.pid if proc is not None else None
        child.started_at = time.time()
        self._started_mono[name] = time.monotonic()

    def check(self) -> None:
        """Once a second from `up`'s loop: notice exits, start again those whose backoff ended."""
        changed = False
        now = time.monotonic()
        for name, child in self.children.items():
            proc = self.stack.procs.get(name)
            if child.restart_at is None and (proc is None or proc.poll() is not None):
                self._exited(name, child, None if proc is None else proc.returncode, now)
                changed = True
            if child.restart_at is not None and now >= child.restart_at:
                self._restart(name, child)
                changed = True
        if changed:
            self.write()

    def _exited(self, name: str, child: Child, code: int | None, now: float) -> None:
        s = self.settings
        ran = now - self._started_mono.get(name, now)
        if ran >= s.restart_reset_s or child.backoff_s == 0:
            child.backoff_s = s.restart_backoff_s
        else:
            child.backoff_s = min(child.backoff_s * 2, s.restart_backoff_max_s)
        child.last_exit, child.last_exit_at = code, time.time()
        child.restart_at = now + child.backoff_s
        self.stack.procs.pop(name, None)
        self.log(
            f"{name} exited ({_exit_text(code)}) after {ran:.0f}s; "
            f"restart {child.restarts + 1} in {child.backoff_s:g}s "
            f"(logs: {self.stack.data_dir / 'logs' / name}.log)"
        )

    def _restart(self, name: str, child: Child) -> None:
        child.restart_at = None
        child.restarts += 1
        try:
            self.starters[name]()
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.log(f"{name} did not start again: {exc}")
            proc = self.stack.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                self.stack.procs[name] = proc  # started late: keep supervising it
            else:
                self._started_mono[name] = time.monotonic()
                self._exited(
                    name, child, None if proc is None else proc.returncode, time.monotonic()
                )
                return
        self._note_started(name, child)
        self.log(f"{name} started again (pid {child.pid}, restart {child.restarts})")

    def write(self) -> None:
        body = {
            "pid": os.getpid(),
            "updated_at": time.time(),
            "metrics": self.stack.metrics_urls,
            "processes": {
                n: asdict(c) | {"restart_at": None, "waiting": c.restart_at is not None}
                for n, c in self.children.items()
            },
        }
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        tmp.replace(self.status_file)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "gone"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def read_status(data_dir: Path) -> dict[str, object] | None:
    try:
        body: dict[str, object] = json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body
