"""The runner agent: runs SIPp for one RunnerConfig and reports over MQTT.

    python -m runners.agent --config /path/runner.json
    python -m runners.agent --config-url URL --token-file PATH   # in a runner container

Callee: registers first when a registrar is set (SIPp register.xml, -m 1, tried again with
backoff on 5xx, 408 and timeouts: runners/registration.py), then answers (answer.xml) and says
`ready` once SIPp's SIP socket is bound; meanwhile a thread refreshes the registration before it
expires, and when the callee stops it removes it (Expires: 0) before reporting `done`. Caller:
places calls until max_calls, duration_s, a stop control message or SIGTERM/SIGINT. Either way
every new stat row is one StatsMessage, then a DoneMessage, then the final retained state, then a
clean disconnect.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from runners import injection, media_session, scenario_files, scenario_steps
from runners.image import HEARTBEAT_PATH
from runners.mqtt_link import MqttLink
from runners.rate_plan import RatePlan
from runners.registration import Attempt, Kind, Registration, SippRegister
from runners.sipp_command import SippFiles, build_command, rtt_file
from runners.sipp_errors import parse_error_file
from runners.sipp_process import SippProcess, is_listening, send_control
from runners.spool import Spool
from runners.stats_stream import StatsStream
from sipflow.messages import (
    SWITCH_TRIPPED,
    ControlMessage,
    Counters,
    DoneMessage,
    RegistrationCounts,
    RunnerState,
    RunnerStateName,
    StepCounts,
    control_topic,
    runner_client_id,
    runner_topic,
)
from sipflow.runner_config import RunnerConfig

log = logging.getLogger("runners.agent")

POLL_S = 0.2
READY_POLL_S = 0.01
STOP_GRACE_S = 10.0  # SIGUSR1 -> SIGTERM, on top of the hold time
TERM_GRACE_S = 5.0  # SIGTERM -> SIGKILL
READY_TIMEOUT_S = 10.0
# A callee told to stop first drains: it stops once a whole stats interval passed without new
# calls and with none open (its callers got the same stop), at the latest after DRAIN_MAX_S.
DRAIN_MAX_S = 30.0
CONNECT_TIMEOUT_S = 10.0
PUMP_EVERY_S = 1.0  # spooled messages paho's queue refused are offered again
HEARTBEAT_EVERY_S = 2.0
HEALTHY_WITHIN_S = 15.0


@dataclass
class RunResult:
    exit_code: int | None
    summary: Counters
    failure_reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    steps: list[StepCounts] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.summary.failed_calls == 0 and self.error is None


class Agent:
    def __init__(
        self, cfg: RunnerConfig, sipp_bin: str = "sipp", heartbeat_file: Path | None = None
    ) -> None:
        self.cfg = cfg
        self.sipp_bin = sipp_bin
        self.heartbeat_file = heartbeat_file
        self.stop_event = threading.Event()
        self.stream = StatsStream(cfg.session_id, cfg.runner_id, cfg.role)
        self.state: RunnerStateName = "starting"
        self.drain_since: float | None = None  # wall clock of a stop control, callee only
        self.registration: Registration | None = None
        self.ready_detail: str | None = None  # e.g. how many tries the registration took
        self._state_lock = threading.Lock()
        self.switch_reason: str | None = None  # why the dead man's switch stopped the agent
        self._finished = threading.Event()
        self._last_state: RunnerState | None = None
        self.link = MqttLink(
            cfg.mqtt_host,
            cfg.mqtt_port,
            client_id=runner_client_id(cfg.session_id, cfg.runner_id),
            will_topic=self._topic("state"),
            will_payload=self._state_msg("lost", "connection lost"),
            control_topic=control_topic(cfg.session_id),
            on_connected=self._republish_state,
            username=cfg.mqtt_username,
            password=cfg.mqtt_password,
            spool=Spool(cfg.work_dir / "spool", cfg.spool_max_messages),
        )
        self._next_pump = 0.0
        self.rate_plan = RatePlan()  # a load profile's rate changes (callers)

    # -- MQTT ---------------------------------------------------------------------------------
    def _topic(self, kind: str) -> str:
        return runner_topic(self.cfg.session_id, self.cfg.runner_id, kind)

    def _state_msg(self, state: RunnerStateName, detail: str | None = None) -> RunnerState:
        return RunnerState(
            session_id=self.cfg.session_id,
            runner_id=self.cfg.runner_id,
            state=state,
            time=time.time(),
            detail=detail,
        )

    def set_state(self, state: RunnerStateName, detail: str | None = None) -> None:
        log.info("state %s%s", state, f" ({detail})" if detail else "")
        with self._state_lock:
            self.state = state
            self._last_state = self._state_msg(state, detail)
            self.link.publish(self._topic("state"), self._last_state, retain=True)

    def _republish_state(self) -> None:
        """After a reconnect: the retained state may have become the Last Will meanwhile."""
        with self._state_lock:
            if self._last_state is not None:
                self.link.publish(self._topic("state"), self._last_state, retain=True)

    def _publish_stats(self, final: bool = False) -> None:
        for msg in self.stream.poll(final=final):
            self.link.publish_durable(f"stats-{msg.seq:09d}", self._topic("stats"), msg)
        now = time.monotonic()
        if now >= self._next_pump:
            self._next_pump = now + PUMP_EVERY_S
            self.link.pump()

    # -- signals and control --------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    # -- the dead man's switch -----------------------------------------------------------------
    def _switch_tripped(self, started: float) -> str | None:
        cfg, now = self.cfg, time.monotonic()
        if cfg.deadline_s is not None and now - started >= cfg.deadline_s:
            return f"{SWITCH_TRIPPED}: session deadline ({cfg.deadline_s:g}s) passed"
        if cfg.silence_s is not None and now - self.link.last_control >= cfg.silence_s:
            return f"{SWITCH_TRIPPED}: no word from the control plane for {cfg.silence_s:g}s"
        return None

    def _watch_switch(self) -> None:
        """Stops the agent, as SIGTERM would, once the switch trips (a daemon thread)."""
        started = time.monotonic()
        while not self._finished.wait(POLL_S):
            why = self._switch_tripped(started)
            if why is not None:
                log.warning("%s: stopping", why)
                self.switch_reason = why
                self.stop_event.set()
                return

    def _stop(self, proc: SippProcess, why: str) -> None:
        if proc.stop_requested_at is None:
            log.info("stopping SIPp: %s", why)
            if self.state not in ("stopping", "failed"):
                self.set_state("stopping", why)
            proc.request_stop()

    def _handle_controls(self, proc: SippProcess) -> None:
        while not self.link.controls.empty():
            ctl: ControlMessage = self.link.controls.get_nowait()
            if ctl.type == "stop" and self.cfg.role == "callee":
                if self.drain_since is None:
                    log.info("stop requested: draining")
                    self.drain_since = time.time()
            elif ctl.type == "stop":
                self._stop(proc, "stop requested")
            elif ctl.type == "rate" and ctl.rate is not None and self.cfg.role == "caller":
                self._set_rate(ctl.rate)
            elif ctl.type == "plan" and ctl.plan and self.cfg.role == "caller":
                log.info("load plan: %d rate changes", len(ctl.plan))
                self.rate_plan.load(ctl.plan)

    def _set_rate(self, rate: float) -> None:
        log.info("rate -> %g calls/s", rate)
        ip = self.cfg.control_ip or self.cfg.local_ip
        send_control(ip, self.cfg.control_port, f"cset rate {rate:g}")

    def _follow_plan(self, proc: SippProcess) -> None:
        rate = self.rate_plan.due(time.monotonic() - proc.started_at)
        if rate is not None and proc.stop_requested_at is None:
            self._set_rate(rate)

    def _wait_for_go(self) -> str | None:
        """A caller started ahead of time: ready, and no call until `go`. Returns why no call
        will be placed (a stop control, a signal, the wait's bound), None once `go` came.

        A held caller sends nothing, so it waits as long as its dead man's switch allows (the
        session's deadline; the control plane's silence ends it sooner), max_runtime_s without
        one: an overloaded worker sent `go` 70 s after `ready` (bench.concurrent_sessions), and
        a wait bounded by max_runtime_s (66 s there) ended such callers with no call."""
        self.set_state("ready", "waiting for go")
        cfg = self.cfg
        limit = cfg.deadline_s if cfg.deadline_s is not None else cfg.max_runtime_s
        deadline = time.monotonic() + limit
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                ctl: ControlMessage = self.link.controls.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if ctl.type == "go":
                return None
            if ctl.type == "stop":
                return "stopped before `go`: no call placed"
            if ctl.type == "rate" and ctl.rate is not None:  # SIPp takes it at its start
                self.cfg = self.cfg.model_copy(update={"rate": ctl.rate})
            if ctl.type == "plan" and ctl.plan:  # timed from SIPp's start
                self.rate_plan.load(ctl.plan)
        if self.stop_event.is_set():
            return self.switch_reason or "stopped before `go`: no call placed"
        return f"no `go` within {limit:g}s of ready: no call placed"

    # -- the main SIPp run (the register tries: runners/registration.py) -----------------------
    def _run_sipp(self) -> RunResult:
        cfg = self.cfg
        work = cfg.work_dir
        name = cfg.scenario
        scenario = scenario_files.prepare(cfg, name, work)
        inj = None
        if scenario_files.uses_injection(name):
            inj = injection.write_injection(
                work / "main-injection.csv", injection.injection_rows(cfg, "main")
            )
        media = media_session.start(cfg, name, scenario)  # media: None without audio
        try:
            marks = scenario_steps.steps_of(scenario.read_text())
        except Exception:  # SIPp judges the scenario; its steps are a report, never a stop
            log.exception("cannot read the scenario's step marks")
            marks = []
        files = SippFiles(
            scenario,
            inj,
            work / "main-stat.csv",
            work / "main-errors.log",
            media.log_file if media is not None else None,
            counts=bool(marks),
        )
        for stale in (files.stat, files.errors):
            stale.unlink(missing_ok=True)
        proc = SippProcess(
            build_command(cfg, "main", files, self.sipp_bin), work, work / "main-sipp.out"
        )
        pid = proc.start()
        stream = self.stream
        stream.attach(files.stat, rtt_file(scenario, pid))
        stream.step_names = frozenset(m.name for m in marks)
        try:
            error = self._supervise(proc)
        except BaseException:
            proc.kill()  # never leave SIPp behind
            raise
        self._publish_stats(final=True)
        for part in media.finish() if media is not None else []:
            self.link.publish(self._topic("media"), part)
        reasons = parse_error_file(files.errors)
        if proc.terminated_at is not None and error is None:
            open_calls = stream.last_row.current_calls if stream.last_row else 0
            how = "SIGKILL" if proc.killed else "SIGTERM"
            error = f"SIPp did not stop on SIGUSR1, stopped with {how}: {open_calls} calls open"
        steps = self._steps(marks, Path(scenario_steps.counts_file(str(scenario), pid)))
        for st in steps:  # a failed call's reason names its step
            for kind, n in st.failed_by.items():
                reasons[f"step {st.step}: {kind}"] = n
        return RunResult(proc.returncode, stream.summary, reasons, error, steps)

    def _steps(self, marks: list[scenario_steps.StepMark], counts: Path) -> list[StepCounts]:
        if not marks:
            return []
        text = counts.read_text() if counts.exists() else ""
        results = scenario_steps.step_results(marks, scenario_steps.parse_counts(text))
        times = self.stream.step_times
        return [
            StepCounts(
                step=r.step,
                passed=r.passed,
                failed=r.failed,
                failed_by=r.failed_by,
                time_count=int(times.get(r.step, [0, 0, 0])[0]),
                time_sum_ms=times.get(r.step, [0, 0, 0])[1],
                time_max_ms=times.get(r.step, [0, 0, 0])[2],
            )
            for r in results
        ]

    def _supervise(self, proc: SippProcess) -> str | None:
        cfg = self.cfg
        grace = STOP_GRACE_S + cfg.hold_ms / 1000.0
        error: str | None = None
        ready = cfg.role == "caller"
        if cfg.role == "caller":
            self.set_state("running")
        while True:
            code = proc.poll()
            elapsed = time.monotonic() - proc.started_at
            if not ready and code is None:
                if is_listening(proc.pid, cfg.local_ip, cfg.local_port, cfg.transport):
                    ready = True
                    self.set_state("ready", self.ready_detail)
                elif elapsed > READY_TIMEOUT_S:
                    error = f"SIPp not listening on {cfg.local_ip}:{cfg.local_port}"
                    self._stop(proc, error)
            self._handle_controls(proc)
            self._follow_plan(proc)
            if self.stop_event.is_set():
                self._stop(proc, self.switch_reason or "agent signalled")
            if self.drain_since is not None and self._drained():
                self._stop(proc, "stop requested")
            if cfg.role == "caller" and cfg.duration_s is not None and elapsed >= cfg.duration_s:
                self._stop(proc, "duration reached")
            if elapsed >= cfg.max_runtime_s:
                if proc.stop_requested_at is None:
                    error = f"watchdog: SIPp ran longer than {cfg.max_runtime_s:g}s"
                self._stop(proc, "watchdog")
            proc.escalate(grace, TERM_GRACE_S)
            self._publish_stats()
            if code is not None:
                log.info("SIPp %s exited with %s", proc.pid, code)
                if not ready and error is None:
                    error = f"SIPp exited ({code}) before listening"
                return error
            if self.stop_event.is_set():
                time.sleep(POLL_S)
            else:
                # Poll fast until SIPp listens: the callers wait for this callee.
                poll = POLL_S if ready else READY_POLL_S
                self.stop_event.wait(
                    self.rate_plan.wait_s(time.monotonic() - proc.started_at, poll)
                )

    def _drained(self) -> bool:
        assert self.drain_since is not None
        row = self.stream.last_row
        if time.time() - self.drain_since >= DRAIN_MAX_S:
            return True
        return (
            row is not None
            and row.current_time - self.cfg.stats_interval_s >= self.drain_since
            and row.periodic.calls_created == 0
            and row.current_calls == 0
        )

    # -- the whole life ------------------------------------------------------------
    def _done(self, result: RunResult) -> None:
        registration: RegistrationCounts | None = None
        if self.registration is not None:
            registration = self.registration.snapshot()
            # Failed REGISTER tries count even when the registration succeeded in the end.
            for reason, n in self.registration.reasons().items():
                if reason not in result.failure_reasons:  # a failed registration's own
                    result.failure_reasons[reason] = n
        done = DoneMessage(
            session_id=self.cfg.session_id,
            runner_id=self.cfg.runner_id,
            role=self.cfg.role,
            last_seq=self.stream.last_seq,
            exit_code=result.exit_code,
            ok=result.ok,
            summary=result.summary,
            failure_reasons=result.failure_reasons,
            error=result.error,
            registration=registration,
            steps=result.steps,
        )
        self.link.publish_durable("done", self._topic("done"), done)
        detail = None if result.ok else (result.error or _reasons_text(result))
        self.set_state("done" if result.ok else "failed", detail)

    def _on_register_retry(self, kind: Kind, tries: int, attempt: Attempt) -> None:
        if kind == "register":
            total = self.cfg.register_attempts
            self.set_state("registering", f"try {tries + 1} of {total} after {attempt.reason}")

    def _registration_failed(self, last: Attempt) -> RunResult:
        assert self.registration is not None
        counts = self.registration.snapshot()
        reasons = self.registration.reasons()
        # One final answer (e.g. 401 with a wrong password) speaks for itself in the reasons;
        # after retries the error says how many tries it took.
        error = counts.error if counts.attempts_to_register > 1 else None
        if last.reason == "stopped":
            error = "registration stopped"
        elif error is None and not reasons:
            error = last.reason or "registration did not complete"
        return RunResult(last.exit_code, Counters(), reasons, error)

    def _run_main(self) -> RunResult:
        """The main SIPp run; a callee's registration is refreshed meanwhile."""
        reg = self.registration
        if reg is None:
            return self._run_sipp()
        counts = reg.snapshot()
        if counts.attempts_to_register > 1:
            why = ", ".join(f"{k} x{v}" for k, v in sorted(counts.failures.items()))
            self.ready_detail = f"registered after {counts.attempts_to_register} attempts ({why})"
        reg.start_refresher(self.stop_event)
        try:
            return self._run_sipp()
        finally:
            reg.stop_refresher()

    def _unregister(self) -> None:
        """Removes the callee's binding (Expires: 0) if it registered, whatever happened since."""
        reg = self.registration
        if reg is None or not reg.registered_once:
            return
        try:
            reg.unregister()
        except Exception:  # the done message must still go out
            log.exception("unregistering failed")

    def _heartbeat(self) -> None:
        """Touch the heartbeat file while connected to the broker (the container's health)."""
        assert self.heartbeat_file is not None
        while True:  # a daemon thread: ends with the agent
            time.sleep(HEARTBEAT_EVERY_S)
            if self.link.connected.is_set():
                self.heartbeat_file.touch()

    def run(self) -> int:
        cfg = self.cfg
        if self.heartbeat_file is not None:
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        if cfg.deadline_s is not None or cfg.silence_s is not None:
            threading.Thread(target=self._watch_switch, name="switch", daemon=True).start()
        if not self.link.start(CONNECT_TIMEOUT_S):
            log.warning("MQTT broker %s:%s not reachable yet", cfg.mqtt_host, cfg.mqtt_port)
        self.set_state("starting")
        result: RunResult
        try:
            cfg.work_dir.mkdir(parents=True, exist_ok=True)
            result = RunResult(None, Counters())
            registered = True
            if cfg.start_jitter_ms:  # parties out of step (tests): the barriers absorb it
                delay_ms = random.uniform(0, cfg.start_jitter_ms)
                log.info("start delayed %.0f ms (start jitter)", delay_ms)
                self.stop_event.wait(delay_ms / 1000)
            if cfg.role == "callee" and cfg.registrar is not None:
                self.registration = Registration(
                    cfg, SippRegister(cfg, self.sipp_bin), on_retry=self._on_register_retry
                )
                self.set_state("registering")
                first = self.registration.attempt("register", self.stop_event)
                if not first.ok:
                    registered = False
                    result = self._registration_failed(first)
            held = self._wait_for_go() if cfg.wait_for_go and registered else None
            if held is not None:
                result = RunResult(None, self.stream.summary, error=held)
            elif registered and not self.stop_event.is_set():
                result = self._run_main()
        except Exception as e:  # report, never die silently
            log.exception("runner failed")
            result = RunResult(None, self.stream.summary, error=f"{type(e).__name__}: {e}")
        self._finished.set()
        if self.switch_reason is not None and result.error is None:
            result.error = self.switch_reason
        self._unregister()
        self._done(result)
        # SIPp is finished; the agent stays until the broker has every message (spool empty),
        # at most spool_linger_s.
        acked = self.link.wait_all_acked(cfg.spool_linger_s)
        self.link.close()
        return 0 if result.ok and acked else 1


