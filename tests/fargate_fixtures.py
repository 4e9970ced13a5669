"""AWS for the fargate backend's tests: moto in server mode (a real HTTP endpoint speaking ECS,
EC2, Secrets Manager, IAM, CloudFormation), one per test module, behind a small HTTP proxy that
can inject AWS's faults (throttling, RunTask capacity failures, tasks that never run).

moto is a stand-in: it runs no containers. Its task states and addresses are fiction (a task is
RUNNING as soon as it is made, its address a random private IP); what it checks is the API
calls: parameters, resources, tags, the objects that exist afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from entrypoints.stack import free_port, wait_for_port

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REGION = "us-east-1"

# target action (e.g. "RunTask") -> what to do with the next calls
Rewrite = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Faults:
    """Per action: answer the next `throttle[action]` calls with ThrottlingException (-1: all),
    replace the next `fail[action]` responses by `failures` (RunTask), rewrite responses."""

    throttle: dict[str, int] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    rewrite: dict[str, Rewrite] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.throttle.clear()
            self.fail.clear()
            self.failures.clear()
            self.rewrite.clear()
            self.calls.clear()

    def _take(self, table: dict[str, int], action: str) -> bool:
        n = table.get(action, 0)
        if n == 0:
            return False
        if n > 0:
            table[action] = n - 1
        return True

    def decide(self, action: str) -> str:
        with self.lock:
            self.calls[action] += 1
            if self._take(self.throttle, action):
                return "throttle"
            if self._take(self.fail, action):
                return "fail"
            return "forward"


def _proxy(upstream_port: int, faults: Faults) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            action = target.rsplit(".", 1)[-1] if target else ""
            decision = faults.decide(action) if action else "forward"
            if decision == "throttle":
                self._answer(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = f"127.0.0.1:{upstream_port}"
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            out_headers = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower()
                not in ("content-length", "transfer-encoding", "connection", "server", "date")
            ]
            conn.close()
            if decision == "fail" and status == 200:
                self._answer(200, {"tasks": [], "failures": list(faults.failures)})
                return
            if action in faults.rewrite and status == 200:
                data = json.dumps(faults.rewrite[action](json.loads(data))).encode()
            self.send_response(status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", "sipflow-fault-proxy")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="aws-fault-proxy", daemon=True).start()
    return server


@dataclass
class Moto:
    url: str  # moto itself
    proxy_url: str  # through the fault proxy
    faults: Faults

    def client(self, service: str, via_proxy: bool = False) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.proxy_url if via_proxy else self.url,
        )


def moto_server_command(port: int) -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        found = shutil.which("moto_server")
        if found is None:
            pytest.fail("moto_server is missing: pip install 'moto[server]' (the dev extra)")
        exe = Path(found)
    return [str(exe), "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="module", name="moto")
def moto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(moto_server_command(port), stdout=log, stderr=subprocess.STDOUT)
    faults = Faults()
    proxy = None
    try:
        wait_for_port(port, timeout=30, proc=proc)
        proxy = _proxy(port, faults)
        # moto moves a task on (RUNNING, DEACTIVATING, ... STOPPED) every time it is described;
        # a task of a test runs until it is stopped.
        set_transition = json.dumps(
            {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}}
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/moto-api/state-manager/set-transition", body=set_transition)
        assert conn.getresponse().status == 201
        conn.close()
        yield Moto(
            url=f"http://127.0.0.1:{port}",
            proxy_url=f"http://127.0.0.1:{proxy.server_address[1]}",
            faults=faults,
        )
    finally:
        if proxy is not None:
            proxy.shutdown()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Network:
    cluster: str
    subnets: list[str]
    security_groups: list[str]


def make_network(moto: Moto, cluster: str) -> Network:
    """A VPC with two subnets, a security group and an ECS cluster in moto."""
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    # as deploy/aws/ makes it (moto's ECS also needs it for a task's ENI)
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(
        GroupName=f"runners-{cluster}", Description="sipflow runners", VpcId=vpc
    )["GroupId"]
    moto.client("ecs").create_cluster(clusterName=cluster)
    return Network(cluster=cluster, subnets=subnets, security_groups=[sg])


def wait_until(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.05)
