"""Turns the growing stat and rtt files of one SIPp run into numbered StatsMessages.

One message per stat row (seq 1, 2, 3, ... without gaps). The histogram of a row holds the rtd-1
samples (its PDD and call-duration histograms the rtd-2 and rtd-3 ones) dated up to that row's
time (rtt Date_ms and the row's elapsed time both count from SIPp's start); samples written after
the last row are added to the last row SIPp writes at exit.
"""

from __future__ import annotations

import time
from pathlib import Path

from runners.sipp_stats import RttSample, StatParser, StatRow, parse_rtt_line
from runners.tail import LineTail
from sipflow import histogram
from sipflow.messages import Counters, Role, StatsMessage

RTD = "1"  # first INVITE -> 200: the response (setup) time
PDD_RTD = "2"  # first INVITE -> first 18x: the post-dial delay (call.xml)
DURATION_RTD = "3"  # the INVITE's 200 -> our BYE: an answered call's duration (call.xml)


class StatsStream:
    def __init__(self, session_id: str, runner_id: str, role: Role, first_seq: int = 1) -> None:
        self.session_id = session_id
        self.runner_id = runner_id
        self.role = role
        self.next_seq = first_seq
        self.last_row: StatRow | None = None
        self._stat_tail = LineTail()
        self._rtt_tail = LineTail()
        self._parser = StatParser()
        self._pending: list[RttSample] = []
        self.samples_total = 0
        # rtds named after a scenario's steps: name -> [count, sum ms, max ms]
        self.step_names: frozenset[str] = frozenset()
        self.step_times: dict[str, list[float]] = {}

    def attach(self, stat_path: Path, rtt_path: Path) -> None:
        self._stat_tail = LineTail(stat_path)
        self._rtt_tail = LineTail(rtt_path)
        self._parser = StatParser()

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def summary(self) -> Counters:
        return self.last_row.cumulative if self.last_row else Counters()

    def _read_rtt(self, final: bool) -> None:
        for line in self._rtt_tail.read_lines(final=final):
            sample = parse_rtt_line(line)
            if sample is not None and sample.rtd in (RTD, PDD_RTD, DURATION_RTD):
                self._pending.append(sample)
            elif sample is not None and sample.rtd in self.step_names:
                t = self.step_times.setdefault(sample.rtd, [0, 0.0, 0.0])
                t[0] += 1
                t[1] += sample.response_ms
                t[2] = max(t[2], sample.response_ms)

    def poll(self, final: bool = False) -> list[StatsMessage]:
        """Messages for the rows written since the last poll. final: SIPp has exited."""
        rows = [
            r
            for r in map(self._parser.feed, self._stat_tail.read_lines(final=final))
            if r is not None
        ]
        # Rows first, then samples: every sample dated before a row is already in the file.
        self._read_rtt(final)
        messages = []
        for i, row in enumerate(rows):
            last = final and i == len(rows) - 1
            if last:
                taken, self._pending = self._pending, []
            else:
                taken = [s for s in self._pending if s.date_ms <= row.elapsed_ms]
                self._pending = [s for s in self._pending if s.date_ms > row.elapsed_ms]
            messages.append(self._message(row, taken))
        return messages

    def _message(self, row: StatRow, samples: list[RttSample]) -> StatsMessage:
        self.last_row = row
        self.samples_total += sum(1 for s in samples if s.rtd == RTD)
        pdd = [s.response_ms for s in samples if s.rtd == PDD_RTD]
        durations = [s.response_ms for s in samples if s.rtd == DURATION_RTD]
        msg = StatsMessage(
            session_id=self.session_id,
            runner_id=self.runner_id,
            role=self.role,
            seq=self.next_seq,
            time=row.current_time or time.time(),
            current_calls=row.current_calls,
            call_rate=row.call_rate,
            periodic=row.periodic,
            cumulative=row.cumulative,
            histogram=histogram.from_samples(s.response_ms for s in samples if s.rtd == RTD),
            pdd_histogram=histogram.from_samples(pdd) if pdd else [],
            pdd_sum_ms=sum(pdd),
            duration_histogram=(
                histogram.from_samples(durations, histogram.DURATION_BOUNDS_MS) if durations else []
            ),
            duration_sum_ms=sum(durations),
        )
        self.next_seq += 1
        return msg