def _reasons_text(result: RunResult) -> str:
    if result.failure_reasons:
        return ", ".join(f"{k} x{v}" for k, v in sorted(result.failure_reasons.items()))
    return f"SIPp exit code {result.exit_code}, {result.summary.failed_calls} failed calls"


def health_check(heartbeat_file: Path) -> int:
    """0 when the agent touched its heartbeat file recently (it runs and has the broker)."""
    try:
        age = time.time() - heartbeat_file.stat().st_mtime
    except OSError:
        print(json.dumps({"healthy": False, "reason": "no heartbeat yet"}))
        return 1
    healthy = age <= HEALTHY_WITHIN_S
    print(json.dumps({"healthy": healthy, "heartbeat_age_s": round(age, 1)}))
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners.agent", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="RunnerConfig JSON file")
    source.add_argument(
        "--config-url", help="API URL of this runner's files (GET <url>/config, ...)"
    )
    source.add_argument(
        "--health-check", action="store_true", help="exit 0 if the agent is healthy"
    )
    parser.add_argument("--token-file", type=Path, help="the runner token, for --config-url")
    parser.add_argument("--heartbeat-file", type=Path, help="touched while the broker is reached")
    parser.add_argument("--sipp", default="sipp", help="SIPp binary (default: sipp on PATH)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.health_check:
        return health_check(args.heartbeat_file or Path(HEARTBEAT_PATH))
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.config_url:
        if args.token_file is None:
            parser.error("--config-url needs --token-file")
        token = args.token_file.read_text().strip()
        # Imported here: urllib costs a process ~50 ms of start-up, and only containers fetch.
        from runners.config_fetch import FetchRefused, fetch_config, resolve_local_ip

        try:
            cfg = resolve_local_ip(fetch_config(args.config_url.rstrip("/"), token))
        except (FetchRefused, TimeoutError) as e:
            log.error("cannot fetch the runner's files: %s", e)
            return 2
        log.info("fetched config of %s/%s", cfg.session_id, cfg.runner_id)
    else:
        cfg = RunnerConfig.model_validate_json(args.config.read_text())
    agent = Agent(cfg, sipp_bin=args.sipp, heartbeat_file=args.heartbeat_file)
    agent.install_signal_handlers()
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
