"""Fixtures and helpers of the dashboard tests: a real browser (Debian's Chromium driven by
Playwright), the API served with a real mosquitto, and a publisher of runner stats on MQTT.

Import the fixtures by their function names, e.g.
`from tests.dashboard_fixtures import browser_fixture  # noqa: F401`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from backends import broker_auth
from backends.runner_tokens import token_key
from entrypoints.stack import Stack, StackConfig
from sipflow import histogram
from sipflow.messages import Counters, RunnerState, StatsMessage, runner_topic
from tests.api_fixtures import ApiServer, dead_address, make_settings

CHROMIUM = os.environ.get("SIPFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
VENDOR = Path(__file__).resolve().parent.parent / "api/dashboard/static/vendor/chart.umd.min.js"


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class _Shared:
    """One Playwright and one Chromium for the whole run. Each test module that imports
    `browser_fixture` gets its own copy of the fixture, and a second `sync_playwright()` inside
    the first one's loop is refused: the copies share this instance, the last one closes it."""

    users = 0
    manager: Any = None
    browser: Any = None


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Iterator[Any]:
    """Headless Chromium from Debian's packages (deploy/setup.sh installs it)."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/setup.sh (apt-get install chromium)")
    if not VENDOR.exists():
        pytest.fail(f"{VENDOR} is missing: run deploy/setup.sh (npm ci in dashboard/)")
    from playwright.sync_api import sync_playwright

    if _Shared.users == 0:
        _Shared.manager = sync_playwright()
        _Shared.browser = launch_browser(_Shared.manager.__enter__())
    _Shared.users += 1
    try:
        yield _Shared.browser
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            _Shared.browser.close()
            _Shared.manager.__exit__(None, None, None)


@pytest.fixture(name="page")
def page_fixture(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def sign_in(page: Any, base_url: str, key: str) -> None:
    """Sign the page's browser in through the dashboard's sign-in form."""
    page.goto(f"{base_url}/dashboard/signin")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    # The sessions list puts its query in the URL (replaceState), maybe before "load" fires.
    page.wait_for_url(re.compile(re.escape(f"{base_url}/dashboard/") + r"(\?.*)?$"))


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# -- the API with a real broker, no Temporal worker --------------------------------------------
class DashStack:
    def __init__(self, api: ApiServer, broker: Stack, database_url: str) -> None:
        self.api, self.broker, self.database_url = api, broker, database_url
        self.url = api.url
        self.api_key = api.api_key  # an admin of "team-a"
        self.mqtt_port = broker.config.mqtt_port
        self.key = token_key(broker.settings)


@pytest.fixture(name="dash_stack", scope="session")
def dash_stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashStack]:
    """mosquitto and the API (uvicorn in a thread) on SQLite; Temporal unreachable."""
    tmp = tmp_path_factory.mktemp("dash")
    broker = Stack(StackConfig.on_free_ports(tmp, with_api=False, with_worker=False))
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    broker.start_mosquitto()
    url = f"sqlite:///{tmp / 'dash.db'}"
    settings = make_settings(url, dead_address())
    settings.mqtt_port = broker.config.mqtt_port
    settings.data_dir = broker.data_dir  # the broker's credentials derive from its key
    try:
        with ApiServer(settings) as api:
            yield DashStack(api, broker, url)
    finally:
        broker.stop()


class Publisher:
    """Publishes runner messages as the agent does (QoS 1)."""

    def __init__(self, port: int, key: bytes) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        with broker_auth.DynsecAdmin("127.0.0.1", port, key, 10) as admin:
            self.client.username_pw_set(**broker_auth.add_stand_in(admin, key, "test-publisher"))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.cum: dict[str, Counters] = {}

    def stats(
        self,
        sid: str,
        runner_id: str,
        role: str,
        seq: int,
        *,
        t: float | None = None,
        created: int = 10,
        ok: int = 10,
        failed: int = 0,
        samples_ms: tuple[float, ...] = (20, 30, 40),
    ) -> float:
        """Publish one interval; returns the wall time it was handed to the broker."""
        cum = self.cum.setdefault(f"{sid}/{runner_id}", Counters())
        cum.calls_created += created
        cum.successful_calls += ok
        cum.failed_calls += failed
        msg = StatsMessage(
            session_id=sid,
            runner_id=runner_id,
            role=role,  # type: ignore[arg-type]
            seq=seq,
            time=t if t is not None else time.time(),
            current_calls=created - ok - failed,
            call_rate=float(created),
            periodic=Counters(calls_created=created, successful_calls=ok, failed_calls=failed),
            cumulative=cum.model_copy(),
            histogram=histogram.from_samples(samples_ms),
        )
        payload = msg.model_dump_json(by_alias=True)
        sent = time.time()
        info = self.client.publish(runner_topic(sid, runner_id, "stats"), payload, qos=1)
        info.wait_for_publish(5)
        return sent

    def state(self, sid: str, runner_id: str, state: str) -> None:
        msg = RunnerState.model_validate(
            {"session_id": sid, "runner_id": runner_id, "state": state, "time": time.time()}
        )
        payload = json.dumps(msg.model_dump(mode="json", by_alias=True))
        info = self.client.publish(runner_topic(sid, runner_id, "state"), payload, qos=1)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
