"""A callee's registration, kept the way a phone keeps it.

- REGISTER is tried again when the registrar answers 5xx or 408, when no final answer comes
  (timeout) or SIPp could not send (transport error, which RFC 3261 8.1.3.1 treats as a 503):
  up to `register_attempts` tries, waiting `register_backoff_s`, then `register_backoff_factor`
  times longer before each further try. Any other answer (401 after the digest retry, 403,
  404, ...) is final.
- The binding is refreshed at `register_refresh_at` (0.8) of the expiry the registrar granted
  (the Contact's `expires` in the 200, else its Expires header, else what was asked), at least
  REFRESH_MARGIN_S before it runs out, counted from the start of the try that registered, by a
  thread beside the main SIPp. A refresh that gives up is tried again later, after a backoff.
- When the callee stops, an `Expires: 0` REGISTER removes the binding, within
  `unregister_timeout_s`.
- A 423 Interval Too Brief is tried again at once with the registrar's Min-Expires (RFC 3261
  10.2.8); a 5xx (503 above all) with a Retry-After waits that long (at most MAX_RETRY_AFTER_S)
  instead of the backoff, when it is longer.
- Every REGISTER of one registration (first try, retries, refreshes, removal) carries the same
  Call-ID and a CSeq one higher than the last one sent (RFC 3261 10.2), so a registrar sees one
  UA's bindings, in order.

Each try is one SIPp run of register.xml (-m 1). The first registration binds the runner's own
SIP and control ports (nothing else holds them yet); refreshes and the removal bind free ports
of the runner's address, since the main SIPp holds its own: the Contact stays the main SIPp's
address, so the registrar keeps sending INVITEs there. Every try is counted
(`RegistrationCounts`, sent in the runner's done message) and its failure reason kept as
`REGISTER: <reason>` for the done message's failure_reasons.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from runners import injection, scenario_files
from runners.sipp_command import RegisterRun, SippFiles, build_command, rtt_file
from runners.sipp_errors import parse_error_file
from runners.sipp_process import SippProcess
from runners.sipp_stats import parse_stat_text
from sipflow.addresses import host_port
from sipflow.messages import RegistrationCounts
from sipflow.runner_config import RunnerConfig

log = logging.getLogger("runners.registration")

Kind = Literal["register", "refresh", "unregister"]
NOUN: dict[Kind, str] = {
    "register": "registration",
    "refresh": "refresh",
    "unregister": "unregistration",
}
POLL_S = 0.05
KILL_MARGIN_S = 5.0  # SIPp still running this long after its receive timeout: SIGKILL
MIN_REFRESH_S = 1.0
# A refresh starts at least this long before the binding runs out: registrars count expiry in
# whole seconds (Kamailio: a binding granted 4 s at x.9 s is gone at x+4, 3.1 s later) and a
# try takes a SIPp start and a digest round trip.
REFRESH_MARGIN_S = 2.0
_TIMEOUTS = ("receive timeout", "UDP retransmission timeout", "send timeout")
MAX_RETRY_AFTER_S = 300.0
# Each try sends up to two REGISTERs (the second with credentials after a 401/407).
CSEQ_PER_TRY = 2
_MIN_EXPIRES = re.compile(r"^Min-Expires:\s*(\d+)", re.M | re.I)
_RETRY_AFTER = re.compile(r"^Retry-After:\s*(\d+)", re.M | re.I)
_STATUS = re.compile(r"^REGISTER: (?P<status>(?P<code>\d{3})\b.*)$")


@dataclass(frozen=True)
class Attempt:
    """The outcome of one REGISTER try."""

    ok: bool
    reason: str | None = None  # why it failed: "500 Server Error", "timeout", ...
    retryable: bool = False
    exit_code: int | None = None
    granted_s: int | None = None  # the expiry the registrar granted (on success)
    min_expires_s: int | None = None  # a 423's Min-Expires
    retry_after_s: float | None = None  # a 5xx's Retry-After


def classify(
    exit_code: int | None, successes: int, reasons: dict[str, int], aborted: bool = False
) -> Attempt:
    """One try's outcome from SIPp's exit code, its successful calls and its error-file reasons
    (runners.sipp_errors: `REGISTER: 500 Server Error`, `receive timeout`, ...)."""
    if exit_code == 0 and successes >= 1:
        return Attempt(True, exit_code=exit_code)
    if aborted:
        return Attempt(False, "stopped", retryable=False, exit_code=exit_code)
    for key in reasons:
        m = _STATUS.match(key)
        if m:
            code = int(m.group("code"))
            retry = code == 408 or 500 <= code <= 599
            return Attempt(False, m.group("status"), retryable=retry, exit_code=exit_code)
    if any(k in _TIMEOUTS for k in reasons):
        return Attempt(False, "timeout", retryable=True, exit_code=exit_code)
    if reasons:
        return Attempt(False, sorted(reasons)[0], retryable=True, exit_code=exit_code)
    if exit_code == 0:
        return Attempt(False, "registration did not complete", exit_code=exit_code)
    return Attempt(False, f"SIPp exit code {exit_code}", retryable=True, exit_code=exit_code)


_LOGGED = re.compile(r"registered contacts=(?P<contacts>.*?) expires=(?P<expires>\S*)\s*$", re.M)
_CONTACT = re.compile(r"<(?P<uri>[^>]*)>(?P<params>[^,]*)")
_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*(\d+)", re.I)


def granted_expires(log_text: str, contact: str) -> int | None:
    """The expiry the registrar granted the binding of `contact` (host:port), from what
    register.xml logged of the 200: the Contact's expires parameter, else the Expires header."""
    found: int | None = None
    for m in _LOGGED.finditer(log_text):
        found = None
        for c in _CONTACT.finditer(m.group("contacts")):
            host_port = c.group("uri").split("@", 1)[-1].split(";", 1)[0]
            param = _EXPIRES_PARAM.search(c.group("params"))
            if host_port == contact and param:
                found = int(param.group(1))
        if found is None and m.group("expires").isdigit():
            found = int(m.group("expires"))
    return found


