"""The SIPp command line for a runner configuration (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runners.injection import Phase
from runners.media_session import sipp_args as media_args
from sipflow.addresses import host_port
from sipflow.runner_config import RunnerConfig

# rtd samples are written one line per call (-rtt_freq 1), so every sample reaches the histogram.
RTT_FREQ = 1
# A caller's call that never gets its final response must end some time (TCP has no
# retransmission timeout): SIPp's global receive timeout, for callers only (a callee cannot know
# how long the caller holds a call before its BYE).
CALLER_RECV_TIMEOUT_MS = 32000


@dataclass(frozen=True)
class SippFiles:
    scenario: Path
    injection: Path | None
    stat: Path
    errors: Path
    log: Path | None = None  # the scenario's <log> actions (-trace_logs)
    # -trace_counts: the per-message counters the step results come from (scenario_steps.py)
    counts: bool = False


@dataclass(frozen=True)
class RegisterRun:
    """One REGISTER try of a callee: the expiry it asks for (0 removes the binding), how long it
    waits for a final answer, and the ports it binds when the runner's own are taken (a refresh
    while the main SIPp runs); the Contact stays the runner's own SIP address."""

    expires_s: int
    timeout_ms: int = CALLER_RECV_TIMEOUT_MS
    local_port: int | None = None
    control_port: int | None = None
    # The registration's Call-ID (the same for all its REGISTERs) and the CSeq of this try's
    # first REGISTER (a digest retry sends the next one).
    call_id: str | None = None
    cseq: int | None = None


def call_id_format(session_id: str) -> str:
    """SIPp's -cid_str for a session's calls: `<call number>-<pid>@<session>.<address>`."""
    return f"%u-%p@{session_id.replace('%', '%%')}.%s"


def _fmt_rate(rate: float) -> str:
    return f"{rate:g}"


def rtt_file(scenario: Path, pid: int) -> Path:
    """SIPp names the -trace_rtt file itself: <scenario stem>_<pid>_rtt.csv beside the scenario
    (run SIPp with the scenario in its working directory)."""
    return scenario.with_name(f"{scenario.stem}_{pid}_rtt.csv")


def build_command(
    cfg: RunnerConfig,
    phase: Phase,
    files: SippFiles,
    sipp_bin: str = "sipp",
    register: RegisterRun | None = None,
) -> list[str]:
    """register: the REGISTER try of the register phase (default: the registrar's expiry, the
    runner's ports)."""
    if phase != "register":
        register = None
    elif register is None:
        expires = cfg.registrar.expires_s if cfg.registrar else 3600
        register = RegisterRun(expires_s=expires)
    local_port = (register.local_port if register else None) or cfg.local_port
    control_port = (register.control_port if register else None) or cfg.control_port
    argv: list[str] = [sipp_bin]
    if phase == "register":
        if cfg.registrar is None:
            raise ValueError("register phase needs a registrar")
        argv.append(host_port(cfg.registrar.host, cfg.registrar.port))
    elif cfg.role == "caller":
        if not cfg.remote:
            raise ValueError("a caller needs `remote`")
        argv.append(cfg.remote)
        if cfg.outbound_proxy:  # sent there; the Request-URI still names the target
            argv += ["-rsa", cfg.outbound_proxy]
    argv += ["-sf", str(files.scenario), "-nostdin"]
    argv += ["-t", "u1" if cfg.transport == "udp" else "t1"]
    argv += ["-i", cfg.local_ip, "-p", str(local_port)]
    # Without -ci SIPp binds the control socket on 0.0.0.0; an explicit -cp that is taken is fatal.
    argv += ["-ci", cfg.control_ip or cfg.local_ip, "-cp", str(control_port)]
    argv += ["-buff_size", str(cfg.buff_size)]
    argv += ["-trace_stat", "-stf", str(files.stat), "-fd", str(cfg.stats_interval_s)]
    argv += ["-trace_rtt", "-rtt_freq", str(RTT_FREQ)]
    argv += ["-trace_err", "-error_file", str(files.errors)]
    if files.injection is not None:
        argv += ["-inf", str(files.injection)]
    if files.log is not None:
        argv += ["-trace_logs", "-log_file", str(files.log)]
    if files.counts:
        argv += ["-trace_counts"]
    if register is not None:
        argv += ["-key", "expires", str(register.expires_s)]
        argv += ["-m", "1", "-recv_timeout", str(register.timeout_ms)]
        if register.call_id is not None:
            argv += ["-cid_str", register.call_id.replace("%", "%%")]
        if register.cseq is not None:
            argv += ["-base_cseq", str(register.cseq)]
        return argv
    # Call-IDs unique across sessions: SIPp's default `%u-%p@%s` (call number, pid, address)
    # repeats from one session to the next in containers (the same pid in every container, the
    # session network's addresses reused), and a SUT takes the repeated Call-ID and branch for a
    # retransmission of the last session's call. The host part keeps the default's shape.
    argv += ["-cid_str", call_id_format(cfg.session_id)]
    if cfg.scenario == "register":
        expires = cfg.registrar.expires_s if cfg.registrar else 3600
        argv += ["-key", "expires", str(expires)]
    if cfg.role == "caller":
        if cfg.rate is not None:
            argv += ["-r", _fmt_rate(cfg.rate)]
        if cfg.max_calls is not None:
            argv += ["-m", str(cfg.max_calls)]
        argv += ["-recv_timeout", str(CALLER_RECV_TIMEOUT_MS)]
    if cfg.max_concurrent is not None:
        argv += ["-l", str(cfg.max_concurrent)]
    argv += ["-d", str(cfg.hold_ms)]
    argv += media_args(cfg)  # -mi/-mp when the calls carry audio
    return argv
