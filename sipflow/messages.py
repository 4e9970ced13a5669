"""MQTT topics and payloads exchanged between runner agents and the sipflow worker.

Every payload is JSON with a `schema` version. QoS 1 everywhere; `(session, runner, seq)` of a
stats message is unique, so a redelivered message is stored at most once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
TOPIC_ROOT = "sipflow/v1/sessions"
# How a runner's error starts when its dead man's switch stopped it: the session then fails.
SWITCH_TRIPPED = "dead man's switch"

RunnerStateName = Literal[
    "starting", "registering", "ready", "running", "stopping", "done", "failed", "lost"
]
Role = Literal["callee", "caller"]
ROLES: tuple[Role, ...] = ("callee", "caller")  # in the order a session starts them


def runner_topic(session_id: str, runner_id: str, kind: str) -> str:
    """kind is one of state, stats, done."""
    return f"{TOPIC_ROOT}/{session_id}/runners/{runner_id}/{kind}"


def session_runners_filter(session_id: str) -> str:
    return f"{TOPIC_ROOT}/{session_id}/runners/+/+"


def runner_client_id(session_id: str, runner_id: str) -> str:
    """The one MQTT client id a runner's login may connect with (a login pinned to it cannot
    take over another client's connection by reusing its id)."""
    return f"sipflow-runner-{session_id}-{runner_id}"


def control_topic(session_id: str) -> str:
    return f"{TOPIC_ROOT}/{session_id}/control"


def parse_runner_topic(topic: str) -> tuple[str, str, str] | None:
    """(session_id, runner_id, kind) of a runner topic, else None."""
    parts = topic.split("/")
    if len(parts) != 7 or "/".join(parts[:3]) != TOPIC_ROOT or parts[4] != "runners":
        return None
    return parts[3], parts[5], parts[6]


class Counters(BaseModel):
    """SIPp's call counters for one interval (periodic) or since start (cumulative)."""

    calls_created: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    retransmissions: int = 0
    # Failure causes as SIPp counts them (FailedUnexpectedMessage -> "unexpected_message", ...).
    failed_by_cause: dict[str, int] = Field(default_factory=dict)


class RunnerState(BaseModel):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    session_id: str
    runner_id: str
    state: RunnerStateName
    time: float
    detail: str | None = None

    model_config = {"populate_by_name": True}


class StatsMessage(BaseModel):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    session_id: str
    runner_id: str
    role: Role
    seq: int = Field(ge=1)
    time: float
    current_calls: int = 0
    call_rate: float = 0.0  # periodic calls created per second
    periodic: Counters
    cumulative: Counters
    # Periodic response-time counts on sipflow.histogram.BOUNDS_MS.
    histogram: list[int]
    # Periodic post-dial delays (INVITE -> first 18x) on the same bounds; [] from older agents.
    pdd_histogram: list[int] = Field(default_factory=list)
    pdd_sum_ms: float = 0.0  # their sum: the mean is exact where the buckets are coarse
    # Answered calls' durations (200 -> BYE) on sipflow.histogram.DURATION_BOUNDS_MS, and their sum.
    duration_histogram: list[int] = Field(default_factory=list)
    duration_sum_ms: float = 0.0

    model_config = {"populate_by_name": True}


class RegistrationCounts(BaseModel):
    """What a callee's REGISTERs came to: every try (one SIPp register run) is counted, the
    first registration, its refreshes and the removal at the end alike."""

    attempts: int = 0
    successes: int = 0
    # Failed tries by reason, e.g. {"500 Server Error": 1, "timeout": 2}.
    failures: dict[str, int] = Field(default_factory=dict)
    # Tries the first registration took (0: it never ran).
    attempts_to_register: int = 0
    refreshes: int = 0  # successful re-REGISTERs before expiry
    expires_s: int | None = None  # the expiry the registrar granted last
    # Expires: 0 accepted at the end; None: not tried (never registered).
    unregistered: bool | None = None
    # Why the registration failed in the end (first registration, or the last refresh or removal
    # that gave up), e.g. "registration failed after 3 attempts: 500 Server Error".
    error: str | None = None


class StepCounts(BaseModel):
    """One step of a scenario with `sipflow-step` marks (runners/scenario_steps.py), over the
    whole run: calls through it, calls failed in it (by kind: timeout, unexpected), and the
    samples of the rtd named after it (its request -> final response time)."""

    step: str
    passed: int = 0
    failed: int = 0
    failed_by: dict[str, int] = Field(default_factory=dict)
    time_count: int = 0
    time_sum_ms: float = 0.0
    time_max_ms: float = 0.0


class DoneMessage(BaseModel):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    session_id: str
    runner_id: str
    role: Role
    last_seq: int = Field(ge=0)  # stats messages 1..last_seq were published
    exit_code: int | None
    ok: bool
    summary: Counters
    # Human-readable reasons with counts, e.g. {"REGISTER: 401 Unauthorized": 1}.
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    # A callee that registers: its REGISTER tries and their outcomes.
    registration: RegistrationCounts | None = None
    # A scenario with step marks: its steps, in scenario order.
    steps: list[StepCounts] = Field(default_factory=list)

    model_config = {"populate_by_name": True}


