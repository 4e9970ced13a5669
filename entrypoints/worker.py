"""The sipflow worker: session workflows and their short activities on the task queue; the
session ingest activities on `<task_queue>-ingest` with a slot budget of their own, all fed by
one MQTT subscriber per process (activities/ingest_hub.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Interceptor, Worker

from activities.admission import AdmissionActivities, QueueWaker
from activities.capacity import CapacityActivities
from activities.dns_target import DnsActivities
from activities.evidence import EvidenceActivities
from activities.ingest import IngestActivities
from activities.ingest_hub import IngestHub
from activities.metrics_interceptor import ActivityMetrics
from activities.network import NetworkActivities
from activities.pools import PoolActivities
from activities.runners import RunnerActivities
from activities.schedule_runs import ScheduleActivities
from activities.session_store import StoreActivities
from backends.registry import Backends
from backends.sweeper import start_periodic
from entrypoints import fault_injection
from entrypoints.liveness import still_running
from sipflow import retention
from sipflow.db import migrate
from sipflow.metrics_server import start_metrics_server, temporal_runtime_with_metrics
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings, get_settings
from sipflow.workflow_types import ingest_task_queue
from workflows.capacity_search import CapacitySearchWorkflow
from workflows.schedule_run import ScheduledRunWorkflow
from workflows.session import SessionWorkflow


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def start_metrics(settings: Settings) -> Runtime | None:
    """/metrics on worker_metrics_port (0: off): sipflow's series and, through the returned
    Temporal runtime (give it to the client), the SDK's."""
    if settings.worker_metrics_port <= 0:
        return None
    log = logging.getLogger(__name__)
    try:
        server = start_metrics_server(settings.worker_metrics_port, host=settings.metrics_host)
    except OSError as exc:  # the port is taken: the worker's work matters more than its metrics
        log.error(
            "no worker metrics: %s:%d: %s", settings.metrics_host, settings.worker_metrics_port, exc
        )
        return None
    log.info("worker metrics at %s", server.url)
    try:
        return temporal_runtime_with_metrics()
    except Exception:  # the SDK's exporter did not start: sipflow's series are still served
        log.exception("no Temporal SDK metrics")
        return None


def build_worker(
    client: Client,
    settings: Settings,
    executor: concurrent.futures.Executor,
    backends: Backends,
    hub: IngestHub,
) -> list[Worker]:
    """The main worker (workflows, short activities: 64 slots) and the ingest worker."""
    network, runners = NetworkActivities(settings, backends), RunnerActivities(settings, backends)
    waker = QueueWaker(settings, client, asyncio.get_running_loop())
    store = StoreActivities(settings, on_finish=waker.wake)
    ingest = IngestActivities(settings, client, hub)
    schedules, admission = ScheduleActivities(settings), AdmissionActivities(settings)
    capacity = CapacityActivities(settings)
    pools = PoolActivities(settings)
    interceptors: list[Interceptor] = [ActivityMetrics(), *fault_injection.from_environment()]
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[SessionWorkflow, ScheduledRunWorkflow, CapacitySearchWorkflow],
        activities=[
            network.provision_network,
            network.teardown_network,
            runners.start_runners,
            runners.stop_runners,
            runners.recover_intervals,
            runners.publish_control,
            store.open_session,
            store.register_runners,
            store.set_session_status,
            store.summarize_session,
            store.finish_session,
            admission.admit_session,
            pools.place_on_pool,
            pools.make_host_logins,
            pools.release_pool,
            DnsActivities(settings).resolve_target,
            # Sessions started by the previous release run their ingest on this queue.
            ingest.ingest_metrics,
            schedules.count_missed_runs,
            schedules.record_scheduled_run,
            schedules.admit_scheduled_run,
            schedules.open_scheduled_search,
            schedules.judge_scheduled_run,
            schedules.send_schedule_alert,
            capacity.measure_window,
            capacity.update_search,
            EvidenceActivities(settings).collect_evidence,
        ],
        activity_executor=executor,
        max_concurrent_activities=64,
        interceptors=interceptors,
    )
    ingest_worker = Worker(
        client,
        task_queue=ingest_task_queue(settings.task_queue),
        activities=[ingest.ingest_metrics],  # async: a slot costs no thread
        max_concurrent_activities=settings.ingest_slots,
        interceptors=interceptors,
    )
    return [main, ingest_worker]


async def serve(settings: Settings) -> None:
    migrate(settings.resolved_database_url)
    client = await connect(settings, start_metrics(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    backends = Backends(settings)
    stop_sweeper = threading.Event()
    if settings.sweep_interval_s > 0:
        start_periodic(settings, backends, still_running(settings), stop_sweeper)
    if settings.retention_interval_s > 0:
        retention.start_periodic(settings, stop_sweeper)
    hub = IngestHub(settings, client)
    await hub.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as executor:
            main, ingest = build_worker(client, settings, executor, backends, hub)
            async with main, ingest:
                queues = (settings.task_queue, ingest_task_queue(settings.task_queue))
                logging.getLogger(__name__).info("worker polling task queues %s, %s", *queues)
                await stop.wait()
    finally:
        await hub.stop()
    stop_sweeper.set()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(get_settings()))


if __name__ == "__main__":
    main()
