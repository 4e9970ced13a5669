"""Runner hosts on simulated machines (tests/host_fixtures.py): a session's callers split 2/2
over two hosts of a pool against Kamailio, a host killed mid-session, a pool too small, a
revoked host credential (refused by the API, its runners kicked off the broker), two sessions
placed back to back on a pool that fits one. The hosts hold none of the stack's secrets (no
runner token secret, no codec key): each decodes only what was addressed to it. Real Temporal,
broker, API, worker, Kamailio, SIPp."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlmodel import select
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.pools import HostLogins, PoolActivities
from backends import broker_auth
from backends.host_logins import add_host_runners, sweep_revoked_hosts
from backends.runner_tokens import runner_broker_user
from backends.runner_tokens import token_key as broker_key
from entrypoints.stack import free_port
from sipflow import runner_hosts as runner_hosts_db
from sipflow.crypto import CryptoError, parse_keys
from sipflow.db import session_scope
from sipflow.messages import runner_client_id
from sipflow.models import MetricInterval, RunnerRow
from sipflow.payload_codec import EncryptionCodec, host_key_entries, parse_host_keys
from sipflow.pool_placement import HostShare
from sipflow.workflow_types import workflow_id
from tests.conftest import RunningStack, start_stack
from tests.host_fixtures import ROOT, Network, RunnerHostProcess, machines, wait_until
from tests.sipp_files import last_cumulative, stat_files
from tests.sut.kamailio import kamailio

POOL = "edge"
MAX_AGENTS = 4


@pytest.fixture(scope="module")
def shared_secrets() -> dict[str, str]:
    """The stack's secrets (the runner token secret: broker logins; the payload codec keys).
    Runner hosts get none of them (docs/runner-hosts.md)."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "SIPFLOW_RUNNER_TOKEN_SECRET": secrets.token_urlsafe(32),
        "SIPFLOW_ENCRYPTION_KEYS": f"k1:{key}",
    }


@pytest.fixture(scope="module")
def hosts_stack(
    tmp_path_factory: pytest.TempPathFactory, shared_secrets: dict[str, str]
) -> Iterator[RunningStack]:
    env = {**shared_secrets, "SIPFLOW_RUNNER_HOST_STALE_S": "6", "SIPFLOW_RUNNER_HOST_DEAD_S": "20"}
    yield from start_stack(tmp_path_factory.mktemp("stack-hosts"), extra_env=env)


@pytest.fixture(scope="module")
def network(hosts_stack: RunningStack) -> Iterator[Network]:
    c = hosts_stack.stack.config
    with machines(2, [c.temporal_port, c.mqtt_port, c.api_port]) as net:
        yield net


@pytest.fixture(scope="module")
def sut(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio"), ip=network.gateway):
        yield network.gateway, port


def add_host(stack: RunningStack, pool: str) -> tuple[str, str]:
    r = stack.http.post("/v1/hosts", json={"pool": pool, "name": "test host"})
    assert r.status_code == 201, r.text
    return r.json()["key_id"], r.json()["secret"]


def host_env(stack: RunningStack, gateway: str, key: str, host_id: str) -> dict[str, str]:
    c = stack.stack.config
    return {
        "SIPFLOW_TEMPORAL_ADDRESS": f"{gateway}:{c.temporal_port}",
        "SIPFLOW_MQTT_HOST": gateway,
        "SIPFLOW_MQTT_PORT": str(c.mqtt_port),
        "SIPFLOW_API_URL": f"http://{gateway}:{c.api_port}",
        "SIPFLOW_API_KEY": key,
        "SIPFLOW_RUNNER_HOST_ID": host_id,
        "SIPFLOW_RUNNER_HOST_MAX_AGENTS": str(MAX_AGENTS),
        "SIPFLOW_RUNNER_HOST_HEARTBEAT_S": "1",
    }


@pytest.fixture(scope="module")
def runner_hosts(
    hosts_stack: RunningStack,
    network: Network,
    shared_secrets: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[RunnerHostProcess]]:
    procs = []
    for m in network.machines:
        _, key = add_host(hosts_stack, POOL)
        env = host_env(hosts_stack, network.gateway, key, m.name)
        env["SIPFLOW_NETNS_POOL"] = m.session_pool
        # Its /metrics on its own address, scraped from here across the bridge.
        env["SIPFLOW_METRICS_HOST"], env["SIPFLOW_RUNNER_HOST_METRICS_PORT"] = m.address, "9464"
        data = tmp_path_factory.mktemp(f"host-{m.name}")
        procs.append(RunnerHostProcess(m, data, POOL, env).start())
    try:
        wait_live(hosts_stack, len(procs))
        yield procs
    finally:
        for p in procs:
            p.stop()


def pool_hosts(stack: RunningStack) -> list[dict[str, Any]]:
    r = stack.http.get(f"/v1/pools/{POOL}/hosts")
    return list(r.json()["items"]) if r.status_code == 200 else []


def wait_live(stack: RunningStack, n: int) -> None:
    wait_until(
        lambda: sum(h["state"] == "live" for h in pool_hosts(stack)) >= n, 60, f"{n} hosts live"
    )


def spec(sut: tuple[str, int], **callers: Any) -> dict[str, Any]:
    host, port = sut
    return {
        "name": "on-two-hosts",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"agents": 4, "rate": 20, "accounts": [{"user": "alice"}], "pool": POOL}
            | callers,
        },
        "thresholds": ["success_rate >= 100"],
    }