def answer_hints(attempt: Attempt, error_text: str) -> Attempt:
    """A failed try's Min-Expires (423) and Retry-After (5xx) from the answer SIPp quoted in its
    error file. A 423 without a Min-Expires is final: nothing says what to ask for."""
    if attempt.ok or attempt.reason is None:
        return attempt
    code = attempt.reason[:3]
    if code == "423":
        m = _MIN_EXPIRES.search(error_text)
        minimum = int(m.group(1)) if m else None
        return replace(attempt, min_expires_s=minimum, retryable=minimum is not None)
    if code.startswith("5"):
        m = _RETRY_AFTER.search(error_text)
        if m:
            return replace(attempt, retry_after_s=min(float(m.group(1)), MAX_RETRY_AFTER_S))
    return attempt


def backoff_s(cfg: RunnerConfig, tries_done: int) -> float:
    """The wait after `tries_done` failed tries (1: before the second try)."""
    return cfg.register_backoff_s * cfg.register_backoff_factor ** max(tries_done - 1, 0)


def free_port(ip: str, kind: int) -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, kind) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


RunOnce = Callable[[Kind, RegisterRun, threading.Event], Attempt]


class SippRegister:
    """Runs one REGISTER try: SIPp with register.xml, -m 1, in the runner's work directory."""

    def __init__(self, cfg: RunnerConfig, sipp_bin: str = "sipp") -> None:
        self.cfg = cfg
        self.sipp_bin = sipp_bin
        self._injection: Path | None = None
        self._lock = threading.Lock()  # one SIPp register run at a time

    def __call__(self, kind: Kind, run: RegisterRun, abort: threading.Event) -> Attempt:
        with self._lock:
            return self._run(kind, run, abort)

    def _run(self, kind: Kind, run: RegisterRun, abort: threading.Event) -> Attempt:
        cfg, work = self.cfg, self.cfg.work_dir
        scenario = scenario_files.prepare(cfg, "register", work)
        if self._injection is None:
            rows = injection.injection_rows(cfg, "register")
            self._injection = injection.write_injection(work / "register-injection.csv", rows)
        files = SippFiles(
            scenario=scenario,
            injection=self._injection,
            # Not published: no "stat" in the names, so nothing takes these for the main run's.
            stat=work / f"{kind}-counts.csv",
            errors=work / f"{kind}-errors.log",
            log=work / f"{kind}-messages.log",
        )
        for stale in (files.stat, files.errors, files.log):
            if stale is not None:
                stale.unlink(missing_ok=True)
        argv = build_command(cfg, "register", files, self.sipp_bin, register=run)
        proc = SippProcess(argv, work, work / f"{kind}-sipp.out")
        pid = proc.start()
        deadline = time.monotonic() + run.timeout_ms / 1000.0 + KILL_MARGIN_S
        aborted = False
        try:
            while proc.poll() is None:
                if abort.is_set() and not aborted:
                    # SIGUSR1 lets the REGISTER transaction end; SIGKILL a second later.
                    aborted = True
                    proc.request_stop()
                    deadline = min(deadline, time.monotonic() + 1.0)
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait(5)
                    break
                time.sleep(POLL_S)
        except BaseException:
            proc.kill()
            raise
        rtt_file(scenario, pid).unlink(missing_ok=True)  # register runs publish no samples
        stats = parse_stat_text(files.stat.read_text()) if files.stat.exists() else []
        successes = stats[-1].cumulative.successful_calls if stats else 0
        reasons = parse_error_file(files.errors)
        attempt = classify(proc.returncode, successes, reasons, aborted)
        if not attempt.ok and files.errors.exists():
            attempt = answer_hints(attempt, files.errors.read_text(errors="replace")[:65536])
        if attempt.ok and files.log is not None and files.log.exists():
            contact = host_port(cfg.local_ip, cfg.local_port)
            granted = granted_expires(files.log.read_text(errors="replace"), contact)
            attempt = Attempt(True, exit_code=attempt.exit_code, granted_s=granted)
        return attempt


