"""Reads SIPp's own statistics file, independently of sipflow's parser, to check stored counts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.conftest import RunningStack


def last_cumulative(stat_file: Path) -> dict[str, int]:
    """SuccessfulCall(C), FailedCall(C) and TotalCallCreated of the last row SIPp wrote."""
    lines = [ln for ln in stat_file.read_text().splitlines() if ln.strip()]
    header = lines[0].split(";")
    last = lines[-1].split(";")
    row = dict(zip(header, last, strict=False))
    return {
        "successful": int(row["SuccessfulCall(C)"]),
        "failed": int(row["FailedCall(C)"]),
        "created": int(row["TotalCallCreated"]),
    }


def stat_files(runner_dir: Path) -> list[Path]:
    return sorted(p for p in runner_dir.rglob("*.csv") if "_rtt" not in p.name and "stat" in p.name)


def stored_vs_sipp(rs: RunningStack, sid: str, body: dict[str, Any]) -> None:
    """The stored per-runner counts equal SIPp's own statistics file."""
    metrics = rs.http.get(f"/v1/sessions/{sid}/metrics").json()
    for runner in metrics["runners"]:
        rid = runner["runner_id"]
        (stat,) = stat_files(rs.runs_dir / sid / rid)
        sipp = last_cumulative(stat)
        points = runner["points"]
        seqs = [p["seq"] for p in points]
        assert seqs == list(range(1, len(seqs) + 1)), f"{rid}: gaps or repeats in {seqs}"
        assert sum(p["successful_calls"] for p in points) == sipp["successful"], rid
        assert sum(p["failed_calls"] for p in points) == sipp["failed"], rid
        assert sum(p["calls_created"] for p in points) == sipp["created"], rid
