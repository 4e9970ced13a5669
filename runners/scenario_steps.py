"""The steps of a SIPp scenario and their per-step results.

A step is marked by `<!-- sipflow-step: NAME -->` right before its first element; it holds the
elements up to the next mark. SIPp numbers the scenario's top-level messages (send, recv,
pause, nop, sendCmd, recvCmd; not label or the repartition elements) from 0 in its
-trace_counts CSV, whose columns are `<index>_<label>_<counter>` (Sent, Recv, Retrans,
Timeout, Unexp, Sessions) and whose rows are cumulative.

Per step: passed = the calls through its last required send/recv (its Sent or Recv count),
plus those through a required send/recv that jumps (`next` without `test`: a branch of the step,
e.g. a compiled call script's INVITE for rows without credentials);
failed = the Timeout and Unexp counts of its messages (SIPp counts an unexpected message on
the message the call was waiting at, and a retransmission timeout on the request), plus the calls
through a message marked `<!-- sipflow-fails: KIND -->`: an expected answer that still fails the
step (e.g. a REFER answered 403: the flow takes it to end its calls cleanly), counted as KIND.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Comment, Element, TreeBuilder

from defusedxml.ElementTree import DefusedXMLParser

from runners.sipp_stats import split_fields

STEP_RE = re.compile(r"^\s*sipflow-step:\s*([a-z0-9_]+)\s*$")
FAILS_RE = re.compile(r"^\s*sipflow-fails:\s*([a-z0-9_]+)\s*$")
MESSAGE_TAGS = frozenset({"send", "recv", "pause", "nop", "sendCmd", "recvCmd"})
FAIL_COUNTERS = ("Timeout", "Unexp")
# The counters that say a call went through a message (whichever the message has).
THROUGH_COUNTERS = ("Sent", "Recv")


@dataclass(frozen=True)
class StepMark:
    name: str
    indexes: tuple[int, ...]  # SIPp message indexes of the step
    required: tuple[int, ...] = ()  # of those, the non-optional send/recv
    branches: tuple[int, ...] = ()  # of those, the ones that jump (`next`, no `test`)
    fails: tuple[tuple[int, str], ...] = ()  # (index, kind): calls through it fail the step


def steps_of(xml_text: str) -> list[StepMark]:
    """The marked steps of a scenario, in order (empty when it has no marks). A name used twice
    gets the messages of both places."""
    builder = TreeBuilder(insert_comments=True)
    parser = DefusedXMLParser(target=builder)
    parser.feed(xml_text)
    root: Element = parser.close()
    order: list[str] = []
    indexes: dict[str, list[int]] = {}
    required: dict[str, list[int]] = {}
    branches: dict[str, list[int]] = {}
    fails: dict[str, list[tuple[int, str]]] = {}
    pending: str | None = None
    failing: str | None = None  # the kind of a `sipflow-fails` mark, for the next message
    current: str | None = None
    index = 0
    for child in root:
        if child.tag is Comment:
            m = STEP_RE.match(child.text or "")
            if m:
                pending = m.group(1)
            f = FAILS_RE.match(child.text or "")
            if f:
                failing = f.group(1)
            continue
        if child.tag not in MESSAGE_TAGS:
            continue  # label, repartitions: no message index
        if pending is not None:
            current, pending = pending, None
            if current not in indexes:
                order.append(current)
                indexes[current], required[current], branches[current] = [], [], []
                fails[current] = []
        if current is not None:
            indexes[current].append(index)
            if failing is not None:
                fails[current].append((index, failing))
            if child.tag in ("send", "recv") and child.get("optional") is None:
                required[current].append(index)
                if child.get("next") is not None and child.get("test") is None:
                    branches[current].append(index)
        failing = None
        index += 1
    return [
        StepMark(n, tuple(indexes[n]), tuple(required[n]), tuple(branches[n]), tuple(fails[n]))
        for n in order
    ]


@dataclass
class StepResult:
    step: str
    passed: int = 0
    failed: int = 0
    # failure counters by kind, e.g. {"unexpected": 3, "timeout": 1}
    failed_by: dict[str, int] = field(default_factory=dict)


def parse_counts(text: str) -> dict[int, dict[str, int]]:
    """The last row of a -trace_counts CSV: message index -> {counter: value}."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    header, last = split_fields(lines[0]), split_fields(lines[-1])
    out: dict[int, dict[str, int]] = {}
    for col, value in zip(header, last, strict=False):
        idx, _, rest = col.partition("_")
        if not idx.isdigit():
            continue  # CurrentTime, ElapsedTime
        counter = rest.rsplit("_", 1)[-1]
        try:
            out.setdefault(int(idx), {})[counter] = int(float(value or "0"))
        except ValueError:
            continue
    return out


def _through(counts: dict[str, int]) -> int:
    return next((counts[c] for c in THROUGH_COUNTERS if c in counts), 0)


def step_results(marks: list[StepMark], counts: dict[int, dict[str, int]]) -> list[StepResult]:
    results = []
    for mark in marks:
        res = StepResult(mark.name)
        ends = mark.required or mark.indexes
        last = {ends[-1]} if ends else set()
        res.passed = sum(_through(counts.get(i, {})) for i in sorted(last | set(mark.branches)))
        for i in mark.indexes:
            c = counts.get(i, {})
            for kind, name in (("Timeout", "timeout"), ("Unexp", "unexpected")):
                if c.get(kind):
                    res.failed_by[name] = res.failed_by.get(name, 0) + c[kind]
        for i, kind in mark.fails:
            if n := _through(counts.get(i, {})):
                res.failed_by[kind] = res.failed_by.get(kind, 0) + n
        res.failed = sum(res.failed_by.values())
        results.append(res)
    return results


def counts_file(scenario_path: str, pid: int) -> str:
    """SIPp names it <scenario stem>_<pid>_counts.csv beside the scenario."""
    stem = scenario_path.rsplit(".", 1)[0]
    return f"{stem}_{pid}_counts.csv"