class Registration:
    """Counts every try, retries with backoff, refreshes in a thread, unregisters at the end."""

    def __init__(
        self,
        cfg: RunnerConfig,
        run_once: RunOnce,
        on_retry: Callable[[Kind, int, Attempt], None] | None = None,
    ) -> None:
        if cfg.registrar is None:
            raise ValueError("a registration needs a registrar")
        self.cfg = cfg
        self.requested_s = cfg.registrar.expires_s
        self.run_once = run_once
        self.on_retry = on_retry
        self.counts = RegistrationCounts()
        self.failure_reasons: Counter[str] = Counter()
        self.last_exit_code: int | None = None
        self.registered_once = False
        self._lock = threading.Lock()
        self._stop_refresh = threading.Event()
        self._refresher: threading.Thread | None = None
        self._registered_at = 0.0  # time.monotonic() when the last successful try started
        # One Call-ID for every REGISTER of this registration, and the next CSeq.
        self.call_id = f"{uuid.uuid4().hex}@{cfg.local_ip}"
        self.next_cseq = 1

    # -- one registration with its retries ---------------------------------------------------
    def _ports(self, kind: Kind) -> tuple[int | None, int | None]:
        if kind == "register":
            return None, None  # the runner's own: the main SIPp does not run yet
        sip_kind = socket.SOCK_DGRAM if self.cfg.transport == "udp" else socket.SOCK_STREAM
        control_ip = self.cfg.control_ip or self.cfg.local_ip
        return free_port(self.cfg.local_ip, sip_kind), free_port(control_ip, socket.SOCK_DGRAM)

    def _count(self, kind: Kind, attempt: Attempt) -> None:
        with self._lock:
            c = self.counts
            c.attempts += 1
            if kind == "register":
                c.attempts_to_register += 1
            self.last_exit_code = attempt.exit_code
            if attempt.ok:
                c.successes += 1
                if kind == "refresh":
                    c.refreshes += 1
                if kind == "unregister":
                    c.unregistered = True
                elif attempt.granted_s is not None:
                    c.expires_s = attempt.granted_s
            elif attempt.reason != "stopped":
                reason = attempt.reason or "unknown"
                c.failures[reason] = c.failures.get(reason, 0) + 1
                self.failure_reasons[f"REGISTER: {reason}"] += 1

    def attempt(
        self,
        kind: Kind,
        abort: threading.Event,
        deadline: float | None = None,
    ) -> Attempt:
        """Tries `kind` until it succeeds, fails for good, `abort` is set or the tries (or the
        time until `deadline`, a time.monotonic value) run out."""
        cfg = self.cfg
        expires = 0 if kind == "unregister" else self.requested_s
        last = Attempt(False, "not tried")
        tries = 0
        while tries < cfg.register_attempts:
            timeout_s = cfg.register_timeout_s
            if deadline is not None:
                timeout_s = min(timeout_s, deadline - time.monotonic())
                if timeout_s < 0.2:
                    break
            local_port, control_port = self._ports(kind)
            with self._lock:
                cseq = self.next_cseq
                self.next_cseq += CSEQ_PER_TRY
            run = RegisterRun(
                expires_s=expires,
                timeout_ms=max(int(timeout_s * 1000), 1),
                local_port=local_port,
                control_port=control_port,
                call_id=self.call_id,
                cseq=cseq,
            )
            started = time.monotonic()
            last = self.run_once(kind, run, abort)
            tries += 1
            self._count(kind, last)
            log.info("%s try %d: %s", kind, tries, "ok" if last.ok else last.reason)
            if last.ok or not last.retryable or abort.is_set():
                break
            if tries >= cfg.register_attempts:
                break
            wait = backoff_s(cfg, tries)
            if last.min_expires_s is not None and kind != "unregister":
                # Asked too short an expiry: ask for the registrar's minimum, at once.
                self.requested_s = expires = max(last.min_expires_s, expires)
                wait = 0.0
            elif last.retry_after_s is not None:
                wait = max(wait, last.retry_after_s)
            if deadline is not None and time.monotonic() + wait > deadline:
                break
            if self.on_retry is not None:
                self.on_retry(kind, tries, last)
            if abort.wait(wait):
                break
        if not last.ok and last.reason != "stopped":
            plural = "s" if tries != 1 else ""
            error = f"{NOUN[kind]} failed after {tries} attempt{plural}: {last.reason}"
            with self._lock:
                self.counts.error = error
                if kind == "unregister":
                    self.counts.unregistered = False
            log.warning(error)
        if last.ok and kind != "unregister":
            self.registered_once = True
            self._registered_at = started  # the binding's expiry counts from about here
        return last

    # -- refresh beside the main SIPp ----------------------------------------------------------
    def refresh_interval_s(self) -> float:
        """From the start of the try that registered to the start of the refresh."""
        granted = self.counts.expires_s or self.requested_s
        at = min(granted * self.cfg.register_refresh_at, granted - REFRESH_MARGIN_S)
        return max(MIN_REFRESH_S, at)

    def start_refresher(self, stop: threading.Event) -> None:
        """Refreshes until stop_refresher() (or `stop`, the agent's stop, is set)."""
        self._refresher = threading.Thread(
            target=self._refresh_loop, args=(stop,), name="register-refresh", daemon=True
        )
        self._refresher.start()

    def _refresh_loop(self, stop: threading.Event) -> None:
        wait = self._until_refresh()
        failed_rounds = 0
        while not (self._stop_refresh.wait(wait) or stop.is_set()):
            result = self.attempt("refresh", self._stop_refresh)
            if self._stop_refresh.is_set():
                return
            if result.ok:
                failed_rounds = 0
                wait = self._until_refresh()
            else:
                # The binding may be gone: try again sooner than a refresh, backing off.
                failed_rounds += 1
                tries = self.cfg.register_attempts * failed_rounds
                wait = min(backoff_s(self.cfg, tries), self.refresh_interval_s())
                wait = max(MIN_REFRESH_S, wait)

    def _until_refresh(self) -> float:
        return max(0.0, self._registered_at + self.refresh_interval_s() - time.monotonic())

    def stop_refresher(self, timeout: float = 30.0) -> None:
        self._stop_refresh.set()
        if self._refresher is not None:
            self._refresher.join(timeout)

    def unregister(self) -> Attempt:
        """Expires: 0, within unregister_timeout_s; never aborted by the agent's stop."""
        deadline = time.monotonic() + self.cfg.unregister_timeout_s
        return self.attempt("unregister", threading.Event(), deadline)

    # -- what the done message says -------------------------------------------------------------
    def snapshot(self) -> RegistrationCounts:
        with self._lock:
            return self.counts.model_copy(deep=True)

    def reasons(self) -> dict[str, int]:
        with self._lock:
            return dict(self.failure_reasons)
