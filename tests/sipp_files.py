"""Reads SIPp's own statistics file, independently of sipflow's parser, to check stored counts."""

from __future__ import annotations

from pathlib import Path


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