def per_runner(stack: RunningStack, sid: str) -> dict[str, tuple[str, list[MetricInterval]]]:
    """Runner -> (its address, its stored intervals by seq)."""
    with session_scope(stack.stack.settings.resolved_database_url) as db:
        runners = db.exec(select(RunnerRow).where(RunnerRow.session_id == sid)).all()
        rows = db.exec(select(MetricInterval).where(MetricInterval.session_id == sid)).all()
        out = {r.runner_id: (r.address or "", []) for r in runners}
        for row in sorted(rows, key=lambda r: r.seq):
            out[row.runner_id][1].append(row)
        return out


def on_machine(address: str, network: Network) -> str:
    import ipaddress

    for m in network.machines:
        if ipaddress.ip_address(address) in ipaddress.ip_network(m.session_pool):
            return m.name
    return "worker"


def history_payloads(stack: RunningStack, sid: str) -> list[tuple[str, Payload]]:
    """(where, payload) of every payload of the session's history, as Temporal stores it:
    `where` is the task queue of the activity it is the input or result of, else "workflow"."""

    async def fetch() -> list[tuple[str, Payload]]:
        settings = stack.stack.settings
        client = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
        )  # no codec: the payloads as stored
        history = await client.get_workflow_handle(workflow_id(sid)).fetch_history()
        queues: dict[int, str] = {}
        found: list[tuple[str, Payload]] = []
        for ev in history.events:
            if ev.HasField("activity_task_scheduled_event_attributes"):
                a = ev.activity_task_scheduled_event_attributes
                queues[ev.event_id] = a.task_queue.name
                found += [(a.task_queue.name, p) for p in a.input.payloads]
            elif ev.HasField("activity_task_completed_event_attributes"):
                c = ev.activity_task_completed_event_attributes
                found += [(queues[c.scheduled_event_id], p) for p in c.result.payloads]
            elif ev.HasField("workflow_execution_started_event_attributes"):
                found += [
                    ("workflow", p)
                    for p in ev.workflow_execution_started_event_attributes.input.payloads
                ]
        return found

    return asyncio.run(fetch())


def decodes(codec: EncryptionCodec, payload: Payload) -> bool:
    try:
        codec.decode_one(payload)
    except CryptoError:
        return False
    return True


