"""What every fault test checks: (b) stored per-runner counts against SIPp's own statistics
files, no interval twice, and (c) nothing of the session left (processes, addresses,
namespaces, nftables tables); and the row it adds to the fault table."""

from __future__ import annotations

import subprocess
from typing import Any

from backends.netns import namespace, namespaces
from tests.conftest import RunningStack
from tests.sipp_files import last_cumulative, stat_files
from tests.test_netns import leftovers as net_leftovers


def stored_and_made(rs: RunningStack, sid: str) -> dict[str, Any]:
    """Per runner: stored successful+failed calls and intervals vs SIPp's statistics file."""
    metrics = rs.http.get(f"/v1/sessions/{sid}/metrics").json()
    out: dict[str, Any] = {}
    for runner in metrics["runners"]:
        rid = runner["runner_id"]
        files = stat_files(rs.runs_dir / sid / rid)
        sipp = last_cumulative(files[0]) if files else {"successful": 0, "failed": 0, "created": 0}
        rows = 0
        if files:
            rows = len([ln for ln in files[0].read_text().splitlines() if ln.strip()]) - 1
        seqs = [p["seq"] for p in runner["points"]]
        out[rid] = {
            "stored_ok": sum(p["successful_calls"] for p in runner["points"]),
            "stored_failed": sum(p["failed_calls"] for p in runner["points"]),
            "stored_created": sum(p["calls_created"] for p in runner["points"]),
            "sipp_ok": sipp["successful"],
            "sipp_failed": sipp["failed"],
            "sipp_created": sipp["created"],
            "seqs": seqs,
            "sipp_rows": rows,
        }
    return out


def assert_stored_equals_sipp(counts: dict[str, Any]) -> None:
    for rid, c in counts.items():
        assert len(c["seqs"]) == len(set(c["seqs"])), f"{rid}: an interval stored twice"
        assert c["seqs"] == list(range(1, len(c["seqs"]) + 1)), f"{rid}: gaps in {c['seqs']}"
        assert len(c["seqs"]) == c["sipp_rows"], f"{rid}: {len(c['seqs'])} of {c['sipp_rows']}"
        for k in ("ok", "failed", "created"):
            assert c[f"stored_{k}"] == c[f"sipp_{k}"], f"{rid} {k}: {c}"


def leftovers(rs: RunningStack, sid: str) -> list[str]:
    """Processes, loopback addresses, namespace, veth and nftables tables of the session."""
    left = list(net_leftovers(sid))
    if namespace(sid) in namespaces():
        left.append(f"netns {namespace(sid)}")
    argv = ["ip", "-o", "addr", "show", "dev", "lo"]
    addrs = subprocess.run(argv, capture_output=True, text=True)
    left += [f"address {ln.split()[3]}" for ln in addrs.stdout.splitlines() if f"lo:{sid}" in ln]
    ps = subprocess.run(["pgrep", "-af", f"runs/{sid}/"], capture_output=True, text=True)
    left += [f"process {ln}" for ln in ps.stdout.splitlines() if ln.strip()]
    return sorted(set(left))


def row(
    fault: str, body: dict[str, Any], counts: dict[str, Any], left: list[str]
) -> dict[str, Any]:
    callers = [c for rid, c in counts.items() if rid.startswith("caller")]
    stored = sum(c["stored_ok"] + c["stored_failed"] for c in callers)
    made = sum(c["sipp_ok"] + c["sipp_failed"] for c in callers)
    n_int = sum(len(set(c["seqs"])) for c in counts.values())
    n_rows = sum(c["sipp_rows"] for c in counts.values())
    dup = sum(len(c["seqs"]) - len(set(c["seqs"])) for c in counts.values())
    return {
        "fault": fault,
        "verdict": body.get("verdict"),
        "calls": f"{stored}/{made}",
        "intervals": f"{n_int}/{n_rows}" + (f" ({dup} twice)" if dup else ""),
        "leftovers": len(left),
    }
