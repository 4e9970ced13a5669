"""Parsers for SIPp's -trace_stat CSV and -trace_rtt CSV.

Stat file: one header line, then one row per -fd interval, 95 columns separated by `;` with a
trailing `;`. Time columns hold `date<TAB>time<TAB>epoch`; durations are `HH:MM:SS:usec`
(ElapsedTime is `HH:MM:SS`). Periodic (P) columns are reset at each row, so the periodic values
of all rows add up to the cumulative (C) values of the last row (checked on real runs).

Rtt file: `Date_ms;response_time_ms;rtd_no`, one line per sample with -rtt_freq 1; Date_ms is
milliseconds since SIPp started, response_time_ms an integer, rtd_no the rtd's name as the
scenario gives it ("1", "2", or a word such as a flow step's name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipflow.messages import Counters


def parse_time(value: str) -> float:
    """`2026-11-26<TAB>22:55:48.016388<TAB>1795733748.016388` -> epoch seconds."""
    return float(value.strip().split("\t")[-1])


def parse_duration(value: str) -> float:
    """`HH:MM:SS:usec` or `HH:MM:SS` -> seconds."""
    parts = value.strip().split(":")
    if len(parts) < 3:
        raise ValueError(f"not a SIPp duration: {value!r}")
    seconds = float(int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2]))
    if len(parts) > 3:
        seconds += int(parts[3]) / 1_000_000
    return seconds


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def cause_name(column: str) -> str:
    """`FailedUnexpectedMessage` -> `unexpected_message`, `FailedMaxUDPRetrans` ->
    `max_udp_retrans`."""
    return _snake(column.removeprefix("Failed"))


@dataclass(frozen=True)
class StatRow:
    start_time: float
    current_time: float
    elapsed_s: float  # cumulative, since SIPp started
    call_rate: float  # periodic calls created per second
    target_rate: float
    current_calls: int
    periodic: Counters
    cumulative: Counters

    @property
    def elapsed_ms(self) -> float:
        return (self.current_time - self.start_time) * 1000.0


def split_fields(line: str) -> list[str]:
    fields = line.rstrip("\r\n").split(";")
    if fields and fields[-1] == "":
        fields.pop()  # trailing `;`
    return fields


class StatParser:
    """Turns stat-file lines into rows; the first line fed must be the header."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def feed(self, line: str) -> StatRow | None:
        if not line.strip():
            return None
        fields = split_fields(line)
        if self.columns is None:
            self.columns = fields
            return None
        return parse_row(self.columns, fields)


def _counters(values: dict[str, str], suffix: str) -> Counters:
    def num(name: str) -> int:
        raw = values.get(name + suffix, "") or "0"
        return int(float(raw))

    causes = {
        cause_name(col[: -len(suffix)]): int(float(v or "0"))
        for col, v in values.items()
        if col.startswith("Failed") and col.endswith(suffix) and col != "FailedCall" + suffix
    }
    return Counters(
        calls_created=num("IncomingCall") + num("OutgoingCall"),
        successful_calls=num("SuccessfulCall"),
        failed_calls=num("FailedCall"),
        retransmissions=num("Retransmissions"),
        failed_by_cause={k: v for k, v in causes.items() if v},
    )


def parse_row(columns: list[str], fields: list[str]) -> StatRow:
    if len(fields) < len(columns):
        raise ValueError(f"stat row has {len(fields)} fields, header {len(columns)}")
    values = dict(zip(columns, fields, strict=False))
    return StatRow(
        start_time=parse_time(values["StartTime"]),
        current_time=parse_time(values["CurrentTime"]),
        elapsed_s=parse_duration(values["ElapsedTime(C)"]),
        call_rate=float(values.get("CallRate(P)") or 0.0),
        target_rate=float(values.get("TargetRate") or 0.0),
        current_calls=int(float(values.get("CurrentCall") or 0)),
        periodic=_counters(values, "(P)"),
        cumulative=_counters(values, "(C)"),
    )


def parse_stat_text(text: str) -> list[StatRow]:
    parser = StatParser()
    rows = []
    for line in text.splitlines():
        row = parser.feed(line)
        if row is not None:
            rows.append(row)
    return rows


@dataclass(frozen=True)
class RttSample:
    date_ms: float  # since SIPp started
    response_ms: float
    rtd: str


def parse_rtt_line(line: str) -> RttSample | None:
    """One rtt line, or None for the header and blank lines."""
    fields = split_fields(line)
    if len(fields) < 3 or not fields[0] or not fields[0][0].isdigit():
        return None
    return RttSample(float(fields[0]), float(fields[1]), fields[2].strip())


def parse_rtt_text(text: str) -> list[RttSample]:
    return [s for s in map(parse_rtt_line, text.splitlines()) if s is not None]