def hosts_decode_only_their_own(
    stack: RunningStack, sid: str, shared: dict[str, str], network: Network
) -> None:
    """Each host's keys (as the API hands them out: derived for its id) decode the inputs and
    results of its own activities and nothing else of the history: not the workflow's input
    (the accounts' passwords), not the main queue's activities, not the other host's."""
    stack_keys = parse_keys(shared["SIPFLOW_ENCRYPTION_KEYS"])
    stack_codec = EncryptionCodec(stack_keys)
    codecs = {
        m.name: EncryptionCodec(parse_host_keys(host_key_entries(stack_keys, m.name)))
        for m in network.machines
    }
    found = history_payloads(stack, sid)
    queue = stack.stack.settings.task_queue
    mine = {m.name: f"{queue}-host-{m.name}" for m in network.machines}
    assert all(decodes(stack_codec, p) for _, p in found)  # the stack reads all of it
    workflow_input = [p for where, p in found if where == "workflow"]
    assert workflow_input and b"secret" in stack_codec.decode_one(workflow_input[0]).data
    for host, codec in codecs.items():
        own = [p for where, p in found if where == mine[host]]
        rest = [p for where, p in found if where != mine[host]]
        assert len(own) >= 6, (host, len(own))  # provision, start, stop, teardown: in and out
        assert all(decodes(codec, p) for p in own), host
        assert not any(decodes(codec, p) for p in rest), host
        assert all(p.metadata["encryption-key-id"].startswith(f"h:{host}:".encode()) for p in own)
    # A host of another tenant's pool, with the codec keys the API gives it, reads none of it.
    with session_scope(stack.stack.settings.resolved_database_url) as db:
        _, other_key = runner_hosts_db.add_host(db, "other-tenant", POOL)
    beat = {"host_id": "other-tenant-h1", "cores": 1, "max_agents": 1, "running_agents": 0}
    r = httpx.put(
        f"{stack.stack.api_url}/v1/hosts/heartbeat",
        json=beat,
        headers={"Authorization": f"Bearer {other_key}"},
    )
    assert r.status_code == 200 and r.json()["tenant"] == "other-tenant", r.text
    other = EncryptionCodec(parse_host_keys(r.json()["codec_keys"]))
    assert not any(decodes(other, p) for _, p in found)


def test_four_callers_split_two_two_over_two_hosts(
    hosts_stack: RunningStack,
    network: Network,
    sut: tuple[str, int],
    runner_hosts: list[RunnerHostProcess],
    shared_secrets: dict[str, str],
) -> None:
    pools = hosts_stack.http.get("/v1/pools").json()["items"]
    edge = next(p for p in pools if p["pool"] == POOL)
    assert (edge["live_hosts"], edge["free_agents"]) == (2, 2 * MAX_AGENTS), edge
    body = hosts_stack.run(spec(sut, max_calls=200))
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    runners = per_runner(hosts_stack, body["id"])
    by_machine: dict[str, list[str]] = {}
    for rid, (address, _) in runners.items():
        by_machine.setdefault(on_machine(address, network), []).append(rid)
    assert sorted(by_machine[network.machines[0].name]) == ["caller-0", "caller-2"], by_machine
    assert sorted(by_machine[network.machines[1].name]) == ["caller-1", "caller-3"], by_machine
    assert by_machine["worker"] == ["callee-0"]
    # Per host counts (each runner's last cumulative count) add up to the stored totals.
    per_host = {
        m.name: sum(runners[r][1][-1].cum_successful_calls for r in by_machine[m.name])
        for m in network.machines
    }
    assert all(n > 0 for n in per_host.values()), per_host
    measured = body["summary"]["measured"]
    assert sum(per_host.values()) == measured["successful_calls"] == 200, (per_host, measured)
    assert body["summary"]["roles"]["callee"]["successful_calls"] == 200
    # ... and to SIPp's own statistics files, each runner's on the machine that ran it.
    for m, host in zip(network.machines, runner_hosts, strict=True):
        sipp = {}
        for rid in by_machine[m.name]:
            (stat,) = stat_files(host.data_dir / "runs" / body["id"] / rid)
            sipp[rid] = last_cumulative(stat)
            assert sipp[rid]["successful"] == runners[rid][1][-1].cum_successful_calls, rid
            assert sipp[rid]["failed"] == 0, (rid, sipp[rid])
        assert sum(v["successful"] for v in sipp.values()) == per_host[m.name], (m.name, sipp)
    # The hosts ran with none of the stack's secrets and made none of their own.
    for host in runner_hosts:
        assert not (host.data_dir / "secrets").exists(), list(host.data_dir.iterdir())
    hosts_decode_only_their_own(hosts_stack, body["id"], shared_secrets, network)
    # Each host's /metrics: its agents now (none: the session ended), the activities it ran.
    for m in network.machines:
        text = httpx.get(f"http://{m.address}:9464/metrics", timeout=5).text
        assert f'sipflow_runner_host_agents{{host="{m.name}",pool="{POOL}"}} 0.0' in text, text
        count = r"sipflow_activity_duration_seconds_count"
        started = re.search(count + r'\{activity="start_runners",outcome="ok"\} (\S+)', text)
        assert started is not None and float(started.group(1)) >= 1, text


