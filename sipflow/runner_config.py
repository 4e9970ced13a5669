"""What a runner agent is told to do: one file per runner, written by the start-runner activity."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from sipflow.messages import Role


class AccountConfig(BaseModel):
    user: str
    password: str | None = None
    domain: str | None = None


class RegistrarConfig(BaseModel):
    host: str
    port: int
    domain: str
    expires_s: int = 3600


DTMF_MIN_MS, DTMF_MAX_MS = 50, 2000  # the tone lengths SIPp's play_dtmf accepts
DTMF_LEAD_MS = 400  # play_dtmf's stream-opening no-op packets before the first digit
# The log line that gives a call script's expect_dtmf / expect audio its moment (SIPp's
# [timestamp]: date, time, epoch seconds.microseconds), written by sipflow/call_script.py and
# read by runners/media_moments.py. A line of its own: an older runner ignores it (and judges the
# step over the whole call), and an older XML without it runs on a newer runner alike.
EXPECT_AT_LOG = "sipflow-expect-at"


def dtmf_play_ms(digits: str, duration_ms: int) -> int:
    """How long SIPp plays `digits`: the lead, then per digit its tone and a gap as long."""
    return DTMF_LEAD_MS + 2 * duration_ms * (len(digits) + 1)


class DtmfConfig(BaseModel):
    """DTMF (RFC 4733 events) each call of a built-in call/answer scenario sends once it is
    answered (runners/media_dtmf.py)."""

    digits: str
    duration_ms: int = 100


class MediaConfig(BaseModel):
    """Audio in the calls of a built-in scenario (runners/media_*.py): SIPp streams the reference
    audio from its media socket (media_port); the runner's RTP receiver on rtp_port, named in its
    SDP, analyses what arrives (a share of the streams: sample_pct)."""

    codec: Literal["PCMU", "PCMA"] = "PCMU"
    analyse: bool = True
    # emodel: loss/jitter -> MOS-CQE for every analysed stream; pesq: also PESQ (if installed)
    # for the first MediaConfig.pesq_streams streams of each runner.
    # visqol: ViSQOL speech MOS-LQO (and PESQ, if installed) for the first visqol_streams streams.
    mos: Literal["emodel", "pesq", "visqol"] = "emodel"
    pesq_streams: int = Field(default=50, ge=0, le=10_000)
    visqol_streams: int = Field(default=5, ge=0, le=1000)
    sample_pct: float = Field(default=100.0, gt=0, le=100)
    media_port: int = 6000
    rtp_port: int = 7000  # not media_port + 2: SIPp binds that one for video
    # The SUT relays the media (rtpengine): streams are tied to calls by the SDP of the relayed
    # leg (each runner logs the address its peer's SDP names: the relay sends from it).
    relay: bool = False
    # Uploaded reference audio (sipflow/media_upload.py), base64; None: the built-in audio.
    audio_format: Literal["wav", "ulaw", "alaw"] | None = None
    audio_data: str | None = Field(default=None, repr=False)
    dtmf: DtmfConfig | None = None


class MessageConfig(BaseModel):
    """A caller's call options as SIPp scenario text (sipflow/call_options.py renders them):
    runners/call_options.py writes them into the INVITEs (and From/To into the whole dialog)."""

    headers: list[str] = []  # "Name: value" lines
    from_uri: str | None = None
    to_uri: str | None = None
    request_uri: str | None = None


class RunnerConfig(BaseModel):
    session_id: str
    runner_id: str
    role: Role
    # The named party (roles.parties) this callee-side runner runs, if it runs one: its media
    # is the transferred leg's (runners/media_transfer.py).
    party: str | None = None
    # Built-in scenario name (options, register, call, answer) or "custom" with scenario_xml.
    scenario: str
    scenario_xml: str | None = None
    transport: Literal["udp", "tcp"] = "udp"
    local_ip: str
    local_port: int = 5060
    # SIPp's UDP control socket (rate changes); bound on control_ip, else local_ip. SIPp binds
    # it over IPv4 only: a runner on an IPv6 local_ip gets an IPv4 control_ip of its own.
    control_port: int = 8888
    control_ip: str | None = None
    # host:port that requests go to: the system under test, or a callee runner.
    remote: str | None = None
    # Accounts this runner uses: a callee registers and answers as accounts[0]; a caller places
    # calls from these accounts, round robin.
    accounts: list[AccountConfig] = []
    # Where a caller sends its requests when not to `remote` (SIPp -rsa host:port).
    outbound_proxy: str | None = None
    # Headers and From/To/Request-URI of a caller's calls (built-in call scenario).
    messages: MessageConfig | None = None
    # Users a caller calls, round robin (callee accounts).
    call_to: list[str] = []
    # Users of the named party a caller's flow refers to (a transfer target), round robin like
    # call_to, independently: injection [field7] (sipflow/flow_xml.py PARTY_USER).
    party_to: list[str] = []
    # Domain used in request URIs when calling through a system under test.
    domain: str | None = None
    registrar: RegistrarConfig | None = None
    rate: float | None = None  # calls/s
    max_calls: int | None = None
    duration_s: float | None = None
    max_concurrent: int | None = None
    hold_ms: int = 0
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # The runner's own broker credential (backends/broker_auth.py): it may publish only to its
    # own topics and subscribe only to its session's control topic.
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    work_dir: Path
    stats_interval_s: int = 1
    buff_size: int = 4194304
    # Watchdog: SIPp is stopped (SIGUSR1, then SIGKILL) if it runs longer than this.
    max_runtime_s: float = 3600.0
    # Dead man's switch: the agent stops its traffic by itself (and reports `failed` with why)
    # once deadline_s passed since it started (the session's expected duration + a margin), or
    # once it heard no control message (the worker's keepalives included) for silence_s, so that
    # no failure of the control plane leaves traffic running at a SUT. None: off.
    deadline_s: float | None = None
    silence_s: float | None = None
    # The agent's on-disk spool (runners/spool.py, work_dir/spool): every stats interval and
    # the done message stay there until the broker acknowledged them, at most
    # spool_max_messages (beyond it messages are held in memory only); once SIPp finished the
    # agent waits up to spool_linger_s for the spool to empty before it exits.
    spool_max_messages: int = Field(default=20000, ge=1)
    spool_linger_s: float = Field(default=300.0, ge=0)
    # A caller started beside its callees (so its start-up overlaps theirs) reports `ready` and
    # places no call until a `go` control message (or ends on stop / after max_runtime_s).
    wait_for_go: bool = False
    # The agent waits a random time up to this (uniform) before it registers or starts SIPp:
    # parties of a session start out of step, which the session's barriers (callees ready,
    # then `go` on the control topic) must absorb (tests; SIPFLOW_RUNNER_START_JITTER_MS).
    start_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    # A callee's registration, like a phone's: a REGISTER that gets a 5xx, a 408 or no answer is
    # tried again, up to register_attempts tries in all, waiting register_backoff_s before the
    # second try and register_backoff_factor times longer before each further one. One try gives
    # up after register_timeout_s without a final answer. The registration is refreshed at
    # register_refresh_at of the granted expiry and removed (Expires: 0) when the callee stops,
    # within unregister_timeout_s.
    register_attempts: int = Field(default=3, ge=1, le=20)
    register_backoff_s: float = Field(default=1.0, ge=0, le=600)
    register_backoff_factor: float = Field(default=2.0, ge=1, le=10)
    register_timeout_s: float = Field(default=10.0, gt=0, le=120)
    register_refresh_at: float = Field(default=0.8, gt=0, lt=1)
    unregister_timeout_s: float = Field(default=8.0, gt=0, le=120)
    # Audio in the calls (built-in call/answer scenarios only); None: signalling only.
    media: MediaConfig | None = None
