"""`sipflow up` as a real process on free ports, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from entrypoints.stack import Stack, StackConfig
from tests.conftest import RunningStack
from tests.runner_fixtures import wait_for
from tests.test_cli_stack import SIPFLOW


class UpProcess:
    def __init__(self, data: Path, log: Path, *args: str, env: dict[str, str] | None = None):
        self.config = StackConfig.on_free_ports(data)
        self.data, self.log = data, log
        self.args, self.env = args, {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ports(self) -> list[int]:
        c = self.config
        return [c.temporal_port, c.temporal_ui_port, c.mqtt_port, c.api_port]

    def start(self) -> RunningStack:
        p = self.ports
        mark = self.log.read_text().count("Ctrl-C stops everything") if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [*SIPFLOW, "up", "--data-dir", str(self.data),
             "--temporal-port", str(p[0]), "--temporal-ui-port", str(p[1]),
             "--mqtt-port", str(p[2]), "--api-port", str(p[3]), *self.args],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        wait_for(
            lambda: self.log.read_text().count("Ctrl-C stops everything") > mark,
            90,
            "sipflow up",
            step=0.3,
        )
        stack = Stack(self.config)
        stack.api_key = (self.data / "admin.key").read_text().strip()
        return RunningStack(stack)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def text(self) -> str:
        return " ".join(self.log.read_text().split())