def test_a_host_killed_mid_session_loses_its_runners_and_is_swept_when_back(
    hosts_stack: RunningStack,
    network: Network,
    sut: tuple[str, int],
    runner_hosts: list[RunnerHostProcess],
) -> None:
    wait_live(hosts_stack, 2)
    sid = hosts_stack.submit(spec(sut, duration_s=40, rate=10))
    wait_until(
        lambda: sum(len(iv) for _, iv in per_runner(hosts_stack, sid).values()) >= 8,
        90,
        "intervals from the callers",
    )
    dead, _alive = runner_hosts
    dead.kill_machine()
    body = hosts_stack.wait(sid, timeout=300)
    assert body["verdict"] == "fail", body
    reasons = " | ".join(body["reasons"])
    assert "runners lost: caller-0, caller-2" in reasons, reasons
    # The live host's callers were stopped by the abort and reported their end (not lost);
    # calls cut short by the stop may count as failed.
    states = {r["runner_id"]: r["state"] for r in body["runners"]}
    assert {states["caller-1"], states["caller-3"]} <= {"done", "failed"}, states
    # The live host's intervals are all stored: none missing, seqs without a gap.
    for rid in ("caller-1", "caller-3"):
        assert f"{rid}:" not in reasons, reasons
        seqs = [iv.seq for iv in per_runner(hosts_stack, sid)[rid][1]]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), (rid, seqs)
    # What the dead host left is swept when it comes back.
    dead.start()
    wait_until(lambda: f"swept session {sid}" in dead.log(), 60, "swept when back")
    tables = subprocess.run(
        ["ip", "netns", "exec", dead.machine.name, "nft", "list", "tables"],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert sid not in tables, tables
    wait_live(hosts_stack, 2)


def test_a_pool_too_small_is_refused_before_anything_starts(
    hosts_stack: RunningStack, sut: tuple[str, int], runner_hosts: list[RunnerHostProcess]
) -> None:
    wait_live(hosts_stack, 2)
    before = hosts_stack.http.get("/v1/sessions").json()["total"]
    r = hosts_stack.http.post("/v1/sessions", json=spec(sut, agents=9, max_calls=90))
    assert r.status_code == 422, r.text
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "roles", "callers", "pool"], err
    assert f"{2 * MAX_AGENTS} free agent slots on 2 live hosts" in err["msg"], err
    assert "needs 9" in err["msg"], err
    assert hosts_stack.http.get("/v1/sessions").json()["total"] == before
    # The CLI shows the same pool and hosts.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SIPFLOW_API_KEY": hosts_stack.stack.api_key or "",
    }
    cli = [sys.executable, "-m", "entrypoints.cli", "pools"]
    api = ["--api", hosts_stack.stack.api_url]
    out = subprocess.run([*cli, "hosts", POOL, *api, "--json"], env=env, capture_output=True,
                         text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sum(h["state"] == "live" for h in json.loads(out.stdout)["items"]) == 2, out.stdout
    out = subprocess.run([*cli, "list", *api], env=env, capture_output=True, text=True,
                         timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0 and POOL in out.stdout, out.stdout + out.stderr
    # A pool nobody joined (here the callee's, from the session's `pool`) has no capacity.
    r = hosts_stack.http.post("/v1/sessions", json=spec(sut, max_calls=10) | {"pool": "nowhere"})
    assert r.status_code == 422 and "0 free agent slots on 0 live hosts" in r.text, r.text


def test_two_sessions_placed_back_to_back_do_not_share_free_slots(
    hosts_stack: RunningStack, sut: tuple[str, int], runner_hosts: list[RunnerHostProcess]
) -> None:
    """The pool (2 hosts x 4 slots) fits one session of 5 callers, not two. Submitted back to
    back, both see 8 free slots in the hosts' heartbeats (their agents are not running yet):
    the first one's placement reserves its 5, so the second is refused, at the API or by its
    placement, with the numbers. The slots are free again once the first ended."""
    wait_live(hosts_stack, 2)
    first = hosts_stack.submit(spec(sut, agents=5, rate=10, duration_s=8))
    r = hosts_stack.http.post("/v1/sessions", json=spec(sut, agents=5, rate=10, duration_s=8))
    # Whichever is placed first holds 5 slots while it runs (the other is never placed).
    reserved = lambda: sum(h["reserved_agents"] for h in pool_hosts(hosts_stack))  # noqa: E731
    wait_until(lambda: reserved() == 5, 60, "5 slots reserved")
    if r.status_code == 422:  # the first one's placement came before this check
        refusals = [r.json()["detail"][0]["msg"]]
        bodies = [hosts_stack.wait(first, timeout=120)]
    else:
        assert r.status_code in (200, 201, 202), r.text
        bodies = [hosts_stack.wait(sid, timeout=120) for sid in (first, r.json()["id"])]
        # Under load either workflow may place first: one runs, the other is refused.
        refused = [b for b in bodies if (b["status"], b["verdict"]) == ("error", "error")]
        assert len(refused) == 1, bodies
        assert per_runner(hosts_stack, refused[0]["id"]) == {}  # nothing of it started
        refusals = [" | ".join(refused[0]["reasons"])]
        bodies.remove(refused[0])
    assert [(b["status"], b["verdict"]) for b in bodies] == [("completed", "pass")], bodies
    assert "3 free agent slots on 2 live hosts" in refusals[0], refusals
    assert "needs 5" in refusals[0], refusals
    hosts = pool_hosts(hosts_stack)
    assert sum(h["reserved_agents"] for h in hosts) == 0, hosts


class BrokerClient:
    """A runner's MQTT connection (its login and pinned client id) that records the broker's
    answer and being disconnected."""

    def __init__(self, port: int, sid: str, rid: str, password: str) -> None:
        self.connected, self.disconnected = threading.Event(), threading.Event()
        self.refused: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=runner_client_id(sid, rid), protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(runner_broker_user(sid, rid), password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.refused = str(rc) if rc.is_failure else None
        self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_revoked_host_credential_is_refused(
    hosts_stack: RunningStack, shared_secrets: dict[str, str], tmp_path: Path
) -> None:
    key_id, key = add_host(hosts_stack, POOL)
    beat = {"host_id": "h-revoked", "cores": 1, "max_agents": 1,
            "running_agents": 0}  # fmt: skip
    host = httpx.Client(
        base_url=hosts_stack.stack.api_url, headers={"Authorization": f"Bearer {key}"}
    )
    r = host.put("/v1/hosts/heartbeat", json=beat | {"task_queue": "sipflow-host-other"})
    assert r.status_code == 200, r.text
    # The task queue comes from the host's id, not from what the host says.
    assert r.json()["task_queue"] == "sipflow-host-h-revoked", r.json()
    # A host key does nothing else; another key cannot report a host.
    assert host.get("/v1/sessions").status_code == 403
    assert hosts_stack.http.put("/v1/hosts/heartbeat", json=beat).status_code == 403
    # Its codec keys are its own: derived from the stack's for its id, not the stack's.
    stack_keys = parse_keys(shared_secrets["SIPFLOW_ENCRYPTION_KEYS"])
    assert r.json()["codec_keys"] == host_key_entries(stack_keys, "h-revoked")
    # Its runners' broker logins, as the main queue makes them for a placement on it, are
    # in use (a runner connected) when the key is revoked.
    settings = hosts_stack.stack.settings
    logins = PoolActivities(settings).make_host_logins(
        HostLogins(session_id="revsess", tenant="default", shares=[
            HostShare(host_id="h-revoked", task_queue="q", runner_ids=["caller-0", "caller-1"])
        ])
    )  # fmt: skip
    runner = BrokerClient(settings.mqtt_port, "revsess", "caller-0", logins["caller-0"])
    assert runner.connected.wait(10) and runner.refused is None, runner.refused
    assert hosts_stack.http.delete(f"/v1/keys/{key_id}").status_code == 200
    assert host.put("/v1/hosts/heartbeat", json=beat).status_code == 401
    states = {h["key_id"]: h["state"] for h in pool_hosts(hosts_stack)}
    assert states[key_id] == "revoked"
    # The broker disconnected the host's runner and refuses its login from now on; the main
    # queue makes no more logins for the host.
    assert runner.disconnected.wait(10), "the revoked host's runner is still connected"
    runner.close()
    again = BrokerClient(settings.mqtt_port, "revsess", "caller-1", logins["caller-1"])
    assert again.connected.wait(10) and again.refused == "Not authorized", again.refused
    again.close()
    # Logins of the revoked host that the revocation missed (the broker was down then) are
    # removed by the worker's sweep.
    with broker_auth.admin(settings) as a:
        add_host_runners(a, broker_key(settings), "revsess3", "h-revoked", ["caller-0"])
    with session_scope(settings.resolved_database_url) as db:
        swept = sweep_revoked_hosts(db, settings)
    assert swept == {"h-revoked": ["runner/revsess3/caller-0"]}, swept
    with pytest.raises(ApplicationError, match="runner host h-revoked was revoked"):
        PoolActivities(settings).make_host_logins(
            HostLogins(session_id="revsess2", tenant="default", shares=[
                HostShare(host_id="h-revoked", task_queue="q", runner_ids=["caller-0"])
            ])
        )  # fmt: skip
    # The runner host itself stops at once with the refusal.
    env = {**os.environ, **shared_secrets, **host_env(hosts_stack, "127.0.0.1", key, "h-revoked")}
    env.update(PYTHONPATH=str(ROOT), SIPFLOW_DATA_DIR=str(tmp_path))
    argv = [
        sys.executable,
        "-c",
        f"from entrypoints.runner_host import main; raise SystemExit(main({POOL!r}))",
    ]
    t0 = time.monotonic()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 3, res.stderr
    assert "refused" in res.stderr and "401" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 30


async def test_the_workflow_refuses_a_pool_too_small_before_anything_starts(
    hosts_stack: RunningStack, sut: tuple[str, int]
) -> None:
    """What the API's check cannot see (hosts gone since the submit): the workflow's placement
    ends the session in error with the numbers, and no runner was started or registered."""
    from entrypoints.worker import connect
    from sipflow.workflow_types import WORKFLOW_NAME, SessionInput, workflow_id

    settings = hosts_stack.stack.settings
    client = await connect(settings)
    sid = "pooltoosmall"
    body = spec(sut, max_calls=10, pool="gone")
    await client.start_workflow(
        WORKFLOW_NAME,
        SessionInput(session_id=sid, tenant="default", spec=body),
        id=workflow_id(sid),
        task_queue=settings.task_queue,
    )
    detail = hosts_stack.wait(sid, timeout=120)
    assert (detail["status"], detail["verdict"]) == ("error", "error"), detail
    reasons = " | ".join(detail["reasons"])
    assert "pool 'gone' has 0 free agent slots on 0 live hosts" in reasons, reasons
    assert "needs 4" in reasons, reasons
    assert per_runner(hosts_stack, sid) == {}


def test_spread_by_free_capacity() -> None:
    from sipflow.pool_placement import HostSlot, PoolTooSmall, spread

    slots = [HostSlot(host_id=h, task_queue=f"q-{h}", free=f) for h, f in (("a", 2), ("b", 4))]
    shares = {s.host_id: s.runner_ids for s in spread("p", [f"c-{i}" for i in range(6)], slots)}
    assert {h: len(ids) for h, ids in shares.items()} == {"a": 2, "b": 4}
    equal = [HostSlot(host_id=h, task_queue=h, free=3) for h in ("a", "b")]
    shares = {s.host_id: s.runner_ids for s in spread("p", ["x0", "x1", "x2", "x3"], equal)}
    assert shares == {"a": ["x0", "x2"], "b": ["x1", "x3"]}
    with pytest.raises(PoolTooSmall, match=r"6 free agent slots on 2 live hosts .* needs 7"):
        spread("p", [f"c-{i}" for i in range(7)], slots)
