"""The sipflow worker: runs session workflows and all their activities on one task queue."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading

from temporalio.client import Client
from temporalio.worker import Worker

from activities.capacity import CapacityActivities
from activities.ingest import IngestActivities
from activities.network import NetworkActivities
from activities.runners import RunnerActivities
from activities.schedule_runs import ScheduleActivities
from activities.session_store import StoreActivities
from backends.registry import Backends
from backends.sweeper import start_periodic
from entrypoints import fault_injection
from entrypoints.liveness import still_running
from sipflow import retention
from sipflow.db import migrate
from sipflow.payload_codec import data_converter
from sipflow.settings import Settings, get_settings
from workflows.capacity_search import CapacitySearchWorkflow
from workflows.schedule_run import ScheduledRunWorkflow
from workflows.session import SessionWorkflow


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


def build_worker(
    client: Client,
    settings: Settings,
    executor: concurrent.futures.Executor,
    backends: Backends,
) -> Worker:
    network, runners = NetworkActivities(settings, backends), RunnerActivities(settings, backends)
    store, ingest = StoreActivities(settings), IngestActivities(settings, client)
    schedules = ScheduleActivities(settings)
    capacity = CapacityActivities(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[SessionWorkflow, ScheduledRunWorkflow, CapacitySearchWorkflow],
        activities=[
            network.provision_network,
            network.teardown_network,
            runners.start_runners,
            runners.stop_runners,
            runners.publish_control,
            store.open_session,
            store.register_runners,
            store.set_session_status,
            store.summarize_session,
            store.finish_session,
            ingest.ingest_metrics,
            schedules.count_missed_runs,
            schedules.record_scheduled_run,
            schedules.admit_scheduled_run,
            schedules.judge_scheduled_run,
            schedules.send_schedule_alert,
            capacity.measure_window,
            capacity.update_search,
        ],
        activity_executor=executor,
        max_concurrent_activities=64,
        interceptors=fault_injection.from_environment(),  # tests only
    )


async def serve(settings: Settings) -> None:
    migrate(settings.resolved_database_url)
    client = await connect(settings)
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
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as executor:
        worker = build_worker(client, settings, executor, backends)
        async with worker:
            logging.getLogger(__name__).info("worker polling task queue %s", settings.task_queue)
            await stop.wait()
    stop_sweeper.set()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(get_settings()))


if __name__ == "__main__":
    main()
