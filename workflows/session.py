"""TestSessionWorkflow: one SIP test session, from network to verdict. Deterministic, no I/O.

provision network -> start metrics ingest -> start callees -> wait until ready -> start callers
-> wait until they finish -> stop runners -> drain ingest -> tear network down (always: on pass,
fail, error and cancel) -> summarize stored metrics -> evaluate thresholds -> store the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.admission import AdmissionActivities, AdmitSession
    from activities.dns_target import DnsActivities, ResolveTarget
    from activities.evidence import CollectEvidence, EvidenceActivities
    from activities.ingest import IngestActivities, IngestMetrics, IngestResult
    from activities.network import NetworkActivities, ProvisionNetwork
    from activities.pools import HostLogins, PlaceOnPool, PoolActivities
    from activities.runners import (
        PublishControl,
        RecoverIntervals,
        RunnerActivities,
        StartRunners,
        StopRunners,
    )
    from activities.session_store import (
        FinishSession,
        OpenSession,
        RegisterRunners,
        SetStatus,
        StoreActivities,
    )
    from sipflow import plan
    from sipflow.load_profile import RateCommand
    from sipflow.messages import SWITCH_TRIPPED, ControlMessage, RatePoint, Role
    from sipflow.placement import Placement
    from sipflow.pool_placement import HostShare
    from sipflow.spec import SessionSpec
    from sipflow.thresholds import evaluate
    from sipflow.workflow_types import (
        QUERY_PROGRESS,
        SA_STATUS,
        SA_TARGET,
        SA_TENANT,
        SA_VERDICT,
        SIGNAL_ADMISSION,
        SIGNAL_PROGRESS,
        SIGNAL_RUNNER_EVENT,
        UPDATE_SET_RATE,
        WORKFLOW_NAME,
        Progress,
        ProgressReport,
        RunnerEvent,
        SessionInput,
        SessionResult,
        SetRate,
        ingest_task_queue,
    )

from workflows.load_profile import follow

FINAL = ("done", "failed", "lost")

INGEST_READY = "*ingest*"
READY_TIMEOUT = timedelta(seconds=60)
# How long a runner may be "lost" (its MQTT will) before the session gives up on it.
LOST_GRACE = timedelta(seconds=15)
SHORT_TIMEOUT = timedelta(seconds=60)
SHORT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=10)
# workflow.patched ids: each names a change of the command sequence that sessions started
# before it must not see when they replay.
PRESTART = "prestart-callers"
# Held callers start in the same step as the callees (they started after them).
PRESTART_TOGETHER = "prestart-callers-together"
# The metrics ingest starts beside the network's provisioning (it started after it).
INGEST_BESIDE_PROVISION = "ingest-beside-provision"
# A cancel that arrives while an activity runs ends `cancelled` (it was `error`).
CANCEL_IN_ACTIVITY = "cancel-in-activity"
# A bug of ours (an exception that is no activity's failure) ends the session with verdict
# `error` after clean-up; before, the workflow task failed and retried forever.
BUG_ENDS_SESSION = "bug-ends-session"
# Sessions with a load profile: the workflow changes the callers' rate along it.
LOAD_PROFILE = "load-profile"
# A session waits `queued` until admitted (the machine carries its runners), and its ingest runs
# on the ingest task queue (own slot budget) with its expected span (progress signal budget).
ADMISSION = "admission-and-ingest-queue"
# Sessions whose spec names a runner-host pool: agents are placed on the pool's hosts and each
# host's activities go to its own task queue. Asked only by sessions with a pool.
RUNNER_HOST_POOLS = "runner-host-pools"
# How long a runner host's activity may wait to be picked up: a host that died does not hold
# the session's clean-up (the host sweeps what it left when it comes back).
HOST_PICKUP = timedelta(seconds=20)
# Pooled sessions: the main queue makes the broker logins of the hosts' runners and the
# workflow hands them to each host with its start (a host holds neither the runner token
# secret nor the broker's admin credential); after the hosts' teardown the main queue removes
# them and releases the slots the placement reserved. Asked only by sessions with a pool.
HOST_BROKER_LOGINS = "runner-host-broker-logins"
# A target given by domain (target.dns) is resolved before the network is provisioned.
DNS_TARGET = "dns-target"
# A load profile's rate changes go to the callers once, as a plan they carry out on their own
# clock (the workflow sent one command per staircase step, which came late under load); the
# workflow still marks each stage.
AGENT_FOLLOWS_PROFILE = "agent-follows-profile"
# A runner's own failure (lost, SIPp not run or killed, no `go`, no call placed) fails the
# session; before, it was only listed, and such a session passed when no threshold saw it.
# Failed calls stay the thresholds' (and schedules' rules') to judge.
VERDICT_COUNTS_ALL_REASONS = "verdict-counts-all-reasons"
# At clean-up, runners that did not finish (their agent died) get what their SIPp wrote to its
# statistics file published again by the backend (a new activity).
RECOVER_LOST_INTERVALS = "recover-lost-intervals"
# After teardown, sessions on the worker's local backend keep their failed calls' (and a sample
# of answered calls') SIP messages from the session's capture (a new activity).
CALL_EVIDENCE = "call-evidence"


def is_bug(exc: Exception) -> bool:
    """An exception of the workflow's own code. A NondeterminismError is left to fail the
    workflow task: it means the wrong code is deployed, and the session resumes once it is fixed."""
    return not isinstance(exc, workflow.NondeterminismError) and workflow.patched(BUG_ENDS_SESSION)


ArgT = TypeVar("ArgT")
ResultT = TypeVar("ResultT")


def short_activity(activity: Callable[[Any, ArgT], ResultT], arg: ArgT) -> Awaitable[ResultT]:
    """An activity that should take seconds: database writes, process starts, MQTT publishes."""
    return workflow.execute_activity_method(
        activity, arg, start_to_close_timeout=SHORT_TIMEOUT, retry_policy=SHORT_RETRY
    )


class SessionAborted(Exception):
    """The session cannot go on (a callee failed to register, a runner was lost, ...)."""


@workflow.defn(name=WORKFLOW_NAME)
class SessionWorkflow:
    def __init__(self) -> None:
        self._sid = ""
        self._phase = "starting"
        self._status = "running"
        self._verdict: str | None = None
        self._runners: dict[str, str] = {}
        self._details: dict[str, str] = {}
        self._ingest_ready = False
        self._totals = ProgressReport()
        self._rate: float | None = None
        self._caller_agents = 1
        self._expected_calls: int | None = None
        self._reasons: list[str] = []
        self._placements: list[Placement] = []
        self._profiled = False  # a load profile drives the rate
        self._pooled = False  # agents on runner hosts (RUNNER_HOST_POOLS)
        # Runner id -> broker password of runners on hosts (HOST_BROKER_LOGINS); None: the
        # hosts make their runners' logins themselves (sessions started before).
        self._host_logins: dict[str, str] | None = None
        self._wake = False

    # -- messages from the ingest activity and from users ------------------------------------
    @workflow.signal(name=SIGNAL_RUNNER_EVENT)
    def on_runner_event(self, ev: RunnerEvent) -> None:
        if ev.runner_id == INGEST_READY:
            self._ingest_ready = True
            return
        current = self._runners.get(ev.runner_id)
        if current is None or current in ("done", "failed"):
            return  # unknown runner, or a late message after a clean finish
        # "lost" is not final: a broker restart publishes the will of an agent that then
        # reconnects and reports its state again.
        self._runners[ev.runner_id] = ev.state
        if ev.detail:
            self._details[ev.runner_id] = ev.detail

    @workflow.signal(name=SIGNAL_ADMISSION)
    def on_admission_wake(self) -> None:
        self._wake = True

    @workflow.signal(name=SIGNAL_PROGRESS)
    def on_progress(self, report: ProgressReport) -> None:
        self._totals = report

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> Progress:
        return Progress(
            session_id=self._sid,
            phase=self._phase,
            status=self._status,
            verdict=self._verdict,
            runners=dict(self._runners),
            rate=self._rate,
            expected_calls=self._expected_calls,
            totals=self._totals,
            reasons=list(self._reasons),
        )

    @workflow.update(name=UPDATE_SET_RATE)
    async def set_rate(self, req: SetRate) -> float:
        await self._send_rate(req.rate)
        return req.rate

    async def _send_rate(self, rate: float) -> None:
        msg = ControlMessage(type="rate", rate=rate / self._caller_agents)
        await short_activity(
            RunnerActivities.publish_control, PublishControl(session_id=self._sid, message=msg)
        )
        self._rate = rate

    async def _send_plan(self, commands: list[RateCommand]) -> None:
        per_agent = [
            RatePoint(at_s=c.at_s, rate=c.rate / self._caller_agents)
            for c in commands
            if c.rate is not None and c.at_s > 0  # at 0: the rate the callers started with
        ]
        msg = ControlMessage(type="plan", plan=per_agent)
        await short_activity(
            RunnerActivities.publish_control, PublishControl(session_id=self._sid, message=msg)
        )

    async def _note_rate(self, rate: float) -> None:
        """The rate the callers' plan has them at now (for the session's status)."""
        self._rate = rate

    @set_rate.validator
    def _validate_rate(self, req: SetRate) -> None:
        if not 0 < req.rate <= 20000:
            raise ValueError("rate must be > 0 and <= 20000 calls/s")
        if self._profiled:
            raise ValueError("the rate follows the session's load profile")
        if self._phase not in ("starting callees", "running callers"):
            raise ValueError(
                f"the rate can only change while the session runs (now: {self._phase})"
            )

    # -- the session -----------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: SessionInput) -> SessionResult:
        self._sid = sid = inp.session_id
        spec = SessionSpec.model_validate(inp.spec)
        callers = spec.roles.callers
        self._rate, self._caller_agents, self._expected_calls = (
            callers.rate,
            callers.agents,
            callers.max_calls,
        )
        callee_ids, caller_ids = plan.runner_ids(spec, "callee"), plan.runner_ids(spec, "caller")
        self._profiled = callers.profile is not None and workflow.patched(LOAD_PROFILE)
        self._runners = {r: "pending" for r in callee_ids + caller_ids}
        target = plan.target_label(spec)
        spec_json = inp.spec  # what the activities get: with a dns target, as resolved
        admitting = workflow.patched(ADMISSION)
        self._pooled = bool(spec.pools()) and workflow.patched(RUNNER_HOST_POOLS)
        local_ids = [
            r for r in callee_ids + caller_ids if spec.role_pool(r.rpartition("-")[0]) is None
        ]
        if admitting:
            self._status = self._phase = "queued"
        workflow.upsert_search_attributes(
            [
                SA_TENANT.value_set(inp.tenant),
                SA_TARGET.value_set(target),
                SA_STATUS.value_set(self._status),
            ]
        )
        await short_activity(
            StoreActivities.open_session,
            OpenSession(
                session_id=sid,
                tenant=inp.tenant,
                name=spec.name,
                spec=inp.spec,
                target=target,
                queued=admitting,
            ),
        )

        ingest: asyncio.Task[IngestResult] | None = None
        status = "completed"
        try:
            if admitting:
                await self._admit(
                    len(local_ids) if self._pooled else len(callee_ids) + len(caller_ids)
                )
            if spec.target is not None and spec.target.dns is not None:
                workflow.patched(DNS_TARGET)  # no session before it had a dns target
                self._phase = "resolving target"
                t = spec.target
                found = await short_activity(
                    DnsActivities.resolve_target,
                    ResolveTarget(
                        session_id=sid,
                        tenant=inp.tenant,
                        domain=t.sip_domain,
                        transport=t.transport,
                        mode=t.dns,
                        backend=spec.backend,
                    ),
                )
                spec = plan.with_resolved_target(spec, found.host, found.port)
                spec_json = spec.model_dump(mode="json")
            self._phase = "provisioning"
            shares: dict[str, list[HostShare]] = {}
            if self._pooled:  # every pool's hosts are chosen before anything starts
                shares = await self._place(inp.tenant, spec, callee_ids + caller_ids)
            expected = spec.expected_duration_s()

            def start_ingest() -> asyncio.Task[IngestResult]:
                if admitting:  # on the ingest task queue, with the span it budgets signals for
                    return workflow.start_activity_method(
                        IngestActivities.ingest_metrics,
                        IngestMetrics(
                            session_id=sid, runner_ids=callee_ids + caller_ids, expected_s=expected
                        ),
                        task_queue=ingest_task_queue(workflow.info().task_queue),
                        start_to_close_timeout=timedelta(seconds=expected * 3 + 900),
                        heartbeat_timeout=timedelta(seconds=10),
                        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=2)),
                    )
                return workflow.start_activity_method(
                    IngestActivities.ingest_metrics,
                    IngestMetrics(session_id=sid, runner_ids=callee_ids + caller_ids),
                    start_to_close_timeout=timedelta(seconds=expected * 3 + 900),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=2)),
                )

            # The ingest needs no placement: it subscribes while the network is made.
            ingest_first = workflow.patched(INGEST_BESIDE_PROVISION)
            if ingest_first:
                ingest = start_ingest()
            if self._pooled:
                self._placements = await self._provision_pooled(spec_json, local_ids, shares)
            else:
                # The backend is resolved here, once; the placement carries it to every activity.
                placement = await short_activity(
                    NetworkActivities.provision_network,
                    ProvisionNetwork(
                        session_id=sid,
                        runner_ids=callee_ids + caller_ids,
                        backend=spec.backend,
                        spec=spec_json,
                    ),
                )
                self._placements = [placement]
            if not ingest_first:
                ingest = start_ingest()
            await workflow.wait_condition(lambda: self._ingest_ready, timeout=READY_TIMEOUT)

            peers: dict[str, str] = {}
            held = False
            if callee_ids:
                self._phase = "starting callees"
                prestart = all(p.prestart for p in self._placements)
                # On runner hosts the callees may be on another placement than the callers,
                # whose addresses a host cannot know before they started: callees first.
                if prestart and not self._pooled and workflow.patched(PRESTART_TOGETHER):
                    # Callers start (held) at the same time as the callees: a prestart
                    # placement knows where the callees will be reached before they start.
                    peers, _ = await asyncio.gather(
                        self._start(spec, "callee", peers),
                        self._start(spec, "caller", peers, hold=True),
                    )
                    held = True
                else:
                    peers = await self._start(spec, "callee", peers)
                # Callers start up beside the callees (their start-ups no longer add up) and
                # wait for `go`. Sessions started before this change run the old sequence.
                if not held and prestart and workflow.patched(PRESTART):
                    await self._start(spec, "caller", peers, hold=True)
                    held = True
                await workflow.wait_condition(
                    lambda: all(
                        self._runners[r] == "ready" or self._runners[r] in FINAL for r in callee_ids
                    ),
                    timeout=READY_TIMEOUT,
                )
                not_ready = [r for r in callee_ids if self._runners[r] != "ready"]
                if not_ready:
                    raise SessionAborted(
                        "callees not ready: "
                        + "; ".join(
                            f"{r} {self._runners[r]} {self._details.get(r, '')}".strip()
                            for r in not_ready
                        )
                    )

            self._phase = "running callers"
            if held:
                await self._release_callers(caller_ids)
            else:
                await self._start(spec, "caller", peers)
            profile = spec.roles.callers.profile
            if profile is not None and self._profiled:
                stages = len(profile.stages())
                send = self._send_rate
                if workflow.patched(AGENT_FOLLOWS_PROFILE):
                    await self._send_plan(profile.commands())
                    send = self._note_rate
                driver = asyncio.create_task(follow(profile.commands(), send, stages))
                try:
                    await self._await_callers(caller_ids, timedelta(seconds=expected * 2 + 120))
                finally:
                    driver.cancel()
                if driver.done() and not driver.cancelled() and driver.exception():
                    self._reasons.append(f"load profile not followed: {driver.exception()}")
            else:
                await self._await_callers(caller_ids, timedelta(seconds=expected * 2 + 120))
        except asyncio.CancelledError:
            status = "cancelled"
            self._reasons.append("cancelled")
        except SessionAborted as exc:
            self._reasons.append(str(exc))
        except TimeoutError:
            self._reasons.append(f"timed out while {self._phase}")
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError) and workflow.patched(CANCEL_IN_ACTIVITY):
                status = "cancelled"
                self._reasons.append("cancelled")
            else:
                status = "error"
                self._reasons.append(f"{self._phase}: {exc.cause or exc}")
        except Exception as exc:
            if not is_bug(exc):
                raise
            status = "error"
            self._reasons.append(f"workflow error while {self._phase}: {exc!r}")

        await self._clean_up(sid, ingest)
        await self._collect_evidence(sid)
        try:
            return await self._conclude(sid, spec, status)
        except (ActivityError, workflow.NondeterminismError):
            raise
        except Exception as exc:
            if not is_bug(exc):
                raise
            return await self._conclude_on_bug(sid, f"workflow error while {self._phase}: {exc!r}")

    async def _admit(self, runners: int) -> None:
        """Waits `queued` until the machine carries the session's runners."""
        attempt = 0
        while True:
            wait = await short_activity(
                AdmissionActivities.admit_session,
                AdmitSession(session_id=self._sid, runners=runners, attempt=attempt),
            )
            if wait <= 0:
                break
            attempt += 1
            self._wake = False  # a session that ended wakes us before the poll
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._wake, timeout=wait)
        self._status = "running"
        workflow.upsert_search_attributes([SA_STATUS.value_set("running")])

    async def _place(
        self, tenant: str, spec: SessionSpec, runner_ids: list[str]
    ) -> dict[str, list[HostShare]]:
        """Pool -> which of its live hosts runs which runners (too little capacity: the
        activity fails for good, with the numbers, and nothing was started)."""
        shares: dict[str, list[HostShare]] = {}
        for pool in sorted(spec.pools()):
            ids = [r for r in runner_ids if spec.role_pool(r.rpartition("-")[0]) == pool]
            shares[pool] = await short_activity(
                PoolActivities.place_on_pool,
                PlaceOnPool(session_id=self._sid, tenant=tenant, pool=pool, runner_ids=ids),
            )
        if workflow.patched(HOST_BROKER_LOGINS):
            self._host_logins = await short_activity(
                PoolActivities.make_host_logins,
                HostLogins(
                    session_id=self._sid,
                    tenant=tenant,
                    shares=[s for pool in sorted(shares) for s in shares[pool]],
                ),
            )
        return shares

    def _host_activity(
        self, activity: Callable[[Any, ArgT], ResultT], arg: ArgT, task_queue: str
    ) -> Awaitable[ResultT]:
        """An activity of one runner host, on its own task queue."""
        return workflow.execute_activity_method(
            activity,
            arg,
            task_queue=task_queue,
            schedule_to_start_timeout=HOST_PICKUP,
            start_to_close_timeout=SHORT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )

    async def _provision_pooled(
        self, spec_json: dict[str, Any], local_ids: list[str], shares: dict[str, list[HostShare]]
    ) -> list[Placement]:
        """The network on every host that runs some of the runners (at once), and on the
        worker's own backend for the roles without a pool."""
        spec = SessionSpec.model_validate(spec_json)

        async def on_host(share: HostShare) -> Placement:
            placement = await self._host_activity(
                NetworkActivities.provision_network,
                ProvisionNetwork(
                    session_id=self._sid,
                    runner_ids=share.runner_ids,
                    backend="local",
                    spec=spec_json,
                ),
                share.task_queue,
            )
            return placement.model_copy(
                update={"host": share.host_id, "task_queue": share.task_queue}
            )

        async def local() -> Placement:
            return await short_activity(
                NetworkActivities.provision_network,
                ProvisionNetwork(
                    session_id=self._sid,
                    runner_ids=local_ids,
                    backend=spec.backend,
                    spec=spec_json,
                ),
            )

        jobs = [on_host(s) for pool in sorted(shares) for s in shares[pool]]
        if local_ids:
            jobs.insert(0, local())
        return list(await asyncio.gather(*jobs))

    def _lost(self) -> list[str]:
        return [r for r, state in self._runners.items() if state == "lost"]

    async def _await_callers(self, caller_ids: list[str], timeout: timedelta) -> None:
        """Until every caller is done; a runner lost for longer than LOST_GRACE aborts."""

        def finished() -> bool:
            return all(self._runners[r] in ("done", "failed") for r in caller_ids)

        await workflow.wait_condition(lambda: finished() or bool(self._lost()), timeout=timeout)
        while self._lost() and not finished():
            try:
                await workflow.wait_condition(lambda: not self._lost(), timeout=LOST_GRACE)
            except TimeoutError:
                raise SessionAborted(f"runners lost: {', '.join(self._lost())}") from None
            await workflow.wait_condition(lambda: finished() or bool(self._lost()), timeout=timeout)

    async def _release_callers(self, caller_ids: list[str]) -> None:
        """Once the held callers are up (subscribed to control messages), `go`."""
        await workflow.wait_condition(
            lambda: all(self._runners[r] not in ("pending", "starting") for r in caller_ids),
            timeout=READY_TIMEOUT,
        )
        await short_activity(
            RunnerActivities.publish_control,
            PublishControl(session_id=self._sid, message=ControlMessage(type="go")),
        )

    async def _start(
        self, spec: SessionSpec, role: Role, peers: dict[str, str], hold: bool = False
    ) -> dict[str, str]:
        """Starts the runners of `role` on every placement; `peers` with their addresses added
        (a runner's address is known once it started)."""
        peers = dict(peers)
        for placement in self._placements:
            start = StartRunners(
                spec=spec.model_dump(mode="json"),
                placement=placement,
                role=role,
                peers=peers,
                hold=hold,
            )
            if placement.task_queue is not None:
                if not set(placement.runner_ids) & set(plan.runner_ids(spec, role)):
                    continue  # none of this role's runners is on that host
                if self._host_logins is not None:  # this host's runners' logins only
                    start.broker_passwords = {
                        r: p for r, p in self._host_logins.items() if r in placement.runner_ids
                    }
                started = await self._host_activity(
                    RunnerActivities.start_runners, start, placement.task_queue
                )
            else:
                started = await short_activity(RunnerActivities.start_runners, start)
            await short_activity(
                StoreActivities.register_runners,
                RegisterRunners(
                    session_id=self._sid,
                    runners=[(r.runner_id, r.role, r.address) for r in started],
                ),
            )
            for r in started:
                peers[r.runner_id] = r.address
                if self._runners.get(r.runner_id) == "pending":
                    self._runners[r.runner_id] = "starting"
        return peers

    async def _clean_up(self, sid: str, ingest: asyncio.Task[IngestResult] | None) -> None:
        """Stop every runner, let the ingest store what they sent, remove the network."""
        self._phase = "stopping"
        # Tells the ingest that runners not started by now never will.
        await short_activity(
            StoreActivities.set_session_status, SetStatus(session_id=sid, status="stopping")
        )
        if self._pooled:
            queues: dict[str | None, list[Placement]] = {}
            for p in self._placements:
                queues.setdefault(p.task_queue, []).append(p)
            await asyncio.gather(
                *(
                    self._clean_on(
                        "stop its runners",
                        RunnerActivities.stop_runners,
                        StopRunners(session_id=sid, placements=ps),
                        ps[0],
                        timedelta(seconds=120),
                    )
                    for ps in queues.values()
                )
            )
        else:
            await workflow.execute_activity_method(
                RunnerActivities.stop_runners,
                StopRunners(session_id=sid, placements=self._placements),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
            )
        if ingest is not None:
            try:
                result = await asyncio.wait_for(ingest, timeout=90)
                for rid, n in result.missing.items():
                    self._reasons.append(f"{rid}: {n} stats intervals never arrived")
            except (TimeoutError, ActivityError) as exc:
                ingest.cancel()
                silent = [r for r, s in self._runners.items() if s not in FINAL]
                self._reasons.append(
                    f"metrics ingest did not finish ({exc}); silent runners: {silent}"
                )
        if self._pooled:  # a host's runners' files are on the host: no recovery here
            await asyncio.gather(
                *(
                    self._clean_on(
                        "remove the session's network",
                        NetworkActivities.teardown_network,
                        p,
                        p,
                        timedelta(seconds=60),
                    )
                    for p in self._placements
                )
            )
            if self._host_logins is not None:
                try:
                    await short_activity(PoolActivities.release_pool, sid)
                except ActivityError as exc:  # the sweeper and the expiry catch up
                    workflow.logger.warning("pool of %s not released: %s", sid, exc)
            return
        await self._recover(sid)
        for placement in self._placements:
            await workflow.execute_activity_method(
                NetworkActivities.teardown_network,
                placement,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5)),
            )

    async def _clean_on(
        self, what: str, activity: Any, arg: Any, placement: Placement, timeout: timedelta
    ) -> None:
        """A clean-up activity where the placement is: the worker's own queue (retried until
        done, as before) or its host's. A host that does not pick it up within HOST_PICKUP
        (it died) gives a reason, not a hang; it sweeps what it left when it comes back."""
        queue = placement.task_queue
        try:
            await workflow.execute_activity_method(
                activity,
                arg,
                task_queue=queue,
                schedule_to_start_timeout=HOST_PICKUP if queue is not None else None,
                start_to_close_timeout=timeout,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(seconds=5),
                    maximum_attempts=0 if queue is None else 5,
                ),
            )
        except ActivityError as exc:
            if queue is None:
                raise
            reason = f"runner host {placement.host or queue} did not {what}: {exc.cause or exc}"
            if reason not in self._reasons:
                self._reasons.append(reason)

    async def _collect_evidence(self, sid: str) -> None:
        """Per-call evidence from the session's capture (local backend, the worker's own
        placements only). Its failure costs the report its ladders, not the verdict."""
        local = [p for p in self._placements if p.backend == "local" and p.task_queue is None]
        if not local or self._pooled or not workflow.patched(CALL_EVIDENCE):
            return
        try:
            await workflow.execute_activity_method(
                EvidenceActivities.collect_evidence,
                CollectEvidence(session_id=sid),
                start_to_close_timeout=timedelta(seconds=300),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=3),
            )
        except ActivityError as exc:
            workflow.logger.warning("session %s: no call evidence: %s", sid, exc.cause or exc)

    async def _recover(self, sid: str) -> None:
        """Runners that started but never finished (a killed agent): their SIPp's statistics
        rows are published again from its file (stored once per seq), before judging."""
        unfinished = [
            r for r, s in sorted(self._runners.items()) if s not in ("done", "failed", "pending")
        ]
        if not unfinished or not self._placements or not workflow.patched(RECOVER_LOST_INTERVALS):
            return
        try:
            recovered = await workflow.execute_activity_method(
                RunnerActivities.recover_intervals,
                RecoverIntervals(
                    session_id=sid, runner_ids=unfinished, placements=self._placements
                ),
                start_to_close_timeout=timedelta(seconds=180),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=5), maximum_attempts=3),
            )
        except ActivityError as exc:
            self._reasons.append(f"recovering intervals of {unfinished} failed: {exc.cause or exc}")
            return
        for rid, n in sorted(recovered.items()):
            if n > 0:
                self._reasons.append(f"{rid}: {n} stats intervals recovered from SIPp's file")

    async def _conclude_on_bug(self, sid: str, reason: str) -> SessionResult:
        """Verdict `error` when judging itself failed: no summary, only the reason."""
        reasons = [*self._reasons, reason]
        self._reasons, self._status, self._verdict = reasons, "error", "error"
        await short_activity(
            StoreActivities.finish_session,
            FinishSession(
                session_id=sid, status="error", verdict="error", summary={}, reasons=reasons
            ),
        )
        workflow.upsert_search_attributes(
            [SA_STATUS.value_set("error"), SA_VERDICT.value_set("error")]
        )
        self._phase = "finished"
        return SessionResult(
            session_id=sid,
            status="error",
            verdict="error",
            reasons=reasons,
            measured={},
            thresholds=[],
        )

    async def _conclude(self, sid: str, spec: SessionSpec, status: str) -> SessionResult:
        self._phase = "judging"
        # A runner its dead man's switch stopped did not run the session's course.
        self._reasons += [
            f"runner {r} failed: {d}"
            for r, d in sorted(self._details.items())
            if d.startswith(SWITCH_TRIPPED) and self._runners.get(r) == "failed"
        ]
        summary = await short_activity(StoreActivities.summarize_session, sid)
        results = evaluate(spec.parsed_thresholds(), summary.metrics.measured)
        failed_thresholds = [r.threshold for r in results if not r.passed]
        reasons = self._reasons + [f"threshold not met: {t}" for t in failed_thresholds]
        reasons += [r for r in summary.reasons if r not in reasons]
        judged = self._reasons
        if workflow.patched(VERDICT_COUNTS_ALL_REASONS):
            judged = judged + summary.faults
        if status == "error":
            verdict = "error"
        elif judged or failed_thresholds or summary.metrics.measured.get("lost_runners"):
            verdict = "fail"
        else:
            verdict = "pass"
        self._reasons, self._status, self._verdict = reasons, status, verdict
        stored_summary = {
            "measured": summary.metrics.measured,
            "roles": {k: v.model_dump() for k, v in summary.metrics.roles.items()},
            "thresholds": [r.model_dump() for r in results],
            "intervals": summary.metrics.intervals,
        }
        await short_activity(
            StoreActivities.finish_session,
            FinishSession(
                session_id=sid,
                status=status,
                verdict=verdict,
                summary=stored_summary,
                reasons=reasons,
            ),
        )
        workflow.upsert_search_attributes(
            [SA_STATUS.value_set(status), SA_VERDICT.value_set(verdict)]
        )
        self._phase = "finished"
        return SessionResult(
            session_id=sid,
            status=status,
            verdict=verdict,
            reasons=reasons,
            measured=summary.metrics.measured,
            thresholds=[r.model_dump() for r in results],
        )
