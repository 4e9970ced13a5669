"""Settings from the environment (prefix SIPFLOW_) with embedded defaults for one machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sipflow.spec import Backend


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIPFLOW_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    # DNS servers that resolve a target given by domain (target.dns), "ip" or "ip:port" (one
    # port for all), comma-separated; empty: the system's resolver. Each query gets dns_timeout_s.
    dns_servers: str = ""
    dns_timeout_s: float = 5.0
    # Where the embedded stack keeps its files (SQLite, Temporal's db, runner work dirs, logs).
    data_dir: Path = Path("var")
    # SQLite file under data_dir by default; PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue: str = "sipflow"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # The embedded broker (`sipflow up`) saves its state every this many seconds; 0: after every
    # change, which caps it at ~250 messages/s (bench/ingest_lag.py). A kill -9 loses at most
    # what it queued for a backed-up ingest in the last interval (what the ingest was sent is
    # acknowledged only after its commit; agents spool until the broker acknowledges).
    broker_autosave_s: int = 5
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = "http://127.0.0.1:8000"
    # Local backend: where a new session's runners live. "netns": a network namespace of its
    # own, a /24 of netns_pool, joined to the host by a veth pair (needs root/CAP_NET_ADMIN and
    # nftables). "loopback": 127.<local_net_octet>.N.0/24 aliases on `lo`, for a SUT reachable
    # only on loopback (runners then cannot reach other hosts).
    local_network: Literal["netns", "loopback"] = "netns"
    netns_pool: str = "10.250.0.0/16"
    # Runners' IPv6 addresses (used when the target is an IPv6 address): the /64 of this ULA
    # prefix with the same index as the session's IPv4 /24.
    netns_pool6: str = "fd57:ee1f:5ee5::/48"
    local_net_octet: int = 201
    # Local backend: agents are forked ready-imported by a fork server (runners/fork_server.py)
    # instead of each starting Python anew (~300 ms each, on a session's start path).
    agent_fork_server: bool = True
    # Local backend: delay_ms/jitter_ms go through a user-space NFQUEUE delayer (no netem here),
    # which carries this many plain calls/s (measured: bench/delayer_rate.py); a delayed
    # session planned above it is refused before anything starts.
    delayer_max_calls_per_s: float = Field(default=1000, gt=0)
    # Per-call evidence (local backend): a SIP capture per session beside its runners
    # (backends/sip_capture.py), a ring of pcap files of at most evidence_max_bytes in
    # evidence_max_files files; at the end every failed call (up to evidence_max_failed) and
    # evidence_good_calls answered ones are kept as pcap + ladder (sipflow/evidence.py).
    evidence_capture: bool = True
    evidence_max_bytes: int = Field(default=64 * 1024**2, ge=4096)
    evidence_max_files: int = Field(default=8, ge=1, le=1000)
    evidence_max_failed: int = Field(default=50, ge=0)
    evidence_good_calls: int = Field(default=3, ge=0)
    default_tenant: str = "default"
    # Where a session's runners run when its spec does not say: "local" or "docker".
    default_backend: Backend = "local"
    # Docker backend: the Docker-API endpoint (e.g. unix:///run/podman/podman.sock); not set:
    # DOCKER_HOST, else the engine's default socket.
    docker_url: str | None = None
    runner_image: str = "sipflow-runner:latest"
    # The name runner containers know the Docker host by (mapped to their network's gateway).
    docker_host_alias: str = "sipflow-host"
    # How runner containers reach the broker and the API; default: the Docker host (the broker
    # and the API listen on, or publish their ports to, the bridge gateway) at the same ports.
    docker_mqtt_host: str | None = None
    docker_mqtt_port: int | None = None
    docker_api_url: str | None = None
    # Session networks without a route out (runners reach only each other and the Docker host's
    # address on their bridge). Turn off where the broker/API are reached through ports
    # published by containers on other networks (Docker's isolation drops that traffic).
    docker_internal_networks: bool = True
    # -- fargate backend (backends/fargate.py): one AWS Fargate task per runner ------------------
    # The ECS cluster, the subnets (private) and security groups of the runners' tasks (awsvpc).
    # No subnets: the backend is not configured (sessions on it fail at once with that reason,
    # and the sweep asks AWS nothing).
    fargate_cluster: str = "sipflow"
    fargate_subnets: list[str] = []
    fargate_security_groups: list[str] = []
    fargate_assign_public_ip: bool = False
    # AWS region and endpoint (the endpoint only for a stand-in such as moto; not set: AWS's).
    fargate_region: str = "us-east-1"
    fargate_endpoint_url: str | None = None
    # The runner image in a registry ECS pulls from (not set: runner_image).
    fargate_runner_image: str | None = None
    # Roles of the runner tasks: execution (pulls the image, reads the session's token secret,
    # writes logs) and task (the runner itself: needs no AWS permission). deploy/aws/ makes both.
    fargate_execution_role_arn: str | None = None
    fargate_task_role_arn: str | None = None
    # CloudWatch log group of the runners (awslogs driver); not set: no log configuration.
    fargate_log_group: str | None = None
    # Secrets Manager names of the sessions' runner tokens: <prefix><session id>.
    fargate_secret_prefix: str = "sipflow/runner-tokens/"
    # Attempts of every AWS call (botocore's standard retry mode: throttling and transient
    # errors, with exponential backoff and jitter).
    fargate_api_attempts: int = 6
    # A runner's RunTask answered with a failure (no capacity, ...) is tried again this many
    # times in all, after fargate_run_backoff_s, doubling; then the session fails with the reason.
    fargate_run_attempts: int = 5
    fargate_run_backoff_s: float = 2.0
    # How long the tasks of a role may take to reach RUNNING, and how often they are looked at.
    fargate_start_timeout_s: float = 300.0
    fargate_poll_s: float = 2.0
    # SIGTERM to SIGKILL when a task is stopped (ECS's stopTimeout, at most 120 on Fargate).
    fargate_stop_timeout_s: int = 30
    # Seconds between sweeps of what sessions that no longer run left behind, on every backend
    # (the worker sweeps when > 0).
    sweep_interval_s: float = 0
    # Runners' dead man's switch (RunnerConfig.deadline_s, silence_s): a runner stops its
    # traffic runner_deadline_margin_s after the session's expected duration, or after
    # runner_silence_s without a control message; the worker sends a keepalive on each session's
    # control topic every control_keepalive_s while the session's metrics ingest runs. Keep
    # runner_silence_s well above control_keepalive_s and above a worker's or broker's restart.
    # 0: that part of the switch is off.
    runner_deadline_margin_s: float = 600
    runner_silence_s: float = 120
    # Each runner agent waits a random 0..N ms before it registers or starts SIPp (0: off), so a
    # test can start a session's parties out of step (RunnerConfig.start_jitter_ms).
    runner_start_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    # Runner agents' on-disk spool of unacknowledged MQTT messages (RunnerConfig.spool_*):
    # at most agent_spool_max_messages (one per stats interval, ~1-2 kB each: 20,000 is ~5.5
    # hours of broker outage at 1 interval/s, ~40 MB); a finished agent waits up to
    # agent_spool_linger_s for the broker to take what it still holds.
    agent_spool_max_messages: int = 20000
    # Media `mos: visqol`: each runner scores at most this many received streams with ViSQOL
    # (~7.5 s of CPU per 14 s clip; the others get E-model only).
    media_visqol_max_clips: int = Field(default=5, ge=0, le=1000)
    # A call script's expect_dtmf / expect audio are judged at their step's moment: a digit or
    # audio that arrives up to this long after it still counts (the receiver stamps packets a
    # little after they arrive; the callee's stamps are its host's clock).
    media_expect_tolerance_ms: int = Field(default=100, ge=0, le=10_000)
    agent_spool_linger_s: float = 300
    control_keepalive_s: float = 10
    # `sipflow up` starts a process of the stack that exited again after restart_backoff_s,
    # doubling with each further exit up to restart_backoff_max_s; one that ran for
    # restart_reset_s starts over at restart_backoff_s.
    restart_backoff_s: float = 1
    restart_backoff_max_s: float = 30
    restart_reset_s: float = 60
    # On Ctrl-C/SIGTERM `sipflow up` cancels running sessions and waits this long for their
    # clean-up (runners stopped, networks removed) before it stops the stack.
    stop_cancel_timeout_s: float = 60
    # Retention (sipflow/retention.py): a finished session's runs folder (SIPp files, logs,
    # captures) is removed retention_runs_days after it finished, and oldest first while all
    # runs folders together exceed retention_runs_max_bytes; its per-interval rows go after
    # retention_rows_days (the session row, verdict and summary stay). The worker runs a pass
    # every retention_interval_s (0: never; `sipflow retention run` does it by hand) and logs a
    # warning when the data dir's file system has less than disk_warn_free_fraction free.
    retention_runs_days: float = 30
    retention_runs_max_bytes: int = 10 * 1024**3
    retention_rows_days: float = 180
    retention_interval_s: float = 3600
    disk_warn_free_fraction: float = 0.1
    # Signs the per-session tokens runners fetch their files with. Not set: a random key kept
    # in data_dir/secrets (enough when API and worker share data_dir, as the embedded stack does).
    runner_token_secret: SecretStr | None = None
    # How long the worker waits for the broker's dynamic-security plugin to answer (creating and
    # removing runners' broker credentials, backends/broker_auth.py).
    mqtt_admin_timeout_s: float = 10.0
    # AES-256-GCM keys of secrets at rest and of Temporal payloads: "id:base64key,..." (32-byte
    # keys); the first encrypts, all decrypt (rotation: put a new key in front). Not set: one
    # random key kept in data_dir/secrets (enough when API, worker and CLI share data_dir).
    encryption_keys: SecretStr | None = None

    # -- metrics ingest and admission (activities/ingest.py, ingest_hub.py, admission.py) -------
    # One MQTT subscriber per worker stores every session's intervals; each session's ingest
    # activity is async (no thread) and runs on the task queue `<task_queue>-ingest` with a slot
    # budget of its own, so start/stop activities always find one of the main queue's slots.
    ingest_slots: int = 2000
    # Messages committed in one transaction at most (then acknowledged to the broker).
    ingest_batch: int = 500
    # How often a session's ingest activity looks at what was stored (seconds).
    ingest_poll_s: float = 1.0
    # After a runner's `done`, how long the intervals it says it sent are waited for before the
    # session is judged (late ones arriving within it are stored exactly once).
    ingest_missing_grace_s: float = 20.0
    # A runner's Last Will ("lost") counts only when the runner stays away this long (seconds):
    # a clean broker shutdown or restart publishes every connected runner's will, and the
    # runners then reconnect and republish their state (the workflow waits as long, LOST_GRACE).
    ingest_lost_grace_s: float = 15.0
    # Progress totals reach the workflow as a signal at most this often (seconds) ...
    ingest_progress_every_s: float = 10.0
    # ... and at most history_event_budget / 4 times over a session's expected span (a signal
    # costs ~4 history events); Temporal's hard limit is 51,200 events per workflow history.
    history_event_budget: int = 20000
    # Admission: sessions beyond these limits wait with status `queued` until running ones end.
    # max_running_runners 0: derived from the machine's memory (runner_memory_mb per runner:
    # agent ~35 MB + SIPp, over 70 % of MemTotal). max_running_sessions 0: no session limit.
    max_running_runners: int = 0
    max_running_sessions: int = 0
    runner_memory_mb: int = 50
    # A queued session asks again after admission_poll_s, growing by half each time up to
    # admission_poll_max_s (a queued hour costs ~130 asks, ~1,500 history events); a session
    # that ends wakes the admission_wake sessions queued longest to ask at once.
    admission_poll_s: float = 2.0
    admission_poll_max_s: float = 30.0
    # When a session ends, this many of the sessions queued longest ask again at once (signal).
    admission_wake: int = 4

    # -- a tenant's policy when the tenant_policy table has none for it (sipflow.tenant_policy)
    # Where sessions may send traffic: networks (CIDR) and host names ("*.example.net" for a
    # domain's names). Default: loopback, the private ranges and 198.18.0.0/15 (benchmarking).
    policy_allowed_networks: list[str] = [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
        "198.18.0.0/15",
    ]
    policy_allowed_hosts: list[str] = ["localhost"]
    # Quotas (0: unlimited). Defaults: what one machine carries.
    quota_agents: int = 128  # agents in one session, all roles
    quota_calls_per_s: float = 20000  # a session's call rate (and rate changes)
    quota_calls_per_session: int = 10_000_000
    quota_duration_s: float = 86400
    quota_concurrent_sessions: int = 16  # sessions of a tenant not yet ended

    # -- the API under load ----------------------------------------------------------------------
    # Largest request body (bytes); a larger one is refused with 413 before it is read whole.
    api_max_body_bytes: int = 4 * 1024 * 1024
    # Database connections of one API process; at most this many requests use the database at
    # once, the others wait (without holding a thread) up to api_db_wait_s, then get 503.
    db_pool_size: int = 10
    db_max_overflow: int = 5
    api_db_wait_s: float = 10.0
    # How long a request waits for a connection of the pool itself (then 503).
    db_pool_timeout_s: float = 5.0
    # /v1/health gives each check this long, then answers 503 (it never waits behind requests).
    health_timeout_s: float = 3.0
    # The API key the CLI sends (an `sfk_...` secret); not set: the one in data_dir/admin.key,
    # which `sipflow up` creates for the local user.
    api_key: SecretStr | None = None
    # How long a dashboard sign-in lasts (its cookie and its stored digest), in seconds.
    login_ttl_s: float = 12 * 3600
    # An API key's last_used_at is written at most this often (seconds), not on every request.
    key_touch_interval_s: float = 60
    # Send the dashboard's cookies only over HTTPS (set behind a TLS-terminating proxy).
    cookie_secure: bool = False

    # -- runner hosts (`sipflow runner-host`, docs/runner-hosts.md) ------------------------------
    # The pool this host joins (its API key, SIPFLOW_API_KEY, must be a runner_host key of it)
    # and its id (default: the machine's host name); its task queue is <task_queue>-host-<id>.
    runner_host_pool: str | None = None
    runner_host_id: str | None = None
    # Agents it runs at once at most (0: derived from memory as max_running_runners is) and
    # cores it reports (0: the machine's); the addresses its agents send from, as reported.
    runner_host_max_agents: int = 0
    runner_host_cores: int = 0
    runner_host_addresses: list[str] = []
    # A host heartbeats through the API every runner_host_heartbeat_s; one not heard from for
    # runner_host_stale_s is "stale" (no new work), for runner_host_dead_s "dead".
    runner_host_heartbeat_s: float = 5.0
    runner_host_stale_s: float = 20.0
    runner_host_dead_s: float = 60.0
    # The host's own /metrics (its agents, its Temporal worker) on this port of metrics_host;
    # 0: off.
    runner_host_metrics_port: int = 0

    # -- scheduled regression tests ---------------------------------------------------------------
    # An alert is tried this many times per channel, waiting alert_backoff_s, doubling up to
    # alert_max_backoff_s, before its failure is recorded on the schedule.
    alert_attempts: int = 5
    alert_backoff_s: float = 2.0
    alert_max_backoff_s: float = 60.0
    # How long one webhook POST or SMTP conversation may take (seconds).
    alert_timeout_s: float = 10.0
    # A run whose launcher starts this many seconds after its due time (workers were down) is
    # "late": recorded on the run and alerted once the workers are back.
    schedule_late_after_s: float = 60.0
    # Seconds between two runs of a schedule at least (intervals shorter than this: 422).
    schedule_min_interval_s: float = 60.0

    # -- Prometheus metrics (docs/metrics.md) ------------------------------------------------
    # The worker serves /metrics (sipflow's series and the Temporal SDK's) on this port of
    # metrics_host; 0: off (`sipflow up` turns it on at a free port). No tenant data is in the
    # worker's series and the endpoint takes no credential: keep it on a private address.
    worker_metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # The bearer token of the API's /metrics (its series span all tenants: no API key opens
    # it). Not set: a random token kept in data_dir/secrets/metrics.token (Prometheus reads it
    # with `credentials_file`).
    metrics_token: SecretStr | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sipflow.db').resolve()}"

    @property
    def admin_key_file(self) -> Path:
        return (self.data_dir / "admin.key").resolve()

    @property
    def runs_dir(self) -> Path:
        return (self.data_dir / "runs").resolve()

    @property
    def container_mqtt(self) -> tuple[str, int]:
        """The broker as runner containers see it."""
        return (
            self.docker_mqtt_host or self.docker_host_alias,
            self.docker_mqtt_port or self.mqtt_port,
        )

    @property
    def container_api_url(self) -> str:
        """The API as runner containers see it."""
        return (self.docker_api_url or f"http://{self.docker_host_alias}:{self.api_port}").rstrip(
            "/"
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
