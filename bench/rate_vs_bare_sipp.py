"""sipflow at R calls/s for D seconds against bare SIPp (built-in uac/uas) at the same rate, in
the same run and the same network layout: with the local backend's namespaces (the default),
bare SIPp runs in a session namespace of its own too. Achieved rate = successful calls / elapsed
time, both read from SIPp's own stat file.

    .venv/bin/python -m bench.rate_vs_bare_sipp [--rate 1000 --seconds 10] [--local-network netns]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backends.netns import NamespaceNetworks, namespace
from bench.common import embedded_stack, stat_totals, wait_final

BUFF = "4194304"


@contextmanager
def bare_layout(mode: str) -> Iterator[tuple[list[str], str, str]]:
    """(command prefix, uas address, uac address) as a session of `mode` would have them."""
    if mode == "loopback":
        yield [], "127.0.9.1", "127.0.9.2"
        return
    with tempfile.TemporaryDirectory(prefix="bare-netns-") as tmp:
        nets, sid = NamespaceNetworks(Path(tmp)), f"bare{uuid.uuid4().hex[:8]}"
        prefix = nets.provision(sid, [10, 100])
        try:
            yield ["ip", "netns", "exec", namespace(sid)], f"{prefix}.10", f"{prefix}.100"
        finally:
            nets.teardown(sid)


def bare_sipp(rate: int, calls: int, mode: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bare-sipp-") as tmp, bare_layout(mode) as layout:
        work = Path(tmp)
        run_in, uas_ip, uac_ip = layout
        uas = subprocess.Popen(
            [*run_in, "sipp", "-sn", "uas", "-i", uas_ip, "-p", "5060", "-nostdin",
             "-buff_size", BUFF],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            stat = work / "uac-stat.csv"
            subprocess.run(
                [*run_in, "sipp", f"{uas_ip}:5060", "-sn", "uac", "-i", uac_ip, "-p", "5060",
                 "-nostdin", "-buff_size", BUFF, "-r", str(rate), "-m", str(calls),
                 "-trace_stat", "-stf", str(stat), "-fd", "1", "-recv_timeout", "32000"],
                cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600,
                check=False,
            )  # fmt: skip
            return stat_totals(stat)
        finally:
            uas.kill()
            uas.wait()


def sipflow_session(rate: int, calls: int, mode: str) -> tuple[dict[str, float], dict[str, object]]:
    spec = {
        "name": "bench-rate",
        "roles": {"callees": {"agents": 1}, "callers": {"rate": rate, "max_calls": calls}},
        "thresholds": ["failed_calls == 0"],
    }
    with embedded_stack(SIPFLOW_LOCAL_NETWORK=mode) as (stack, http):
        r = http.post("/v1/sessions", json=spec)
        r.raise_for_status()
        sid = r.json()["id"]
        body = wait_final(http, sid, timeout=900)
        (stat,) = (stack.data_dir / "runs" / sid / "caller-0").rglob("main-stat.csv")
        return stat_totals(stat), body


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--local-network", default="netns", choices=["netns", "loopback"])
    args = ap.parse_args()
    calls = args.rate * args.seconds
    bare = bare_sipp(args.rate, calls, args.local_network)
    flow, body = sipflow_session(args.rate, calls, args.local_network)
    measured = body["summary"]["measured"]  # type: ignore[index]
    rate_bare = bare["successful"] / bare["elapsed_s"]
    rate_flow = flow["successful"] / flow["elapsed_s"]
    print(f"target: {args.rate} calls/s for {args.seconds} s ({calls} calls), {args.local_network}")
    print(
        f"bare SIPp : created {bare['created']:.0f}  ok {bare['successful']:.0f}  "
        f"failed {bare['failed']:.0f}  successful {rate_bare:.1f} calls/s"
    )
    print(
        f"sipflow   : created {flow['created']:.0f}  ok {flow['successful']:.0f}  "
        f"failed {flow['failed']:.0f}  successful {rate_flow:.1f} calls/s  "
        f"verdict {body['verdict']}  stored successful {measured['successful_calls']:.0f}"
    )
    print(f"successful-calls/s ratio sipflow/bare: {rate_flow / rate_bare:.3f}")


if __name__ == "__main__":
    main()
