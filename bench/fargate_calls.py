"""The fargate backend's AWS calls per session, and their time, against moto in server mode.

    .venv/bin/python -m bench.fargate_calls [--sessions 5] [--agents 1,10,50]

For each size (callee and caller agents each), it runs sessions through provision, start of both
roles, stop and teardown, and prints the AWS API calls one session makes, by operation, and the
time per session. moto answers in microseconds and runs no containers, so the time is sipflow's
and boto3's own; what matters for AWS is the call count (ECS throttles RunTask, DescribeTasks and
RegisterTaskDefinition per account and region).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from backends.fargate import FargateBackend
from entrypoints.stack import free_port, wait_for_port
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


def spec(agents: int) -> SessionSpec:
    return SessionSpec.model_validate(
        {
            "name": "bench",
            "backend": "fargate",
            "target": {"host": "10.42.9.9", "registrar": False},
            "roles": {
                "callees": {"agents": agents},
                "callers": {"agents": agents, "rate": agents, "max_calls": agents * 10,
                            "call_to": ["bob"]},
            },
        }
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--agents", default="1,10,50")
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    exe = Path(sys.executable).with_name("moto_server")
    moto_server = str(exe) if exe.exists() else shutil.which("moto_server")
    if moto_server is None:
        sys.exit("moto_server is missing: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen(
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, proc)
        url = f"http://127.0.0.1:{port}"
        ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.0.0/20")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="r", Description="r", VpcId=vpc)["GroupId"]
        boto3.client("ecs", endpoint_url=url, region_name="us-east-1").create_cluster(
            clusterName="bench"
        )
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", "/moto-api/state-manager/set-transition", body=json.dumps(
            {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}}
        ))  # fmt: skip
        c.getresponse().read()
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                runner_token_secret="bench-runner-token-secret",
                fargate_endpoint_url=url,
                fargate_cluster="bench",
                fargate_subnets=[subnet],
                fargate_security_groups=[sg],
                fargate_poll_s=0.05,
            )
            backend = FargateBackend.from_settings(settings)
            calls: collections.Counter[str] = collections.Counter()

            def count(event_name: str, **_: Any) -> None:
                calls[event_name.rsplit(".", 1)[-1]] += 1

            for client in (backend.aws.ecs, backend.aws.secrets):
                client.meta.events.register("before-call", count)
            print(f"{'agents/role':>11} {'s/session':>9} {'calls/session':>13}  by operation")
            for agents in (int(a) for a in args.agents.split(",")):
                calls.clear()
                s = spec(agents)
                started = time.perf_counter()
                for i in range(args.sessions):
                    sid = f"bench{agents:03d}{i:04d}"
                    placement = backend.provision(sid, [], s)
                    backend.start(placement, s, "callee", {})
                    backend.start(placement, s, "caller", {})
                    backend.stop(placement, grace_s=1)
                    backend.teardown(placement)
                per = (time.perf_counter() - started) / args.sessions
                total = sum(calls.values()) / args.sessions
                ops = ", ".join(f"{k} {v / args.sessions:g}" for k, v in calls.most_common())
                print(f"{agents:>11} {per:>9.2f} {total:>13g}  {ops}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