class RatePoint(BaseModel):
    """One change of a caller runner's rate in a load profile's plan."""

    at_s: float  # since the runner's SIPp started placing calls
    rate: float  # calls/s for this runner


class ControlMessage(BaseModel):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    # rate: set callers' rate; stop: end the session's runners; go: release callers that were
    # started ahead and wait for it (RunnerConfig.wait_for_go); keepalive: the control plane is
    # there (RunnerConfig.silence_s); plan: a load profile's rate changes, which the caller
    # carries out on its own clock (a command per step through the workflow came late under
    # load).
    type: Literal["rate", "stop", "go", "keepalive", "plan"]
    rate: float | None = None  # calls/s for each caller runner of the session
    plan: list[RatePoint] | None = None

    model_config = {"populate_by_name": True}


class MediaSent(BaseModel):
    """A stream this runner sent for one call: its source (the runner's SIPp media socket) and
    SSRC, which is what the receiving runner reports it by."""

    call_id: str
    src: str  # "ip:port"
    ssrc: int
    # "party": the same stream, sent on to the named party once the call was transferred to it
    # (SIPp sends a call's one stream wherever the last SDP it received names).
    leg: Literal["party"] | None = None


class MediaStream(BaseModel):
    """One RTP stream this runner received (RFC 3550 counts), with its E-model score."""

    src: str  # "ip:port" of the sender
    ssrc: int
    payload_type: int
    received: int  # distinct packets
    expected: int  # from the sequence numbers seen (first to last)
    lost: int
    duplicates: int
    reordered: int
    jitter_ms: float
    r_factor: float
    mos: float
    pesq: float | None = None  # PESQ-NB MOS-LQO, when asked and available
    visqol: float | None = None  # ViSQOL speech MOS-LQO (mos: visqol), when available
    first_time: float
    last_time: float
    # Through a relay (MediaReport.relay): the call, from the SDP naming the stream's source.
    call_id: str | None = None
    max_gap_ms: float = 0.0  # the longest silence between two packets (hold)
    after_gap_ms: float = 0.0  # audio after it (first packet after the gap to the last)
    # When audio arrived: (first, last) arrival of each run of packets without a longer silence
    # than runners/media_rtp.py SPAN_GAP_S, at most MAX_SPANS (the shortest silences merged
    # first). None: an older runner (its calls' `expect audio` judged over the whole call).
    spans: list[tuple[float, float]] | None = None


class DtmfSent(BaseModel):
    """DTMF this runner sent in one call (SIPp's play_dtmf, RFC 4733 events): its stream's source
    and SSRC (runners/media_dtmf.py), which is what the receiving runner reports it by."""

    call_id: str
    src: str  # "ip:port"
    ssrc: int
    digits: str


class DtmfReceived(BaseModel):
    """The telephone-events of one stream this runner received: the digits, in order."""

    src: str
    ssrc: int
    digits: str
    packets: int = 0
    ended: int = 0  # events whose end packet arrived
    # Arrival (epoch seconds) of each digit's first packet, one per digit. None: an older runner.
    times: list[float] | None = None


class Expectation(BaseModel):
    """A call script's step SIPp cannot check (expect_dtmf, expect audio), met in one call:
    judged from the media analysis once every report is in (sipflow/media_store.py)."""

    call_id: str
    step: str  # s4_expect_dtmf
    what: str  # "dtmf 12#" | "audio"
    # The step's moment and the call's answer (epoch seconds, the runner's clock: SIPp's
    # [timestamp]). None: an XML or runner without moments (judged over the whole call).
    at: float | None = None
    answered: float | None = None


class MediaReport(BaseModel):
    """Topic kind `media`: a runner's streams, sent and received, published before its done
    message (in parts of at most MEDIA_PART_ITEMS entries each, numbered from 1)."""

    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema")
    session_id: str
    runner_id: str
    role: Role
    part: int = Field(default=1, ge=1)
    codec: str = "PCMU"
    sample_pct: float = 100.0
    sent: list[MediaSent] = Field(default_factory=list)
    received: list[MediaStream] = Field(default_factory=list)
    not_sampled: int = 0  # streams received but left out of the sample
    # The media went through a relay: sent and received streams are keyed by (Call-ID,
    # direction), the receiver naming each stream's call (MediaStream.call_id).
    relay: bool = False
    # The runner runs a named party (a transfer target): it sends the party_to_callee direction
    # and receives the transferee's stream sent on to it (MediaSent.leg "party").
    party: bool = False
    dtmf_sent: list[DtmfSent] = Field(default_factory=list)
    dtmf_received: list[DtmfReceived] = Field(default_factory=list)
    expected: list[Expectation] = Field(default_factory=list)

    model_config = {"populate_by_name": True}


MEDIA_PART_ITEMS = 500
