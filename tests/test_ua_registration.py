"""The registration's rules without SIPp: which answers are tried again, how long it waits,
what it counts, which expiry it refreshes by, and the command line of one try."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from runners.injection import injection_rows, rows_for
from runners.registration import Attempt, Kind, Registration, backoff_s, classify, granted_expires
from runners.sipp_command import RegisterRun, SippFiles, build_command
from sipflow.plan import runner_configs
from sipflow.runner_config import RunnerConfig
from sipflow.spec import SessionSpec


def _cfg(**kw: object) -> RunnerConfig:
    base: dict[str, object] = {
        "session_id": "s",
        "runner_id": "callee-0",
        "role": "callee",
        "scenario": "answer",
        "local_ip": "127.201.0.10",
        "local_port": 5070,
        "accounts": [{"user": "bob", "password": "secret"}],
        "registrar": {"host": "127.0.0.1", "port": 5090, "domain": "sip.test", "expires_s": 60},
        "work_dir": Path("/w"),
        "register_backoff_s": 0.05,
        "register_backoff_factor": 2.0,
    }
    base.update(kw)
    return RunnerConfig.model_validate(base)


def test_classify_retries_5xx_408_and_timeouts_only() -> None:
    assert classify(0, 1, {}).ok
    server = classify(1, 0, {"REGISTER: 503 Service Unavailable": 1})
    assert (server.ok, server.reason, server.retryable) == (False, "503 Service Unavailable", True)
    assert classify(1, 0, {"REGISTER: 408 Request Timeout": 1}).retryable
    assert classify(1, 0, {"receive timeout": 1}) == Attempt(False, "timeout", True, 1)
    assert classify(1, 0, {"UDP retransmission timeout": 1}).reason == "timeout"
    for final in ("401 Unauthorized", "403 Forbidden", "404 Not Found", "423 Interval Too Brief"):
        attempt = classify(1, 0, {f"REGISTER: {final}": 1})
        assert attempt.reason == final and not attempt.retryable, final
    # SIPp could not send at all: a transport error, tried again (RFC 3261 8.1.3.1).
    assert classify(255, 0, {}).retryable
    assert not classify(1, 0, {"REGISTER: 500 Server Error": 1}, aborted=True).retryable


def test_granted_expiry_of_our_contact() -> None:
    logged = (
        "registered contacts= <sip:bob@127.201.0.10:5080;transport=UDP>;expires=6, "
        "<sip:bob@127.201.0.10:5070;transport=UDP>;expires=45 expires=\n"
    )
    assert granted_expires(logged, "127.201.0.10:5070") == 45
    assert granted_expires(logged, "127.201.0.11:5070") is None
    assert granted_expires("registered contacts= expires=120\n", "127.201.0.10:5070") == 120
    assert granted_expires("", "127.201.0.10:5070") is None


def test_backoff_grows() -> None:
    cfg = _cfg(register_backoff_s=1.0, register_backoff_factor=3.0)
    assert [backoff_s(cfg, n) for n in (1, 2, 3)] == [1.0, 3.0, 9.0]


class Script:
    """A fake try: answers from a list, records when it ran and with what."""

    def __init__(self, *answers: Attempt) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[Kind, RegisterRun, float]] = []

    def __call__(self, kind: Kind, run: RegisterRun, abort: threading.Event) -> Attempt:
        self.calls.append((kind, run, time.monotonic()))
        return self.answers.pop(0)


def test_retries_with_backoff_and_counts() -> None:
    script = Script(
        Attempt(False, "500 Server Error", True, 1),
        Attempt(False, "timeout", True, 1),
        Attempt(True, exit_code=0, granted_s=30),
    )
    retries: list[tuple[str, int, str | None]] = []
    reg = Registration(_cfg(), script, on_retry=lambda k, n, a: retries.append((k, n, a.reason)))
    assert reg.attempt("register", threading.Event()).ok
    times = [t for _, _, t in script.calls]
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1  # 0.05 s, then x2
    assert retries == [("register", 1, "500 Server Error"), ("register", 2, "timeout")]
    c = reg.snapshot()
    assert (c.attempts, c.successes, c.attempts_to_register, c.expires_s) == (3, 1, 3, 30)
    assert c.failures == {"500 Server Error": 1, "timeout": 1} and c.error is None
    assert reg.reasons() == {"REGISTER: 500 Server Error": 1, "REGISTER: timeout": 1}
    # The first registration binds the runner's own ports, with the requested expiry.
    assert all(run.local_port is None and run.expires_s == 60 for _, run, _ in script.calls)
    # Refresh at 80% of what was granted, but at least 2 s before it runs out.
    assert reg.refresh_interval_s() == pytest.approx(24.0)
    reg.counts.expires_s = 4
    assert reg.refresh_interval_s() == pytest.approx(2.0)


def test_gives_up_after_the_last_try_and_stops_at_a_final_answer() -> None:
    reg = Registration(_cfg(), Script(*[Attempt(False, "500 Server Error", True, 1)] * 3))
    last = reg.attempt("register", threading.Event())
    assert not last.ok and last.exit_code == 1
    assert reg.snapshot().error == "registration failed after 3 attempts: 500 Server Error"

    final = Script(Attempt(False, "403 Forbidden", False, 1), Attempt(True, exit_code=0))
    reg = Registration(_cfg(), final)
    assert not reg.attempt("register", threading.Event()).ok
    assert len(final.calls) == 1
    assert reg.snapshot().error == "registration failed after 1 attempt: 403 Forbidden"


def test_unregister_and_refresh_use_other_ports_and_expiry() -> None:
    script = Script(Attempt(True, exit_code=0), Attempt(True, exit_code=0))
    reg = Registration(_cfg(), script)
    assert reg.attempt("refresh", threading.Event()).ok
    assert reg.unregister().ok
    (_, refresh, _), (_, unregister, _) = script.calls
    assert refresh.expires_s == 60 and unregister.expires_s == 0
    for run in (refresh, unregister):
        assert run.local_port not in (None, 5070) and run.control_port not in (None, 8888)
    c = reg.snapshot()
    assert (c.refreshes, c.unregistered, c.attempts_to_register) == (1, True, 0)


def test_register_try_command_line() -> None:
    cfg = _cfg()
    files = SippFiles(
        Path("/w/register.xml"), Path("/w/i.csv"), Path("/w/c.csv"), Path("/w/e"), Path("/w/m.log")
    )
    run = RegisterRun(expires_s=0, timeout_ms=2500, local_port=40001, control_port=40002)
    argv = build_command(cfg, "register", files, register=run)

    def opt(name: str) -> str:
        return argv[argv.index(name) + 1]

    assert argv[1] == "127.0.0.1:5090"
    assert (opt("-p"), opt("-cp"), opt("-recv_timeout"), opt("-m")) == (
        "40001",
        "40002",
        "2500",
        "1",
    )
    assert argv[argv.index("-key") + 1 : argv.index("-key") + 3] == ["expires", "0"]
    assert "-trace_logs" in argv and opt("-log_file") == "/w/m.log"
    # The Contact stays the runner's own address: the injection's field5.
    assert rows_for(cfg, "register")[0][5] == "127.201.0.10:5070"


def test_injection_flags_accounts_with_credentials() -> None:
    cfg = _cfg(
        role="caller",
        scenario="call",
        remote="127.0.0.1:5090",
        registrar=None,
        accounts=[{"user": "alice", "password": "secret"}, {"user": "carol"}],
        call_to=["bob"],
    )
    assert [row[6] for row in injection_rows(cfg, "main")] == ["1", "0"]
    assert injection_rows(cfg, "main")[0][:6] == rows_for(cfg, "main")[0]


def test_spec_register_expires_reaches_the_callee() -> None:
    spec = SessionSpec.model_validate(
        {
            "target": {"host": "127.0.0.1", "port": 5090, "register_expires_s": 120},
            "roles": {
                "callees": {"accounts": [{"user": "bob", "password": "secret"}]},
                "callers": {"max_calls": 1},
            },
        }
    )
    (callee,) = runner_configs(
        spec,
        "s",
        "callee",
        addresses={"callee-0": "127.201.0.10"},
        peers={},
        mqtt_host="127.0.0.1",
        mqtt_port=1883,
        runs_dir=Path("/runs"),
    )
    assert callee.registrar is not None and callee.registrar.expires_s == 120
    default = SessionSpec.model_validate(
        {**spec.model_dump(exclude_none=True), "target": {"host": "127.0.0.1"}}
    )
    assert default.target is not None and default.target.register_expires_s == 3600


def test_423_and_retry_after_are_read_from_the_answer() -> None:
    from runners.registration import answer_hints

    too_brief = classify(1, 0, {"REGISTER: 423 Interval Too Brief": 1})
    hinted = answer_hints(too_brief, "received 'SIP/2.0 423 Interval Too Brief\nMin-Expires: 60\n")
    assert hinted.retryable and hinted.min_expires_s == 60
    # Without a Min-Expires nothing says what to ask for: final.
    assert not answer_hints(too_brief, "SIP/2.0 423 Interval Too Brief\n").retryable
    busy = classify(1, 0, {"REGISTER: 503 Service Unavailable": 1})
    hinted = answer_hints(busy, "SIP/2.0 503 Service Unavailable\nRetry-After: 7\n")
    assert hinted.retry_after_s == 7
    assert answer_hints(busy, "Retry-After: 99999\n").retry_after_s == 300


def test_423_asks_again_at_once_with_min_expires_and_retry_after_waits() -> None:
    script = Script(
        Attempt(False, "423 Interval Too Brief", True, 1, min_expires_s=120),
        Attempt(False, "503 Service Unavailable", True, 1, retry_after_s=0.3),
        Attempt(True, exit_code=0),
    )
    reg = Registration(_cfg(), script)
    assert reg.attempt("register", threading.Event()).ok
    (_, first, _), (_, second, t2), (_, third, t3) = script.calls
    assert (first.expires_s, second.expires_s, third.expires_s) == (60, 120, 120)
    assert t3 - t2 >= 0.3  # the Retry-After, not the 0.1 s backoff
    # One Call-ID; each try's CSeq above the last one's (and its digest retry's).
    assert first.call_id == second.call_id == third.call_id and first.call_id
    assert (first.cseq, second.cseq, third.cseq) == (1, 3, 5)
    assert reg.refresh_interval_s() == pytest.approx(96.0)  # of the 120 s now asked
